"""The plumbing both dialects share: opening a WebSocket or an SSE stream, reading client
frames, answering WebSocket pings, the per-user connection cap, going silent for
``half-open-after``, and cleaning up.

WebSocket pings
    A ping is answered only after every frame received before it on that connection has been
    handled (stored, and its events queued to every receiving connection), and its pong goes
    through the connection's outbox: it follows every frame queued to that connection before
    it. So a pong confirms that the server has read and acted on everything sent before the
    ping. A ``half-open-after`` connection answers no ping; a ``drop-after`` one is aborted.

Message size
    A WebSocket message bigger than ``--max-message-bytes`` (default 100 MiB, the default
    ``maxPayload`` of Node's ``ws`` that the real server keeps) gets what ``ws`` does: a close
    frame with status 1009 and an empty reason, no error frame; nothing after it on that
    connection is read, and frames before it were handled as usual. A REST body bigger than the
    same limit gets 413 ``{"ok": false, "error": "Request Entity Too Large"}`` (the real
    server's standalone mode reads bodies unbounded; a proxy in front of it answers 413).

Connections per user
    At most five (WebSocket and SSE together), as the real server's ``RoomManager``: an
    authenticated sixth makes the server send the oldest
    ``{"type":"error","data":{"message":"Connection replaced by newer client"}}`` (sic:
    ``data``, no timestamp; on SSE as a ``data:`` line) and close it with a close frame
    without status (clients see 1005; SSE: end of stream), in both dialects. Each eviction is
    an ``evicted`` record of ``/_control/log``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web

from prismer_cli.server.context import ServerContext
from prismer_cli.server.control_log import logged_headers
from prismer_cli.server.formats import dumps
from prismer_cli.server.links import ClientLink, SseSink, WebSocketSink
from prismer_cli.server.records import User
from prismer_cli.server.redaction import redact
from prismer_cli.server.responses import json_error

CLOSE_TIMEOUT = 2.0
SHUTDOWN_CLOSE_GRACE = 0.3
GARBAGE_TEXT_FRAMES = ("this is not json", "[1,2,3]", '"just a string"')
GARBAGE_BINARY_FRAME = b"\x00\xffnot json\x01"
GARBAGE_SSE = "data: not json\n\n"
EVICTION_NOTICE = dumps(
    {"type": "error", "data": {"message": "Connection replaced by newer client"}}
)
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}

TextHandler = Callable[[ClientLink, str], None]
Detach = Callable[[ClientLink], None]
SseStart = Callable[[ClientLink, User, web.Request], None]
SseEnd = Callable[[ClientLink, User], None]


async def open_websocket(
    ctx: ServerContext, request: web.Request
) -> tuple[web.WebSocketResponse, ClientLink]:
    """Accept the upgrade (pings and closes are answered by :func:`pump`, not by aiohttp)."""
    ws = web.WebSocketResponse(
        autoping=False,
        autoclose=False,
        timeout=CLOSE_TIMEOUT,
        max_msg_size=ctx.options.max_message_bytes + 1,  # aiohttp refuses a frame >= this
    )
    await ws.prepare(request)
    conn = ClientLink(
        ctx.hub.next_id(), "ws", request, WebSocketSink(ws, request), ctx.faults, ctx.log
    )
    return ws, conn


async def serve_sse(
    ctx: ServerContext,
    request: web.Request,
    start: SseStart,
    end: SseEnd,
    *,
    heartbeat: float | None,
) -> web.StreamResponse:
    """One SSE request from start to end, as both dialects take it.

    The ``?token=`` is checked (a refused one gets 401 JSON, ``Invalid or expired token`` or
    ``Token required (?token=<JWT>)``), the stream opens, ``start`` greets it, and it runs
    until the client leaves, the server stops or a fault ends it; then ``end``. Each step is
    recorded (``sse_connect``, ``sse_close``).
    """
    token = request.query.get("token")
    user = ctx.store.user_for_token(token)
    path = logged_path(request)
    headers = logged_headers(request.headers)
    if user is None:
        ctx.log.add("sse_connect", path=path, status=401, headers=headers)
        error = "Invalid or expired token" if token else "Token required (?token=<JWT>)"
        return json_error(error, 401)
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    conn = ClientLink(ctx.hub.next_id(), "sse", request, SseSink(response), ctx.faults, ctx.log)
    ctx.log.add("sse_connect", path=path, status=200, user=user.id, headers=headers, conn=conn.id)
    start(conn, user, request)
    try:
        await _stream_sse(ctx, conn, heartbeat)
    finally:
        end(conn, user)
        ctx.log.add("sse_close", conn=conn.id, user=user.id)
    return response


def push_ws_garbage(ctx: ServerContext, conn: ClientLink) -> None:
    """The ``garbage`` fault, right after the auth frame."""
    if not ctx.faults.garbage:
        return
    ctx.log.add("fault", fault="garbage", conn=conn.id, user=conn.user_id)
    for text in GARBAGE_TEXT_FRAMES:
        conn.push_reply(text)
    conn.push_binary(GARBAGE_BINARY_FRAME)


def push_sse_garbage(ctx: ServerContext, conn: ClientLink) -> None:
    if not ctx.faults.garbage:
        return
    ctx.log.add("fault", fault="garbage", conn=conn.id, user=conn.user_id)
    conn.push_reply(GARBAGE_SSE)


def evict_oldest(ctx: ServerContext, user_id: str) -> None:
    """Make room for one more connection of the user (see the module docstring)."""
    oldest = ctx.hub.oldest_over_cap(user_id)
    if oldest is None:
        return
    ctx.log.add("evicted", conn=oldest.id, user=user_id)
    text = EVICTION_NOTICE if oldest.kind == "ws" else f"data: {EVICTION_NOTICE}\n\n"
    oldest.push_reply(text)
    oldest.push_close(None)
    ctx.hub.remove(oldest)


@dataclass
class _FrameReader:
    """The reading half of a WebSocket: each client frame handed to the dialect, in order."""

    ctx: ServerContext
    ws: web.WebSocketResponse
    conn: ClientLink
    handle: TextHandler
    detach: Detach

    async def run(self) -> None:
        ws, conn, handle = self.ws, self.conn, self.handle
        while True:
            msg = await ws.receive()  # a handler runs to its end before the next frame is read
            if msg.type is WSMsgType.TEXT:
                handle(conn, msg.data)
            elif msg.type is WSMsgType.BINARY:
                handle(conn, bytes(msg.data).decode("utf-8", "replace"))
            elif msg.type is WSMsgType.PING:
                conn.push_pong(msg.data)
            elif msg.type is WSMsgType.ERROR and _too_big(msg.data):
                # aiohttp has already sent the close frame (1009, no reason), as Node's ws does.
                limit = self.ctx.options.max_message_bytes
                self.ctx.log.add("oversized", conn=conn.id, user=conn.user_id, limit=limit)
                return
            elif msg.type is WSMsgType.CLOSE:
                # Forget the connection before answering the close: a client that reconnects
                # as soon as its close is answered must find its undelivered frames queued.
                self.detach(conn)
                await ws.close(code=close_reply_code(msg.data))
                return
            elif msg.type is not WSMsgType.PONG:
                return  # CLOSING, CLOSED or ERROR


def _too_big(error: object) -> bool:
    return isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG


def close_reply_code(code: object) -> int:
    """Echo the peer's close code when it is one a server may send, else 1000."""
    if isinstance(code, int) and (code in (1000, 1001) or 3000 <= code <= 4999):
        return code
    return 1000


async def pump(
    ctx: ServerContext,
    ws: web.WebSocketResponse,
    conn: ClientLink,
    handle: TextHandler,
    detach: Detach,
) -> None:
    """Run the connection until the peer closes, the server stops or a fault ends it.

    ``detach`` is called exactly once, as early as the end of the connection is known.
    """
    once = _Once(detach)
    writer = asyncio.create_task(conn.run_writer())
    reader = asyncio.create_task(_FrameReader(ctx, ws, conn, handle, once).run())
    silent = asyncio.create_task(conn.half_open.wait())
    stopping = asyncio.create_task(ctx.stopping.wait())
    try:
        await asyncio.wait({reader, silent, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if silent.done() and not reader.done():
            reader.cancel()
            await conn.wait_gone(ctx.stopping)
    finally:
        once(conn)
        for task in (reader, silent, stopping):
            task.cancel()
        await _finish_writer(conn, writer)
        await asyncio.gather(reader, silent, stopping, return_exceptions=True)


class _Once:
    def __init__(self, action: Detach) -> None:
        self._action: Detach | None = action

    def __call__(self, conn: ClientLink) -> None:
        action, self._action = self._action, None
        if action is not None:
            action(conn)


async def _finish_writer(conn: ClientLink, writer: asyncio.Task[None]) -> None:
    if conn.closing and not writer.done():
        await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)


async def close_websocket(ctx: ServerContext, ws: web.WebSocketResponse, conn: ClientLink) -> None:
    """Close what is left: going-away on shutdown, nothing if the peer is already gone.

    A half-open connection stays silent to the end: it is dropped, not closed.
    """
    if ws.closed or conn.transport_gone():
        return
    if conn.half_open.is_set():
        conn.abort()
        return
    if not ctx.stopping.is_set():
        await ws.close(code=1000)
        return
    # Going away: a client that does not answer the close quickly is not waited for.
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(ws.close(code=1001), SHUTDOWN_CLOSE_GRACE)


async def _stream_sse(ctx: ServerContext, conn: ClientLink, heartbeat: float | None) -> None:
    writer = asyncio.create_task(conn.run_writer())
    beats = asyncio.create_task(_heartbeats(conn, heartbeat)) if heartbeat else None
    try:
        await conn.wait_gone(ctx.stopping)  # a half-open stream stays until the peer goes
    finally:
        if beats is not None:
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)
        await _finish_writer(conn, writer)


async def _heartbeats(conn: ClientLink, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        conn.push_reply(": heartbeat\n\n")


def logged_path(request: web.Request) -> str:
    return redact(request.path_qs)
