"""Replay frames recorded from a real Prismer Cloud server (tests/transcripts, copied from
shared/transcripts) to the real command, over a bare-bones loopback server, and check what is
printed, consumed, de-duplicated and acknowledged."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.cli import env_for, run

TRANSCRIPTS = Path(__file__).parent / "transcripts"
LINE = re.compile(r"^\[\+[\d.]+s\] <<< (WS|SSE) (\S+) (.*)$")
CONSUMED = {"authenticated", "pong", "reconnect.ack"}


def recorded(name: str, channel: str, who: str) -> list[str]:
    """The server-to-client frames (or SSE chunks) of one connection in a transcript."""
    frames = []
    for line in (TRANSCRIPTS / name).read_text().splitlines():
        match = LINE.match(line)
        if match and match.group(1) == channel and match.group(2) == who:
            frames.append(match.group(3))
    return frames


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def _client_frames(conn: socket.socket) -> Iterator[tuple[int, bytes]]:
    """Masked client frames until the client closes or goes quiet."""
    while True:
        try:
            b1, b2 = _read_exactly(conn, 2)
        except (ConnectionError, TimeoutError, OSError):
            return
        length = b2 & 0x7F
        if length == 126:
            length = struct.unpack("!H", _read_exactly(conn, 2))[0]
        elif length == 127:
            length = struct.unpack("!Q", _read_exactly(conn, 8))[0]
        mask = _read_exactly(conn, 4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exactly(conn, length)))
        yield b1 & 0x0F, payload
        if b1 & 0x0F == 8:
            return


def _server_frame(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    head = bytes([0x81, n]) if n < 126 else bytes([0x81, 126]) + struct.pack("!H", n)
    return head + data


class ReplayServer(threading.Thread):
    """Answers one WebSocket upgrade, sends the recorded frames, records what comes back."""

    def __init__(self, frames: list[str], close: int | None = None) -> None:
        super().__init__(daemon=True)
        self.frames = frames
        self.close = close  # send this close code right after the frames
        self.received: list[dict] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def run(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(3)
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = re.search(rb"Sec-WebSocket-Key: (\S+)", request, re.I).group(1)  # type: ignore[union-attr]
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        conn.sendall(b"".join(_server_frame(f) for f in self.frames))
        if self.close is not None:
            conn.sendall(bytes([0x88, 2]) + struct.pack("!H", self.close))
        for opcode, payload in _client_frames(conn):
            if opcode == 1:
                self.received.append(orjson.loads(payload))
            elif opcode == 8:
                conn.sendall(bytes([0x88, 0]))
                break
        conn.close()
        self.sock.close()


@pytest.fixture
def ws_replay() -> Iterator[type[ReplayServer]]:
    yield ReplayServer


def test_recorded_websocket_frames_print_as_recorded(ws_replay: type[ReplayServer]) -> None:
    """A real server's frames: events printed byte for byte, protocol answers consumed,
    re-sent copies (isRetry, from transcript 04) printed once, every ackId acknowledged."""
    live = recorded("03-ws-good-token.txt", "WS", "A")
    retries = [f for f in recorded("04-ws-bad-token.txt", "WS", "notoken") if '"isRetry"' in f]
    server = ws_replay(live + retries)
    server.start()
    result = run("listen", "--timeout", "1.5", env=env_for(server.url, "recorded"))
    server.join(5)
    assert result.code == 0, result.err
    expected = [f for f in live if orjson.loads(f)["type"] not in CONSUMED]
    assert result.out.splitlines() == expected
    assert len(retries) == 4  # the replay did re-send them
    acked = {f["payload"]["ackId"] for f in server.received if f.get("type") == "ack"}
    assert acked == {orjson.loads(f)["ackId"] for f in live + retries if "ackId" in f}


def test_recorded_auth_failure_exits_3_at_once(ws_replay: type[ReplayServer]) -> None:
    """The recorded AUTH_FAILED frame ends the program with exit 3 without waiting for the
    server's 10 s authentication timeout."""
    server = ws_replay(recorded("04-ws-bad-token.txt", "WS", "bad")[:1])
    server.start()
    result = run("listen", env=env_for(server.url, "not-a-jwt"), timeout=8)
    assert result.code == 3
    assert "Invalid token" in result.err


class SSEReplayServer(threading.Thread):
    """404 on the docs path, then the recorded `/sse` chunks verbatim, then end of stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.chunks = chunks
        self.paths: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def run(self) -> None:
        for _ in range(2):
            conn, _ = self.sock.accept()
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            path = request.split(b" ")[1].decode()
            self.paths.append(path.split("?")[0])
            if path.startswith("/api/im/events/stream"):
                body = b'{"ok":false,"error":"Not found"}'
                conn.sendall(
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                conn.close()
                continue
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            for chunk in self.chunks:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
            conn.close()
        self.sock.close()


def test_recorded_sse_stream_prints_the_envelopes() -> None:
    """The server dialect's SSE (found after a 404 on the docs path): each `data:` envelope is
    printed as recorded, `authenticated` consumed, the `: heartbeat` comment ignored."""
    chunks = [
        orjson.loads(c.split(" ", 1)[1]).encode()
        for c in recorded("05-sse.txt", "SSE", "B")
        if c.startswith("chunk ")
    ] + [b": heartbeat\n\n"]
    server = SSEReplayServer(chunks)
    server.start()
    count = len(chunks) - 2  # all but authenticated and the heartbeat
    result = run(
        "listen", "--transport", "sse", "--count", str(count), env=env_for(server.url, "recorded")
    )
    server.join(5)
    assert result.code == 0, result.err
    expected = [c.decode()[len("data: ") : -2] for c in chunks[1:-1]]
    assert result.out.splitlines() == expected
    assert server.paths[:2] == ["/api/im/events/stream", "/sse"]


@pytest.mark.parametrize(("code", "status"), [(4001, 3), (1008, 3), (1011, 4), (1015, 4)])
def test_close_before_authentication(ws_replay: type[ReplayServer], code: int, status: int) -> None:
    """A close instead of an authentication frame: an auth code means exit 3, another exit 4."""
    server = ws_replay([], close=code)
    server.start()
    result = run("listen", "--no-reconnect", env=env_for(server.url, "t"), timeout=8)
    assert result.code == status, result.err
    assert f"({code}" in result.err


AUTH = '{"type":"auth_success","payload":{"userId":"u1","name":"me","connectedAt":"x"}}'


def test_a_printed_line_is_flushed_when_a_skipped_frame_follows(
    ws_replay: type[ReplayServer],
) -> None:
    """An event followed at once by a frame that is not printed (here one that is not JSON)
    still reaches stdout before the command waits again, not when the next event comes."""
    import select
    import subprocess

    from tests.support.cli import command

    event = '{"type":"task.updated","payload":{"taskId":"t1"}}'
    server = ws_replay([AUTH, event, "this is not json"])
    server.start()
    proc = subprocess.Popen(
        command("listen", "--timeout", "6"),
        env=env_for(server.url, "t"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 2.5)
        assert ready, "the event was not flushed while the server was quiet"
        assert proc.stdout.readline().decode().strip() == event
    finally:
        proc.kill()
        proc.communicate()
    server.join(5)


def test_a_frame_whose_type_is_not_a_string_is_skipped(ws_replay: type[ReplayServer]) -> None:
    """`{"type": [1]}` is reported and skipped; the stream goes on."""
    event = '{"type":"task.updated","payload":{"taskId":"t2"}}'
    server = ws_replay([AUTH, '{"type":[1],"payload":{}}', '{"type":{"a":1}}', event])
    server.start()
    result = run("listen", "--count", "1", env=env_for(server.url, "t"), timeout=8)
    server.join(5)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [event]
    assert result.err.count("without a string 'type'") == 2
