"""send and mark-read: commands over one connection, one result line each, in order.

- ledger.py: the results, one per command, printed in command order;
- socket.py: the WebSocket channel (the writer, and the connection's life); reader.py, its
  reader thread; awaiting.py, what awaits the server's confirmation and how each settles;
  turns.py, the order per conversation (one unconfirmed message each on the wire);
- rest.py: the REST channel, used without a WebSocket (--transport sse, or none to be had);
- this module: the delivery loop, which opens a channel and re-opens it (retry.py) when the
  socket breaks while frames are written.

Every command gets exactly one result. The commands without a result when the socket broke are
sent again on a new connection (bounded by the policy); REST requests are retried by the REST
client itself with one idempotency key each, never re-posted from here. Once the retries are
exhausted (or the token is refused) every later command of stdin gets a failed result without
another attempt, and the error decides the exit status (docs/cli.md "Exit status").
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, replace

from prismer_cli.errors import AuthError, ConnectError, ExitStatus, Interrupted, NoWebSocket
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.protocol.commands import Command, InvalidLine
from prismer_cli.redact import redact
from prismer_cli.retry import Deadline, Retries, retry_after_of, retryable
from prismer_cli.send.channel import Channel, SendOptions, Stopped
from prismer_cli.send.ledger import Entry, Ledger
from prismer_cli.send.rest import RestChannel
from prismer_cli.send.retryfile import RetryFile
from prismer_cli.send.socket import SocketChannel
from prismer_cli.transport import Endpoint, Resume, open_websocket

__all__ = ["Ledger", "SendOptions", "run"]

# While commands are sent, the young generation is collected every 10,000 net allocations, not
# 700: a burst of stdin lines makes thousands of objects (commands, entries, frames) that live
# until their echo, and at 700 the collector ran 600 times per 100,000 commands, 11 % of the
# CPU time (and the full collections it led to, most of that), for garbage that has no cycles.
YOUNG_COLLECTION = 10_000


def run(
    endpoint: Endpoint,
    batches: Iterable[Iterable[Command | InvalidLine]],
    out: Output,
    log: Log,
    options: SendOptions,
) -> ExitStatus:
    """Send every valid command; report every invalid line; the exit status of docs/cli.md."""
    retry = RetryFile(options.retry_file) if options.retry_file is not None else None
    ledger = Ledger(out, retry)
    invalid = False
    link = _Link()
    fatal: ConnectError | AuthError | None = None
    interrupted = False
    paced = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, *paced[1:])
    try:
        for whole in batches:
            for batch, bad in _runs(whole):
                if bad is not None:  # its own result line, in input order (docs/cli.md)
                    log.error(f"stdin line {bad.line}: {bad.reason}; skipped")
                    ledger.invalid(bad.line, bad.reason, rejected=bad.rejected)
                    invalid = invalid or not bad.rejected
                    ledger.emit()
                    continue
                commands = batch
                if not commands:  # stdin is quiet
                    channel = link.channel
                    if channel is not None:
                        channel.tend()
                    if fatal is None and channel is not None and channel.broken:
                        fatal = _deliver(link, [], endpoint, ledger, log, options)
                        ledger.emit()
                    continue
                if fatal is None:
                    fatal = _deliver(link, commands, endpoint, ledger, log, options)
                else:  # retries exhausted: no more attempts, but a result for each command
                    ledger.fail_all(commands, f"not sent: {fatal}", fatal.status)
                ledger.emit()
        if fatal is None:
            fatal = _close(link, endpoint, ledger, log, options)
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        raise
    finally:
        gc.set_threshold(*paced)  # first: whatever the clean-up below raises
        if link.channel is not None:
            _finish(link.channel, abandon=interrupted)
        ledger.emit()
        if retry is not None:
            retry.close()
    if ledger.uncertain:
        log.error(
            f"{ledger.uncertain} command(s) not confirmed by the server: they may or may not "
            "have been delivered (see their result lines)"
        )
    if ledger.write_error is not None:  # said, and exit 2 unless graver (prismer_cli/stdio.py)
        from prismer_cli import stdio

        stdio.write_error(ledger.write_error.error)
    if retry is not None and retry.error is not None:
        error = retry.error.strerror or retry.error
        log.error(f"cannot write the retry file {retry.path}: {error}; it was left as it was")
    if fatal is not None:
        raise fatal
    if ledger.status != ExitStatus.OK:
        return ledger.status
    if invalid:
        return ExitStatus.INVALID_INPUT
    return ExitStatus.USAGE if retry is not None and retry.error is not None else ExitStatus.OK


def _runs(
    batch: Iterable[Command | InvalidLine],
) -> Iterable[tuple[list[Command], InvalidLine | None]]:
    """The batch cut at its invalid lines: (commands, None) and ([], invalid line) in input
    order, so each invalid line's result comes between those of its neighbours. A batch
    without commands (stdin quiet) is one empty run."""
    commands: list[Command] = []
    cut = False
    for item in batch:
        if isinstance(item, InvalidLine):
            if commands:
                yield commands, None
                commands = []
            yield [], item
            cut = True
        else:
            commands.append(item)
    if commands or not cut:
        yield commands, None


@dataclass
class _Link:
    """The open channel, known to run() the moment it exists: an interrupt may come any time;
    and the largest message size a server has shown it takes (after a close 1009)."""

    channel: Channel | None = None
    limit: int | None = None
    # Failed attempts since the last connection that confirmed something: kept across batches
    # (a connection that breaks while stdin is quiet is re-opened by the next _deliver call), so
    # that connections which confirm nothing before breaking use the retries up, and end.
    retries: Retries | None = None

    def drop(self) -> None:
        """Forget the channel, keeping what it learned of the server's size limit."""
        channel, self.channel = self.channel, None
        if channel is not None and channel.limit is not None:
            self.limit = min(self.limit or channel.limit, channel.limit)


def _finish(channel: Channel, *, abandon: bool) -> None:
    """Close the channel; interrupted (Ctrl-C, SIGTERM), it waits for no confirmation."""
    try:
        channel.finish(abandon=abandon)
    except (KeyboardInterrupt, Interrupted):
        channel.finish(abandon=True)
        raise


def _close(
    link: _Link, endpoint: Endpoint, ledger: Ledger, log: Log, options: SendOptions
) -> ConnectError | AuthError | None:
    """Finish the channel; what a connection lost meanwhile left unconfirmed is sent again
    on a new one (and that one finished in turn)."""
    while link.channel is not None:
        channel = link.channel
        _finish(channel, abandon=False)
        again = channel.unconfirmed()
        link.drop()
        if again:
            _say_again(log, again, channel.cause)
            error = _deliver(link, [], endpoint, ledger, log, options, again)
            if error is not None:
                return error
    return None


def _say_again(log: Log, again: list[Entry], cause: str) -> None:
    log.warning(
        f"{cause or 'connection lost'}; sending {len(again)} unconfirmed message(s) again on a "
        "new connection, with the same idempotency keys"
    )


def _deliver(
    link: _Link,
    commands: list[Command],
    endpoint: Endpoint,
    ledger: Ledger,
    log: Log,
    options: SendOptions,
    again: list[Entry] | None = None,
) -> ConnectError | AuthError | None:
    """Submit one batch (after `again`, entries to send again), opening (or re-opening) the
    channel with bounded retries; a connection that confirmed something resets the count.

    Returns the error when the retries are exhausted or the token was refused, else None;
    every command has a result either way.
    """
    pending, again = commands, list(again or ())
    if link.retries is None:
        link.retries = Retries(options.policy)
    retries = link.retries
    deadline = endpoint.deadline.within(options.policy.give_up_after)
    while True:
        error: ConnectError | AuthError
        try:
            channel = link.channel
            if channel is not None and channel.broken:
                channel.finish()
                if channel.confirmed:
                    retries.succeeded()  # it made progress: the retries count from here
                lost = channel.unconfirmed()
                if lost:
                    _say_again(log, lost, channel.cause)
                again = lost + again
                link.drop()
                if not pending and not again:
                    return None  # nothing to send: the next command opens a connection
            if link.channel is None:
                if link.limit is not None and link.limit < options.max_message_bytes:
                    options = replace(options, max_message_bytes=link.limit)
                link.channel = _open_channel(endpoint, deadline, ledger, log, options)
            link.channel.deadline = deadline
            link.channel.submit(pending, again)
            return None
        except Stopped as stop:
            error, pending, resendable = stop.error, stop.unsent, stop.resendable
            again = stop.again
            if link.channel is not None and link.channel.confirmed:
                retries.succeeded()  # it made progress: the retries count from here
            if again and resendable:
                _say_again(log, again, str(error))
        except (ConnectError, AuthError) as exc:  # could not open: nothing of `pending` went out
            error, resendable = _named(exc, endpoint), True
        if not pending and not again and resendable and retryable(error):
            return None  # every command has its result; the next batch reconnects
        if not (resendable and retryable(error) and retries.failed()):
            ledger.fail_all(pending, f"not sent: {error}", error.status)
            for entry in again:
                ledger.settle(
                    entry,
                    False,
                    error.status,
                    error=f"connection lost before the server confirmed it ({error}); "
                    "it may or may not have been delivered",
                )
                ledger.uncertain += 1
            return error
        delay = retries.delay(retry_after_of(error))
        log.info(f"{error}; retrying in {delay:.1f} s")
        if not deadline.sleep(delay):
            error = ConnectError(f"gave up after {options.policy.give_up_after:g} s: {error}")
            ledger.fail_all(pending, f"not sent: {error}", error.status)
            return error


def _named(error: ConnectError | AuthError, endpoint: Endpoint) -> ConnectError | AuthError:
    """The transport says what failed ("connection refused"); send says where, once."""
    if isinstance(error, ConnectError) and not str(error).startswith("cannot "):
        error.args = (f"cannot connect to {redact(endpoint.url)}: {error}",)
    return error


def _open_channel(
    endpoint: Endpoint, deadline: Deadline, ledger: Ledger, log: Log, options: SendOptions
) -> Channel:
    """A socket channel, else REST; opening ends within the connect timeout and the deadline."""
    if endpoint.transport != "sse":
        try:
            conn = open_websocket(
                endpoint.until(deadline).attempt(), Resume(dialect=endpoint.dialect)
            )
        except NoWebSocket as exc:  # a 5xx or 429 too: REST is tried at once (docs/cli.md)
            if endpoint.transport == "ws":
                raise ConnectError(str(exc), retry_after=exc.retry_after) from None
            log.info(f"{exc}; sending over REST")
        else:
            dialect = conn.hello.dialect.name
            log.info(f"connected over {conn.kind} to {endpoint.url}, {dialect} dialect")
            return SocketChannel(conn, endpoint, ledger, log, options)
    log.info(f"sending over REST to {endpoint.url}")
    return RestChannel(endpoint, ledger, log, options)
