"""`--trace`: the wire on stderr, one line per item, with its local time and direction.

    14:03:07.101 > GET /ws?token=*** HTTP/1.1
    14:03:07.101 > Host: 127.0.0.1:8765
    14:03:07.104 < HTTP/1.1 101 Switching Protocols
    14:03:07.104 < Upgrade: websocket
    14:03:07.105 < text {"type":"authenticated","payload":{"userId":"usr_1"}}
    14:03:07.106 > text {"type":"conversation.join","payload":{"conversationId":"c1"},...}
    14:03:22.107 > ping prismer-rt
    14:03:22.108 < pong prismer-rt
    14:03:23.000 > POST /api/im/token/refresh
    14:03:23.004 < 200 OK POST /api/im/token/refresh (4 ms) {"ok":true,"data":{"token":"***"}}
    14:03:24.000 < sse id:17 event:message.new {"id":"m1","content":"hi"}
    14:03:25.000 * GET /api/im/sync: connection refused

`>` is what this program sent, `<` what it received, `*` what happened without a message
(a request that got no answer). Items longer than 2,000 characters are cut, with their full
size. The token is never shown: in URLs (`token=***`), headers (Authorization, Cookie,
Set-Cookie are `***`), JSON fields named like a token, anything shaped like a JWT, and every
token this run has used or been given (a refresh or register answer) are all `***`.

The hooks sit at the transport's edge: the WebSocket upgrade and frames (ws.py, through
`TracedSocket` and `TracedReader` when tracing), each SSE event (sse.py), each HTTP request
(tracehttp.py, mounted on every requests session). Without --trace nothing here runs.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, TextIO
from urllib.parse import urlsplit

from prismer_cli.redact import redact
from prismer_cli.stdio import say

LIMIT = 2000  # characters of one item; the rest is cut, its size said
HIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_JSON_TOKEN = re.compile(
    r'("(?:token|im_token|imToken|accessToken|access_token|refreshToken|refresh_token|jwt)"'
    r'\s*:\s*")[^"]*(")'
)
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


class Tracer:
    """Writes trace lines to stderr (thread-safe: a reader thread traces what it reads)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def redirect(self, stream: TextIO | None) -> None:
        """Write to `stream` from now on (None: stderr again)."""
        self._stream = stream

    def secret(self, token: str | None) -> None:
        """A token to mask wherever it appears from now on."""
        if token:
            self._secrets.add(token)

    def masked(self, text: str) -> str:
        text = _JSON_TOKEN.sub(r"\1***\2", text)
        text = _JWT.sub("***", text)
        return redact(text, *self._secrets)

    def _write(self, mark: str, text: str) -> None:
        text = self.masked(text)
        if len(text) > LIMIT:
            text = f"{text[:LIMIT]}… (cut: {len(text)} characters in all)"
        now = time.time()
        local = time.localtime(now)
        stamp = time.strftime("%H:%M:%S", local) + f".{int(now * 1000) % 1000:03d}"
        with self._lock:
            say(self._stream, f"{stamp} {mark} {text}\n")

    def sent(self, text: str) -> None:
        self._write(">", text)

    def received(self, text: str) -> None:
        self._write("<", text)

    def note(self, text: str) -> None:
        self._write("*", text)

    # -- HTTP ------------------------------------------------------------------------------
    def request_line(self, method: str, url: str, headers: Mapping[str, str] | None = None) -> None:
        """The upgrade's request line and Host, with the headers that say something."""
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        self.sent(f"{method} {target} HTTP/1.1")
        if parts.netloc:
            self.sent(f"Host: {parts.netloc}")
        self.headers(">", headers or {})

    def status_line(self, status: int, headers: Mapping[str, str] | None) -> None:
        self.received(f"HTTP/1.1 {status} {_phrase(status)}".rstrip())
        self.headers("<", headers or {})

    def headers(self, mark: str, headers: Mapping[str, str]) -> None:
        for name, value in headers.items():
            shown = "***" if name.lower() in HIDDEN_HEADERS else value
            self._write(mark, f"{name}: {shown}")

    def answer(self, method: str, url: str, status: int, millis: float, body: bytes | None) -> None:
        """One REST answer: status, method, path, duration and (not for a stream) its body."""
        self.learn(body)
        text = f"{status} {_phrase(status)} {method} {_path(url)} ({millis:.0f} ms)"
        if body:
            text += " " + body.decode("utf-8", "replace")
        self.received(text)

    def learn(self, body: bytes | None) -> None:
        """Tokens in an answer (refresh, register) are secrets from now on."""
        if body and b"oken" in body:
            for match in re.finditer(rb'"(?:token|im_token|accessToken)"\s*:\s*"([^"]+)"', body):
                self.secret(match.group(1).decode("utf-8", "replace"))

    # -- WebSocket and SSE -----------------------------------------------------------------
    def frame(self, mark: str, opcode: int, payload: bytes) -> None:
        kind = OPCODES.get(opcode, f"opcode {opcode}")
        if opcode == 8:
            from prismer_cli.transport.wsframes import decode_close

            code, reason = decode_close(payload)
            text = f"close {code if code is not None else '(no status)'} {reason}".rstrip()
        elif opcode == 2:
            text = f"binary ({len(payload)} bytes)"
        else:
            text = f"{kind} {payload.decode('utf-8', 'replace')}".rstrip()
        self._write(mark, text)

    def sse(self, event: str, event_id: str | None, data: bytes) -> None:
        fields = ([f"id:{event_id}"] if event_id is not None else []) + (
            [f"event:{event}"] if event and event != "message" else []
        )
        self.received(" ".join(["sse", *fields, data.decode("utf-8", "replace")]))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class FrameSniffer:
    """The frames in the bytes this program writes (masked client frames, any split)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> Iterable[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 2:
            opcode, size, at = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, at = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, at = int.from_bytes(buffer[2:10], "big"), 10
            key = b""
            if buffer[1] & 0x80:
                key, at = bytes(buffer[at : at + 4]), at + 4
            if len(buffer) < at + size:
                return
            payload = bytes(buffer[at : at + size])
            if key:
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            del buffer[: at + size]
            yield opcode, payload


class TracedSocket:
    """A socket whose writes are traced frame by frame; everything else is the socket's."""

    def __init__(self, sock: Any, tracer: Tracer) -> None:
        self._sock = sock
        self._tracer = tracer
        self._sniffer = FrameSniffer()

    def _trace(self, data: bytes | bytearray | memoryview) -> None:
        for opcode, payload in self._sniffer.feed(data):
            self._tracer.frame(">", opcode, payload)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)
        self._trace(data)

    def send(self, data: bytes | memoryview) -> int:
        sent: int = self._sock.send(data)
        self._trace(data[:sent])
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class TracedReader:
    """A FrameReader whose frames are traced as they are read."""

    def __init__(self, reader: Any, tracer: Tracer) -> None:
        self._reader = reader
        self._tracer = tracer
        self.buffered = reader.buffered

    def read(self) -> tuple[int, bytes]:
        opcode, data = self._reader.read()
        self._tracer.frame("<", opcode, data)
        return opcode, data

    def read_batch(self) -> tuple[int, list[bytes]]:
        """One frame at a time: each traced line comes as the frame is handled."""
        opcode, data = self.read()
        return opcode, [data]
