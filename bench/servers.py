"""The benchmark's local servers: prebuilt frames, written as fast as the kernel takes them.

One process listens on 127.0.0.1 (port 0 unless --port) and serves, by path and token:

- ``GET /ws?token=stream-N``: WebSocket (docs dialect): ``auth_success``, then N
  ``message.new`` events, then a close frame (1000); then it reads the client's frames
  until its close frame (or end of file) and closes the TCP connection.
- ``GET /ws?token=discard``: WebSocket (docs dialect): ``auth_success``, then it reads
  and discards the client's frames, counting them, and answers a close frame with one.
- ``GET /ws?token=echo``: WebSocket (server dialect): ``authenticated``, then every
  ``message.send`` echoed to its sender as ``message.new`` (bench/echo.py), counted and checked
  (each idempotency key once, each conversation in order), until the client's close frame.
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
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from echo import Echo
from events import (
    AUTH_SUCCESS,
    AUTHENTICATED,
    ME_ANSWER,
    SYNC_PAGE,
    sse_stream_bytes,
    sync_page,
    ws_stream_bytes,
)
from wire import (
    CLOSE_1000,
    SSE_HEAD,
    ClientFrames,
    Requests,
    bearer,
    http_answer,
    read_request,
    upgrade_response,
    ws_frame,
)

Record = dict[str, Any]  # one JSON line for bench/run.py: {"ev": ..., ...}


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
                elif token == "echo":
                    self._ws_echo(conn, conn_id, headers, rest, end)
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

    def _ws_echo(
        self, conn: socket.socket, conn_id: int, headers: dict[str, str], rest: bytes, end: Record
    ) -> None:
        """The server dialect: `authenticated`, then every `message.send` echoed (bench/echo.py)
        until the client's close frame, which is answered."""
        self._report({"ev": "start", "conn": conn_id, "route": "echo", "t": time.perf_counter_ns()})
        conn.sendall(upgrade_response(headers) + ws_frame(AUTHENTICATED))
        echo = Echo()
        try:
            answer = echo.feed(rest)
            conn.settimeout(30)
            while True:
                if answer:
                    conn.sendall(answer)
                if echo.closed:
                    break
                data = conn.recv(1 << 18)
                if not data:
                    break
                answer = echo.feed(data)
        finally:
            end.update(echo.report())

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
