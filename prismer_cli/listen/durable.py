"""Durable listening: `--since`, `--cursor-file`, `--no-follow` (docs/cli.md "Cron and scripts").

The seam, server dialect: the live connection is opened first, then the log is read from the
cursor (eventlog.py) and printed, then live events print unless already printed (message ids,
or the envelope without ackId/timestamp for other events). A live event has no seq there: its
place in the log is found by reading the log after the cursor (`_resolve`), in a thread of its
own so the live path never waits for it.

The seam, docs dialect: the SSE stream is opened with `Last-Event-ID: <cursor>` and the server
replays what follows before going live; the cursor is the last `id:` passed. The stream does not
carry every logged event (a direct message's conversation.create): when an `id:` skips seqs after
the cursor, the skipped ones are read from the log and printed first (`live_id`), as stored
events, with their seq.

The cursor only ever covers events flushed to stdout (or dropped by a filter): it is taken at
each flush, saved by the thread, and saved once more at every exit. With a hand (hooks.py),
only once the handler accepted them too: stored events go to it one at a time (`_print`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import orjson

from prismer_cli.errors import ConnectError, PrismerError, UsageError
from prismer_cli.listen.catchup import catch_up
from prismer_cli.listen.cursorfile import CursorFile
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.eventlog import (
    PAGE,
    NoHistory,
    SyncReader,
    check_cursor,
    envelope,
    seq_of,
    stored_key,
)
from prismer_cli.listen.filters import Filters, Predicate
from prismer_cli.listen.hooks import Hand, Live
from prismer_cli.listen.placing import place
from prismer_cli.listen.saver import Pace, Saver
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.retry import Deadline
from prismer_cli.transport import Connection, Endpoint, Resume, open_connection
from prismer_cli.tuning import FINAL_GRACE

CAUGHT_UP = "prismer-rt.caught-up"


@dataclass(frozen=True)
class DurableOptions:
    since: str = "now"  # now | all | SEQ
    cursor_file: str | None = None
    no_follow: bool = False

    @property
    def active(self) -> bool:
        return self.since != "now" or self.cursor_file is not None or self.no_follow


def parse_since(text: str) -> int | None:
    """`--since`: None for now, 0 for all, else the seq (a plain non-negative integer)."""
    if text == "now":
        return None
    if text == "all":
        return 0
    if text.isascii() and text.isdigit():
        return int(text)
    raise UsageError(f"--since takes a seq (a whole number), all or now, not {text!r}")


class Durable:
    """The cursor of one listen: where it starts, what is printed from the log, what is saved.

    The engine's `Stored` hooks (hooks.py): start, connected, after_flush, live_ids, live_id,
    finish."""

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
        self.file = CursorFile(options.cursor_file) if options.cursor_file else None
        self.user: str | None = None
        self.dialect: str | None = endpoint.dialect.name if endpoint.dialect else None
        self.cursor = 0  # every event up to here was flushed or filtered out (main thread)
        self.flushed = 0  # the cursor at the last flush: what may be saved
        self.flushed_serial = 0  # RecentKeys.added at the last flush
        self.head: int | None = None
        self.caught_up = False
        self.seen: RecentKeys | None = None
        self.resume: Resume | None = None
        self._live_ids = False  # docs dialect: the cursor is the SSE id
        self._last_id: str | None = None  # docs dialect: the last SSE id handled (live_id)
        self._resolving = False  # server dialect: live events are found in the log
        self._saver: Saver | None = None
        self._started = False
        self._lock = threading.Lock()  # one user of the reader's session at a time
        self._out: Output | None = None
        self._owed: list[JSON] = []  # stored events the live stream skipped (_resolve)
        self._printed = 0  # events printed so far, as the catch-up goes
        self._mark: int | None = None  # server dialect: the log's head before connecting
        self._placed = 0  # RecentKeys.added when the cursor last covered every key (server)
        self._pace = Pace()

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
        self.cursor = self.flushed = start
        if self.meta and not self.options.no_follow:
            self.head = self.reader.head()
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
            try:
                with _log_failures():
                    _, done = self.catch_up(
                        live.out, live.seen, live.printed, live.count, self._mark
                    )
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

    @property
    def live_ids(self) -> bool:
        """Docs dialect over SSE: each live `id:` is a seq of the log (see live_id)."""
        return self._live_ids

    def live_id(self, printed: int, count: int | None) -> tuple[int, bool]:
        """Docs dialect, before each live event is handled: (printed, --count reached).

        A new `id:` that skips seqs after the cursor means the stream left logged events out
        (or the replay after Last-Event-ID did): those are read from the log and printed now,
        before the live event, filtered and de-duplicated as stored events. The cursor then
        moves to the live id, unless --count was reached among them.
        """
        resume = self.resume
        last = resume.last_event_id if resume is not None else None
        if last is None or last == self._last_id:
            return printed, False  # no id (an ephemeral event) or one already handled
        self._last_id = last
        if not (last.isascii() and last.isdigit()):
            return printed, False
        seq = int(last)
        if seq <= self.cursor:
            return printed, False
        if seq > self.cursor + 1:
            with self._lock:
                printed, done = self._fill(printed, count, seq)
            if done:
                return printed, True
        self.cursor = seq
        return printed, False

    def _fill(self, printed: int, count: int | None, until: int) -> tuple[int, bool]:
        """Print the stored events after the cursor and before seq `until` (live_id)."""
        out, seen = self._out, self.seen
        assert out is not None and seen is not None
        since = self.cursor
        while since < until - 1:
            page = self.reader.page(since, min(PAGE, until - 1 - since))
            for event in page.events:
                frame = envelope(event)
                seq = seq_of(frame)
                if seq >= until or seq <= since:
                    return printed, False
                payload = frame["payload"]
                view = payload if type(payload) is dict else {}
                passes = self.passes is None or self.passes(frame["type"], view, frame)
                if passes and not seen.seen(stored_key(frame["type"], payload)):
                    self._print(out, orjson.dumps(frame), seq)
                    printed += 1
                    if printed == count:
                        self.cursor = seq
                        return printed, True
                self.cursor = since = seq
            if not page.events or not page.has_more:
                break
        return printed, False

    # -- the log -----------------------------------------------------------------------------
    def catch_up(
        self, out: Output, seen: RecentKeys, printed: int, count: int | None, mark: int | None
    ) -> tuple[int, bool]:
        """Print the stored events after the cursor (catchup.py); (printed, --count reached).
        The cursor follows each page, and is saved at most four times a second."""
        self.seen, self._out, self._printed, self._pace = seen, out, printed, Pace()
        one = None if self.hand is None else partial(self._print, out)
        done = catch_up(
            self.reader, self.cursor, out, seen, self.passes, printed, count, mark,
            self._page_done, one,
        )  # fmt: skip
        return self._printed, done

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

    def _print(self, out: Output, line: bytes, seq: int) -> None:
        """One stored event on stdout; with a hand, handed on, then passed by the cursor."""
        out.line(line)
        if self.hand is not None:
            out.flush()
            self.hand(line)
            self.cursor = seq
            self.after_flush()

    def _resolve(self, out: Output | None) -> int:
        """The cursor after the live events printed before the last flush (placing.py); the
        events owed are kept for the next flush."""
        assert self.seen is not None
        cursor, owed = place(
            self.reader, self.flushed, self.seen, self.flushed_serial, self.passes, out
        )
        if owed:
            self._owed = owed
        return cursor

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
            limit = self.flushed_serial
            if self._resolving and limit > self._placed:  # live events printed since
                try:
                    resolved = self._resolve(None)
                except PrismerError as exc:
                    self.log.info(f"could not read the event log to place live events: {exc}")
                else:
                    if not self._owed:  # else the events owed print at the next flush, or exit
                        self._placed = limit
                    if resolved > self.cursor:
                        self.cursor = self.flushed = resolved
            self._save(self.flushed)

    def finish(self, out: Output | None, clean: bool) -> None:
        """At every exit: stop the thread, place the last live events, save, unlock.

        The last look-ups in the log get a grace of their own (FINAL_GRACE), not what is left
        of --timeout, so that a run ended by --timeout still saves the exact cursor."""
        if self._saver is not None:
            self._saver.stop()
            self._saver = None
        try:
            if not self._started:
                return
            self.reader.until(Deadline(FINAL_GRACE))
            if self._resolving and self.flushed_serial > self._placed:
                try:  # with a hand, what the stream skipped is left to the next run
                    self.flushed = self._resolve(out if clean and self.hand is None else None)
                except PrismerError as exc:
                    self.log.warning(f"could not read the event log to place live events: {exc}")
            self._save(self.flushed)
        finally:
            if self.file is not None:
                self.file.unlock()
            self.reader.close()

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
