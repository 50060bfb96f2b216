"""Client links: each open WebSocket or SSE connection, the writer that feeds it, and the
:class:`Hub` of all of them by user.

Everything a connection sends goes through its outbox, one writer task per connection, so
frames keep their order and a slow client never blocks the code that delivers an event. The
writer is also where the per-connection faults act (``drop-after``, ``half-open-after``):
after each frame it counts delivered events and aborts or silences the connection.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Protocol

from aiohttp import WSMsgType, web
from aiohttp.client_exceptions import ClientError

from prismer_cli.server.control_log import ControlLog
from prismer_cli.server.faults import FaultState

WRITE_ERRORS = (ConnectionError, ClientError, asyncio.TimeoutError)
POLL_INTERVAL = 0.2


class Sink(Protocol):
    """Where a connection's frames go: a WebSocket or an SSE response."""

    async def send_text(self, text: str) -> None: ...

    async def send_binary(self, data: bytes) -> None: ...

    async def send_pong(self, data: bytes) -> None: ...

    async def close(self, code: int | None, reason: str) -> None: ...


class WebSocketSink:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request

    async def send_text(self, text: str) -> None:
        await self._ws.send_str(text)

    async def send_binary(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def send_pong(self, data: bytes) -> None:
        await self._ws.pong(data)

    async def close(self, code: int | None, reason: str) -> None:
        if code is not None:
            await self._ws.close(code=code, message=reason.encode())
            return
        # A close frame without a status, as Node's ws.close() sends: the client sees 1005.
        await self._ws.send_frame(b"", WSMsgType.CLOSE)
        transport = self._request.transport
        if transport is not None:
            transport.close()


class SseSink:
    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response

    async def send_text(self, text: str) -> None:
        await self._response.write(text.encode())

    async def send_binary(self, data: bytes) -> None:
        await self._response.write(data)

    async def send_pong(self, data: bytes) -> None:
        """SSE has no pings."""

    async def close(self, code: int | None, reason: str) -> None:
        await self._response.write_eof()


@dataclass(frozen=True)
class Outgoing:
    """One item of an outbox: a text, binary or pong frame, or the instruction to close."""

    text: str | None = None
    data: bytes | None = None
    pong: bytes | None = None
    counts: bool = False
    close: bool = False
    close_code: int | None = None
    close_reason: str = ""


class ClientLink:
    """One client connection, its user once authenticated, and its outbox."""

    def __init__(
        self,
        conn_id: int,
        kind: str,
        request: web.Request,
        sink: Sink,
        faults: FaultState,
        log: ControlLog,
    ) -> None:
        self.id = conn_id
        self.kind = kind  # "ws" | "sse"
        self.request = request
        self.user_id: str | None = None
        self.connected_at = time.monotonic()
        self.events_sent = 0
        self.closing = False
        self.half_open = asyncio.Event()
        self.finished = asyncio.Event()
        self._sink = sink
        self._faults = faults
        self._log = log
        self._outbox: asyncio.Queue[Outgoing] = asyncio.Queue()

    # ── what handlers and delivery call ──────────────────────────────────

    def push_event(self, text: str) -> None:
        """An event: counted for the drop/half-open faults."""
        self._outbox.put_nowait(Outgoing(text=text, counts=True))

    def push_reply(self, text: str) -> None:
        """An auth frame, reply, error or heartbeat: not counted as an event."""
        self._outbox.put_nowait(Outgoing(text=text))

    def push_binary(self, data: bytes) -> None:
        self._outbox.put_nowait(Outgoing(data=data))

    def push_pong(self, data: bytes) -> None:
        """Answer a WebSocket ping after everything queued so far (see :mod:`sockets`)."""
        self._outbox.put_nowait(Outgoing(pong=data))

    def push_close(self, code: int | None = None, reason: str = "") -> None:
        """Close after everything queued so far; ``code=None`` sends a close without status."""
        self._outbox.put_nowait(Outgoing(close=True, close_code=code, close_reason=reason))

    def transport_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def abort(self) -> None:
        """Drop the TCP connection at once: no close frame, no end of stream."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.finished.set()

    # ── the writer ───────────────────────────────────────────────────────

    async def run_writer(self) -> None:
        try:
            while not self.finished.is_set():
                item = await self._outbox.get()
                if self.half_open.is_set():
                    continue
                if item.close:
                    self.closing = True
                    await self._sink.close(item.close_code, item.close_reason)
                    break
                await self._write(item)
                self._apply_faults()
        except WRITE_ERRORS:
            self.finished.set()  # the peer went away; the handler notices and cleans up
        finally:
            if not self.half_open.is_set():
                self.finished.set()

    async def _write(self, item: Outgoing) -> None:
        if item.text is not None:
            await self._sink.send_text(item.text)
        elif item.data is not None:
            await self._sink.send_binary(item.data)
        elif item.pong is not None:
            await self._sink.send_pong(item.pong)
        if item.counts:
            self.events_sent += 1

    def _apply_faults(self) -> None:
        drop = self._faults.drop_after
        if drop is not None and self.events_sent >= drop:
            self._log.add("fault", fault="drop-after", conn=self.id, user=self.user_id)
            self.abort()
            return
        silent = self._faults.half_open_after
        if silent is not None and self.events_sent >= silent and not self.half_open.is_set():
            self._log.add("fault", fault="half-open-after", conn=self.id, user=self.user_id)
            self.half_open.set()

    async def wait_gone(self, stopping: asyncio.Event) -> None:
        """Wait until the peer is gone, the connection finished, or the server stops."""
        while not (self.finished.is_set() or stopping.is_set() or self.transport_gone()):
            await asyncio.sleep(POLL_INTERVAL)


MAX_LINKS_PER_USER = 5  # RoomManager.MAX_CONNECTIONS_PER_USER of the real server


class Hub:
    """All authenticated connections, by user."""

    def __init__(self) -> None:
        self._by_user: dict[str, list[ClientLink]] = {}
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, conn: ClientLink, user_id: str) -> bool:
        """Register an authenticated connection; True when it is the user's first."""
        conn.user_id = user_id
        conns = self._by_user.setdefault(user_id, [])
        conns.append(conn)
        return len(conns) == 1

    def oldest_over_cap(self, user_id: str) -> ClientLink | None:
        """The user's oldest link when one more would exceed the cap: the one to evict."""
        conns = self._by_user.get(user_id, [])
        if len(conns) < MAX_LINKS_PER_USER:
            return None
        return min(conns, key=lambda c: c.connected_at)

    def remove(self, conn: ClientLink) -> bool:
        """Forget a connection; True when it was its user's last one."""
        if conn.user_id is None:
            return False
        conns = self._by_user.get(conn.user_id, [])
        if conn not in conns:
            return False
        conns.remove(conn)
        if conns:
            return False
        del self._by_user[conn.user_id]
        return True

    def of(self, user_id: str) -> list[ClientLink]:
        return list(self._by_user.get(user_id, ()))

    def users(self) -> list[str]:
        return list(self._by_user)
