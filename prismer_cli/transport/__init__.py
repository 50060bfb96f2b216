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


def open_connection(endpoint: Endpoint, resume: Resume, log: Log) -> Connection:
    """Connect as --transport says; in auto mode fall back to SSE (and stay there).

    The attempt as a whole, fallback included, ends within the connect timeout (Endpoint.attempt).
    """
    transport = endpoint.transport if endpoint.transport != "auto" else resume.transport or "auto"
    endpoint = endpoint.attempt()
    if transport != "sse":
        try:
            return open_websocket(endpoint, resume)
        except NoWebSocket as exc:
            if transport == "ws" or endpoint.deadline.expired():
                raise ConnectError(str(exc)) from None
            log.info(f"{exc}; falling back to Server-Sent Events")
            resume.transport = "sse"
            endpoint = endpoint.cut()
    return open_sse(endpoint, resume)
