"""Loopback helpers for the WebSocket upgrade (transport/wsupgrade.py): a relay in front of a
real server that keeps what the client sent and can reshape what the server answers, and a
server that answers every upgrade with fixed bytes (a redirect, a wrong accept key).

    with Relay(server.port, answer="bytewise") as relay:
        run("send", "c1", "hi", env=env_for(relay.url))
        relay.requests[0]  # the upgrade request, as the client wrote it
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.serverfixture import BlackHole

HEAD_END = b"\r\n\r\n"


class Relay(BlackHole):
    """Each connection relayed to 127.0.0.1:`upstream`. `answer`: how the server's bytes are
    passed on: "as-is"; "bytewise", one send per byte; "together", the upgrade's answer held
    back until the first frame behind it has come too, then both in one send."""

    def __init__(self, upstream: int, answer: str = "as-is") -> None:
        self._upstream = upstream
        self._answer = answer
        self.requests: list[bytes] = []  # what each client sent up to the end of its headers
        super().__init__()

    def _accepted(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=10)
        self._held.append(upstream)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = bytearray()
        threading.Thread(target=self._up, args=(conn, upstream, request), daemon=True).start()
        threading.Thread(target=self._down, args=(upstream, conn), daemon=True).start()

    def _up(self, conn: socket.socket, upstream: socket.socket, request: bytearray) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                if HEAD_END not in request:
                    request += data
                    if HEAD_END in request:
                        self.requests.append(bytes(request[: request.index(HEAD_END) + 4]))
                upstream.sendall(data)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _down(self, upstream: socket.socket, conn: socket.socket) -> None:
        held: bytes | None = b"" if self._answer == "together" else None
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if held is not None:
                    held += data
                    if _first_frame_in(held):
                        conn.sendall(held)
                        held = None
                elif self._answer == "bytewise":
                    for at in range(len(data)):
                        conn.sendall(data[at : at + 1])
                else:
                    conn.sendall(data)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)


def _first_frame_in(data: bytes) -> bool:
    """The HTTP answer and a whole (unmasked, server) frame after it are in `data`."""
    _, end, rest = data.partition(HEAD_END)
    if not end or len(rest) < 2:
        return False
    size, at = rest[1] & 0x7F, 2
    if size == 126:
        if len(rest) < 4:
            return False
        size, at = int.from_bytes(rest[2:4], "big"), 4
    return len(rest) >= at + size


class FixedAnswer(BlackHole):
    """Reads each upgrade request and answers it with the bytes `answer`, then closes the
    connection."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        super().__init__()

    def _accepted(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(5)
            request = b""
            while HEAD_END not in request and (data := conn.recv(4096)):
                request += data
            conn.sendall(self._answer)
            conn.shutdown(socket.SHUT_WR)
