"""Durable listening: `--since`, `--cursor-file`, `--no-follow` (docs/cli.md "Cron and scripts").

The seam, server dialect: the log's head is read, the live connection is opened, then the log
is read from the cursor (catchup.py) and printed, then live events print unless already printed
(message ids, or the envelope without ackId/timestamp for other events). What the catch-up
prints after that head may also come live, however much there is: its keys are held
(RecentKeys.hold) until the next connection; memory never grows with the log. A message the
server sends again (isRetry) was sent before the connection opened, so its catch-up read past
it: it never prints again. A live event has no seq there: its place in the log is found by
reading the log after the cursor (placing.py), in a thread of its own so the live path never
waits for it, and at exit within a grace of its own.

The seam, docs dialect: the SSE stream is opened with `Last-Event-ID: <cursor>` and the server
replays what follows before going live; the cursor is the last `id:` passed. The stream does not
carry every logged event (a direct message's conversation.create): seqs an `id:` skips after the
cursor are read from the log and printed as stored events, with their seq, at most one look-up a
second (gaps.py).

One filter (filters.py) for stored and live events. The cursor only ever covers events flushed
to stdout (or dropped by a filter): it is taken at each flush and saved at most four times a
second (saver.py), during a catch-up too, and once more at every exit. The file is written once
before anything prints, so that one that cannot be written fails the run before the first line.
With a hand (hooks.py), only once the handler accepted them too: stored events go to it one at a
time (`_print`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from functools import partial

import orjson

from prismer_cli.errors import ConnectError, PrismerError, TransportError, UsageError
from prismer_cli.listen.catchup import catch_up, remember_passed
from prismer_cli.listen.cursorfile import CursorFile
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.durableoptions import DurableOptions, parse_since
from prismer_cli.listen.eventlog import NoHistory, SyncReader, check_cursor, stored_key
from prismer_cli.listen.filters import Filters, Predicate
from prismer_cli.listen.gaps import Gaps, fill
from prismer_cli.listen.hooks import DONE, GO, SKIP, Hand, Live
from prismer_cli.listen.placing import place
from prismer_cli.listen.saver import Pace, Saver
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.retry import Deadline
from prismer_cli.transport import Connection, Endpoint, Resume, open_connection
from prismer_cli.tuning import FINAL_GRACE

CAUGHT_UP = "prismer-rt.caught-up"


class Durable:
    """The cursor of one listen: where it starts, what is printed from the log, what is saved.

    The engine's `Stored` hooks (hooks.py): start, connect, connected, after_flush, live_id,
    wake_at, woke, finish."""

    def __init__(
        self,
        endpoint: Endpoint,
        options: DurableOptions,
        filters: Filters,
        log: Log,
        *,
        meta: bool = False,
        token: Callable[[], str] | None = None,
        hand: Hand | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.options = options
        self.filters = filters
        self.passes: Predicate | None = None  # the filters, once the user is known (start)
        self.log = log
        self.meta = meta
        self.hand = hand
        self.reader = SyncReader(endpoint, log, token)  # token: the current one, if refreshed
        self.file = CursorFile(options.cursor_file) if options.cursor_file is not None else None
        self.user: str | None = None
        self.dialect: str | None = endpoint.dialect.name if endpoint.dialect else None
        self.cursor = 0  # every event up to here was flushed or filtered out (main thread)
        self.flushed = 0  # the cursor at the last flush: what may be saved
        self.flushed_serial = 0  # RecentKeys.added at the last flush
        self.head: int | None = None
        self.caught_up = False
        self.seen: RecentKeys | None = None
        self.resume: Resume | None = None
        self.gaps = Gaps()  # docs dialect: what the live stream skipped, read at most once a second
        self._live_ids = False  # docs dialect: the cursor is the SSE id
        self._last_id: str | None = None  # docs dialect: the last SSE id handled (live_id)
        self._resolving = False  # server dialect: live events are placed in the log (placing.py)
        self._placed = 0  # RecentKeys.added when the cursor last covered every key (server)
        self._mark: int | None = None  # server dialect: the log's head before connecting
        self._printed = 0  # events printed so far, as the catch-up goes
        self._saver: Saver | None = None
        self._pace = Pace()
        self._started = False
        self._start: int | None = None  # the start cursor, until remember_passed ran
        self._lock = threading.Lock()  # one user of the reader's session at a time
        self._out: Output | None = None
        self._owed: list[JSON] = []  # stored events the live stream skipped (placing.py)

    # -- before anything connects ------------------------------------------------------------
    def start(self, deadline: Deadline) -> None:
        """Lock the cursor file, find the user, check history, and settle where to start;
        every request ends by the deadline (--timeout). The cursor file is written once
        before anything prints, so that one that cannot be saved fails the run at once."""
        self.endpoint = self.endpoint.until(deadline)
        self.reader.until(deadline)
        if self.file is not None:
            self.file.lock()
        since = parse_since(self.options.since)
        from prismer_cli.transport.rest import RestClient

        self.reader.page(0, 1)  # a server without history refuses here (NoHistory, exit 2)
        rest = RestClient(self.endpoint, self.log)
        try:
            self.user = rest.whoami()
        finally:
            rest.close()
        if self.user is None and (self.file is not None or self.filters.ignore_self):
            raise UsageError(
                "the server did not say which user this token is (GET /api/im/me): "
                "a cursor file needs it"
            )
        self.passes = self.filters.predicate(self.user)
        start, where = since, f"--since {self.options.since}"
        if self.file is not None:
            assert self.user is not None
            saved = self.file.load(self.endpoint.url, self.user)
            if saved is not None:
                start, where = saved, f"the cursor in {self.file.path} ({saved})"
        if start is None:
            start = self.reader.head()
        else:
            check_cursor(self.reader, start, where)
        self.cursor = self.flushed = self._start = start
        if self.meta and not self.options.no_follow:
            self.head = self.reader.head(start)
        self._save(start, early=True)
        self._started = True
        if not self.options.no_follow:
            self._saver = Saver(self._save_now, self.log)
            self._saver.start()

    # -- the live connection -------------------------------------------------------------------
    def connect(self, endpoint: Endpoint, resume: Resume, log: Log) -> Connection:
        """open_connection, except that the docs dialect goes over SSE with Last-Event-ID.

        Server dialect: the log's head is read first (`_mark`), so that the catch-up knows
        from where on what it prints may also come over this connection."""
        if resume.last_event_id is None:
            resume.last_event_id = str(self.flushed)
        self._mark = None
        if self.dialect != "docs":
            with self._lock, _log_failures():
                self._mark = self.reader.head(self.cursor)
        conn = open_connection(endpoint, resume, log)
        self.dialect = conn.hello.dialect.name  # saved with the cursor, whatever ends the run
        if conn.hello.dialect.name == "docs" and conn.kind == "ws":
            conn.close()
            if endpoint.transport == "ws":
                raise UsageError(
                    "in the docs dialect --since/--cursor-file resume over SSE: drop --transport ws"
                )
            log.info("docs dialect: resuming over Server-Sent Events with Last-Event-ID")
            resume.transport = "sse"
            conn = open_connection(endpoint, resume, log)
        return conn

    def connected(self, live: Live, conn: Connection) -> bool:
        """After each authentication: catch up from the log (server dialect). True at --count.

        A log that cannot be read raises ConnectError, which the engine retries as a failed
        connection (a 404 too: the log was there at the start)."""
        self.seen, self.resume, self._out = live.seen, live.resume, live.out
        self.dialect = conn.hello.dialect.name
        if conn.kind == "sse" and self.dialect == "docs":  # the server replays after the id
            self._live_ids = True
            self._last_id = live.resume.last_event_id
            if not self.caught_up and (self.head is None or self.head <= self.cursor):
                self._caught_up(live.out)
            return False
        live.seen.release()  # what the last connection's catch-up held
        with self._lock:  # after a reconnect too: what was missed meanwhile is in the log
            if self._start is not None:  # once: what the cursor passed before this run
                remember_passed(self.reader, self._start, live.seen, self.log)
                self._start = None
            try:
                with _log_failures():
                    done = self.catch_up(live.out, live.seen, live.printed, live.count, self._mark)
            finally:
                live.printed = self._printed
            self._placed = live.seen.added  # every event printed so far is behind the cursor
        if not done and not self.caught_up:
            self._caught_up(live.out)
        self._resolving = True
        return done

    @property
    def drops_retried_messages(self) -> bool:
        """Server dialect: each connection's catch-up reads the log past every message sent
        before the connection, so a message.new the server sends again (isRetry) is one the
        cursor has passed, or this run printed: never printed again."""
        return self._resolving

    def after_flush(self) -> None:
        """Output was flushed: everything processed so far is written (or filtered out)."""
        saver = self._saver
        if saver is not None and saver.failure is not None:
            raise saver.failure  # the cursor file cannot be written: said, and the run ends
        if self._owed and self._out is not None and self.seen is not None:
            owed, self._owed = self._owed, []
            for frame in owed:
                if not self.seen.seen(stored_key(frame["type"], frame["payload"])):
                    self._out.record(frame)
                    if self.hand is not None:
                        self._out.flush()
                        self.hand(orjson.dumps(frame))
            self._out.flush()
        if self.seen is not None:
            self.flushed_serial = self.seen.added
        self.flushed = self.cursor
        if saver is not None:
            saver.poke()
        if not self.caught_up and self.head is not None and self.cursor >= self.head:
            assert self._out is not None
            self._caught_up(self._out)

    # -- the docs dialect's live ids -------------------------------------------------------
    @property
    def live_ids(self) -> bool:
        """Docs dialect over SSE: each live `id:` is a seq of the log (see live_id)."""
        return self._live_ids

    def live_id(self, printed: int, count: int | None) -> tuple[int, int]:
        """Docs dialect, before each live event is handled: (printed, GO | SKIP | DONE).

        An `id:` the cursor has passed, or one already printed while a gap is open, is SKIP.
        A new one that skips seqs after the cursor opens a gap (gaps.py): the stored events
        the stream left out are read from the log and printed first, at once when the log was
        not read for a gap in the last second, else at the next read; DONE when --count was
        reached among them. The cursor then moves to the live id, unless a gap stays open."""
        resume = self.resume
        last = resume.last_event_id if resume is not None else None
        if last is None or last == self._last_id:
            return printed, GO  # no id (an ephemeral event) or one already handled
        self._last_id = last
        if not (last.isascii() and last.isdigit()):
            return printed, GO
        seq, gaps = int(last), self.gaps
        if seq <= self.cursor or seq in gaps.live:
            return printed, SKIP
        if seq > self.cursor + 1 or gaps.live:
            filled = self._fill(printed, count, seq) if gaps.due() else None
            if filled is None:  # not due, or the log did not answer: the gap stays open
                gaps.wait(seq)
                return printed, GO
            printed, done = filled
            if done:
                return printed, DONE
        self.cursor = seq
        return printed, GO

    def wake_at(self) -> float | None:
        """When the engine is to call `woke` though no event came (an open gap is due)."""
        return self.gaps.wake_at() if self._live_ids else None

    def woke(self, printed: int, count: int | None) -> tuple[int, bool]:
        """Read the open gap now, if due: (printed, --count reached)."""
        gaps = self.gaps
        if not gaps.live or not gaps.due():
            return printed, False
        filled = self._fill(printed, count, gaps.until + 1)
        return (printed, False) if filled is None else filled

    def _fill(self, printed: int, count: int | None, until: int) -> tuple[int, bool] | None:
        """Print the stored events after the cursor and before seq `until` that the live
        stream did not carry (gaps.fill); the cursor follows. None when the log could not be
        read: the gap stays open, to be read again a second later."""
        assert self._out is not None and self.seen is not None
        try:
            with self._lock, _log_failures():
                cursor, printed, done = fill(
                    self.reader, self.cursor, until, self.gaps.live, self._out, self.seen,
                    self.passes, printed, count, self._one(self._out),
                )  # fmt: skip
        except TransportError as exc:
            self.log.info(f"could not read the event log for what the stream skipped: {exc}")
            self.gaps.tried()
            return None
        self.gaps.read()
        self.cursor = cursor
        return printed, done

    # -- the log -----------------------------------------------------------------------------
    def catch_up(
        self, out: Output, seen: RecentKeys, printed: int, count: int | None, mark: int | None
    ) -> bool:
        """Print the stored events after the cursor (catchup.py); True at --count. The cursor
        follows each page, and is saved at most four times a second."""
        self.seen, self._out, self._printed, self._pace = seen, out, printed, Pace()
        return catch_up(
            self.reader, self.cursor, out, seen, self.passes, printed, count, mark,
            self._page_done, self._one(out), self.log,
        )  # fmt: skip

    def _page_done(self, cursor: int, printed: int) -> None:
        """After each page of the catch-up: the cursor follows, and is saved when due (the
        catch-up holds the log, so the saver thread cannot)."""
        self.cursor = self.flushed = cursor
        self._printed = printed
        if self.seen is not None:
            self.flushed_serial = self.seen.added
        if self._pace.due():
            self._save(cursor)
        if not self.caught_up and self.head is not None and cursor >= self.head:
            assert self._out is not None
            self._caught_up(self._out)

    def _one(self, out: Output) -> Callable[[bytes, int], None] | None:
        """With a hand, stored events go one at a time (`_print`); else a page at a time."""
        return None if self.hand is None else partial(self._print, out)

    def _print(self, out: Output, line: bytes, seq: int) -> None:
        """One stored event on stdout; with a hand, handed on, then passed by the cursor."""
        out.line(line)
        if self.hand is not None:
            out.flush()
            self.hand(line)
            self.cursor = seq
            self.after_flush()

    # -- saving ------------------------------------------------------------------------------
    def _save(self, cursor: int, *, early: bool = False) -> None:
        """Save the cursor; `early`: the first save, before anything prints (it writes even
        when the file holds this cursor already). A file that cannot be written is exit 75
        (a full disk) or 2 (cursorfile.py)."""
        if self.file is not None and self.user is not None:
            self.file.save(
                cursor, self.endpoint.url, self.user, self.dialect, force=early,
                after="nothing was printed" if early else "what was printed since the last save "
                "will print again in the next run",
            )  # fmt: skip

    def _save_now(self) -> None:
        """The saver thread's work: place the live events in the log if need be, then save.
        A failure to read the log only delays the placing; one to save ends the run."""
        with self._lock:
            limit, seen = self.flushed_serial, self.seen
            if self._resolving and seen is not None and limit > self._placed:
                try:
                    placed, owed = place(self.reader, self.flushed, seen, limit, self.passes, None)
                except PrismerError as exc:
                    self.log.info(f"could not read the event log to place live events: {exc}")
                else:
                    self._owed = owed
                    if not owed:  # else the events owed print at the next flush, or exit
                        self._placed = limit
                    if placed > self.cursor:
                        self.cursor = self.flushed = placed
            self._save(self.flushed)

    def finish(self, out: Output | None, clean: bool) -> None:
        """At every exit: stop the thread, place the last live events, save, unlock.

        The last look-ups in the log get a grace of their own (FINAL_GRACE), not what is left
        of --timeout, so that a run ended by --timeout still saves the exact cursor. Every wait
        is bounded: a saver still busy after the connect timeout (a page of the log that never
        ends) is left behind, and the cursor of the last flush is saved without it."""
        if self._saver is not None:
            self._saver.stop(self.endpoint.timeouts.connect)
            self._saver = None
        try:
            if not self._started:
                return
            if not self._lock.acquire(timeout=1.0):
                self.log.warning("the cursor's saver is still busy: saving the last flushed one")
                self._save(self.flushed)
                return
            try:
                self.reader.until(Deadline(FINAL_GRACE))
                try:  # with a hand, what the stream skipped is left to the next run
                    self._place_last(out if clean and self.hand is None else None)
                except PrismerError as exc:
                    self.log.warning(f"could not read the event log to place live events: {exc}")
                self._save(self.flushed)
            finally:
                self._lock.release()
        finally:
            if self.file is not None:
                self.file.unlock()
            self.reader.close()

    def _place_last(self, out: Output | None) -> None:
        if self._resolving and self.seen is not None and self.flushed_serial > self._placed:
            self.flushed, _ = place(
                self.reader, self.flushed, self.seen, self.flushed_serial, self.passes, out
            )
        elif self._live_ids and self.gaps.live and self.seen is not None:
            until = self.gaps.until
            cursor, _, _ = fill(
                self.reader, self.cursor, until + 1, self.gaps.live, out, self.seen,
                self.passes, 0, None,
            )  # fmt: skip
            self.flushed = until if cursor >= until else cursor
            if out is not None:
                out.flush()

    def _caught_up(self, out: Output) -> None:
        self.caught_up = True
        if self.meta:
            out.record({"type": CAUGHT_UP, "payload": {"cursor": self.cursor}})
            out.flush()


@contextlib.contextmanager
def _log_failures() -> Iterator[None]:
    """After the start, a log that answers 404 is one more failure to retry, not exit 2."""
    try:
        yield
    except NoHistory:  # its message says --since cannot be used: not so once it was
        raise ConnectError("the event log answered HTTP 404") from None
