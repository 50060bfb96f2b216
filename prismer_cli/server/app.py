"""The aiohttp application: routes of the chosen dialect, REST, ``/_control``, and the
middleware that applies request-level faults and records REST calls."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from prismer_cli.server.context import DialectHandlers, ServerContext
from prismer_cli.server.control import ControlApi
from prismer_cli.server.control_log import logged_headers
from prismer_cli.server.dialect_docs import DocsDialect
from prismer_cli.server.dialect_server import ServerDialect
from prismer_cli.server.faults import FaultState, Refusal
from prismer_cli.server.lookups import LookupApi
from prismer_cli.server.options import ServerOptions
from prismer_cli.server.responses import json_error
from prismer_cli.server.rest import RestApi
from prismer_cli.server.sockets import logged_path
from prismer_cli.server.state import Store
from prismer_cli.server.tokenapi import TokenApi

CONTEXT = web.AppKey("context", ServerContext)
DIALECT = web.AppKey("dialect", DialectHandlers)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STREAM_PATHS = frozenset({"/ws", "/sse", "/api/im/events/stream"})
PROXY_PAGE = (
    "<html><head><title>{status}</title></head><body>"
    "<center><h1>{status}</h1></center><hr><center>proxy</center></body></html>"
)


def proxy_page(status: int) -> web.Response:
    """An error page as a reverse proxy writes it (nginx's layout)."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return web.Response(
        status=status, text=PROXY_PAGE.format(status=f"{status} {reason}"), content_type="text/html"
    )


def is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def is_connection_attempt(request: web.Request) -> bool:
    return is_upgrade(request) or (request.method == "GET" and request.path in STREAM_PATHS)


def _refused(request: web.Request, refusal: Refusal) -> web.Response:
    headers = {}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(refusal.retry_after)
    message = "Too many requests" if refusal.status == 429 else "Service unavailable"
    return json_error(message, refusal.status, headers)


def _fault_response(ctx: ServerContext, request: web.Request) -> web.Response | None:
    """The answer a request-level fault gives instead of the handler, if any."""
    refusal = ctx.faults.take_rate_limit()
    if refusal is None and is_connection_attempt(request):
        refusal = ctx.faults.take_refusal()
    if refusal is not None:
        response = _refused(request, refusal)
    elif is_upgrade(request) and ctx.faults.no_websocket:
        refusal = Refusal("no-websocket", 400, None)
        response = proxy_page(400)
    elif is_upgrade(request) and ctx.faults.upgrade_status is not None:
        refusal = Refusal("upgrade-status", ctx.faults.upgrade_status, None)
        response = proxy_page(refusal.status)
    else:
        return None
    ctx.log.add(
        "refused",
        fault=refusal.fault,
        status=refusal.status,
        method=request.method,
        path=logged_path(request),
        headers=logged_headers(request.headers),
    )
    return response


def _not_found(request: web.Request, exc: web.HTTPException) -> web.Response:
    if is_upgrade(request):  # the real server answers a WebSocket on a wrong path with 400
        return web.Response(status=400, text="Bad Request")
    message = "Not found" if exc.status == 404 else exc.reason
    return json_error(message, exc.status)


TRICKLE_START = b"HTTP/1.1 200 OK\r\nX-Trickle: "


async def _trickle(ctx: ServerContext, request: web.Request, interval: float) -> web.Response:
    """The `trickle` fault: one byte every `interval` s of an answer that never ends, written
    under aiohttp's feet, until the client goes away; then the connection is closed."""
    ctx.log.add("trickle", method=request.method, path=logged_path(request))
    transport = request.transport
    data = itertools.chain(TRICKLE_START, itertools.repeat(ord("a")))
    while transport is not None and not transport.is_closing():
        transport.write(bytes((next(data),)))
        await asyncio.sleep(interval)
    return web.Response()  # to a closed connection: dropped


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if request.path.startswith("/_control/"):
        return await handler(request)
    interval = ctx.faults.trickle
    if interval is not None:
        return await _trickle(ctx, request, interval)
    faulted = _fault_response(ctx, request)
    if faulted is not None:
        return faulted
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = _not_found(request, exc)
    if request.path not in STREAM_PATHS:  # sockets and streams have records of their own
        ctx.log.add(
            "rest",
            method=request.method,
            path=logged_path(request),
            status=response.status,
            headers=logged_headers(request.headers),
        )
    return response


def _websocket_route(dialect: DialectHandlers) -> Handler:
    async def websocket(request: web.Request) -> web.StreamResponse:
        if not is_upgrade(request):
            ctx = request.app[CONTEXT]
            ctx.log.add("ws_connect", path=logged_path(request), status=426, user=None)
            return json_error("Expected a WebSocket upgrade", 426)
        return await dialect.websocket(request)

    return websocket


async def _not_this_dialect(request: web.Request) -> web.StreamResponse:
    return json_error("Not found", 404)


def build_app(options: ServerOptions) -> web.Application:
    """A ready application for these (already validated) options."""
    store = Store(options.tokens, token_ttl=options.token_ttl)
    ctx = ServerContext(options=options, store=store, faults=FaultState(options.faults))
    store.sync_log.foreign = lambda: ctx.faults.foreign_seqs
    dialect: DialectHandlers = DocsDialect(ctx) if options.dialect == "docs" else ServerDialect(ctx)
    app = web.Application(middlewares=[guard], client_max_size=options.max_message_bytes)
    app[CONTEXT] = ctx
    app[DIALECT] = dialect
    docs_sse = dialect.sse if options.dialect == "docs" else _not_this_dialect
    server_sse = dialect.sse if options.dialect == "server" else _not_this_dialect
    app.add_routes(
        [
            web.get("/ws", _websocket_route(dialect)),
            web.get("/api/im/events/stream", docs_sse),
            web.get("/sse", server_sse),
            *RestApi(ctx, dialect).routes(),
            *LookupApi(ctx, dialect).routes(),
            *TokenApi(ctx).routes(),
            *ControlApi(ctx, dialect).routes(),
        ]
    )
    app.on_shutdown.append(_on_shutdown)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[CONTEXT].stopping.set()
    app[DIALECT].close()


__all__ = ["CONTEXT", "DIALECT", "build_app"]
