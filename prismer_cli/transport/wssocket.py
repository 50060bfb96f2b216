"""The WebSocket's socket: opened and upgraded by websocket-client, its errors in the project's
words (ws.py reads the frames); masking keys in bulk, and the receive that a deadline bounds
even when a frame's bytes trickle in."""

from __future__ import annotations

import os
import select
import socket
import time

import websocket

from prismer_cli.errors import AuthError, ConnectError, NoWebSocket
from prismer_cli.transport.base import Endpoint, retry_after
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.urls import ws_url


def open_socket(endpoint: Endpoint) -> websocket.WebSocket:
    """The upgraded socket, with websocket-client's errors translated to the project's."""
    url, trace = ws_url(endpoint.url, endpoint.token), endpoint.trace
    try:
        if trace is not None:
            trace.request_line("GET", url)
        ws = websocket.create_connection(
            url,
            timeout=endpoint.timeouts.connect,
            skip_utf8_validation=True,
            enable_multithread=True,
        )
        if trace is not None:
            trace.status_line(ws.getstatus() or 101, ws.getheaders())
        return ws
    except websocket.WebSocketBadStatusException as exc:
        status = exc.status_code
        if trace is not None:
            trace.status_line(status, exc.resp_headers)
        if status in (401, 403):
            raise AuthError(f"the server rejected the token (HTTP {status})") from None
        if status == 429 or status >= 500:
            raise NoWebSocket(
                f"the server answered the WebSocket upgrade with HTTP {status}",
                retry_after=retry_after(exc.resp_headers),
                lasting=False,
            ) from None
        raise NoWebSocket(f"WebSocket upgrade refused (HTTP {status})") from None
    except websocket.WebSocketTimeoutException:
        raise NoWebSocket("WebSocket upgrade timed out") from None
    except websocket.WebSocketProxyException as exc:
        raise NoWebSocket(f"the proxy refused the WebSocket upgrade: {exc}") from None
    except websocket.WebSocketAddressException:
        raise ConnectError(f"cannot resolve {host_of(endpoint.url)} (DNS)") from None
    except (OSError, websocket.WebSocketException) as exc:
        if trace is not None:
            trace.note(f"upgrade: {reason(exc, host_of(endpoint.url))}")
        raise ConnectError(reason(exc, host_of(endpoint.url))) from None


def host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


class MaskKeys:
    """Masking keys from the OS 4 KiB at a time: one getrandom() per 1,024 frames, not per frame."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def __call__(self) -> bytes:
        at = self._at
        if at + 4 > len(self._pool):
            self._pool, at = os.urandom(4096), 0
        self._at = at + 4
        return self._pool[at : at + 4]


class BoundedReceiver:
    """The frame reader's recv_into, bounded by `until` (monotonic; None: only the socket's
    stall timeout). A frame whose bytes trickle in cannot hold a read past `until`: each
    receive that would block waits in select() for what is left, then raises TimeoutError.
    `ready`: the caller's select() just found input, so the next receive need not ask again
    (on the hot path there is one select() per receive, as without a bound)."""

    __slots__ = ("_recv", "_sock", "_tls", "ready", "until")

    def __init__(self, sock: socket.socket, tls: bool) -> None:
        self._sock = sock
        self._recv = sock.recv_into
        self._tls = tls
        self.until: float | None = None
        self.ready = False

    def recv_into(self, buffer: memoryview, /) -> int:
        until = self.until
        if until is not None and not self.ready and not self._buffered_by_tls():
            left = until - time.monotonic()
            if left <= 0 or not select.select((self._sock,), (), (), left)[0]:
                raise TimeoutError("the deadline came in the middle of a frame")
        self.ready = False
        return self._recv(buffer)

    def _buffered_by_tls(self) -> bool:
        return self._tls and bool(self._sock.pending())  # type: ignore[attr-defined]
