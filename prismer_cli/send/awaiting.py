"""What a socket channel has written and the server has not yet confirmed, and how each settles.

Two threads share it: the channel's writer (the main thread) adds what it writes, the reader
thread settles what the server answers. Entries are settled while the lock is held, so that
once the writer has taken an entry out of the tables under the lock, its result is known:
settled, or for it to send again.

- server dialect: each message awaits its echo, by idempotency key (`by_content`), or an error
  frame with its requestId (`by_request`); --wait seconds after it was written it is uncertain.
  One message per conversation is on the wire at a time (turns.py): when one settles, the next
  of its conversation is `ready` to write. When the connection breaks, those still waiting, on
  the wire or for their turn, are `lost`: sent again, same key, in order.
- docs dialect: each batch of frames awaits the pong to the WebSocket ping written after it
  (`unread`, by ping payload); a pong confirms its batch and every one before it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

from prismer_cli.errors import ExitStatus
from prismer_cli.protocol.dialects import Dialect, EchoKey
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.send.ledger import Entry, Ledger
from prismer_cli.send.turns import MAX_WAITING, Turns

UNCERTAIN = "it may or may not have been delivered"
TOO_BIG = 1009  # the WebSocket close code of a server that read a message over its limit


class Awaiting:
    def __init__(self, dialect: Dialect, ledger: Ledger, wait: float, pings_confirm: bool) -> None:
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)  # notified as messages settle
        self._dialect = dialect
        self._echo_key = dialect.echo_key
        self.pings_confirm = pings_confirm  # docs dialect: WebSocket pongs confirm batches
        self._ledger = ledger
        self._wait = wait
        self.by_request: dict[str, Entry] = {}  # in the order written
        # what each echo key awaits: one entry (the usual case), or a deque of them, in order
        self._by_content: dict[EchoKey, Entry | deque[Entry]] = {}
        # docs dialect: the entries each WebSocket ping (by payload) will confirm, oldest first
        self.unread: dict[bytes, list[Entry]] = {}
        self._read: list[list[Entry]] = []  # ... and those a pong confirmed, to settle
        self.lost: list[Entry] = []  # server dialect: unconfirmed when the connection broke
        self.turns = Turns()  # server dialect: one message per conversation on the wire
        self.ready: list[Entry] = []  # ... and those whose turn came, to write (reader thread)
        self.confirmed = 0  # commands confirmed: progress, for the retries
        self.limit: int | None = None  # after a close 1009: the largest size the server took

    # -- the writer adds (caller holds the lock) --------------------------------------------
    def expect(self, entry: Entry, now: float) -> None:
        """Wait for the server's echo of this message."""
        entry.sent_at = now
        self.by_request[entry.request_id] = entry
        key = self._echo_key(entry.command)
        awaited = self._by_content.get(key)
        if awaited is None:
            self._by_content[key] = entry
        elif isinstance(awaited, deque):
            awaited.append(entry)
        else:
            self._by_content[key] = deque((awaited, entry))

    def take_turn(self, entry: Entry, now: float) -> bool:
        """A message to write now (True, and its echo awaited), or once the one before it in
        its conversation is settled (False: `ready` then)."""
        if not self.turns.take(entry):
            return False
        self.expect(entry, now)
        return True

    def forget(self, entry: Entry) -> None:
        """Drop an entry from the lookup tables; the next of its conversation gets its turn."""
        self._release(entry)
        key = self._echo_key(entry.command)
        awaited = self._by_content.get(key)
        if awaited is entry:
            del self._by_content[key]
        elif isinstance(awaited, deque):
            try:
                awaited.remove(entry)
            except ValueError:
                return
            if not awaited:
                del self._by_content[key]

    def _release(self, entry: Entry) -> None:
        """No longer awaited by request id; the next of its conversation gets its turn."""
        self.by_request.pop(entry.request_id, None)
        following = self.turns.done(entry)
        if following is not None:
            self.expect(following, time.monotonic())
            self.ready.append(following)
            if self.turns.waiting == MAX_WAITING - 1:  # the writer may go on reading stdin
                self.room.notify_all()
        elif not self.by_request:
            self.room.notify_all()

    def take_ready(self) -> list[Entry]:
        """The messages whose turn came, to write now (the reader thread)."""
        if not self.ready:
            return []
        with self.lock:
            ready, self.ready = self.ready, []
        return ready

    def uncertain(self, entry: Entry, error: str) -> None:
        """Settle as "may or may not have been delivered"."""
        self.forget(entry)
        self._ledger.uncertain += 1
        self._ledger.settle(
            entry, False, ExitStatus.CONNECTION, requestId=entry.request_id, error=error
        )

    # -- the reader settles -----------------------------------------------------------------
    def on_echoes(self, echoes: list[tuple[EchoKey, JSON]]) -> None:
        """Settle the messages these echoes (echo key, payload) confirm, in order, under one
        lock; for each, the next of its conversation gets its turn. The hot path of the server
        dialect: forget(), _release() and expect() are written out in its loop."""
        by_content, by_request, turns = self._by_content, self.by_request, self.turns
        done, echo_key, confirm = turns.done, self._echo_key, self._ledger.confirm
        confirmed = 0
        with self.lock:
            ready = self.ready
            now = time.monotonic()  # when the turns that come now start
            for key, payload in echoes:
                awaited = by_content.pop(key, None)
                if awaited is None:
                    continue
                if isinstance(awaited, deque):  # the first; the others await still
                    entry = awaited.popleft()
                    if awaited:
                        by_content[key] = awaited
                else:
                    entry = awaited
                by_request.pop(entry.request_id, None)
                following = done(entry)
                if following is not None:  # expect(following, now)
                    following.sent_at = now
                    by_request[following.request_id] = following
                    waiting_key = echo_key(following.command)
                    awaited = by_content.get(waiting_key)
                    if awaited is None:
                        by_content[waiting_key] = following
                    elif isinstance(awaited, deque):
                        awaited.append(following)
                    else:
                        by_content[waiting_key] = deque((awaited, following))
                    ready.append(following)
                    if turns.waiting == MAX_WAITING - 1:  # the writer may go on reading stdin
                        self.room.notify_all()
                elif not by_request:
                    self.room.notify_all()
                confirm(entry, payload)
                confirmed += 1
            self.confirmed += confirmed

    def on_error(self, frame: JSON) -> bool:
        """An error frame: False when it names no command awaiting an answer."""
        fields = self._dialect.error_fields(frame)
        with self.lock:
            entry = self.by_request.get(self._dialect.request_id_of(frame))
            if entry is None:
                return False
            self.forget(entry)
            self._ledger.settle(
                entry, False, ExitStatus.REJECTED, requestId=entry.request_id, **fields
            )
        return True

    def on_ws_pong(self, payload: bytes) -> None:
        """A WebSocket pong: every frame written before its ping has been read. The batches
        are only set aside here; the main thread settles them (tend()), so that the reader
        thread does not compete with the writer for the interpreter."""
        with self.lock:
            if payload not in self.unread:
                return
            for ping in list(self.unread):
                batch = self.unread.pop(ping)
                self._read.append(batch)
                self.confirmed += len(batch)
                if ping == payload:
                    break

    def tend(self) -> None:
        """Settle what the server has confirmed reading (docs dialect's pongs)."""
        if not self._read:
            return
        with self.lock:
            batches, self._read = self._read, []
            for batch in batches:
                for entry in batch:
                    if entry.record is None:
                        self._ledger.settle(entry, True, sent=True)
        self._ledger.emit()

    def expire(self) -> None:
        """Messages written more than --wait ago without an answer are uncertain."""
        limit = time.monotonic() - self._wait
        error = f"not confirmed by the server within {self._wait:g} s; {UNCERTAIN}"
        with self.lock:
            late = []
            for entry in self.by_request.values():  # in the order sent: stop at the first
                if entry.sent_at > limit:  # one still in time, not scan them all every tick
                    break
                late.append(entry)
            for entry in late:
                for behind in self.turns.give_up(entry):
                    self._ledger.settle(
                        behind,
                        False,
                        ExitStatus.CONNECTION,
                        error=f"not sent: the message before it in its conversation was not "
                        f"confirmed within {self._wait:g} s, and sending this one could change "
                        "their order",
                    )
                self.uncertain(entry, error)

    def answered(self) -> bool:
        """No message awaits its echo or its turn any more (server dialect): each confirmed,
        failed or past --wait. The docs dialect's batches are left to the closing handshake."""
        return not (self.by_request or self.turns.waiting)

    # -- the end of a connection ------------------------------------------------------------
    def broke(self, close_code: int | None) -> None:
        """The connection is unusable: what awaits an echo is lost (to send again, with its
        key), what awaits a pong is uncertain. A close 1009 names its culprit first."""
        with self.lock:
            if close_code == TOO_BIG:
                self._too_big_closed()
            self._lose_all()
            self._unread_uncertain(f"connection lost before the server confirmed it; {UNCERTAIN}")

    def write_failed(self, entries: list[Entry], started: int) -> list[Entry]:
        """A write of `entries` failed after `started` of them began to go out: the ones the
        server may have read are uncertain (docs dialect), and the rest, with those lost
        before, are returned to send again on a new connection: in the server dialect every
        message not confirmed, each after the one before it in its conversation."""
        with self.lock:
            if self.pings_confirm:
                for entry in entries:
                    self.forget(entry)
                for ping, batch in list(self.unread.items()):
                    if batch is entries:
                        del self.unread[ping]
                for entry in entries[:started]:
                    if entry.record is None and entry not in self.lost:  # not: unread (1009)
                        self.uncertain(entry, f"connection lost while it was written; {UNCERTAIN}")
                again = [*self.lost, *entries[started:]]
            else:
                waiting = self.turns.drain()
                written = {id(entry) for entry in entries}
                earlier = [e for e in self.by_request.values() if id(e) not in written]
                for entry in [*earlier, *entries]:
                    self.forget(entry)
                self.ready = []
                again = [*self.lost, *earlier, *entries, *waiting]
            again = _unique(e for e in again if e.record is None)
            self.lost = []
        return again

    def take_lost(self) -> list[Entry]:
        """After a break: the entries to send again on a new connection."""
        with self.lock:
            lost, self.lost = [e for e in self.lost if e.record is None], []
        return lost

    def fail_pending(self, error: str, status: ExitStatus) -> None:
        """Fail whatever awaits an echo or a new connection (an interrupt)."""
        with self.lock:
            waiting = self.turns.drain()
            entries = [*self.by_request.values(), *self.lost]
            self.lost, self.ready = [], []
            for entry in entries:
                self.forget(entry)
                if entry.record is None:
                    self._ledger.settle(
                        entry, False, status, requestId=entry.request_id, error=error
                    )
            for entry in waiting:  # never written
                self._ledger.settle(entry, False, status, error="not sent: interrupted")
        self._ledger.emit()

    def closed(self, clean: bool, cause: str) -> None:
        """The docs dialect's frames no pong confirmed: a clean close did; else uncertain."""
        with self.lock:
            if clean:
                batches, self.unread = list(self.unread.values()), {}
                for batch in batches:
                    for entry in batch:
                        if entry.record is None:
                            self._ledger.settle(entry, True, sent=True)
            else:
                reason = cause or "the connection did not close cleanly"
                self._unread_uncertain(f"not confirmed by the server ({reason}); {UNCERTAIN}")

    def _lose_all(self) -> None:
        """Every message awaiting its echo or its turn is lost, in order per conversation
        (each on the wire before those waiting behind it)."""
        waiting = self.turns.drain()
        entries = list(self.by_request.values())
        for entry in entries:
            self.forget(entry)
        self.lost.extend(entries + waiting)
        self.ready = []
        self.room.notify_all()

    def _unread_uncertain(self, error: str) -> None:
        batches, self.unread = list(self.unread.values()), {}
        for batch in batches:
            for entry in batch:
                if entry.record is None:
                    self.uncertain(entry, error)

    def _too_big_closed(self) -> None:
        """The server closed with 1009: it read a frame over its limit. The largest frame it
        may not have read is over that limit (the culprit is, and it is no larger), so that
        one fails alone (exit 5) and later channels refuse anything as big (`limit`). In the
        docs dialect the close also proves what the server read: every frame before the
        culprit (ok), none after it (sent again). Caller holds the lock."""
        docs = [e for batch in self.unread.values() for e in batch if e.record is None]
        waiting = docs or [e for e in self.by_request.values() if e.record is None]
        if not waiting:
            return
        frames = [self._dialect.command_text(e.command, e.request_id) for e in waiting]
        sizes = [len(frame or b"") for frame in frames]
        largest = max(range(len(waiting)), key=sizes.__getitem__)
        culprit, size = waiting[largest], sizes[largest]
        self.limit = size - 1
        self.forget(culprit)
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
                self.forget(entry)
                self._ledger.settle(entry, True, sent=True)
            self.lost.extend(unread)
            self.unread = {}


def _unique(entries: Iterable[Entry]) -> list[Entry]:
    """Each entry once, in order (entries compare by value, so by identity here)."""
    seen: set[int] = set()
    return [e for e in entries if not (id(e) in seen or seen.add(id(e)))]  # type: ignore[func-returns-value]
