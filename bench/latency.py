"""Latency section: server write -> line on prismer-rt's stdout, one probe at a time, in the
docs dialect, the server dialect, the server dialect with --cursor-file, and the floor (a raw TCP
relay). The probe's server runs here, in the thread that reads the client's output."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import events
import wire
from environment import HERE
from harness import Bench, cursor_of, log, percentile

SENT = re.compile(rb'"sentNs":(\d+)')


def bench_latency(bench: Bench) -> None:
    s, t, r = bench.s, bench.tools, bench.results
    total = s.latency_warmup + s.latency_samples
    listen = [t.prismer_rt, "listen", "--count", str(total)]
    server = [*listen, "--dialect", "server"]
    labels = {
        "prismer": "prismer-rt listen, server write -> stdout line",
        "server": "prismer-rt listen --dialect server",
        "cursor": "prismer-rt listen --dialect server --cursor-file F",
        "floor": "raw TCP -> stdout relay (floor)",
    }
    rows = {
        kind: (
            r.row("latency", f"latency.{kind}", label, "us"),
            r.row("latency", f"latency.{kind}.p99", "", "us"),
        )
        for kind, label in labels.items()
    }
    cursor_files = bench.tmp / "cursors"
    cursor_files.mkdir(exist_ok=True)
    runs = iter(range(1_000_000))
    cursor_file: list[Path] = []

    def with_cursor(port: int) -> list[str]:
        cursor_file[:] = [cursor_files / f"probe-{next(runs)}.cursor"]  # fresh every run
        return [*server, "--cursor-file", str(cursor_file[0])]

    commands: dict[str, Callable[[int], list[str]]] = {
        "prismer": lambda port: listen,
        "server": lambda port: server,
        "cursor": with_cursor,
        "floor": lambda port: [
            t.python,
            str(HERE / "clients.py"),
            "relay",
            "127.0.0.1",
            str(port),
        ],
    }

    def prismer_env(port: int) -> dict[str, str]:
        return {
            **bench.env,
            "PRISMER_URL": f"http://127.0.0.1:{port}",
            "PRISMER_TOKEN": "latency",
        }

    dialects = {"prismer": "docs", "server": "server", "cursor": "server", "floor": None}
    complete, saved = True, True
    for i in range(s.latency_runs):
        for kind, (p50, p99) in rows.items():
            try:
                values, probe_log = latency_session(
                    commands[kind],
                    (lambda port: bench.env) if kind == "floor" else prismer_env,
                    dialect=dialects[kind],
                    samples=s.latency_samples,
                    warmup=s.latency_warmup,
                    spacing=s.latency_spacing,
                )
            except (OSError, RuntimeError, queue.Empty) as exc:
                p50.errors.append(str(exc) or type(exc).__name__)
                complete = complete and kind == "floor"
                log(f"    run {i + 1} {p50.label}: error {exc}")
                continue
            values.sort()
            p50.samples.append(percentile(values, 50) / 1000)
            p99.samples.append(percentile(values, 99) / 1000)
            p50.extra.setdefault("max_us", []).append(values[-1] / 1000)
            extra = ""
            if kind == "cursor":
                cursor = cursor_of(cursor_file[0])
                saved = saved and cursor == total
                p50.extra.setdefault("log_requests", []).append(probe_log.requests)
                extra = f"; cursor saved {cursor}, {probe_log.requests} log requests"
            log(
                f"    run {i + 1}/{s.latency_runs} {p50.label}: p50 {p50.samples[-1]:.0f} "
                f"us, p99 {p99.samples[-1]:.0f} us, max {values[-1] / 1000:.0f} us{extra}"
            )
    bench.results.checks["latency.complete"] = {
        "ok": complete,
        "detail": "every probe came out of prismer-rt, in order, in each dialect"
        if complete
        else "prismer-rt missed probes",
    }
    bench.results.checks["latency.cursor"] = {
        "ok": saved,
        "detail": f"--cursor-file saved the last probe's seq ({total}) in every run"
        if saved
        else "the cursor file did not end at the last probe",
    }


class ProbeLog(threading.Thread):
    """The latency probe's other connections: the event log a cursor-file listen reads.

    Accepts on the probe's listening socket; a WebSocket upgrade is handed to the probe thread
    (`sockets`), anything else is answered over keep-alive in a thread of its own:
    `GET /api/im/sync` holds the probes written so far (`head`, set by the probe thread before
    each probe is sent, as the real server logs a message before pushing it), with the live
    frame's message id; `GET /api/im/me` answers the user.
    """

    def __init__(self, listener: socket.socket) -> None:
        super().__init__(daemon=True)
        self.listener = listener
        self.head = 0
        self.requests = 0
        self.sockets: queue.Queue[tuple[socket.socket, dict[str, str]]] = queue.Queue()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                target, headers, rest = wire.read_request(conn)
            except (OSError, ConnectionError):
                conn.close()
                continue
            if headers.get("upgrade", "").lower() == "websocket":
                self.sockets.put((conn, headers))
            else:
                threading.Thread(
                    target=self._http, args=(conn, target, headers, rest), daemon=True
                ).start()

    def _http(self, conn: socket.socket, target: str, headers: dict[str, str], rest: bytes) -> None:
        reader = wire.Requests(conn, rest)
        request: tuple[str, dict[str, str]] | None = (target, headers)
        with contextlib.suppress(OSError, ValueError), conn:
            while request is not None:
                self.requests += 1
                url = urllib.parse.urlsplit(request[0])
                if url.path == "/api/im/me":
                    body = events.ME_ANSWER
                elif url.path == "/api/im/sync":
                    query = urllib.parse.parse_qs(url.query)
                    since = int(query.get("since", ["0"])[0])
                    limit = int(query.get("limit", ["100"])[0])
                    body = events.sync_page(self.head, since, limit, events.latency_stored)
                else:
                    conn.sendall(wire.http_answer(b"{}", b"404 Not Found"))
                    request = reader.next()
                    continue
                conn.sendall(wire.http_answer(body))
                request = reader.next()

    def websocket(self, timeout: float) -> tuple[socket.socket, dict[str, str]]:
        return self.sockets.get(timeout=timeout)


def latency_session(
    cmd: Callable[[int], list[str]],
    env: Callable[[int], dict[str, str]],
    *,
    dialect: str | None,
    samples: int,
    warmup: int,
    spacing: float,
) -> tuple[list[int], ProbeLog]:
    """One event at a time, stamped with perf_counter_ns, timed until its line is read back.

    `dialect`: "docs" or "server" (a WebSocket speaking it), None (raw TCP, the floor). The
    server's writes and the reader of the client's stdout are this one thread: nothing competes
    for the interpreter while a probe is in flight, except the answers of ProbeLog to a client
    that reads the event log (a cursor-file listen), which run in threads of their own.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    probe_log = ProbeLog(listener)
    if dialect is not None:
        probe_log.start()
    else:
        listener.settimeout(30)
    proc = subprocess.Popen(
        cmd(port),
        env=env(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    values: list[int] = []
    conn = None
    try:
        if dialect is None:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            conn, headers = probe_log.websocket(30)
            hello = events.AUTH_SUCCESS if dialect == "docs" else events.AUTHENTICATED
            conn.sendall(wire.upgrade_response(headers) + wire.ws_frame(hello))
            time.sleep(0.2)  # let the client settle into its read loop
        event = events.latency_event_server if dialect == "server" else events.latency_event
        frame = wire.ws_frame if dialect is not None else (lambda body: body + b"\n")
        drain = dialect == "server"  # the client acknowledges: read its frames, unparsed
        buf = b""
        read, clock, send, recv = os.read, time.perf_counter_ns, conn.sendall, conn.recv
        for seq in range(1, warmup + samples + 1):
            probe_log.head = seq
            sent = clock()
            send(frame(event(seq, sent)))
            while b"\n" not in buf:
                data = read(fd, 65536)
                if not data:
                    raise RuntimeError(f"the client's output ended at probe {seq}")
                buf += data
            arrived = clock()
            line, _, buf = buf.partition(b"\n")
            match = SENT.search(line)
            if match is None or int(match.group(1)) != sent:
                raise RuntimeError(f"probe {seq} came out wrong: {line[:80]!r}")
            if seq > warmup:
                values.append(arrived - sent)
            time.sleep(spacing)
            if drain:
                with contextlib.suppress(BlockingIOError):
                    while recv(65536, socket.MSG_DONTWAIT):
                        pass
        if dialect is not None:
            send(wire.CLOSE_1000)
    finally:
        if conn is not None:
            conn.close()
        listener.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"the client exited with status {proc.returncode}")
    return values, probe_log
