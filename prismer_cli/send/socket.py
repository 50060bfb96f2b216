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

The table of what awaits confirmation is awaiting.py, the reader thread reader.py; this
module is the writer (the main thread) and the channel's life: open, write, break, close.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from prismer_cli.errors import AuthError, ConnectError, ConnectionLost, ExitStatus, PartialWrite
from prismer_cli.log import Log
from prismer_cli.protocol.commands import SEND, Command
from prismer_cli.protocol.dialects import REQUEST_PREFIX, request_id
from prismer_cli.send.awaiting import UNCERTAIN, Awaiting
from prismer_cli.send.channel import Channel, SendOptions, Stopped
from prismer_cli.send.ledger import Entry, Ledger
from prismer_cli.send.reader import TICK, Reader
from prismer_cli.send.rest import rest_call, rest_client
from prismer_cli.send.turns import MAX_WAITING
from prismer_cli.transport import Connection, Endpoint

if TYPE_CHECKING:
    from prismer_cli.transport.rest import RestClient


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
        pings_confirm = not self._dialect.confirms_sends and hasattr(conn, "on_pong")
        self._awaiting = Awaiting(self._dialect, ledger, options.wait, pings_confirm)
        if pings_confirm:
            conn.on_pong = self._awaiting.on_ws_pong  # type: ignore[attr-defined]
        self.cause = ""  # why the connection broke
        self._max_bytes = options.max_message_bytes
        # a content up to this long cannot make a frame too big (JSON escapes are 6x at most)
        self._small = max(0, options.max_message_bytes - 4096) // 6
        self._counter = 0
        self._rest: RestClient | None = None
        self._reader = Reader(conn, self._awaiting, ledger, log, self._break)

    @property
    def confirmed(self) -> int:
        return self._awaiting.confirmed

    @property
    def limit(self) -> int | None:
        return self._awaiting.limit

    # -- writing ---------------------------------------------------------------------------
    def submit(self, commands: list[Command], again: list[Entry] | None = None) -> None:
        """Write the frames in order, one write per run of socket commands; REST in its place.

        `again`: entries of the ledger to send again first (same idempotency key)."""
        todo: list[Entry | Command] = [*(again or ()), *commands]
        index = 0
        awaiting = self._awaiting
        self.tend()
        while index < len(todo):
            self._wait_until(lambda: awaiting.turns.waiting < MAX_WAITING)
            frames: list[bytes] = []
            entries: list[Entry] = []
            written: list[Entry] = []  # settled once the write succeeded
            over_rest: Entry | None = None
            ping: bytes | None = None
            added: list[Entry] = []  # new entries of the ledger, added to it at once
            add, take_turn, confirms, small = (
                added.append,
                awaiting.take_turn,
                self._dialect.confirms_sends,
                self._small,
            )
            counter = self._counter  # the request ids: request_id(str(counter))
            with awaiting.lock:
                now = time.monotonic()
                try:
                    for item in todo[index:]:
                        index += 1
                        if isinstance(item, Command):
                            counter += 1
                            entry = Entry(item, f"{REQUEST_PREFIX}{counter}")
                            add(entry)
                        else:
                            entry = item
                        command = entry.command
                        ordered = confirms and command.action == SEND
                        big = command.content is not None and len(command.content) > small
                        if ordered and not big and not take_turn(entry, now):
                            continue  # the reader thread writes it when its turn comes
                        frame = self._dialect.command_text(command, entry.request_id)
                        if frame is None:
                            over_rest = entry
                            break
                        if big:
                            size = len(frame)
                            if size > self._max_bytes:  # it would close the connection: not sent
                                self._too_big(entry, size)
                                continue
                            if ordered and not awaiting.take_turn(entry, now):
                                continue
                        if not ordered and not awaiting.pings_confirm:
                            written.append(entry)
                        entries.append(entry)
                        frames.append(frame)
                finally:
                    self._counter = counter
                    self._ledger.extend(added)
                if awaiting.pings_confirm and entries:
                    self._counter += 1
                    ping = b"prt-sync-%d" % self._counter
                    awaiting.unread[ping] = entries
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

    def _send(self, frames: list[bytes], ping: bytes | None) -> None:
        if ping is None:
            self._conn.send_texts(frames)
        else:
            self._conn.send_texts(frames, ping)  # type: ignore[call-arg]

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
        again = self._awaiting.write_failed(entries, started)
        if over_rest is not None:
            again.append(over_rest)
        self._ledger.emit()
        commands = [c for c in rest if isinstance(c, Command)]
        again += [e for e in rest if isinstance(e, Entry)]
        raise Stopped(ConnectError(self.cause), commands, resendable=True, again=again) from None

    def unconfirmed(self) -> list[Entry]:
        """After a break (server dialect): the entries to send again on a new connection."""
        return self._awaiting.take_lost()

    def tend(self) -> None:
        self._awaiting.tend()

    def _wait_until(self, done: Callable[[], bool]) -> None:
        """Wait (as messages settle) until done(), or the connection broke. Each message is
        settled within --wait of its write, so this ends."""
        awaiting = self._awaiting
        with awaiting.room:
            while not done() and not self.broken and self._reader.is_alive():
                awaiting.room.wait(TICK)

    def _barrier(self) -> None:
        """Wait until the server has handled every frame written so far: every message
        confirmed (the server may handle frames concurrently), then a ping round trip (at most
        --wait) for the other frames.

        A ping is answered after the frames before it, so its pong says they are done; a
        dialect without a protocol-level ping cannot say, and the REST call just follows.
        """
        awaiting = self._awaiting
        self._wait_until(lambda: not (awaiting.by_request or awaiting.turns.waiting))
        self._counter += 1
        sync_id = request_id(f"sync-{self._counter}")
        ping = self._dialect.ping(sync_id)
        if ping is None or self.broken:
            return
        answered = self._reader.expect_pong(sync_id)
        try:
            self._conn.send(ping)
            if self._reader.is_alive():  # else nothing reads the answer
                answered.wait(self._wait)
        except ConnectionLost:
            self.broken = True
        finally:
            self._reader.drop_pong(sync_id)

    def _rest_call(self, entry: Entry) -> None:
        if self._rest is None:
            self._rest = rest_client(self._endpoint, self._log, self._options)
        rest_call(self._rest, self._ledger, entry)

    # -- the end ---------------------------------------------------------------------------
    def _break(self, error: str, close_code: int | None = None) -> None:
        """Called by the reader thread when the connection is unusable: hand back what awaits
        an echo (server dialect: it is sent again with its key), report what awaits a pong as
        uncertain (docs dialect), and drop the socket so that a write blocked in the main
        thread fails now rather than at its stall timeout. A close 1009 (too big) names its
        culprit (Awaiting.broke)."""
        self.cause = self.cause or error
        self.broken = True
        self._awaiting.tend()
        self._awaiting.broke(close_code)
        self._ledger.emit()
        self._conn.abort()

    def finish(self, *, abandon: bool = False) -> None:
        """Wait for every outstanding echo (each bounded by --wait from its write), then close
        with 1000 and wait for the server's close: the server answers it once it has read every
        frame before it, so it confirms the docs dialect's frames that no pong confirmed yet
        (pongs that come meanwhile confirm their batches too). The wait for it is --wait (at
        least 1 s; 1 s when interrupted); dropping the socket with the server still reading is
        the last resort, and then what was not confirmed is uncertain. The server's answer is
        waited for even when the echoes confirmed everything: closing the socket before it
        comes would reset the connection under the server's feet (and a reset can drop our
        close frame)."""
        self._reader.finish()
        linger = max(1.0, self._wait)
        if abandon:
            linger = 1.0
            self._awaiting.fail_pending(
                f"interrupted before the server confirmed it; {UNCERTAIN}",
                ExitStatus.INTERRUPTED,
            )
        self._reader.join()
        if not self.broken:
            for data in self._conn.close(linger):  # type: ignore[call-arg]
                self._reader.handle(data)
        self.tend()
        clean = bool(getattr(self._conn, "closed_cleanly", False)) and not self.broken
        self._awaiting.closed(clean, self.cause)
        if self._rest is not None:
            self._rest.close()
        self._ledger.emit()
