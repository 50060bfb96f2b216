"""listen and subscribe: one event a line on stdout, for as long as it takes, across reconnects.

The loop in `Listener._pump` is the hot path (README "Design notes"): one orjson.loads per
frame, the frame's own bytes written back unchanged, acks batched and sent once the output is
flushed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prismer_cli.errors import (
    ConnectError,
    ConnectionLost,
    ExitStatus,
    Interrupted,
    PrismerError,
    TransportError,
)
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.failures import FailureReport
from prismer_cli.listen.filters import Filters
from prismer_cli.listen.hooks import DONE, SKIP, Hand, Stored
from prismer_cli.listen.printer import batch_printer
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.protocol.dialects import (
    Hello,
    answers_us,
    error_message,
    eviction,
    request_id,
)
from prismer_cli.retry import Deadline, Policy, Retries, retry_after_of, retryable
from prismer_cli.transport import Connect, Connection, Endpoint, Resume, open_connection

META = "prismer-rt."  # --meta records: prismer-rt.connected, .reconnecting, .disconnected


@dataclass(frozen=True)
class ListenOptions:
    filters: Filters = field(default_factory=Filters)
    subscribe: tuple[str, ...] = ()
    count: int | None = None
    timeout: float | None = None
    policy: Policy = field(default_factory=Policy)
    meta: bool = False
    hand: Hand | None = None  # --forward-to, --exec: each printed event handed on (hooks.py)
    # --timeout's clock when the caller started it before anything ran (a token refresh that
    # was due counts inside it); else it starts with the Listener
    deadline: Deadline | None = None


class _Done(Exception):
    """--count reached."""


def listen(
    endpoint: Endpoint,
    options: ListenOptions,
    out: Output,
    log: Log,
    stored: Stored | None = None,
    *,
    connect: Connect = open_connection,
) -> ExitStatus:
    """Stream events until --count or --timeout; reconnect as the policy allows.

    With `stored` (the durable mode of --since, --cursor-file: listen/durable.py), stored
    events come first and the cursor is saved at every exit (the hooks: listen/hooks.py)."""
    if stored is None:
        return Listener(endpoint, options, out, log, connect=connect).run()
    listener = Listener(endpoint, options, out, log, connect=connect)
    listener.stored = stored
    _start(stored, listener)  # one --timeout for the catch-up and what follows
    clean = False  # whether stored events the live stream skipped may still be printed
    try:
        status = listener.run()
        clean = options.count is None or listener.printed < options.count
        return status
    except (Interrupted, KeyboardInterrupt):
        clean = options.count is None or listener.printed < options.count
        raise
    finally:
        stored.finish(out, clean)


def _start(stored: Stored, listener: Listener) -> None:
    """The durable mode's first look-ups (the user, the cursor, the log's head), tried again as
    a failed connection is: a log answering 429 or 5xx, or a server not up yet, is not the end of
    a long-running listen (the soak saw exit 4 there). Under --timeout, the deadline ends it."""
    retries = Retries(listener.options.policy)
    while True:
        try:
            stored.start(listener.deadline)
            return
        except ConnectError as exc:
            if listener.deadline.expired() or not retries.failed():
                raise
            delay = retries.delay(retry_after_of(exc))
            listener.log.warning(f"{exc}; trying again in {delay:.1f} s")
            if not listener.deadline.sleep(delay):
                raise


def _say_listening(url: str, hello: Hello, log: Log) -> None:
    """One line for a person at a terminal (never in pipes or logs): where, as whom, and how to
    stop (docs/cli.md "listen and subscribe")."""
    import sys

    try:
        at_terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        return
    if at_terminal and log.verbosity >= 0:
        who = hello.name or hello.user_id or "the token's user"
        log.plain(f"listening on {url} as {who} (Ctrl-C to stop)")


class Listener:
    """One listen command: its connections one after another, and what carries across them."""

    def __init__(
        self,
        endpoint: Endpoint,
        options: ListenOptions,
        out: Output,
        log: Log,
        *,
        connect: Connect = open_connection,
    ) -> None:
        self.deadline = options.deadline or Deadline(options.timeout)
        self.endpoint = endpoint.until(self.deadline)
        self.options = options
        self.out = out
        self.log = log
        self.failures = FailureReport(log, endpoint.url)
        self.resume = Resume()
        self.seen = RecentKeys()
        self.printed = 0
        self.connections = 0
        self.stored: Stored | None = None
        self.evicted: str | None = None  # why the server replaced the current connection
        self._connect = connect  # open_connection(endpoint, resume, log); tests pass a fake

    def run(self) -> ExitStatus:
        retries = Retries(self.options.policy)
        reason, retry_after = "", None
        evictions = 0  # consecutive connections the server replaced with a newer one
        while True:
            if retries.count:
                delay = retries.delay(retry_after, self._stream_retry(retries.count))
                attempt = retries.count + 1
                self.log.info(f"reconnecting in {delay:.1f} s (attempt {attempt}): {reason}")
                self._meta("reconnecting", attempt=attempt, delay=round(delay, 3), reason=reason)
                if not self.deadline.sleep(delay):
                    return self._timed_out()
            retry_after = None
            try:
                conn = self._connect(self.endpoint.cut(), self.resume, self.log)
            except PrismerError as exc:  # a refused token is never retried
                if not retryable(exc):
                    raise
                reason, retry_after = str(exc), retry_after_of(exc)
                if not retries.failed():
                    raise TransportError(_give_up(retries.count, reason)) from None
                self.failures.failed(reason)
                continue
            try:
                self._announce(conn)
                if self.stored is not None:
                    try:
                        done = self.stored.connected(self, conn)
                    except ConnectError as exc:  # the log could not be read: as a failed connect
                        if self.deadline.expired():  # --timeout during the catch-up
                            return self._timed_out()
                        reason, retry_after = str(exc), retry_after_of(exc)
                        if not retries.failed():
                            raise TransportError(_give_up(retries.count, reason)) from None
                        self.failures.failed(reason)
                        continue
                    if done:
                        raise _Done
                if not evictions:  # after an eviction the backoff keeps growing (no tight loop)
                    retries.succeeded()
                self.failures.succeeded()
                self.evicted = None
                self._pump(conn)
            except _Done:
                return ExitStatus.OK
            except ConnectionLost as exc:
                reason = str(exc)
                if self.evicted is None and eviction(reason, exc.close_code):
                    self.evicted = reason
                if self.evicted is not None:
                    reason = f"{reason}: {self.evicted}" if self.evicted != reason else reason
                    if not evictions:
                        self.log.warning(
                            f"the server replaced this connection ({self.evicted}): too many "
                            "connections for this user; reconnecting with a growing backoff"
                        )
                    evictions += 1
                elif evictions:
                    evictions = 0
                    retries.succeeded()
                self.log.info(f"connection lost: {reason}")
                self._meta("disconnected", reason=reason)
                if not retries.failed():
                    raise TransportError(_give_up(retries.count, reason)) from None
                continue
            finally:
                conn.close()
            return self._timed_out()

    @property
    def count(self) -> int | None:
        return self.options.count

    def _stream_retry(self, retry: int) -> float | None:
        """An SSE stream's own retry: field, used for the first retry as EventSource does."""
        if retry == 1 and self.resume.retry_ms is not None:
            return self.resume.retry_ms / 1000
        return None

    def _timed_out(self) -> ExitStatus:
        if not self.connections:
            timeout, failures = self.options.timeout, self.failures
            raise TransportError(
                f"no connection to {failures.where} within --timeout {timeout:g} s"
                + (f": {failures.reason}" if failures.reason else "")
            )
        count = self.options.count
        if count is not None and self.printed < count:
            return ExitStatus.TIMEOUT
        return ExitStatus.OK

    def _meta(self, kind: str, **payload: Any) -> None:
        if self.options.meta:
            self.out.record({"type": META + kind, "payload": payload})
            self.out.flush()

    def _announce(self, conn: Connection) -> None:
        """After each authentication: subscriptions first, then the server dialect's reconnect."""
        self.connections += 1
        dialect, options, log = conn.hello.dialect, self.options, self.log
        log.info(f"connected over {conn.kind} to {self.endpoint.url}, {dialect.name} dialect")
        if self.connections == 1:
            _say_listening(self.endpoint.url, conn.hello, log)
        self._meta(
            "connected",
            transport=conn.kind,
            dialect=dialect.name,
            userId=conn.hello.user_id,
            connection=self.connections,
        )
        if options.subscribe and conn.kind == "sse":
            log.info("an SSE stream cannot subscribe; the conversations only filter the events")
        if conn.kind == "ws":
            frames = [
                dialect.subscribe(c, request_id(f"sub-{i}"))
                for i, c in enumerate(options.subscribe, 1)
            ]
            if self.connections > 1:
                again = dialect.reconnect(self.resume.last_event_time)
                if again is not None:
                    frames.append(again)
            for frame in frames:
                conn.send(frame)
        if options.filters.ignore_self and self.resume.user_id is None:
            self.resume.user_id = conn.hello.user_id or self._whoami()
            if self.resume.user_id is None:
                log.warning(
                    "--ignore-self: the server did not say which user this is; nothing is dropped"
                )

    def _on_error(self, frame: dict[str, Any]) -> None:
        """An error frame: a command of ours refused, an eviction, or another protocol error;
        said on stderr (an eviction once, when the connection closes), never printed."""
        message = error_message(frame)
        shown = self.out.server_error(frame)  # a line of its own in a human view
        if eviction(message) and not answers_us(frame):
            self.evicted = message
        elif shown:
            return
        elif answers_us(frame):
            self.log.warning(f"the server refused a command of ours: {message}")
        else:
            self.log.warning(f"the server reported an error: {message}")

    def _whoami(self) -> str | None:
        """The user behind the token, asked over REST (a docs-dialect SSE stream does not say)."""
        from prismer_cli.transport.rest import RestClient

        rest = RestClient(self.endpoint, self.log)
        try:
            return rest.whoami()
        finally:
            rest.close()

    def _pump(self, conn: Connection) -> None:
        """Print every new event that passes the filters; raises _Done at --count.

        Whatever became of a frame (printed, filtered, consumed, skipped), once the transport has
        nothing more buffered the output is flushed, and only then are the acks sent. The frames
        come a batch at a time (all those one receive brought: printer.py); with a hook
        (--forward-to, --exec) or a cursor (durable.py), which follow each event, one at a time.
        """
        stored, hand = self.stored, self.options.hand
        write_out, pending, flush_acks = self.out.flush, conn.pending, conn.flush_acks
        flush = write_out
        if stored is not None:  # the cursor follows each flush
            after_flush = stored.after_flush

            def flush() -> None:
                write_out()
                after_flush()

        count = self.options.count
        print_batch = batch_printer(
            conn.hello.dialect,
            log=self.log,
            resume=self.resume,
            passes=self.options.filters.predicate(self.resume.user_id),  # filters.py
            seen=self.seen,
            ack=conn.ack,
            stale_retries=stored is not None and stored.drops_retried_messages,
            write=self.out.line,
            hand=hand,
            show=write_out,
            flush=flush,
            on_error=self._on_error,
            count=count,
        )
        printed = self.printed
        ids = stored is not None and stored.live_ids
        live_id = stored.live_id if stored is not None and ids else None
        one_by_one = hand is not None or stored is not None
        deadline = self.deadline.at
        try:
            while True:
                # docs dialect: wake when skipped events are due to be read, even if none come
                wake = stored.wake_at() if stored is not None and ids else None
                until = _sooner(deadline, wake)
                if one_by_one:
                    batches: Iterator[list[bytes]] = ([d] for d in conn.messages(until))
                else:
                    batches = conn.batches(until)
                for batch in batches:
                    if live_id is not None:  # docs dialect: print what the stream skipped first
                        printed, verdict = live_id(printed, count)
                        if verdict == DONE:
                            flush()
                            flush_acks()
                            raise _Done
                        if verdict == SKIP:  # the cursor has passed it
                            if not pending():
                                flush()
                            continue
                    printed = print_batch(batch, printed)
                    if count is not None and printed >= count:
                        flush()
                        flush_acks()
                        raise _Done
                    if not pending():
                        flush()
                        flush_acks()
                if until == deadline or stored is None:
                    break
                printed, done = stored.woke(printed, count)
                flush()
                if done:
                    raise _Done
        finally:
            self.printed = printed
        flush()
        flush_acks()


def _sooner(deadline: float | None, wake: float | None) -> float | None:
    """The sooner of two moments (time.monotonic), None being never."""
    if deadline is None or wake is None:
        return wake if deadline is None else deadline
    return min(deadline, wake)


def _give_up(retry: int, reason: str) -> str:
    if retry == 1:
        return f"{reason} (reconnecting is off)"
    return f"giving up after {retry - 1} retries: {reason}"
