"""The benchmark's local servers: prebuilt frames, written as fast as the kernel takes them.

One process listens on 127.0.0.1 (port 0 unless --port) and serves, by path and token:

- ``GET /ws?token=stream-N``: WebSocket (docs dialect): ``auth_success``, then N
  ``message.new`` events, then a close frame (1000); then it reads the client's frames
  until its close frame (or end of file) and closes the TCP connection.
- ``GET /ws?token=discard``: WebSocket (docs dialect): ``auth_success``, then it reads
  and discards the client's frames, counting them, and answers a close frame with one.
- ``GET /api/im/events/stream?token=stream-N``: SSE (docs dialect, named events):
  N blocks ``event: message.new`` + ``data: <payload>``, then the end of the stream.
- ``GET /api/im/sync?since=S&limit=L`` with ``Authorization: Bearer log-N``: the event log
  of the real server (``{"ok":true,"data":{"events":[{"seq","type","data","conversationId",
  "at"}],"cursor","hasMore"}}``, at most 500 per page, ``data.metadata`` a JSON string, as
  prismer_cli/server/synclog.py serves it) holding N ``message.new`` events, seq 1..N;
  ``GET /api/im/me`` with the same token answers the user. Over HTTP/1.1 keep-alive: one
  connection serves any number of requests until the client closes it.

The bytes of a stream are built once per N (before the connection's clock starts) and
written with one ``sendall``, so the server costs the kernel's copy and nothing more; so are
the log's pages of 500 (``--prebuild sync:N``; any other page is built on first request and
kept).
Every event is a ~250-byte ``message.new`` envelope whose payload carries a unique ``id``
and a sequence number ``seq`` (1..N).

The handshake is hand-written (no WebSocket library on the server side). For each connection
the process prints JSON lines on stdout, which bench/run.py reads:
``{"ev": "start", "conn": K, "route": ..., "t": <perf_counter_ns before the 101/200 answer>}``
and ``{"ev": "end", "conn": K, "frames_in": F, "t_last_in": ..., "t": ...}``
(time.perf_counter_ns is CLOCK_MONOTONIC on Linux, the same clock in every process).

Usage: python bench/servers.py [--prebuild ws:200000 sse:200000 sync:100000 ...] [--port P]
It prints ``{"ev": "ready", "port": P}`` once it listens.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

Record = dict[str, Any]  # one JSON line for bench/run.py: {"ev": ..., ...}

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTENT_PAD = 250  # target size in bytes of one WebSocket event (the envelope)

# One event: the docs dialect's message.new envelope. Everything but the id and seq is fixed.
_PAYLOAD = (
    b'{"id":"msg-%09d","seq":%d,"conversationId":"conv-bench-0001",'
    b'"senderId":"user-bench-0002","senderName":"Bench Bot","type":"text",'
    b'"createdAt":"2025-01-01T00:00:00.000Z","content":"%s"}'
)
_ENVELOPE_HEAD = b'{"type":"message.new","payload":'
AUTH_SUCCESS = (
    b'{"type":"auth_success","payload":{"userId":"user-bench-0001",'
    b'"name":"Bench","connectedAt":"2025-01-01T00:00:00.000Z"}}'
)


def _content_for(size: int) -> bytes:
    """Content that makes the envelope of a 6-digit event `size` bytes long."""
    probe = _ENVELOPE_HEAD + _PAYLOAD % (100_000, 100_000, b"") + b"}"
    text = b"Benchmark message: the quick brown fox jumps over the lazy dog. " * 4
    return text[: max(0, size - len(probe))]


_CONTENT = _content_for(CONTENT_PAD)


def payload(seq: int) -> bytes:
    """The payload JSON of event number `seq` (1-based)."""
    return _PAYLOAD % (seq, seq, _CONTENT)


def envelope(seq: int) -> bytes:
    return _ENVELOPE_HEAD + payload(seq) + b"}"


_LATENCY_PAYLOAD = (
    b'{"id":"lat-%09d","seq":%d,"sentNs":%d,"conversationId":"conv-bench-0001",'
    b'"senderId":"user-bench-0002","senderName":"Bench Bot","type":"text",'
    b'"content":"Latency probe: the quick brown fox jumps over the lazy dog."}'
)


def latency_event(seq: int, sent_ns: int) -> bytes:
    """A message.new envelope carrying the time it was written (time.perf_counter_ns)."""
    return _ENVELOPE_HEAD + _LATENCY_PAYLOAD % (seq, seq, sent_ns) + b"}"


def latency_event_server(seq: int, sent_ns: int) -> bytes:
    """The same probe in the server dialect: with a timestamp and an ackId, as makeEvent."""
    return (
        _ENVELOPE_HEAD
        + _LATENCY_PAYLOAD % (seq, seq, sent_ns)
        + b',"timestamp":1735689600000,"ackId":"ack_%d"}' % seq
    )


_LATENCY_STORED = (
    b'{"seq":%d,"type":"message.new","data":{"id":"lat-%09d","conversationId":"conv-bench-0001",'
    b'"senderId":"user-bench-0002","type":"text","content":"Latency probe","metadata":"{}",'
    b'"parentId":null,"createdAt":"2025-01-01T00:00:00.000Z"},'
    b'"conversationId":"conv-bench-0001","at":"2025-01-01T00:00:00.000Z"}'
)


def latency_stored(seq: int) -> bytes:
    """Probe `seq` as the event log stores it (same message id as the live frame)."""
    return _LATENCY_STORED % (seq, seq)


AUTHENTICATED = (
    b'{"type":"authenticated","payload":{"userId":"user-bench-0001"},"timestamp":1735689600000}'
)


# -- the event log (GET /api/im/sync) -----------------------------------------------------------
SYNC_PAGE = 500  # the real server's largest page
SYNC_USER = "user-bench-0001"
_SYNC_EVENT = (
    b'{"seq":%d,"type":"message.new","data":{"id":"msg-%09d","conversationId":"conv-bench-0001",'
    b'"senderId":"user-bench-0002","type":"text","content":"%s","metadata":"{}",'
    b'"parentId":null,"createdAt":"2025-01-01T00:00:00.000Z"},'
    b'"conversationId":"conv-bench-0001","at":"2025-01-01T00:00:00.000Z"}'
)
ME_ANSWER = (
    b'{"ok":true,"data":{"user":{"id":"' + SYNC_USER.encode() + b'","username":"bench",'
    b'"displayName":"Bench","role":"agent"}}}'
)


def sync_event(seq: int) -> bytes:
    """Stored event `seq` as the log serves it: the message.new row, metadata a JSON string."""
    return _SYNC_EVENT % (seq, seq, _CONTENT)


def sync_page(
    head: int, since: int, limit: int, event: Callable[[int], bytes] = sync_event
) -> bytes:
    """The answer of GET /api/im/sync for a log of `head` events, as the real server pages it:
    at most 500, `cursor` the last seq or `since` itself, `hasMore` when anything follows."""
    limit = min(limit, SYNC_PAGE)
    first = max(since, 0) + 1
    last = min(head, since + limit) if limit > 0 else since
    events = b",".join(event(seq) for seq in range(first, last + 1))
    cursor = last if last >= first else since
    has_more = head > (last if last >= first else max(since, 0)) if limit >= 0 else True
    return (
        b'{"ok":true,"data":{"events":['
        + events
        + b'],"cursor":%d,"hasMore":%s}}' % (cursor, b"true" if has_more else b"false")
    )


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


def ws_stream_bytes(n: int) -> bytes:
    """auth_success, n events, close: the whole server side of a listen run."""
    parts = [ws_frame(AUTH_SUCCESS)]
    head16 = struct.Struct("!BBH").pack
    for seq in range(1, n + 1):
        body = _ENVELOPE_HEAD + _PAYLOAD % (seq, seq, _CONTENT) + b"}"
        parts.append(head16(0x81, 126, len(body)) + body)
    parts.append(CLOSE_1000)
    return b"".join(parts)


def sse_stream_bytes(n: int) -> bytes:
    """n named events, docs dialect: `event: message.new` + `data: <payload>`."""
    return b"".join(
        b"event: message.new\ndata: " + _PAYLOAD % (seq, seq, _CONTENT) + b"\n\n"
        for seq in range(1, n + 1)
    )


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
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = buf[pos + 2] << 8 | buf[pos + 3]
                head = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if b1 & 0x80:
                head += 4
            if end - pos < head + n:
                break
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                frames += 1
            elif opcode == 8:
                self.closed = True
            pos += head + n
        del buf[:pos]
        self.frames = frames
        self.t_last = time.perf_counter_ns()


class BenchServer:
    """Threaded server; `report` is called with one dict per connection event."""

    def __init__(
        self, report: Callable[[Record], None], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._report = report
        self._blobs: dict[tuple[str, int], bytes] = {}
        self._pages: dict[tuple[int, int, int], bytes] = {}
        self._blob_lock = threading.Lock()
        self._conn_ids = 0
        self._ids_lock = threading.Lock()
        self.sock = socket.create_server((host, port), backlog=128)
        self.port = self.sock.getsockname()[1]

    def blob(self, kind: str, n: int) -> bytes:
        with self._blob_lock:
            key = (kind, n)
            if key not in self._blobs:
                self._blobs[key] = ws_stream_bytes(n) if kind == "ws" else sse_stream_bytes(n)
            return self._blobs[key]

    def page(self, head: int, since: int, limit: int) -> bytes:
        """One answer of GET /api/im/sync, built once and kept."""
        key = (head, since, limit)
        answer = self._pages.get(key)
        if answer is None:
            answer = http_answer(sync_page(head, since, limit))
            with self._blob_lock:
                self._pages[key] = answer
        return answer

    def prebuild_log(self, head: int) -> None:
        """Every page of 500 that a reader from the start asks for."""
        for since in range(0, head + 1, SYNC_PAGE):
            self.page(head, since, SYNC_PAGE)

    def serve_forever(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._ids_lock:
                self._conn_ids += 1
                conn_id = self._conn_ids
            threading.Thread(target=self._handle, args=(conn, conn_id), daemon=True).start()

    def _handle(self, conn: socket.socket, conn_id: int) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        end: Record = {"ev": "end", "conn": conn_id, "frames_in": 0, "t_last_in": 0}
        try:
            target, headers, rest = read_request(conn)
            url = urlsplit(target)
            token = parse_qs(url.query).get("token", [""])[0]
            n = int(token[len("stream-") :]) if token.startswith("stream-") else 0
            if url.path == "/ws" and headers.get("upgrade", "").lower() == "websocket":
                if token == "discard":
                    self._ws_discard(conn, conn_id, headers, rest, end)
                else:
                    self._ws_stream(conn, conn_id, headers, rest, n, end)
            elif url.path in ("/api/im/sync", "/api/im/me"):
                self._http(conn, conn_id, target, headers, rest, end)
            elif url.path == "/api/im/events/stream" and token.startswith("stream-"):
                body = self.blob("sse", n)
                self._report(
                    {
                        "ev": "start",
                        "conn": conn_id,
                        "route": "sse",
                        "n": n,
                        "t": time.perf_counter_ns(),
                    }
                )
                conn.sendall(SSE_HEAD + body)
                conn.shutdown(socket.SHUT_WR)
            else:
                conn.sendall(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
        except (OSError, ConnectionError, ValueError):
            pass  # the client went away first: nothing to report but the end
        finally:
            end["t"] = time.perf_counter_ns()
            with contextlib.suppress(OSError):
                conn.close()
            self._report(end)

    def _http(
        self,
        conn: socket.socket,
        conn_id: int,
        target: str,
        headers: dict[str, str],
        rest: bytes,
        end: Record,
    ) -> None:
        """The event log over keep-alive: answer requests until the client closes."""
        self._report({"ev": "start", "conn": conn_id, "route": "http", "t": time.perf_counter_ns()})
        requests = Requests(conn, rest)
        served = events = 0
        request: tuple[str, dict[str, str]] | None = (target, headers)
        while request is not None:
            url = urlsplit(request[0])
            token = bearer(request[1])
            head = int(token[len("log-") :]) if token.startswith("log-") else -1
            if head < 0:
                conn.sendall(
                    http_answer(b'{"ok":false,"error":"Unauthorized"}', b"401 Unauthorized")
                )
            elif url.path == "/api/im/me":
                conn.sendall(http_answer(ME_ANSWER))
            elif url.path == "/api/im/sync":
                query = parse_qs(url.query)
                since = int(query.get("since", ["0"])[0])
                limit = int(query.get("limit", ["100"])[0])
                conn.sendall(self.page(head, since, limit))
                if limit > 0:
                    events += max(0, min(head, since + min(limit, SYNC_PAGE)) - max(since, 0))
            else:
                conn.sendall(http_answer(b'{"ok":false,"error":"Not found"}', b"404 Not Found"))
            served += 1
            request = requests.next()
        end["requests"] = served
        end["events_out"] = events

    def _ws_stream(
        self,
        conn: socket.socket,
        conn_id: int,
        headers: dict[str, str],
        rest: bytes,
        n: int,
        end: Record,
    ) -> None:
        body = self.blob("ws", n)
        self._report(
            {"ev": "start", "conn": conn_id, "route": "ws", "n": n, "t": time.perf_counter_ns()}
        )
        conn.sendall(upgrade_response(headers) + body)
        end["t_sent"] = time.perf_counter_ns()
        self._drain_until_close(conn, rest, end, reply=False)

    def _ws_discard(
        self, conn: socket.socket, conn_id: int, headers: dict[str, str], rest: bytes, end: Record
    ) -> None:
        self._report(
            {"ev": "start", "conn": conn_id, "route": "discard", "t": time.perf_counter_ns()}
        )
        conn.sendall(upgrade_response(headers) + ws_frame(AUTH_SUCCESS))
        self._drain_until_close(conn, rest, end, reply=True)

    @staticmethod
    def _drain_until_close(conn: socket.socket, rest: bytes, end: Record, reply: bool) -> None:
        frames = ClientFrames()
        if rest:
            frames.feed(rest)
        conn.settimeout(30)
        while not frames.closed:
            data = conn.recv(1 << 18)
            if not data:
                break
            frames.feed(data)
        end["frames_in"] = frames.frames
        end["t_last_in"] = frames.t_last
        if frames.closed and reply:
            with contextlib.suppress(OSError):
                conn.sendall(CLOSE_1000)


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's local WebSocket/SSE server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--prebuild",
        nargs="*",
        default=[],
        metavar="KIND:N",
        help="streams to build before listening, e.g. ws:200000 sse:200000 sync:100000",
    )
    args = parser.parse_args()
    lock = threading.Lock()

    def report(record: Record) -> None:
        line = json.dumps(record) + "\n"
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    server = BenchServer(report, port=args.port)
    for spec in args.prebuild:
        kind, _, n = spec.partition(":")
        if kind == "sync":
            server.prebuild_log(int(n))
        else:
            server.blob(kind, int(n))
    report({"ev": "ready", "port": server.port})
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
