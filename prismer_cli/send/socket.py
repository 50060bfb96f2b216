"""The socket channel: commands written over one WebSocket while a reader thread reads answers.

The reader thread answers pings, acknowledges frames, and matches the server's answers to the
commands while the main thread keeps writing (never one round trip at a time). When a command
counts as confirmed (docs/cli.md "Delivery model"):
- server dialect: a message is confirmed by the server's echo of it to its sender, matched on
  its idempotency key (`payload.metadata._idempotencyKey`, which the server keeps), or failed by
  an error frame carrying its requestId. When the connection drops, the messages not yet
  confirmed are handed back (`unconfirmed()`) to be sent again, same key, on a new connection;
  after --wait seconds without an echo a message is reported as uncertain;
- docs dialect: each write of a batch of frames ends with a WebSocket ping; its pong, which the
  server sends only once it has read everything before it, confirms the batch, and a clean close
  handshake confirms the tail. A frame covered by neither when the connection drops is reported
  as uncertain ("may or may not have been delivered"): this dialect has no idempotency key, so
  sending it again could post it twice. Frames not yet written go on a new connection.
A command the socket cannot carry (the server dialect's mark_read, or any mark_read without a
message id, which only REST can say) goes over REST in its place: the frames before it are
written first and, where the dialect can ping, the server has answered a ping sent after them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, NoReturn

import orjson

from prismer_cli.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    ExitStatus,
    PartialWrite,
    PrismerError,
)
from prismer_cli.log import Log
from prismer_cli.protocol.commands import SEND, Command
from prismer_cli.protocol.dialects import EchoKey, error_message, eviction, request_id
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.send.channel import Channel, SendOptions, Stopped
from prismer_cli.send.ledger import Entry, Ledger
from prismer_cli.send.rest import rest_call, rest_client
from prismer_cli.transport import Connection, Endpoint

if TYPE_CHECKING:
    from prismer_cli.transport.rest import RestClient

TOO_BIG = 1009  # the WebSocket close code of a server that read a message over its limit
TICK = 0.05  # how often the reader thread looks for commands past --wait, and for the end
UNCERTAIN = "it may or may not have been delivered"


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
        # docs dialect: the entries each WebSocket ping (by payload) will confirm, oldest first
        self._unread: dict[bytes, list[Entry]] = {}
        self._read: list[list[Entry]] = []  # ... and those a pong confirmed, to settle
        self._pings_confirm = not self._dialect.confirms_sends and hasattr(conn, "on_pong")
        if self._pings_confirm:
            conn.on_pong = self._on_ws_pong  # type: ignore[attr-defined]
        self._lost: list[Entry] = []  # server dialect: unconfirmed when the connection broke
        self.confirmed = 0  # commands this connection confirmed: progress, for the retries
        self.cause = ""  # why the connection broke
        self._max_bytes = options.max_message_bytes
        # a content up to this long cannot make a frame too big (JSON escapes are 6x at most)
        self._small = max(0, options.max_message_bytes - 4096) // 6
        self._counter = 0
        self._finishing = False
        self._rest: RestClient | None = None
        self._reader = threading.Thread(
            target=self._read_loop, name="prismer-rt-reader", daemon=True
        )
        self._reader.start()

    # -- main thread -----------------------------------------------------------------------
    def submit(self, commands: list[Command], again: list[Entry] | None = None) -> None:
        """Write the frames in order, one write per run of socket commands; REST in its place.

        `again`: entries of the ledger to send again first (same idempotency key)."""
        todo: list[Entry | Command] = [*(again or ()), *commands]
        index = 0
        self.tend()
        while index < len(todo):
            frames: list[JSON] = []
            entries: list[Entry] = []
            written: list[Entry] = []  # settled once the write succeeded
            over_rest: Entry | None = None
            ping: bytes | None = None
            with self._lock:
                now = time.monotonic()
                for item in todo[index:]:
                    index += 1
                    if isinstance(item, Entry):
                        entry = item
                    else:
                        entry = self._ledger.add(item, self._request_id())
                    command = entry.command
                    frame = self._dialect.command_frame(command, entry.request_id)
                    if frame is None:
                        over_rest = entry
                        break
                    if command.content is not None and len(command.content) > self._small:
                        size = len(orjson.dumps(frame))
                        if size > self._max_bytes:  # it would close the connection: not sent
                            self._too_big(entry, size)
                            continue
                    entries.append(entry)
                    frames.append(frame)
                    if command.action == SEND and self._dialect.confirms_sends:
                        self._expect(entry, now)
                    elif not self._pings_confirm:
                        written.append(entry)
                if self._pings_confirm and entries:
                    self._counter += 1
                    ping = b"prt-sync-%d" % self._counter
                    self._unread[ping] = entries
            try:
                if frames:
                    self._send(frames, ping)
            except ConnectionLost as exc:
                self._stopped(exc, entries, over_rest, todo[index:])
            for entry in written:
                self._ledger.settle(entry, True, sent=True)
            if over_rest is not None:
                self._barrier()
                try:
                    self._rest_call(over_rest)
                except (ConnectError, AuthError) as exc:
                    self._ledger.emit()
                    rest = [c if isinstance(c, Command) else c.command for c in todo[index:]]
                    raise Stopped(exc, rest, resendable=False) from None
            self._ledger.emit()

    def _too_big(self, entry: Entry, size: int) -> None:
        self._ledger.settle(
            entry,
            False,
            ExitStatus.REJECTED,
            error=f"not sent: the message is {size} bytes, more than the {self._max_bytes} bytes "
            "the server accepts (PRISMER_RT_MAX_MESSAGE_BYTES)",
        )

    def _send(self, frames: list[JSON], ping: bytes | None) -> None:
        if ping is None:
            self._conn.send_many(frames)
        else:
            self._conn.send_many(frames, ping)  # type: ignore[call-arg]

    def _stopped(
        self,
        exc: ConnectionLost,
        entries: list[Entry],
        over_rest: Entry | None,
        rest: list[Entry | Command],
    ) -> NoReturn:
        """The write failed: what was not written goes on a new connection; what may have been
        is sent again with its key (server dialect) or reported as uncertain (docs)."""
        self.broken = True
        self.cause = self.cause or str(exc)
        started = exc.started if isinstance(exc, PartialWrite) else len(entries)
        self._reader.join(1.0)  # a close frame (1009: too big) says more than the failed write
        with self._lock:
            for entry in entries:
                self._forget(entry)
            for ping, batch in list(self._unread.items()):
                if batch is entries:
                    del self._unread[ping]
            if self._pings_confirm:
                for entry in entries[:started]:
                    if entry.record is None and entry not in self._lost:  # not: unread (1009)
                        self._uncertain(entry, f"connection lost while it was written; {UNCERTAIN}")
                unwritten = entries[started:]
            else:
                unwritten = entries
            again = _unique(e for e in (*self._lost, *unwritten) if e.record is None)
            self._lost = []
        if over_rest is not None:
            again.append(over_rest)
        self._ledger.emit()
        commands = [c for c in rest if isinstance(c, Command)]
        again += [e for e in rest if isinstance(e, Entry)]
        raise Stopped(ConnectError(self.cause), commands, resendable=True, again=again) from None

    def unconfirmed(self) -> list[Entry]:
        """After a break (server dialect): the entries to send again on a new connection."""
        with self._lock:
            lost, self._lost = [e for e in self._lost if e.record is None], []
        return lost

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
        """Wait for the outstanding confirmations (bounded by --wait), then close with 1000;
        the docs dialect's frames not yet confirmed by a pong are confirmed by a clean close."""
        self._finishing = True
        if abandon:
            self._fail_pending(
                f"interrupted before the server confirmed it; {UNCERTAIN}",
                ExitStatus.INTERRUPTED,
            )
        self._reader.join()
        if not self.broken:
            for data in self._conn.close():
                self._handle(data)
        self.tend()
        clean = bool(getattr(self._conn, "closed_cleanly", False)) and not self.broken
        with self._lock:
            batches, self._unread = list(self._unread.values()), {}
            for batch in batches:
                for entry in batch:
                    if entry.record is not None:
                        continue
                    if clean:
                        self._ledger.settle(entry, True, sent=True)
                    else:
                        reason = self.cause or "the connection did not close cleanly"
                        error = f"not confirmed by the server ({reason}); {UNCERTAIN}"
                        self._uncertain(entry, error)
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
            self._break(str(exc), exc.close_code)
        except PrismerError as exc:
            self._break(str(exc))
        finally:
            with self._lock:
                waiting = list(self._pongs.values())
            for answered in waiting:  # nothing will answer them now
                answered.set()

    def _break(self, error: str, close_code: int | None = None) -> None:
        """The connection is unusable: hand back what awaits an echo (server dialect: it is
        sent again with its key), report what awaits a pong as uncertain (docs dialect), and
        drop the socket so that a write blocked in the main thread fails now rather than at
        its stall timeout. A close 1009 (too big) names its culprit (_too_big_closed)."""
        if self._evicted:
            error = f"{error}: {self._evicted}"
        self.cause = self.cause or error
        self.broken = True
        self.tend()
        with self._lock:
            if close_code == TOO_BIG:
                self._too_big_closed()
            entries = list(self._by_request.values())
            for entry in entries:
                self._forget(entry)
            self._lost.extend(entries)
            batches, self._unread = list(self._unread.values()), {}
            for batch in batches:
                for entry in batch:
                    if entry.record is None:
                        self._uncertain(
                            entry, f"connection lost before the server confirmed it; {UNCERTAIN}"
                        )
        self._ledger.emit()
        self._conn.abort()

    def _too_big_closed(self) -> None:
        """The server closed with 1009: it read a frame over its limit. The largest frame it
        may not have read is over that limit (the culprit is, and it is no larger), so that
        one fails alone (exit 5) and later channels refuse anything as big (`limit`). In the
        docs dialect the close also proves what the server read: every frame before the
        culprit (ok), none after it (sent again). Caller holds the lock."""
        docs = [e for batch in self._unread.values() for e in batch if e.record is None]
        waiting = docs or [e for e in self._by_request.values() if e.record is None]
        if not waiting:
            return
        frames = [self._dialect.command_frame(e.command, e.request_id) for e in waiting]
        sizes = [len(orjson.dumps(frame)) for frame in frames]
        largest = max(range(len(waiting)), key=sizes.__getitem__)
        culprit, size = waiting[largest], sizes[largest]
        self.limit = size - 1
        self._forget(culprit)
        self._ledger.settle(
            culprit,
            False,
            ExitStatus.REJECTED,
            error=f"not delivered: the server closed the connection (1009, message too big) on "
            f"this {size}-byte message; set PRISMER_RT_MAX_MESSAGE_BYTES to its limit",
        )
        if docs:
            read, unread = docs[:largest], docs[largest + 1 :]
            for entry in read:
                self._forget(entry)
                self._ledger.settle(entry, True, sent=True)
            self._lost.extend(unread)
            self._unread = {}

    def _uncertain(self, entry: Entry, error: str) -> None:
        """Settle as "may or may not have been delivered" (caller holds the lock)."""
        self._forget(entry)
        self._ledger.uncertain += 1
        self._ledger.settle(
            entry, False, ExitStatus.CONNECTION, requestId=entry.request_id, error=error
        )

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

    def _on_ws_pong(self, payload: bytes) -> None:
        """A WebSocket pong: every frame written before its ping has been read. The batches
        are only set aside here; the main thread settles them (tend()), so that the reader
        thread does not compete with the writer for the interpreter."""
        with self._lock:
            if payload not in self._unread:
                return
            for ping in list(self._unread):
                batch = self._unread.pop(ping)
                self._read.append(batch)
                self.confirmed += len(batch)
                if ping == payload:
                    break

    def tend(self) -> None:
        """Settle what the server has confirmed reading (docs dialect's pongs)."""
        if not self._read:
            return
        with self._lock:
            batches, self._read = self._read, []
            for batch in batches:
                for entry in batch:
                    if entry.record is None:
                        self._ledger.settle(entry, True, sent=True)
        self._ledger.emit()

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
        message = error_message(frame)
        if eviction(message):  # about the connection, not a command: said when it closes
            self._evicted = message
            return
        self._log.error(f"the server answered with an error: {message}")
        self._ledger.fail(ExitStatus.REJECTED)

    _evicted = ""

    def _on_echo(self, key: EchoKey, payload: JSON) -> None:
        with self._lock:
            queue = self._by_content.get(key)
            if not queue:
                return
            entry = queue[0]
            self._forget(entry)
            self._ledger.settle(entry, True, requestId=entry.request_id, message=payload)
            self.confirmed += 1

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
        error = f"not confirmed by the server within {self._wait:g} s; {UNCERTAIN}"
        with self._lock:
            late = []
            for entry in self._by_request.values():  # in the order sent: stop at the first
                if entry.sent_at > limit:  # one still in time, not scan them all every tick
                    break
                late.append(entry)
            for entry in late:
                self._forget(entry)
                self._uncertain(entry, error)

    def _fail_pending(self, error: str, status: ExitStatus = ExitStatus.CONNECTION) -> None:
        with self._lock:
            entries = [*self._by_request.values(), *self._lost]
            self._lost = []
            for entry in entries:
                self._forget(entry)
                if entry.record is None:
                    self._ledger.settle(
                        entry, False, status, requestId=entry.request_id, error=error
                    )
        self._ledger.emit()


def _unique(entries: Iterable[Entry]) -> list[Entry]:
    """Each entry once, in order (entries compare by value, so by identity here)."""
    seen: set[int] = set()
    return [e for e in entries if not (id(e) in seen or seen.add(id(e)))]  # type: ignore[func-returns-value]
