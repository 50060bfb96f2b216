"""SSE transport: requests opens the stream, sseparse parses it (read-only: commands use REST).

The docs dialect's named events (`event: message.new` + `data: <payload>`) become envelopes
`{"type": <event>, "payload": <data>}`; the server dialect's unnamed `data:` lines already are
envelopes. Over the docs path, the last `id:` is sent back as `Last-Event-ID` on reconnect and
`retry:` sets the next reconnection delay, as a browser's EventSource does.

The stream is read with urllib3's read1(), which returns whatever has arrived, and parsed by
sseparse.py rather than sseclient-py, whose per-event cost caps it below 70k events/s
(README "Design notes"). A silent stream trips the read timeout (Timeouts.sse_silence). Opening
the stream is a step that ends by the attempt's deadline, and reading it ends at the caller's
--timeout: at either, the watchdog shuts the socket down (watchdog.py), so that neither a
silent server nor one that trickles bytes can hold a read past it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import repeat
from operator import itemgetter
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
import requests
import urllib3

from prismer_cli import signals
from prismer_cli.errors import AuthError, ConnectError, ConnectionLost
from prismer_cli.protocol.dialects import SSE_PROBE_ORDER, Dialect, Hello, error_message
from prismer_cli.redact import redact
from prismer_cli.transport.base import Endpoint, Resume, retry_after
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.sseparse import SSEEvent, SSEParser
from prismer_cli.transport.trace import Tracer
from prismer_cli.transport.tracehttp import traced
from prismer_cli.transport.urls import endpoint as endpoint_url
from prismer_cli.transport.watchdog import STOP, Watch

CHUNK = 65536
_T = TypeVar("_T")


class _Envelopes:
    """Named SSE events as envelopes; the `{"type":<name>,"payload":` prefix is built once."""

    def __init__(self) -> None:
        self._prefixes: dict[str, bytes] = {}

    def __call__(self, event: SSEEvent) -> bytes:
        prefix = self._prefixes.get(event.event)
        if prefix is None:
            prefix = b'{"type":' + orjson.dumps(event.event) + b',"payload":'
            self._prefixes[event.event] = prefix
        return prefix + event.data + b"}"

    def many(self, events: list[SSEEvent]) -> list[bytes]:
        """The envelopes of several events, built without running Python code per event."""
        names = list(map(itemgetter(0), events))
        prefixes = self._prefixes
        for name in set(names).difference(prefixes):
            prefixes[name] = b'{"type":' + orjson.dumps(name) + b',"payload":'
        parts = zip(map(prefixes.__getitem__, names), map(itemgetter(1), events), repeat(b"}"))
        return list(map(b"".join, parts))


class SSEConnection:
    kind = "sse"

    def __init__(
        self,
        response: requests.Response,
        dialect: Dialect,
        resume: Resume,
        token: str,
        watch: Watch,
        trace: Tracer | None = None,
    ) -> None:
        self._response = response
        self._watch = watch  # holds the stream's socket: shut down at a deadline
        self._read = response.raw.read1
        self._parser = SSEParser()
        self._queue: list[SSEEvent] = []
        self._index = 0
        self._resume = resume
        self._token = token
        self._trace = trace
        self.dialect = dialect
        self.hello = Hello(dialect)

    @classmethod
    def open(cls, endpoint: Endpoint, resume: Resume) -> SSEConnection:
        """Open the stream (and read its authentication event, server dialect), all of it by
        the attempt's deadline (or within the connect timeout), however slowly bytes come."""
        forced = endpoint.dialect or resume.dialect
        probes = (forced,) if forced else SSE_PROBE_ORDER
        at = endpoint.deadline.at
        if at is None:
            at = time.monotonic() + endpoint.timeouts.connect
        for dialect in probes:
            watch = Watch()
            with watch.step(at, "opening the event stream"):
                response = _get(endpoint, dialect, resume)
            if response.status_code == 404 and dialect is not probes[-1]:
                response.close()
                continue
            _check_status(response)
            conn = cls(response, dialect, resume, endpoint.token, watch, endpoint.trace)
            if dialect.sse_authenticates:
                try:
                    with watch.step(at, "the event stream's authentication event"):
                        conn._authenticate()
                except BaseException:
                    conn.abort()
                    raise
            return conn
        raise ConnectError("no SSE endpoint on this server (HTTP 404 on both paths)")

    def _authenticate(self) -> None:
        """A stream that starts with an authentication envelope (the server dialect's)."""
        try:
            self._first_envelope()
        except ConnectionLost as exc:
            raise ConnectError(str(exc)) from None

    def _first_envelope(self) -> None:
        for data in self._events():
            try:
                frame = orjson.loads(data)
            except orjson.JSONDecodeError:
                break
            if not isinstance(frame, dict):
                break
            if self.dialect.is_auth_failure(frame):
                raise AuthError(f"the server rejected the token: {error_message(frame)}")
            if frame.get("type") == self.dialect.auth_ok:
                self.hello = self.dialect.hello(frame)
                return
            break
        raise ConnectError("the SSE stream did not start with an authentication event")

    def messages(self, deadline: float | None = None) -> Iterator[bytes]:
        """Each event; ends quietly at the deadline, when the watchdog shuts the stream; at a
        stop (SIGINT, SIGTERM: signals.py) raises the stop's exception."""
        return self._watched(deadline, self._events())

    def batches(self, deadline: float | None = None) -> Iterator[list[bytes]]:
        """As messages(), a list at a time: the events of one read of the stream."""
        return self._watched(deadline, self._batches())

    def _watched(self, deadline: float | None, events: Iterator[_T]) -> Iterator[_T]:
        watch = self._watch
        watch.arm(deadline)
        try:
            yield from events
        except ConnectionLost:
            if watch.fired == STOP:
                signals.check()
            if watch.fired is None:
                raise
        finally:
            watch.disarm()

    def _events(self) -> Iterator[bytes]:
        resume = self._resume
        named = self.dialect.sse_named_events
        envelope = _Envelopes()
        for events in self._reads():
            index = self._index
            for event in events:
                index += 1
                self._index = index
                if event.id is not None:
                    resume.last_event_id = event.id
                yield envelope(event) if named else event.data

    def _batches(self) -> Iterator[list[bytes]]:
        resume = self._resume
        named = self.dialect.sse_named_events
        envelope = _Envelopes()
        for events in self._reads():
            self._index = len(self._queue)
            last_id = events[-1].id  # an id, once set, stays set: the last one is in force
            if last_id is not None:
                resume.last_event_id = last_id
            yield envelope.many(events) if named else list(map(itemgetter(1), events))

    def _reads(self) -> Iterator[list[SSEEvent]]:
        """The events of each read of the stream not taken yet (the caller counts in _index
        those it takes), reading again once they all are."""
        watch = self._watch
        while True:
            queue, index = self._queue, self._index
            if index < len(queue):
                yield queue[index:] if index else queue
            if watch.fired:
                return
            self._fill()

    def _fill(self) -> None:
        try:
            chunk = self._read(CHUNK)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                raise ConnectionLost("the event stream went silent") from None
            raise ConnectionLost(
                f"the event stream broke: {redact(reason(exc), self._token)}"
            ) from None
        if not chunk:
            raise ConnectionLost("the server ended the event stream")
        self._queue = self._parser.feed(chunk)
        self._index = 0
        if self._trace is not None:  # --trace: each event with its id (per chunk, not event)
            for event in self._queue:
                self._trace.sse(event.event, event.id, event.data)
        if self._parser.retry is not None:
            self._resume.retry_ms = self._parser.retry

    def pending(self) -> bool:
        return self._index < len(self._queue)

    def wake(self) -> None:
        """End a messages() under way now, as its deadline would, from another thread (chat's
        input thread when the input ends); the stream is then over."""
        self._watch.wake()

    def send(self, frame: dict[str, Any]) -> None:
        raise ConnectError("an SSE stream cannot carry commands")

    def send_many(self, frames: list[dict[str, Any]]) -> None:
        raise ConnectError("an SSE stream cannot carry commands")

    def send_texts(self, payloads: list[bytes]) -> None:
        raise ConnectError("an SSE stream cannot carry commands")

    def ack(self, ack_id: str) -> None:
        return  # the SSE stream has no way to acknowledge

    def flush_acks(self) -> None:
        return

    def close(self) -> list[bytes]:
        self.abort()  # a read-only stream has no closing handshake
        return []

    def abort(self) -> None:
        self._response.close()


def _get(endpoint: Endpoint, dialect: Dialect, resume: Resume) -> requests.Response:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if resume.last_event_id is not None:
        headers["Last-Event-ID"] = resume.last_event_id
    timeouts = endpoint.timeouts
    session = traced(requests.Session(), endpoint.trace)  # as requests.get, traced or not
    try:
        return session.get(
            endpoint_url(endpoint.url, dialect.sse_path),
            params={"token": endpoint.token},
            headers=headers,
            stream=True,
            timeout=(timeouts.connect, timeouts.sse_silence),
        )
    except requests.RequestException as exc:
        raise ConnectError(
            redact(reason(exc, urlsplit(endpoint.url).hostname), endpoint.token)
        ) from None
    finally:
        session.close()  # the response keeps its connection


def _check_status(response: requests.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    response.close()
    if status in (401, 403):
        raise AuthError(f"the server rejected the token (HTTP {status})")
    raise ConnectError(
        f"the event stream answered HTTP {status}", retry_after=retry_after(response.headers)
    )
