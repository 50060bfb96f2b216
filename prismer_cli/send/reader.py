"""The socket channel's reader thread: the server's frames, read while the main thread writes.

It answers pings, acknowledges frames, and hands each answer to the table of what awaits
confirmation (awaiting.py): echoes, error frames, pongs. When the connection breaks it calls
the channel back (`on_break`) once, and wakes whoever waits for a protocol-level pong.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import orjson

from prismer_cli.errors import ConnectionLost, ExitStatus, PrismerError
from prismer_cli.log import Log
from prismer_cli.protocol.dialects import EchoKey, error_message, eviction
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.send.awaiting import Awaiting
from prismer_cli.send.ledger import Ledger
from prismer_cli.transport import Connection

TICK = 0.05  # how often the reader thread looks for commands past --wait, and for the end
# The frames of a burst are handled in equal parts of at most this many, and the messages whose
# turn came written after each part: the server works on them while the rest is read. Over 100
# conversations a burst is about 100 echoes: one part of 100 leaves the server waiting for the
# whole burst (a run took 1.19 s instead of 0.94), parts of 64 and 36 leave the client waiting
# for the 64's echoes after the 36, two of 50 keep both at work (0.88 s against 0.90, 25 runs).
BURST = 64


class Reader:
    def __init__(
        self,
        conn: Connection,
        awaiting: Awaiting,
        ledger: Ledger,
        log: Log,
        on_break: Callable[[str, int | None], None],
    ) -> None:
        self._conn = conn
        self._dialect = conn.hello.dialect
        self._me = conn.hello.user_id
        self._content_key = self._dialect.content_key
        self._awaiting = awaiting
        self._ledger = ledger
        self._log = log
        self._on_break = on_break
        self._pongs: dict[str, threading.Event] = {}
        self.finishing = False  # the channel is closing: stop once nothing awaits the server
        self.evicted = ""  # the server's eviction notice, said when the connection ends
        self._wake: Callable[[], None] | None = getattr(conn, "wake", None)
        if self._wake is not None:
            conn.enable_wake()  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._run, name="prismer-rt-reader", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def finish(self) -> None:
        """The writer is done: stop as soon as nothing awaits the server, which may be now
        (the thread is woken rather than left to wait for input up to TICK)."""
        self.finishing = True
        if self._wake is not None:
            self._wake()

    def expect_pong(self, sync_id: str) -> threading.Event:
        """An event set when the protocol-level pong to `sync_id` comes (or the reader ends)."""
        answered = threading.Event()
        with self._awaiting.lock:
            self._pongs[sync_id] = answered
        return answered

    def drop_pong(self, sync_id: str) -> None:
        with self._awaiting.lock:
            self._pongs.pop(sync_id, None)

    def _run(self) -> None:
        conn, awaiting, ledger = self._conn, self._awaiting, self._ledger
        try:
            while not (self.finishing and awaiting.answered()):
                for frames in conn.batches(time.monotonic() + TICK):
                    # the frames already buffered, in equal parts of at most BURST
                    count = len(frames)
                    if count <= BURST:
                        self.handle_many(frames)
                    else:
                        parts = -(-count // BURST)  # count / BURST, rounded up
                        step = -(-count // parts)  # the size of each part, rounded up
                        for start in range(0, count, step):
                            self.handle_many(frames[start : start + step])
                            self._write_ready()
                    if self.finishing and awaiting.answered():  # the last echo: stop now
                        break
                    if not conn.pending():
                        self._write_ready()
                        conn.flush_acks()
                        ledger.emit()
                awaiting.expire()
                self._write_ready()
                if self.finishing:  # the writer is done: the reader settles the pongs' batches
                    awaiting.tend()
                conn.flush_acks()
                ledger.emit()
        except ConnectionLost as exc:
            self._on_break(self._said(str(exc)), exc.close_code)
        except PrismerError as exc:
            self._on_break(self._said(str(exc)), None)
        finally:
            with awaiting.lock:
                waiting = list(self._pongs.values())
            for answered in waiting:  # nothing will answer them now
                answered.set()

    def _write_ready(self) -> None:
        """Write the messages whose turn came (the one before each in its conversation is
        settled), in one write."""
        ready = self._awaiting.take_ready()
        if ready:
            text_of = self._dialect.command_text
            frames = [text_of(e.command, e.request_id) for e in ready]
            self._conn.send_texts([frame for frame in frames if frame is not None])

    def _said(self, error: str) -> str:
        return f"{error}: {self.evicted}" if self.evicted else error

    def handle(self, data: bytes) -> None:
        self.handle_many([data])

    def handle_many(self, frames: list[bytes]) -> None:
        """The server's frames, in order: the echoes among them are settled together, under
        one lock (Awaiting.on_echoes), before any other answer is handled.

        Each echo is taken as the dialect's own_echo takes it, written out here (once per
        echo, the hot path of the server dialect; tests/test_engines.py holds them equal)."""
        dialect, me, loads, content_key = self._dialect, self._me, orjson.loads, self._content_key
        ack_field, sender = dialect.ack_field, dialect.sender_field
        key_field = dialect.echo_key_field
        echoes: list[tuple[EchoKey, JSON]] = []
        add = echoes.append
        for data in frames:
            try:
                frame = loads(data)
            except orjson.JSONDecodeError:
                continue
            if type(frame) is not dict:  # orjson makes plain dicts
                continue
            ack_id = frame.get(ack_field)
            if ack_id is not None:
                self._conn.ack(ack_id)
            if frame.get("type") == "message.new":  # own_echo: a new message, sent by me
                payload = frame.get("payload")
                if type(payload) is dict and payload.get(sender) == me:
                    metadata = payload.get("metadata") if key_field else None
                    key = metadata.get(key_field) if type(metadata) is dict else None
                    add((key if type(key) is str else content_key(payload), payload))
                continue
            if echoes:
                self._awaiting.on_echoes(echoes)
                echoes = []
                add = echoes.append
            if dialect.is_pong(frame) or (
                dialect.is_error(frame) and dialect.request_id_of(frame) in self._pongs
            ):
                self._on_pong(frame)
            elif dialect.is_error(frame):
                self._on_error(frame)
        if echoes:
            self._awaiting.on_echoes(echoes)

    def _on_pong(self, frame: JSON) -> None:
        with self._awaiting.lock:
            answered = self._pongs.get(self._dialect.request_id_of(frame))
        if answered is not None:
            answered.set()

    def _on_error(self, frame: JSON) -> None:
        if self._awaiting.on_error(frame):
            return
        message = error_message(frame)
        if eviction(message):  # about the connection, not a command: said when it closes
            self.evicted = message
            return
        self._log.error(f"the server answered with an error: {message}")
        self._ledger.fail(ExitStatus.REJECTED)
