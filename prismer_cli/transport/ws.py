"""WebSocket transport: wssocket.py opens the connection, wsframes reads it.

wssocket.py does the handshake (by hand for a plain ws:// URL, else with websocket-client: TLS,
proxies from the environment, redirects of the upgrade); after that the frames are read by
wsframes.py, because websocket-client's own reader tops out near 40k frames/s (README "Design
notes"). Sends go through one lock, so a reader thread may answer pings while the main thread
writes commands.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TypeVar

import orjson

from prismer_cli import signals
from prismer_cli.errors import AuthError, ConnectError, ConnectionLost, PartialWrite
from prismer_cli.protocol.dialects import (
    Dialect,
    Hello,
    detect,
    error_message,
    request_id,
)
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.transport.base import Endpoint, Resume
from prismer_cli.transport.reasons import reason
from prismer_cli.transport.watchdog import Watch
from prismer_cli.transport.wsencode import (
    encode_close,
    encode_frame,
    encode_text_frames,
    frame_size,
)
from prismer_cli.transport.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ConnectionClosedError,
    FrameError,
    FrameReader,
    Receiver,
    decode_close,
)
from prismer_cli.transport.wssocket import BoundedReceiver, MaskKeys, open_socket

_Frames = TypeVar("_Frames", bytes, list[bytes])  # one frame's payload, or a batch of them

# Close codes that, before any authentication frame, mean the token was refused.
AUTH_CLOSE_CODES = frozenset({1008, 4001, 4003, 4401, 4403})


def _lost(exc: BaseException) -> ConnectionLost:
    if isinstance(exc, ConnectionClosedError):
        return ConnectionLost("the server closed the connection without a close frame")
    if isinstance(exc, FrameError):
        return ConnectionLost(f"protocol error: {exc}")
    return ConnectionLost(reason(exc))


class WebSocketConnection:
    kind = "ws"

    def __init__(self, sock: socket.socket, tls: bool, endpoint: Endpoint) -> None:
        self._sock = sock
        self._tls = tls
        self._receiver = BoundedReceiver(self._sock, self._tls)
        receiver: Receiver = self._receiver
        self._reader = FrameReader(receiver)
        if endpoint.trace is not None:  # --trace: every frame in and out
            from prismer_cli.transport.trace import TracedReader, TracedSocket

            self._sock = TracedSocket(self._sock, endpoint.trace)  # type: ignore[assignment]
            self._reader = TracedReader(self._reader, endpoint.trace)  # type: ignore[assignment]
        self._timeouts = endpoint.timeouts
        self._lock = threading.Lock()
        self._acks: list[bytes] = []
        self._mask_key = MaskKeys()
        self._ping_id = 0
        self._last_rx = time.monotonic()
        self._last_ping = 0.0
        self.on_pong: Callable[[bytes], None] | None = None  # called with each pong's payload
        self._wake_pipe: tuple[int, int] | None = None  # enable_wake(): (read end, write end)
        self._woken = False
        self.closed_cleanly = False  # close(): the server answered our close frame
        self.dialect: Dialect
        self.hello: Hello

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, endpoint: Endpoint, resume: Resume) -> WebSocketConnection:
        """Connect and authenticate, all of it by the attempt's deadline (or within the connect
        timeout), however slowly the server's bytes come (watchdog.py)."""
        at = endpoint.deadline.at
        if at is None:
            at = time.monotonic() + endpoint.timeouts.connect
        watch = Watch()
        with watch.step(at, "the WebSocket handshake (TCP, TLS, upgrade)"):
            sock, tls = open_socket(endpoint)
        conn = cls(sock, tls, endpoint)
        try:
            with watch.step(at, "the authentication frame"):
                conn._authenticate(endpoint.dialect or resume.dialect)
        except BaseException:
            conn.abort()
            raise
        return conn

    def _authenticate(self, forced: Dialect | None) -> None:
        self._sock.settimeout(self._timeouts.auth)
        try:
            opcode, data = self._next_data_frame()
        except TimeoutError:
            raise ConnectError("no authentication frame from the server") from None
        except ConnectionLost as exc:
            if exc.close_code in AUTH_CLOSE_CODES:
                raise AuthError(f"authentication refused: {exc}") from None
            raise ConnectError(str(exc)) from None
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            frame = None
        if opcode != OP_TEXT or not isinstance(frame, dict):
            raise ConnectError("the server's first frame is not a JSON object")
        dialect = detect(frame, forced)
        if dialect is None:
            raise ConnectError(f"unexpected first frame {frame.get('type')!r}")
        if dialect.is_auth_failure(frame):
            raise AuthError(f"the server rejected the token: {error_message(frame)}")
        if frame.get("type") != dialect.auth_ok:
            raise ConnectError(f"expected {dialect.auth_ok!r}, got {frame.get('type')!r}")
        self.dialect = dialect
        self.hello = dialect.hello(frame)
        self._last_rx = time.monotonic()
        # From here on the timeout never changes: waits for input use select(), so a reader
        # thread cannot shorten the main thread's writes. It only bounds a stall: a write, or a
        # frame's remaining bytes, that makes no progress while a live peer would have answered.
        self._sock.settimeout(self._timeouts.ping_interval + self._timeouts.ping_timeout)

    def _next_data_frame(self) -> tuple[int, bytes]:
        while True:
            opcode, data = self._read()
            if opcode in (OP_TEXT, OP_BINARY):
                return opcode, data
            self._control(opcode, data)

    def _read(self) -> tuple[int, bytes]:
        try:
            return self._reader.read()
        except TimeoutError:
            raise
        except (ConnectionClosedError, FrameError, OSError) as exc:
            raise _lost(exc) from None

    def _control_batch(self, opcode: int, data: list[bytes]) -> None:
        self._control(opcode, data[0])

    def _control(self, opcode: int, data: bytes) -> None:
        if opcode == OP_PING:
            self._write(encode_frame(OP_PONG, data))
        elif opcode == OP_PONG:
            if self.on_pong is not None:
                self.on_pong(data)
        elif opcode == OP_CLOSE:
            code, reason = decode_close(data)
            self._reply_close()
            said = f"{code} {reason}".rstrip() if code is not None else "no status code"
            message = f"the server closed the connection ({said})"
            raise ConnectionLost(message, close_code=code)

    # -- receiving -------------------------------------------------------------------------
    def messages(self, deadline: float | None = None) -> Iterator[bytes]:
        """Each text frame, until the deadline; a stop (SIGINT, SIGTERM: signals.py) wakes the
        wait for input and raises its exception here, between two frames."""
        return self._receive(deadline, self._reader.read, self._control)

    def batches(self, deadline: float | None = None) -> Iterator[list[bytes]]:
        """As messages(), a list at a time: each text frame, with those already buffered
        after it (FrameReader.read_batch); listen's hot path makes no call per frame."""
        return self._receive(deadline, self._reader.read_batch, self._control_batch)

    def _receive(
        self,
        deadline: float | None,
        read: Callable[[], tuple[int, _Frames]],
        control: Callable[[int, _Frames], None],
    ) -> Iterator[_Frames]:
        buffered = self._reader.buffered
        wake = signals.wake_fd()
        readable = self._readable if wake is None else partial(self._readable_or_stop, wake)
        receiver = self._receiver
        receiver.until = deadline  # a frame that trickles in ends by the deadline too
        clock = time.monotonic
        while True:
            if not buffered():
                if not readable(self._next_wakeup(clock(), deadline)):
                    if self._woken:  # wake(): as at the deadline
                        self._woken = False
                        return
                    if self._idle(deadline):
                        return
                    continue
                receiver.ready = True
            try:
                opcode, data = read()  # a frame stalled midway trips the socket's stall timeout
            except TimeoutError as exc:
                if deadline is not None and clock() >= deadline:
                    return  # the frame's bytes are kept: a later call goes on with it
                raise _lost(exc) from None
            except (ConnectionClosedError, FrameError, OSError) as exc:
                raise _lost(exc) from None
            self._last_rx = clock()
            if opcode == OP_TEXT:
                yield data
            elif opcode == OP_BINARY:
                yield data  # the caller reports a frame that is not a JSON object
            else:
                control(opcode, data)

    def _idle(self, deadline: float | None) -> bool:
        """Keepalive on a quiet line: ping, or give up on a peer that stopped answering.

        Returns True when the deadline has passed.
        """
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return True
        quiet = now - self._last_rx
        timeouts = self._timeouts
        if quiet >= timeouts.ping_interval + timeouts.ping_timeout:
            raise ConnectionLost(f"no answer from the server for {quiet:.0f} s")
        if quiet >= timeouts.ping_interval and self._last_ping <= self._last_rx:
            self._ping()
            self._last_ping = now
        return False

    def _readable(self, timeout: float) -> bool:
        """Wait for input without touching the socket's timeout, which writes share."""
        if self._tls and self._sock.pending():  # type: ignore[attr-defined]
            return True
        if self._wake_pipe is None:
            return bool(select.select((self._sock,), (), (), timeout)[0])
        sock, wake = self._sock.fileno(), self._wake_pipe[0]
        ready = select.select((sock, wake), (), (), timeout)[0]
        if wake in ready:
            with contextlib.suppress(OSError):  # closed by abort() meanwhile
                os.read(wake, 4096)
            self._woken = True
        return sock in ready

    # -- waking a reader thread ------------------------------------------------------------
    def enable_wake(self) -> None:
        """Let wake() end a wait for input (send's reader thread, which another thread tells
        when to stop); listen, which reads in its only thread, never pays for the pipe."""
        if self._wake_pipe is None:
            self._wake_pipe = os.pipe()
            os.set_blocking(self._wake_pipe[1], False)

    def wake(self) -> None:
        """Make messages(), waiting for input in another thread, return now as at its deadline
        (once: a messages() called after that waits again)."""
        if self._wake_pipe is not None:
            with contextlib.suppress(OSError):  # a byte is there already, or it is closed
                os.write(self._wake_pipe[1], b"w")

    def _readable_or_stop(self, wake: int, timeout: float) -> bool:
        """_readable, also woken by a stop, which it raises (signals.check)."""
        if self._tls and self._sock.pending():  # type: ignore[attr-defined]
            return True
        sock = self._sock.fileno()
        ready = select.select((sock, wake), (), (), timeout)[0]
        if ready and ready[-1] == wake:
            signals.check()
        return bool(ready) and ready[0] == sock

    def _next_wakeup(self, now: float, deadline: float | None) -> float:
        timeouts = self._timeouts
        due = self._last_rx + timeouts.ping_interval
        if self._last_ping > self._last_rx:
            due += timeouts.ping_timeout
        if deadline is not None:
            due = min(due, deadline)
        return max(0.001, due - now)

    def _ping(self) -> None:
        self._ping_id += 1
        frames = [encode_frame(OP_PING, b"prismer-rt")]
        protocol_ping = self.dialect.ping(request_id(f"ping-{self._ping_id}"))
        if protocol_ping is not None:
            frames.append(encode_frame(OP_TEXT, orjson.dumps(protocol_ping)))
        self._write(b"".join(frames))

    def pending(self) -> bool:
        return self._reader.buffered()

    # -- sending ---------------------------------------------------------------------------
    def send(self, frame: JSON) -> None:
        self._write(encode_frame(OP_TEXT, orjson.dumps(frame), mask_key=self._mask_key()))

    def send_many(self, frames: list[JSON], ping: bytes | None = None) -> None:
        """Write the frames (and a ping after them) at once; a write that fails part way
        raises PartialWrite saying how many frames had started to go out."""
        self.send_texts([orjson.dumps(frame) for frame in frames], ping)

    def send_texts(self, payloads: list[bytes], ping: bytes | None = None) -> None:
        """send_many, of frames already serialised."""
        data = encode_text_frames(payloads, self._mask_key.many(len(payloads)))
        if ping is not None:
            data += encode_frame(OP_PING, ping, mask_key=self._mask_key())
        view = memoryview(data)
        sent = 0
        try:
            with self._lock:
                while sent < len(view):
                    sent += self._sock.send(view[sent:])
        except OSError as exc:
            started, offset = 0, 0  # frames whose first byte went out
            for payload in payloads:
                if offset >= sent:
                    break
                started, offset = started + 1, offset + frame_size(len(payload))
            raise PartialWrite(f"{reason(exc)} while sending", started) from None

    def ping(self, payload: bytes) -> None:
        """A WebSocket ping; its pong (see on_pong) comes after the server read what came before."""
        self._write(encode_frame(OP_PING, payload, mask_key=self._mask_key()))

    def ack(self, ack_id: str) -> None:
        frame = orjson.dumps(self.dialect.ack(ack_id))
        self._acks.append(encode_frame(OP_TEXT, frame, mask_key=self._mask_key()))

    def flush_acks(self) -> None:
        if self._acks:
            data = b"".join(self._acks)
            self._acks.clear()
            self._write(data)

    def _write(self, data: bytes) -> None:
        try:
            with self._lock:
                self._sock.sendall(data)
        except OSError as exc:
            raise ConnectionLost(f"{reason(exc)} while sending") from None

    # -- closing ---------------------------------------------------------------------------
    def _reply_close(self) -> None:
        """Answer the server's close with 1000: echoing its code could be one (1005, 1006,
        1015) that may not be sent."""
        try:
            with self._lock:
                self._sock.sendall(encode_close(1000))
        except OSError:
            return  # the peer is already gone; the close frame has no one to reach
        finally:
            self.abort()

    def close(self, linger: float = 1.0) -> list[bytes]:
        """Send close 1000; wait `linger` s for the server's close; return frames seen meanwhile."""
        seen: list[bytes] = []
        try:
            self._write(encode_close(1000))
            self._drain_until_close(linger, seen)
        except ConnectionLost:
            return seen  # the peer vanished first: it has nothing more to say
        finally:
            self.abort()
        return seen

    def _drain_until_close(self, linger: float, seen: list[bytes]) -> None:
        end = time.monotonic() + linger
        self._receiver.until = end
        try:
            while (left := end - time.monotonic()) > 0:
                self._sock.settimeout(left)
                opcode, data = self._reader.read()
                if opcode == OP_CLOSE:
                    self.closed_cleanly = True
                    return
                if opcode == OP_TEXT:
                    seen.append(data)
                elif opcode == OP_PONG and self.on_pong is not None:
                    self.on_pong(data)
        except (ConnectionClosedError, FrameError, OSError):
            return  # timed out or gone: closing anyway

    def abort(self) -> None:
        """Drop the connection at once, waking any thread blocked on the socket."""
        with contextlib.suppress(OSError):  # already disconnected: closing is all that is left
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        pipe, self._wake_pipe = self._wake_pipe, None
        for fd in pipe or ():
            os.close(fd)
