"""A loopback HTTP relay in front of a real server that answers each request with the server's
own status, headers and body, reshaped: how the body is framed (Content-Length, chunked, up to
the end of the connection), coded (gzip, deflate), cut, or what else the answer says (a cookie,
a redirect). It keeps every request as the client wrote it.

    with Reshaper(server.port, "chunked") as relay:
        run("listen", "--since", "all", "--no-follow", env=env_for(relay.url, "bob"))
        relay.requests  # (connection number, request head), in order
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import socket
import threading
import zlib

from tests.support.serverfixture import BlackHole

HEAD_END = b"\r\n\r\n"
MODES = (
    "as-is",  # Content-Length, kept alive
    "bytewise",  # as-is, one send per byte
    "chunked",  # chunks of 7 bytes, an extension and a trailer
    "gzip",
    "deflate",
    "until-close",  # HTTP/1.1, Connection: close, no length: the body ends with the connection
    "http/1.0",  # HTTP/1.0, no length, closed after the body
    "closed-when-idle",  # kept alive by its headers, but closed once answered
    "drops-the-second",  # kept alive, but the connection's second request closes it unanswered
    "hangs-after-the-first",  # the first request of the log is answered, no later one ever
    "cookie",  # Set-Cookie: lb=one on each answer
    "redirect",  # each request is answered 307 to /moved/<path>, which is the same server
    "cut",  # half the body, then the connection closed
)


class Reshaper(BlackHole):
    def __init__(self, upstream: int, mode: str) -> None:
        assert mode in MODES, mode
        self._upstream = upstream
        self._mode = mode
        self._lock = threading.Lock()
        self.requests: list[tuple[int, bytes]] = []  # (the connection's number, the head)
        super().__init__()

    def _accepted(self, conn: socket.socket) -> None:
        number = self.accepted
        threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(10)
        pending = b""
        with contextlib.suppress(OSError):
            while True:
                while HEAD_END not in pending:
                    data = conn.recv(65536)
                    if not data:
                        return
                    pending += data
                end = pending.index(HEAD_END) + len(HEAD_END)
                head, pending = pending[:end], pending[end:]
                with self._lock:
                    self.requests.append((number, head))
                    asked = sum(1 for n, _ in self.requests if n == number)
                if self._mode == "drops-the-second" and asked == 2:
                    conn.close()
                    return
                if self._mode == "hangs-after-the-first" and self._logged() > 1:
                    while conn.recv(65536):  # never answered, until the client gives up
                        pass
                    return
                if not self._answer(conn, head):
                    conn.close()
                    return

    def _logged(self) -> int:
        """How many requests for the log came so far."""
        with self._lock:
            return sum(1 for _, head in self.requests if b"/api/im/sync?" in head)

    def _answer(self, conn: socket.socket, head: bytes) -> bool:
        """Answer one request; False when the connection is to be closed."""
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        mode = self._mode
        if mode == "redirect":
            if not path.startswith("/moved/"):
                conn.sendall(
                    f"HTTP/1.1 307 Temporary Redirect\r\nLocation: /moved{path}\r\n"
                    "Content-Length: 0\r\n\r\n".encode()
                )
                return True
            path = path.removeprefix("/moved")
        headers = {
            name.lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        status, body = self._upstream_answer(path, headers.get("authorization", ""))
        reason = http.client.responses.get(status, "Whatever")
        top = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        if mode == "http/1.0":
            conn.sendall(f"HTTP/1.0 {status} {reason}\r\n\r\n".encode() + body)
            return False
        if mode == "until-close":
            conn.sendall(f"{top}Connection: close\r\n\r\n".encode() + body)
            return False
        if mode == "chunked":
            chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
            framed = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
            conn.sendall(
                f"{top}Transfer-Encoding: chunked\r\n\r\n".encode()
                + framed
                + b"0\r\nX-Trailer: yes\r\n\r\n"
            )
            return True
        extra = ""
        if mode == "gzip":
            body, extra = gzip.compress(body), "Content-Encoding: gzip\r\n"
        elif mode == "deflate":
            body, extra = zlib.compress(body), "Content-Encoding: deflate\r\n"
        elif mode == "cookie":
            extra = "Set-Cookie: lb=one; Path=/\r\n"
        answer = f"{top}{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body
        if mode == "cut":
            conn.sendall(answer[: len(answer) - len(body) // 2])
            return False
        if mode == "bytewise":
            for i in range(len(answer)):
                conn.sendall(answer[i : i + 1])
        else:
            conn.sendall(answer)
        return mode != "closed-when-idle"

    def _upstream_answer(self, path: str, authorization: str) -> tuple[int, bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self._upstream, timeout=10)
        try:
            upstream.request("GET", path, headers={"Authorization": authorization})
            answer = upstream.getresponse()
            return answer.status, answer.read()
        finally:
            upstream.close()
