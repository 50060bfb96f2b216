"""A loopback WebSocket server that answers the upgrade at once, sends some whole frames, then
trickles one frame one byte at a time for ever: for deadline tests of the steps after the
upgrade (`prismer-rt serve --fault trickle=MS` trickles the HTTP answers themselves).

    with TrickleServer(frames=[AUTH_SUCCESS], interval=0.2) as server:
        run("listen", "--timeout", "2", env=env_for(server.url))
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
import time

import orjson

from tests.support.serverfixture import BlackHole

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def text_frame(payload: bytes) -> bytes:
    """An unmasked server text frame (short payloads only)."""
    assert len(payload) < 126
    return bytes((0x81, len(payload))) + payload


AUTH_SUCCESS = text_frame(orjson.dumps({"type": "auth_success", "payload": {"userId": "u1"}}))


class TrickleServer(BlackHole):
    """A BlackHole that answers: the upgrade at once, `frames`, then a frame's bytes one at a
    time, every `interval` s, until closed."""

    def __init__(self, frames: list[bytes], interval: float = 0.2) -> None:
        self._frames = frames
        self._interval = interval
        self.trickled = 0  # bytes of the endless frame sent so far, over all connections
        self._threads: list[threading.Thread] = []
        super().__init__()

    def _accepted(self, conn: socket.socket) -> None:
        thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = b""
            for line in request.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            for frame in self._frames:
                conn.sendall(frame)
            conn.sendall(bytes((0x81, 126, 0xFF, 0xFF)))  # a 65,535-byte text frame ...
            while not self._closed.is_set():  # ... whose bytes come one at a time
                time.sleep(self._interval)
                conn.sendall(b"a")
                self.trickled += 1

    def close(self) -> None:
        super().close()
        for thread in self._threads:
            thread.join(5)
