"""GETs of a plain `http://` URL over one kept-alive socket, by hand: the event log's pages
(listen/eventlog.py) without requests' and urllib3's ~0.4 ms a request.

A catch-up reads the log a page of 500 events at a time, and requests spent about as much CPU
on each page's request and answer as orjson spends decoding its 500 events (issue 21, README
"Design notes"). This module does the plain case only, the one `plain(url)` accepts: `http://`,
an ASCII host, no proxy for the URL in the environment (requests' own rule, `no_proxy`
included). It sends what requests sends (its User-Agent, `Accept-Encoding: gzip, deflate`,
`Accept`, `Connection: keep-alive`, the caller's headers) and reads an answer with its body by
Content-Length, chunked, or up to the end of the connection, gzip or deflate decoded as
urllib3 decodes them.

Whatever else an answer holds (a redirect, a cookie, a 1xx, another content coding) raises
Unusual before its body is read: the caller reads that page and every one after it through
requests, which follows redirects and keeps cookies (a GET of the log changes nothing on the
server, so asking again is safe). A connection that ended, or held something unasked for, is
not used again; a kept one the server closed while idle is replaced before a request is sent,
as urllib3 replaces it, and one it closed as the request went is replaced and asked again once,
unless a deadline or a stop shut it. Failures are OSError (a timeout too: TimeoutError) or Broken.
"""

from __future__ import annotations

import select
import socket
import zlib
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import urlsplit

import requests

READ = 262_144  # the most one recv takes while the body's size is not known


class Broken(OSError):
    """The connection ended before the answer was whole, or the answer is not HTTP/1.x."""


class Unusual(Exception):
    """An answer this module does not read (module docstring); its status and why."""


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header's values joined by ", "
    body: bytes | bytearray


def plain(url: str) -> bool:
    """Whether `url` is the plain case (module docstring)."""
    parts = urlsplit(url)
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        return False
    if parts.scheme != "http" or not host or not host.isascii():
        return False
    proxies = requests.utils.get_environ_proxies(url)
    return not proxies or requests.utils.select_proxy(url, proxies) is None


class KeptAlive:
    """GET requests to one plain URL (`plain(url)`) over one socket, kept between them."""

    def __init__(self, url: str, may_ask_again: Callable[[], bool] = lambda: True) -> None:
        """`may_ask_again()`: whether a kept connection that ended may be replaced and the
        request sent again: not when it ended because the step's deadline or a stop shut it
        (transport/watchdog.py), whose new socket nothing would cut."""
        parts = urlsplit(url)
        assert parts.hostname is not None
        self._address = (parts.hostname, parts.port or 80)
        self._path = requests.utils.requote_uri(parts.path or "/")
        self._joint = "&" if parts.query else "?"
        if parts.query:
            self._path += "?" + parts.query
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._head = (
            f"Host: {host if parts.port in (None, 80) else f'{host}:{parts.port}'}\r\n"
            f"User-Agent: {requests.utils.default_user_agent()}\r\n"
            "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n"
        )
        self._may_ask_again = may_ask_again
        self._sock: socket.socket | None = None
        self._asked: tuple[bytes, bool] | None = None  # the request sent, on a kept socket

    def get(self, query: str, headers: dict[str, str], timeout: float) -> Answer:
        """GET the URL with `query` appended; each connect, send and read waits at most
        `timeout` seconds. The socket goes with any failure."""
        self.ask(query, headers, timeout)
        return self.answer(timeout)

    def ask(self, query: str, headers: dict[str, str], timeout: float) -> None:
        """Send the GET whose answer `answer()` reads, now or later: meanwhile the server
        answers and the kernel keeps what comes. An answer asked for and never read is not
        taken for the next one: its connection goes."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = f"GET {self._path}{self._joint}{query} HTTP/1.1\r\n{self._head}{extra}\r\n"
        if any("\r" in v or "\n" in v or v != v.lstrip() for v in headers.values()):
            raise Unusual("a header value requests refuses")  # and says so in its own words
        try:
            data = request.encode("latin-1")
        except UnicodeEncodeError:
            raise Unusual("a header that is not Latin-1") from None
        if self._asked is not None:
            self.close()
        reused = self._sock is not None
        try:
            try:
                _send(self._connection(timeout), data)
            except _Unanswered:
                if not reused or not self._may_ask_again():
                    raise
                self._anew(data, timeout)  # a kept connection the server closed meanwhile
                reused = False
        except BaseException:
            self.close()
            raise
        self._asked = (data, reused)

    @property
    def asked(self) -> bool:
        """A request was sent whose answer is not read yet."""
        return self._asked is not None

    def answer(self, timeout: float) -> Answer:
        """The answer to what `ask` sent. A kept connection the server closed as the request
        went is asked again, once, on a new one."""
        assert self._asked is not None and self._sock is not None, "nothing asked"
        (data, reused), sock = self._asked, self._sock
        self._asked = None
        try:
            sock.settimeout(timeout)
            try:
                answer, keep = _read_answer(sock)
            except _Unanswered:
                if not reused or not self._may_ask_again():
                    raise
                answer, keep = _read_answer(self._anew(data, timeout))
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return answer

    def _anew(self, data: bytes, timeout: float) -> socket.socket:
        """The request sent again, on a new connection (the kept one ended as it went)."""
        self.close()
        sock = self._connection(timeout)
        _send(sock, data)
        return sock

    def _connection(self, timeout: float) -> socket.socket:
        sock = self._sock
        if sock is not None and _idle_ended(sock):
            self.close()
            sock = None
        if sock is None:
            sock = socket.create_connection(self._address, timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as urllib3 sets it
            self._sock = sock
        else:
            sock.settimeout(timeout)
        return sock

    def close(self) -> None:
        self._asked = None
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _idle_ended(sock: socket.socket) -> bool:
    """A kept socket with something to read before anything was asked: the server closed it
    (or sent what nobody asked for, or it was shut down by a deadline): not to be used."""
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))


class _Unanswered(Broken):
    """The connection ended (closed or reset) before a byte of the answer came."""


def _send(sock: socket.socket, request: bytes) -> None:
    try:
        sock.sendall(request)
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise _Unanswered("connection closed by the peer mid-response") from exc


class _Bytes:
    """What came from the socket and is not read yet."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = bytearray()
        self.started = False  # a byte of the answer has come

    def more(self, size: int = READ) -> None:
        try:
            chunk = self.sock.recv(size)
        except ConnectionResetError as exc:
            if self.started:
                raise
            raise _Unanswered("connection reset by the peer") from exc
        if not chunk:
            broken = Broken if self.started else _Unanswered
            raise broken("connection closed by the peer mid-response")
        self.started = True
        self.data += chunk

    def line(self) -> bytes:
        while (end := self.data.find(b"\n")) < 0:
            if len(self.data) > 65_536:
                raise Broken("an answer line longer than 64 KiB")
            self.more()
        line = bytes(self.data[: end + 1])
        del self.data[: end + 1]
        return line.rstrip(b"\r\n")

    def exactly(self, size: int) -> bytes | bytearray:
        """The next `size` bytes; the rest of a body straight into its own buffer."""
        have = len(self.data)
        if have >= size:
            taken = self.data[:size]
            del self.data[:size]
            return taken
        body = bytearray(size)
        view = memoryview(body)
        view[:have] = self.data
        self.data.clear()
        while have < size:
            got = self.sock.recv_into(view[have:])
            if not got:
                raise Broken("connection closed by the peer mid-response")
            have += got
        return body

    def to_end(self) -> bytes:
        while chunk := self.sock.recv(READ):
            self.data += chunk
        body = bytes(self.data)
        self.data.clear()
        return body


def _read_answer(sock: socket.socket) -> tuple[Answer, bool]:
    """One answer and whether the connection may be kept for the next request."""
    source = _Bytes(sock)
    version, status = _status(source.line())
    headers: dict[str, str] = {}
    while line := source.line():
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise Broken("an answer header that is not HTTP")
        name, value = name.lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if status < 200 or 300 <= status < 400 or "set-cookie" in headers:
        raise Unusual(f"HTTP {status}")
    coding = headers.get("content-encoding", "identity").lower()
    if coding not in ("identity", "gzip", "deflate"):
        raise Unusual(f"content coding {coding}")
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if status in (204, 304):
        body: bytes | bytearray = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _chunked(source)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"].split(",")[0])
        except ValueError:
            raise Broken("an answer with a Content-Length that is not a number") from None
        body = source.exactly(length)
    else:
        body, keep = source.to_end(), False
    if source.data:  # more than the answer: nothing else was asked for
        keep = False
    return Answer(status, headers, _decoded(body, coding)), keep


def _status(line: bytes) -> tuple[str, int]:
    version, _, rest = line.decode("latin-1").partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise Broken(f"an answer that is not HTTP/1.x ({line[:40]!r})")
    return version, int(code)


def _chunked(source: _Bytes) -> bytes:
    parts: list[bytes | bytearray] = []
    while True:
        size_text = source.line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Broken("a chunked answer with a chunk size that is not a number") from None
        if size == 0:
            while source.line():  # the trailer, up to its blank line
                pass
            return b"".join(parts)
        parts.append(source.exactly(size))
        if source.line():
            raise Broken("a chunk longer than its size")


def _decoded(body: bytes | bytearray, coding: str) -> bytes | bytearray:
    """The body as urllib3 decodes it: gzip (members one after another), deflate with its zlib
    header or without."""
    if coding == "identity" or not body:
        return body
    try:
        if coding == "gzip":
            out, data = [], bytes(body)
            while data:
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out.append(inflate.decompress(data))
                data = inflate.unused_data
            return b"".join(out)
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise Broken(f"an answer that does not decode as {coding} ({exc})") from None
