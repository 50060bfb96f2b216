"""The socket channel: commands written over one WebSocket while a reader thread reads answers.

The reader thread answers pings, acknowledges frames, and matches the server's answers to the
commands while the main thread keeps writing (never one round trip at a time):
- server dialect: a message is confirmed by the server's echo of it to its sender (matched on
  the dialect's echo key, first come first served), or failed by an error frame carrying the
  command's requestId; after --wait seconds it is reported unconfirmed;
- docs dialect: nothing confirms a command, so it is reported as sent once written; an error
  frame, which names no command, is reported on stderr and makes the exit status 5.
A command the socket cannot carry (the server dialect's mark_read, or any mark_read without a
message id, which only REST can say) goes over REST in its place: the frames before it are
written first and, where the dialect can ping, the server has answered a ping sent after them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

import orjson

from prismer_cli.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    ExitStatus,
    PrismerError,
)
from prismer_cli.log import Log
from prismer_cli.output import OutputClosed
from prismer_cli.protocol.commands import SEND, Command
from prismer_cli.protocol.dialects import EchoKey, error_message, request_id
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.send.channel import Channel, SendOptions, Stopped
from prismer_cli.send.ledger import Entry, Ledger
from prismer_cli.send.rest import rest_call, rest_client
from prismer_cli.transport import Connection, Endpoint

if TYPE_CHECKING:
    from prismer_cli.transport.rest import RestClient

TICK = 0.05  # how often the reader thread looks for commands past --wait, and for the end


class SocketChannel(Channel):
    def __init__(
        self, conn: Connection, endpoint: Endpoint, ledger: Ledger, log: Log, options: SendOptions
    ) -> None:
        self._conn = conn
        self._endpoint = endpoint
        self._ledger = ledger
        self._log = log
        self._options = options
        self._wait = options.wait
        self._dialect = conn.hello.dialect
        self._me = conn.hello.user_id
        self._lock = threading.Lock()
        self._by_request: dict[str, Entry] = {}
        self._by_content: dict[EchoKey, deque[Entry]] = {}
        self._pongs: dict[str, threading.Event] = {}
        self._counter = 0
        self._finishing = False
        self._rest: RestClient | None = None
        self._reader = threading.Thread(
            target=self._read_loop, name="prismer-rt-reader", daemon=True
        )
        self._reader.start()

    # -- main thread -----------------------------------------------------------------------
    def submit(self, commands: list[Command]) -> None:
        """Write the frames in order, one write per run of socket commands; REST in its place."""
        index = 0
        while index < len(commands):
            frames: list[JSON] = []
            written: list[Entry] = []  # settled once the write succeeded
            entries: list[Entry] = []
            over_rest: Entry | None = None
            with self._lock:
                now = time.monotonic()
                for command in commands[index:]:
                    index += 1
                    entry = self._ledger.add(command, self._request_id())
                    frame = self._dialect.command_frame(command, entry.request_id)
                    if frame is None:
                        over_rest = entry
                        break
                    entries.append(entry)
                    frames.append(frame)
                    if command.action == SEND and self._dialect.confirms_sends:
                        self._expect(entry, now)
                    else:
                        written.append(entry)
            try:
                if frames:
                    self._conn.send_many(frames)
            except ConnectionLost as exc:
                self.broken = True
                with self._lock:
                    for entry in entries:
                        self._forget(entry)
                    unsent = [e for e in entries if e.record is None]
                if over_rest is not None:
                    unsent.append(over_rest)
                self._ledger.discard(unsent)
                self._ledger.emit()
                rest = [e.command for e in unsent] + commands[index:]
                raise Stopped(ConnectError(str(exc)), rest, resendable=True) from None
            for entry in written:
                self._ledger.settle(entry, True, sent=True)
            if over_rest is not None:
                self._barrier()
                try:
                    self._rest_call(over_rest)
                except (ConnectError, AuthError) as exc:
                    self._ledger.emit()
                    raise Stopped(exc, commands[index:], resendable=False) from None
            self._ledger.emit()

    def _request_id(self) -> str:
        self._counter += 1
        return request_id(str(self._counter))

    def _expect(self, entry: Entry, now: float) -> None:
        """Wait for the server's echo of this message (caller holds the lock)."""
        entry.sent_at = now
        self._by_request[entry.request_id] = entry
        key = self._dialect.echo_key(entry.command)
        self._by_content.setdefault(key, deque()).append(entry)

    def _barrier(self) -> None:
        """Wait (at most --wait) until the server has handled every frame written so far.

        A ping is answered after the frames before it, so its pong says they are done; a
        dialect without a protocol-level ping cannot say, and the REST call just follows.
        """
        self._counter += 1
        sync_id = request_id(f"sync-{self._counter}")
        ping = self._dialect.ping(sync_id)
        if ping is None or self.broken:
            return
        answered = threading.Event()
        with self._lock:
            self._pongs[sync_id] = answered
        try:
            self._conn.send(ping)
            if self._reader.is_alive():  # else nothing reads the answer
                answered.wait(self._wait)
        except ConnectionLost:
            self.broken = True
        finally:
            with self._lock:
                self._pongs.pop(sync_id, None)

    def _rest_call(self, entry: Entry) -> None:
        if self._rest is None:
            self._rest = rest_client(self._endpoint, self._log, self._options)
        rest_call(self._rest, self._ledger, entry)

    def finish(self, *, abandon: bool = False) -> None:
        """Wait for the outstanding confirmations (bounded by --wait), then close with 1000."""
        self._finishing = True
        if abandon:
            self._fail_pending(
                "interrupted before the server confirmed it; it may or may not have been delivered",
                ExitStatus.INTERRUPTED,
            )
        self._reader.join()
        if not self.broken:
            for data in self._conn.close():
                self._handle(data)
        if self._rest is not None:
            self._rest.close()
        self._ledger.emit()

    # -- reader thread ---------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while not (self._finishing and not self._by_request):
                for data in self._conn.messages(time.monotonic() + TICK):
                    self._handle(data)
                    if not self._conn.pending():
                        self._conn.flush_acks()
                        self._ledger.emit()
                self._expire()
                self._conn.flush_acks()
                self._ledger.emit()
        except ConnectionLost as exc:
            self._break(f"connection lost before the server confirmed it: {exc}")
        except OutputClosed:
            self._break("stdout closed")
        except PrismerError as exc:
            self._break(str(exc))
        finally:
            with self._lock:
                waiting = list(self._pongs.values())
            for answered in waiting:  # nothing will answer them now
                answered.set()

    def _break(self, error: str) -> None:
        """The connection is unusable: fail what awaits confirmation, and drop the socket so
        that a write blocked in the main thread fails now rather than at its stall timeout."""
        self.broken = True
        self._fail_pending(error)
        self._conn.abort()

    def _handle(self, data: bytes) -> None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            frame = None
        if not isinstance(frame, dict):
            return
        dialect = self._dialect
        ack_id = frame.get(dialect.ack_field)
        if ack_id is not None:
            self._conn.ack(ack_id)
        if dialect.is_pong(frame) or (
            dialect.is_error(frame) and dialect.request_id_of(frame) in self._pongs
        ):
            self._on_pong(frame)
        elif dialect.is_error(frame):
            self._on_error(frame)
        else:
            echo = dialect.own_echo(frame, self._me)
            if echo is not None:
                self._on_echo(*echo)

    def _on_pong(self, frame: JSON) -> None:
        with self._lock:
            answered = self._pongs.get(self._dialect.request_id_of(frame))
        if answered is not None:
            answered.set()

    # Entries are settled while the lock is held, so that once submit() has taken an entry out
    # of the lookup tables under the lock, its result is known: settled, or for it to send again.
    def _on_error(self, frame: JSON) -> None:
        fields = self._dialect.error_fields(frame)
        with self._lock:
            entry = self._by_request.get(self._dialect.request_id_of(frame))
            if entry is not None:
                self._forget(entry)
                self._ledger.settle(
                    entry, False, ExitStatus.REJECTED, requestId=entry.request_id, **fields
                )
                return
        self._log.error(f"the server answered with an error: {error_message(frame)}")
        self._ledger.fail(ExitStatus.REJECTED)

    def _on_echo(self, key: EchoKey, payload: JSON) -> None:
        with self._lock:
            queue = self._by_content.get(key)
            if not queue:
                return
            entry = queue[0]
            self._forget(entry)
            self._ledger.settle(entry, True, requestId=entry.request_id, message=payload)

    def _forget(self, entry: Entry) -> None:
        """Drop an entry from the lookup tables (caller holds the lock)."""
        self._by_request.pop(entry.request_id, None)
        key = self._dialect.echo_key(entry.command)
        queue = self._by_content.get(key)
        if queue is not None:
            try:
                queue.remove(entry)
            except ValueError:
                return
            if not queue:
                del self._by_content[key]

    def _expire(self) -> None:
        limit = time.monotonic() - self._wait
        error = (
            f"not confirmed by the server within {self._wait:g} s; "
            "it may or may not have been delivered"
        )
        with self._lock:
            late = []
            for entry in self._by_request.values():  # in the order sent: stop at the first
                if entry.sent_at > limit:  # one still in time, not scan them all every tick
                    break
                late.append(entry)
            for entry in late:
                self._forget(entry)
                self._ledger.settle(
                    entry, False, ExitStatus.CONNECTION, requestId=entry.request_id, error=error
                )

    def _fail_pending(self, error: str, status: ExitStatus = ExitStatus.CONNECTION) -> None:
        with self._lock:
            entries = list(self._by_request.values())
            for entry in entries:
                self._forget(entry)
                self._ledger.settle(entry, False, status, requestId=entry.request_id, error=error)
        self._ledger.emit()
