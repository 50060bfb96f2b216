"""The WebSocket upgrade of a plain `ws://` URL without a proxy, by hand: what websocket-client
does for such a URL (the same request, socket options, checks and errors), without importing it.

websocket-client and the `ssl` module it loads cost a one-shot `send` ~15 ms of its ~100 ms
(issue 21, README "Design notes"), for a request of seven lines. Everything that is not that
plain case keeps going through websocket-client (wssocket.py): `wss://` (TLS), an
`http_proxy` in the environment, a host name that is not plain ASCII, and the redirects of the
upgrade, which this module hands over to websocket-client with the redirect's target; so does a
`Set-Cookie` in an answer, kept in websocket-client's cookie jar as it would keep it.

`target` says whether a URL is the plain case; `upgrade` connects and upgrades, and raises
BadStatus, Redirect, HandshakeTimeout, AddressError, UpgradeFailed or an OSError where
websocket-client raises its own exceptions, for wssocket.py to turn into the same errors.
"""

from __future__ import annotations

import binascii
import errno
import os
import socket
import sys
from collections.abc import Iterator
from typing import NamedTuple
from urllib.parse import urlparse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The upgrade answers websocket-client follows (its SUPPORTED_REDIRECT_STATUSES).
REDIRECTS = (301, 302, 303, 307, 308)

# websocket-client's DEFAULT_SOCKET_OPTION: no Nagle delay, and TCP keep-alive probes.
SOCKET_OPTIONS = [(socket.SOL_TCP, socket.TCP_NODELAY, 1)]
if hasattr(socket, "SO_KEEPALIVE"):
    SOCKET_OPTIONS.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
if hasattr(socket, "TCP_KEEPIDLE"):
    SOCKET_OPTIONS.append((socket.SOL_TCP, socket.TCP_KEEPIDLE, 30))
if hasattr(socket, "TCP_KEEPINTVL"):
    SOCKET_OPTIONS.append((socket.SOL_TCP, socket.TCP_KEEPINTVL, 10))
if hasattr(socket, "TCP_KEEPCNT"):
    SOCKET_OPTIONS.append((socket.SOL_TCP, socket.TCP_KEEPCNT, 3))


class Target(NamedTuple):
    """A plain ws:// URL, split as websocket-client splits it."""

    url: str
    hostname: str
    port: int
    resource: str  # path and query


class Upgraded(NamedTuple):
    sock: socket.socket
    status: int | None  # 101; None from websocket-client means 101 too
    headers: dict[str, str] | None


class UpgradeFailed(Exception):
    """websocket-client's WebSocketException: the answer is not a WebSocket upgrade."""


class HandshakeTimeout(UpgradeFailed):
    """websocket-client's WebSocketTimeoutException: the answer did not come in time."""


class AddressError(UpgradeFailed):
    """websocket-client's WebSocketAddressException: the host name does not resolve."""


class BadStatus(UpgradeFailed):
    """websocket-client's WebSocketBadStatusException: an answer other than 101 or a redirect."""

    def __init__(self, status: int | None, headers: dict[str, str]) -> None:
        super().__init__(f"Handshake status {status}")
        self.status = status
        self.headers = headers


class Redirect(Exception):
    """A redirect of the upgrade (with its Location): websocket-client follows it from here."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def target(url: str) -> Target | None:
    """The URL's parts if it is the plain case (module docstring), else None."""
    scheme, _, rest = url.partition(":")
    if scheme != "ws" or _proxied():
        return None
    try:
        parsed = urlparse(rest, scheme="http")
        hostname, port = parsed.hostname, parsed.port or 80
    except ValueError:  # websocket-client says so in its own words
        return None
    if not hostname or not _plain_host(hostname):
        return None
    resource = parsed.path or "/"
    if parsed.query:
        resource += f"?{parsed.query}"
    return Target(url, hostname, port, resource)


def _proxied() -> bool:
    """websocket-client would go through the proxy that `http_proxy` names (unless the host is
    in `no_proxy`, which it decides itself)."""
    env = os.environ
    return bool(env.get("http_proxy", env.get("HTTP_PROXY", "")).replace(" ", ""))


def _plain_host(hostname: str) -> bool:
    """ASCII, with labels the IDNA codec accepts: its encoding is then the name's own bytes, so
    the resolver is given those (and the codec, ~1 ms to import, is not loaded)."""
    if not hostname.isascii():
        return False
    labels = hostname.split(".")
    return all(0 < len(label) < 64 for label in labels[:-1]) and len(labels[-1]) < 64


def upgrade(where: Target, timeout: float) -> Upgraded:
    """Connect, send the upgrade request, read and check the answer (module docstring)."""
    addresses = _addresses(where.hostname, where.port)
    sock = _open_socket(addresses, timeout)
    try:
        key = binascii.b2a_base64(os.urandom(16)).decode("utf-8").strip()
        _send(sock, _request(where, key))
        status, headers = _read_headers(sock)
        if status in REDIRECTS:
            _keep_cookie(headers)
            location = headers.get("location")
            if location is None:
                raise UpgradeFailed(f"Redirect response without Location header, status {status}")
            raise Redirect(location)
        if status != 101:
            _skip_body(sock, headers)
            raise BadStatus(status, headers)
        if not _valid(headers, key):
            raise UpgradeFailed("Invalid WebSocket Header")
        _keep_cookie(headers)
        return Upgraded(sock, status, headers)
    except BaseException:
        sock.close()
        raise


def _addresses(hostname: str, port: int) -> list[tuple]:  # type: ignore[type-arg]
    try:
        found = socket.getaddrinfo(
            hostname.encode("ascii"), port, 0, socket.SOCK_STREAM, socket.SOL_TCP
        )
    except (socket.gaierror, TypeError) as exc:
        raise AddressError(exc) from None
    if not found:
        raise UpgradeFailed(f"Host not found.: {hostname}:{port}")
    return found


def _open_socket(addresses: list[tuple], timeout: float) -> socket.socket:  # type: ignore[type-arg]
    """Each address in turn, while connections are refused (websocket-client's _open_socket)."""
    error: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        for option in SOCKET_OPTIONS:
            sock.setsockopt(*option)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if exc.errno not in (errno.ECONNREFUSED, errno.ENETUNREACH):
                raise
            error = exc
            continue
        return sock
    assert error is not None
    raise error


def _request(where: Target, key: str) -> bytes:
    host = f"[{where.hostname}]" if ":" in where.hostname else where.hostname
    hostport = host if where.port in (80, 443) else f"{host}:{where.port}"
    lines = [
        f"GET {where.resource} HTTP/1.1",
        "Upgrade: websocket",
        f"Host: {hostport}",
        f"Origin: http://{hostport}",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Connection: Upgrade",
    ]
    cookie = _cookie(where.hostname)
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except TimeoutError as exc:
        raise HandshakeTimeout(str(exc)) from None
    except OSError as exc:
        if "timed out" in str(exc.args[0] if exc.args else exc):
            raise HandshakeTimeout(str(exc)) from None
        raise


def _recv(sock: socket.socket, size: int, flags: int = 0) -> bytes:
    try:
        data = sock.recv(size, flags)
    except TimeoutError:
        raise HandshakeTimeout("Connection timed out") from None
    if not data:
        raise UpgradeFailed("Connection to remote host was lost.")
    return data


def _lines(sock: socket.socket) -> Iterator[str]:
    """The answer's lines, decoded and stripped, up to the first blank one, each as it comes
    in; nothing of what follows is taken from the socket (the server's first frame may be right
    behind): what is there is peeked at, and only the lines are read."""
    partial = b""
    while True:
        seen = _recv(sock, 4096, socket.MSG_PEEK)
        at = 0
        while (end := seen.find(b"\n", at)) >= 0:
            raw = partial + seen[at : end + 1]
            partial, at = b"", end + 1
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise UpgradeFailed(
                    f"Invalid header line, not valid UTF-8 at byte {exc.start}: {raw!r}"
                ) from None
            if not line:
                _take(sock, at)
                return
            yield line
        partial += seen[at:]
        _take(sock, len(seen))


def _take(sock: socket.socket, size: int) -> None:
    """Read `size` bytes already peeked at."""
    while size > 0:
        size -= len(_recv(sock, size))


def _read_headers(sock: socket.socket) -> tuple[int | None, dict[str, str]]:
    """The status and the headers (names in lower case; Set-Cookie values joined), read and
    checked as websocket-client reads them."""
    status: int | None = None
    headers: dict[str, str] = {}
    for line in _lines(sock):
        if not status:
            parts = line.split(" ", 2)
            try:
                status = int(parts[1])
            except (IndexError, ValueError):
                raise UpgradeFailed(f"Invalid status line: {line!r}") from None
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise UpgradeFailed("Invalid header")
        name = name.lower()
        if name == "set-cookie" and headers.get("set-cookie"):
            headers[name] = headers[name] + "; " + value.strip()
        else:
            headers[name] = value.strip()
    return status, headers


def _skip_body(sock: socket.socket, headers: dict[str, str]) -> None:
    """A refusal's body is read before the error is raised, as websocket-client reads it."""
    length = headers.get("content-length")
    if not length:
        return
    try:
        left = int(length)
    except ValueError:
        raise UpgradeFailed(f"Invalid content-length header: {length!r}") from None
    while left > 0:
        left -= len(_recv(sock, min(left, 16384)))


def _valid(headers: dict[str, str], key: str) -> bool:
    for name, wanted in (("upgrade", "websocket"), ("connection", "upgrade")):
        value = headers.get(name)
        if not value or wanted not in [v.strip().lower() for v in value.split(",")]:
            return False
    accept = headers.get("sec-websocket-accept")
    if not accept:
        return False
    expected = binascii.b2a_base64(_sha1(key.encode("utf-8") + GUID)).strip().lower()
    return expected == accept.lower().encode("utf-8")


def _sha1(data: bytes) -> bytes:
    try:
        import _sha1  # type: ignore[import-not-found]  # CPython's: hashlib loads OpenSSL (~1 ms)

        digest: bytes = _sha1.sha1(data).digest()
    except ImportError:  # pragma: no cover - another interpreter
        import hashlib

        digest = hashlib.sha1(data).digest()
    return digest


def _cookie(hostname: str) -> str:
    """websocket-client's cookies for the host: only if it has been loaded (a Set-Cookie seen,
    a redirect or a wss:// connection in this process), else there are none."""
    handshake = sys.modules.get("websocket._handshake")
    return str(handshake.CookieJar.get(hostname)) if handshake is not None else ""


def _keep_cookie(headers: dict[str, str]) -> None:
    if headers.get("set-cookie"):
        from websocket._handshake import CookieJar

        CookieJar.add(headers["set-cookie"])
