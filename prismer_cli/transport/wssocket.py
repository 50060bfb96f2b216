"""The WebSocket's socket, opened and upgraded (ws.py reads the frames), its errors in the
project's words; masking keys in bulk, and the receive that a deadline bounds even when a
frame's bytes trickle in.

A plain ws:// URL without a proxy is upgraded by wsupgrade.py, exactly as websocket-client would
do it, without loading websocket-client and ssl (~15 ms of a one-shot `send`); every other case
(TLS, a proxy, a redirect of the upgrade) by websocket-client itself."""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

from prismer_cli.errors import AuthError, ConnectError, NoWebSocket, PrismerError
from prismer_cli.transport import wsupgrade
from prismer_cli.transport.base import Endpoint, retry_after
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.urls import ws_url

if TYPE_CHECKING:
    from collections.abc import Mapping


def open_socket(endpoint: Endpoint) -> tuple[socket.socket, bool]:
    """The upgraded socket, and whether it is a TLS one."""
    url, trace = ws_url(endpoint.url, endpoint.token), endpoint.trace
    if trace is not None:
        trace.request_line("GET", url)
    plain = wsupgrade.target(url)
    if plain is None:
        sock, status, headers = _by_websocket_client(url, endpoint)
    else:
        sock, status, headers = _by_hand(plain, endpoint)
    if trace is not None:
        trace.status_line(status or 101, headers)
    return sock, _is_tls(sock)


def _by_hand(plain: wsupgrade.Target, endpoint: Endpoint) -> wsupgrade.Upgraded:
    """wsupgrade's exceptions made the errors that websocket-client's make (below)."""
    try:
        return wsupgrade.upgrade(plain, endpoint.timeouts.connect)
    except wsupgrade.Redirect as moved:
        location = moved.location  # followed below, outside this handler
    except wsupgrade.BadStatus as exc:
        raise _refused(exc.status, exc.headers, endpoint) from None
    except wsupgrade.HandshakeTimeout:
        raise NoWebSocket("WebSocket upgrade timed out") from None
    except wsupgrade.AddressError:
        raise ConnectError(f"cannot resolve {host_of(endpoint.url)} (DNS)") from None
    except (OSError, wsupgrade.UpgradeFailed) as exc:
        raise _failed(exc, endpoint) from None
    return _by_websocket_client(location, endpoint, followed=1)


def _by_websocket_client(url: str, endpoint: Endpoint, *, followed: int = 0) -> wsupgrade.Upgraded:
    """websocket-client's upgrade, its errors translated; `followed`: redirects already
    followed to get to `url` (wsupgrade.py hands them over)."""
    import websocket

    try:
        if followed:
            _check_redirect(url)
        ws = websocket.create_connection(
            url,
            timeout=endpoint.timeouts.connect,
            skip_utf8_validation=True,
            enable_multithread=True,
            redirect_limit=3 - followed,
        )
        assert ws.sock is not None
        return wsupgrade.Upgraded(ws.sock, ws.getstatus(), ws.getheaders())
    except websocket.WebSocketBadStatusException as exc:
        raise _refused(exc.status_code, exc.resp_headers, endpoint) from None
    except websocket.WebSocketTimeoutException:
        raise NoWebSocket("WebSocket upgrade timed out") from None
    except websocket.WebSocketProxyException as exc:
        raise NoWebSocket(f"the proxy refused the WebSocket upgrade: {exc}") from None
    except websocket.WebSocketAddressException:
        raise ConnectError(f"cannot resolve {host_of(endpoint.url)} (DNS)") from None
    except (OSError, websocket.WebSocketException) as exc:
        raise _failed(exc, endpoint) from None


def _check_redirect(url: str) -> None:
    """A redirect's target that websocket-client cannot parse, said as it says it when it
    follows the redirect itself."""
    from websocket import WebSocketException
    from websocket._url import parse_url

    try:
        parse_url(url)
    except ValueError as exc:
        raise WebSocketException(f"Invalid redirect target {url!r}: {exc}") from exc


def _refused(status: Any, headers: Mapping[str, str] | None, endpoint: Endpoint) -> PrismerError:
    if endpoint.trace is not None:
        endpoint.trace.status_line(status, headers)
    if status in (401, 403):
        return AuthError(f"the server rejected the token (HTTP {status})")
    if status == 429 or status >= 500:
        return NoWebSocket(
            f"the server answered the WebSocket upgrade with HTTP {status}",
            retry_after=retry_after(headers),
            lasting=False,
        )
    return NoWebSocket(f"WebSocket upgrade refused (HTTP {status})")


def _failed(exc: BaseException, endpoint: Endpoint) -> ConnectError:
    if endpoint.trace is not None:
        endpoint.trace.note(f"upgrade: {reason(exc, host_of(endpoint.url))}")
    return ConnectError(reason(exc, host_of(endpoint.url)))


def _is_tls(sock: socket.socket) -> bool:
    """A TLS socket (wss://, or a redirect to it); without the ssl module loaded, none is."""
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(sock, ssl.SSLSocket)


def host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


class MaskKeys:
    """Masking keys from the OS 4 KiB at a time: one getrandom() per 1,024 frames, not per frame."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def __call__(self) -> bytes:
        return self.many(1)

    def many(self, count: int) -> bytes:
        """`count` keys at once, 4 bytes each. `send`'s two threads both take keys, unlocked: the
        slice comes from the pool this call checked (a local), so it is never short, whatever
        the other thread put in `_pool` meanwhile (os.urandom lets it run)."""
        pool, at, size = self._pool, self._at, 4 * count
        if at + size > len(pool):
            pool, at = os.urandom(max(4096, size)), 0
            self._pool = pool
        self._at = at + size
        return pool[at : at + size]


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
