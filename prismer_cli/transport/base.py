"""The transport interface shared by every subcommand, and the settings it is opened with.

A Connection is authenticated when it is returned. It yields each server text frame as the
bytes of one JSON document; it acknowledges, pings and closes on the caller's behalf.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from prismer_cli.log import Log
from prismer_cli.protocol.dialects import Dialect, Hello
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.records import Frozen, Record, replace
from prismer_cli.retry import Deadline
from prismer_cli.tuning import Timeouts

if TYPE_CHECKING:
    from prismer_cli.transport.trace import Tracer


class Endpoint(Frozen):
    """Where to connect and how: everything a transport needs, nothing it must look up."""

    url: str
    token: str
    transport: str  # auto | ws | sse
    dialect: Dialect | None  # None: detect
    timeouts: Timeouts
    deadline: Deadline  # none by default
    trace: Tracer | None  # --trace: every transport traces the wire through it

    def __init__(
        self,
        url: str,
        token: str,
        transport: str = "auto",
        dialect: Dialect | None = None,
        timeouts: Timeouts | None = None,
        deadline: Deadline | None = None,
        trace: Tracer | None = None,
    ) -> None:
        timeouts = Timeouts() if timeouts is None else timeouts
        deadline = Deadline() if deadline is None else deadline
        self._init(locals())

    def until(self, deadline: Deadline) -> Endpoint:
        """This endpoint with its deadline set and its waits (connect, authentication) cut to
        what is left of it. A stream's silence timeout is not cut: a stream ends at the
        deadline by itself (Connection.messages)."""
        t = self.timeouts
        return replace(
            self,
            deadline=deadline,
            timeouts=replace(
                t,
                connect=deadline.cut(t.connect),
                auth=deadline.cut(t.auth),
            ),
        )

    def cut(self) -> Endpoint:
        """This endpoint with its waits cut to what is left of its deadline now."""
        return self.until(self.deadline)

    def attempt(self) -> Endpoint:
        """This endpoint for one connection attempt: TCP, TLS, upgrade, authentication and any
        fallback together end within the connect timeout (and by the deadline)."""
        return self.until(self.deadline.within(self.timeouts.connect))


class Resume(Record):
    """What carries over from one connection to the next (sticky choices, resume points)."""

    transport: str | None
    dialect: Dialect | None
    last_event_id: str | None
    retry_ms: int | None
    last_event_time: int | None
    user_id: str | None

    def __init__(
        self,
        transport: str | None = None,  # "sse" once WebSocket was found unavailable
        dialect: Dialect | None = None,
        last_event_id: str | None = None,  # SSE Last-Event-ID
        retry_ms: int | None = None,  # SSE retry: field
        last_event_time: int | None = None,  # server dialect `timestamp` of the last event
        user_id: str | None = None,  # who the token is, for --ignore-self
    ) -> None:
        self._init(locals())


class Connection(Protocol):
    hello: Hello
    kind: str  # "ws" or "sse"

    def messages(self, deadline: float | None = None) -> Iterator[bytes]:
        """Each text frame; ends quietly at the monotonic deadline; raises ConnectionLost."""
        ...

    def batches(self, deadline: float | None = None) -> Iterator[list[bytes]]:
        """As messages(), a list at a time: each frame with those already buffered after it."""
        ...

    def pending(self) -> bool:
        """True when the next message is already buffered (no need to flush output yet)."""
        ...

    def send(self, frame: JSON) -> None: ...

    def send_many(self, frames: list[JSON]) -> None:
        """Write several frames with one system call."""
        ...

    def send_texts(self, payloads: list[bytes]) -> None:
        """send_many, of frames already serialised."""
        ...

    def ack(self, ack_id: str) -> None:
        """Queue an acknowledgement; flush_acks() sends the queue once output is flushed."""
        ...

    def flush_acks(self) -> None: ...

    def close(self) -> list[bytes]:
        """Close with 1000; returns the text frames that arrived during the closing handshake."""
        ...

    def abort(self) -> None:
        """Drop the connection at once, without a closing handshake."""
        ...


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None."""
    value = None
    if headers:
        value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime  # ~8 ms: only for an HTTP-date

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


Connect = Callable[[Endpoint, Resume, Log], Connection]
"""Opens an authenticated Connection (open_connection; wrapped by the token keeper and the
durable feed, replaced by a fake in tests)."""
