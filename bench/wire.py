"""The wire, server side, by hand (no WebSocket or HTTP library): HTTP requests and answers
over keep-alive, the WebSocket handshake and frames (unmasked), and a counter of the client's
(masked) frames that never unmasks them."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def http_answer(body: bytes, status: bytes = b"200 OK") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


class Requests:
    """The HTTP/1.1 requests of one keep-alive connection, heads only (GET: no body)."""

    def __init__(self, sock: socket.socket, data: bytes = b"") -> None:
        self.sock, self.buf = sock, data

    def next(self) -> tuple[str, dict[str, str]] | None:
        """(target, headers) of the next request; None when the client has closed."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return (parts[1] if len(parts) > 1 else "/"), headers


def bearer(headers: dict[str, str]) -> str:
    kind, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if kind.lower() == "bearer" else ""


# -- WebSocket framing (server side: unmasked) ---------------------------------------------
def ws_frame(data: bytes, opcode: int = 1) -> bytes:
    n = len(data)
    if n < 126:
        return bytes((0x80 | opcode, n)) + data
    if n < 0x10000:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + data
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + data


CLOSE_1000 = ws_frame(b"\x03\xe8", 8)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def read_request(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Read an HTTP request head; return (target, headers, bytes read past the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the request head ended")
        data += chunk
        if len(data) > 65536:
            raise ConnectionError("request head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    target = parts[1] if len(parts) > 1 else "/"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return target, headers, rest


def upgrade_response(headers: dict[str, str]) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(headers.get('sec-websocket-key', ''))}\r\n"
        "\r\n"
    ).encode()


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Connection: close\r\n"
    b"\r\n"
)


class ClientFrames:
    """Count the client's (masked) frames without unmasking them; notice its close frame."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.frames = 0  # text and binary frames
        self.closed = False
        self.t_last = 0

    def feed(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        frames = self.frames
        while True:
            head, n = frame_head(buf, pos, end)
            if not head:
                break
            opcode = buf[pos] & 0x0F
            if opcode in (1, 2):
                frames += 1
            elif opcode == 8:
                self.closed = True
            pos += head + n
        del buf[:pos]
        self.frames = frames
        self.t_last = time.perf_counter_ns()


def frame_head(buf: bytearray, pos: int, end: int) -> tuple[int, int]:
    """(the length of its head, mask included; of its payload) of the frame at `pos`, or
    (0, 0) while `buf[pos:end]` does not hold the whole frame."""
    if end - pos < 2:
        return 0, 0
    b1 = buf[pos + 1]
    n = b1 & 0x7F
    head = 2
    if n == 126:
        if end - pos < 4:
            return 0, 0
        n = buf[pos + 2] << 8 | buf[pos + 3]
        head = 4
    elif n == 127:
        if end - pos < 10:
            return 0, 0
        n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        head = 10
    if b1 & 0x80:
        head += 4
    if end - pos < head + n:
        return 0, 0
    return head, n
