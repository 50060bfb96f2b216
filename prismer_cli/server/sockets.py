"""The plumbing both dialects share: opening a WebSocket or an SSE stream, reading client
frames, answering WebSocket pings, going silent for ``half-open-after``, and cleaning up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiohttp import WSMsgType, web

from prismer_cli.server.context import ServerContext
from prismer_cli.server.links import ClientLink, SseSink, WebSocketSink
from prismer_cli.server.redaction import redact

CLOSE_TIMEOUT = 2.0
SHUTDOWN_CLOSE_GRACE = 0.3
GARBAGE_TEXT_FRAMES = ("this is not json", "[1,2,3]", '"just a string"')
GARBAGE_BINARY_FRAME = b"\x00\xffnot json\x01"
GARBAGE_SSE = "data: not json\n\n"
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}

TextHandler = Callable[[ClientLink, str], None]
Detach = Callable[[ClientLink], None]


async def open_websocket(
    ctx: ServerContext, request: web.Request
) -> tuple[web.WebSocketResponse, ClientLink]:
    """Accept the upgrade (pings and closes are answered by :func:`pump`, not by aiohttp)."""
    ws = web.WebSocketResponse(
        autoping=False, autoclose=False, timeout=CLOSE_TIMEOUT, max_msg_size=4 * 2**20
    )
    await ws.prepare(request)
    conn = ClientLink(
        ctx.hub.next_id(), "ws", request, WebSocketSink(ws, request), ctx.faults, ctx.log
    )
    return ws, conn


async def open_sse(
    ctx: ServerContext, request: web.Request
) -> tuple[web.StreamResponse, ClientLink]:
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await response.prepare(request)
    conn = ClientLink(ctx.hub.next_id(), "sse", request, SseSink(response), ctx.faults, ctx.log)
    return response, conn


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


async def _read_frames(
    ws: web.WebSocketResponse, conn: ClientLink, handle: TextHandler, detach: Detach
) -> None:
    while True:
        msg = await ws.receive()
        if msg.type is WSMsgType.TEXT:
            handle(conn, msg.data)
        elif msg.type is WSMsgType.BINARY:
            handle(conn, bytes(msg.data).decode("utf-8", "replace"))
        elif msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is WSMsgType.CLOSE:
            # Forget the connection before answering the close: a client that reconnects as
            # soon as its close is answered must find its undelivered frames already queued.
            detach(conn)
            await ws.close(code=close_reply_code(msg.data))
            return
        elif msg.type is not WSMsgType.PONG:
            return  # CLOSING, CLOSED or ERROR


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
    reader = asyncio.create_task(_read_frames(ws, conn, handle, once))
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


async def stream_sse(ctx: ServerContext, conn: ClientLink, heartbeat: float | None) -> None:
    """Run an SSE connection until the client leaves, the server stops or a fault ends it."""
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
