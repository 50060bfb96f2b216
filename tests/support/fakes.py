"""A fake Connection for fast tests of the engines, in the spirit of httpx's MockTransport.

It plays a list of frames (bytes, or dicts encoded as JSON) to the engine, then ends the stream
quietly or with ConnectionLost, and records what the engine sent, acknowledged and flushed in
one `events` list that a test can share with a RecordingStream to check the order of things.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from prismer_cli.errors import ConnectionLost
from prismer_cli.log import Log
from prismer_cli.protocol.dialects import DOCS, Dialect, Hello
from prismer_cli.transport import Endpoint, Resume


class FakeConnection:
    def __init__(
        self,
        frames: Sequence[bytes | dict[str, Any]],
        *,
        dialect: Dialect = DOCS,
        user_id: str | None = None,
        kind: str = "ws",
        lost: str | None = None,
        events: list[Any] | None = None,
    ) -> None:
        """`lost`: end the stream with ConnectionLost(lost) instead of quietly."""
        self.frames = [f if isinstance(f, bytes) else orjson.dumps(f) for f in frames]
        self.hello = Hello(dialect, user_id)
        self.kind = kind
        self.lost = lost
        self.events: list[Any] = events if events is not None else []
        self.sent: list[dict[str, Any]] = []
        self.acked: list[str] = []
        self._queued: list[str] = []
        self._at = 0
        self.closed = False

    def messages(self, deadline: float | None = None) -> Iterator[bytes]:
        while self._at < len(self.frames):
            self._at += 1
            yield self.frames[self._at - 1]
        if self.lost is not None:
            raise ConnectionLost(self.lost)

    def batches(self, deadline: float | None = None) -> Iterator[list[bytes]]:
        """Every frame at once, as if one receive had brought them all."""
        if self._at < len(self.frames):
            batch, self._at = self.frames[self._at :], len(self.frames)
            yield batch
        if self.lost is not None:
            raise ConnectionLost(self.lost)

    def pending(self) -> bool:
        return self._at < len(self.frames)

    def send(self, frame: dict[str, Any]) -> None:
        self.sent.append(frame)

    def send_many(self, frames: list[dict[str, Any]]) -> None:
        self.sent.extend(frames)

    def send_texts(self, payloads: list[bytes]) -> None:
        self.sent.extend(orjson.loads(payload) for payload in payloads)

    def ack(self, ack_id: str) -> None:
        self._queued.append(ack_id)

    def flush_acks(self) -> None:
        if self._queued:
            self.acked.extend(self._queued)
            self.events.append(("acks", list(self._queued)))
            self._queued.clear()

    def close(self) -> list[bytes]:
        self.closed = True
        return []

    def abort(self) -> None:
        self.closed = True


class FakeConnector:
    """Hands out the given connections one per call, as open_connection(endpoint, resume, log)."""

    def __init__(self, *connections: FakeConnection) -> None:
        self.connections = list(connections)
        self.opened = 0

    def __call__(self, endpoint: Endpoint, resume: Resume, log: Log) -> FakeConnection:
        conn = self.connections[self.opened]
        self.opened += 1
        return conn


class RecordingStream(io.BytesIO):
    """stdout for an Output: notes each flush, with the lines written so far, in `events`."""

    def __init__(self, events: list[Any]) -> None:
        super().__init__()
        self.events = events

    def flush(self) -> None:
        self.events.append(("flush", self.getvalue().count(b"\n")))

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.getvalue().splitlines()]
