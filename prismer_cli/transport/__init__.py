"""Open an authenticated Connection: WebSocket first, SSE when no WebSocket can be had.

The WebSocket and SSE modules are imported here, on first use, so that `--help`, `--version`
and completion never pay for websocket-client or requests.
"""

from __future__ import annotations

from prismer_cli.errors import ConnectError, NoWebSocket
from prismer_cli.log import Log
from prismer_cli.transport.base import Connect, Connection, Endpoint, Resume
from prismer_cli.tuning import Timeouts

__all__ = [
    "Connect",
    "Connection",
    "Endpoint",
    "Resume",
    "Timeouts",
    "open_connection",
    "open_websocket",
]


def open_websocket(endpoint: Endpoint, resume: Resume) -> Connection:
    from prismer_cli.transport.ws import WebSocketConnection

    conn = WebSocketConnection.open(endpoint, resume)
    resume.dialect = conn.dialect
    return conn


def open_sse(endpoint: Endpoint, resume: Resume) -> Connection:
    from prismer_cli.transport.sse import SSEConnection

    conn = SSEConnection.open(endpoint, resume)
    resume.dialect = conn.dialect
    return conn


def _say_where(log: Log, endpoint: Endpoint, transport: str) -> None:
    """-v: the URL (token masked) and the transport of each attempt."""
    if transport == "WebSocket":
        from prismer_cli.redact import redact
        from prismer_cli.transport.urls import ws_url

        log.info(f"connecting to {redact(ws_url(endpoint.url, endpoint.token))} (WebSocket)")
    else:
        log.info(f"connecting to {endpoint.url} (Server-Sent Events, token=***)")


def open_connection(endpoint: Endpoint, resume: Resume, log: Log) -> Connection:
    """Connect as --transport says; in auto mode fall back to SSE (docs/protocol.md).

    A lasting refusal of the upgrade (a proxy without WebSockets) pins SSE; a 5xx or 429 makes
    SSE the next try at once, and the next connection tries a WebSocket again. Only when SSE
    fails too does the caller back off, with the upgrade's Retry-After as a floor. The attempt
    as a whole, fallback included, ends within the connect timeout (Endpoint.attempt).
    """
    transport = endpoint.transport if endpoint.transport != "auto" else resume.transport or "auto"
    endpoint = endpoint.attempt()
    if transport == "sse":
        _say_where(log, endpoint, "Server-Sent Events")
        return open_sse(endpoint, resume)
    _say_where(log, endpoint, "WebSocket")
    try:
        return open_websocket(endpoint, resume)
    except NoWebSocket as exc:
        if transport == "ws" or endpoint.deadline.expired():
            raise ConnectError(str(exc), retry_after=exc.retry_after) from None
        refused = exc
    endpoint = endpoint.cut()
    if refused.lasting:
        log.info(f"{refused}; falling back to Server-Sent Events")
        _say_where(log, endpoint, "Server-Sent Events")
        resume.transport = "sse"
        return open_sse(endpoint, resume)
    log.info(f"{refused}; trying Server-Sent Events at once")
    _say_where(log, endpoint, "Server-Sent Events")
    try:
        return open_sse(endpoint, resume)
    except ConnectError as exc:
        waits = [w for w in (exc.retry_after, refused.retry_after) if w is not None]
        raise ConnectError(
            f"{refused}; Server-Sent Events: {exc}", retry_after=max(waits, default=None)
        ) from None
