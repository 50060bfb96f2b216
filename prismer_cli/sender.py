"""send and mark-read: commands over one connection, one result line each, in order.

Over a WebSocket a reader thread answers pings, acknowledges frames, and matches the server's
answers to the commands while the main thread keeps writing (never one round trip at a time):
- server dialect: a message is confirmed by the `message.new` the server echoes to its sender
  (matched on conversation, content and type, first come first served), or failed by an `error`
  frame carrying the command's requestId; after --wait seconds it is reported unconfirmed;
- docs dialect: nothing confirms a command, so it is reported as sent once written; an `error`
  frame, which names no command, is reported on stderr and makes the exit status 5.
A command the socket cannot carry (the server dialect's mark_read, or any mark_read without a
message id, which only REST can say) goes over REST in its place: the frames before it are
written first and, where the dialect can ping, the server has answered a ping sent after them.
Without a WebSocket (--transport sse, or none to be had) commands go over REST.

Every command gets exactly one result. When the connection breaks while frames are written, the
commands without a result are sent again on a new connection (bounded by the policy); REST
requests are retried by the REST client itself with one idempotency key each, never re-posted
from here. Once the retries are exhausted (or the token is refused) every later command of stdin
gets a failed result without another attempt, and the error decides the exit status.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from prismer_cli.backoff import Policy, wait_for
from prismer_cli.errors import (
    AuthError,
    CommandRejected,
    ConnectError,
    ConnectionLost,
    ExitStatus,
    Interrupted,
    NoWebSocket,
    PrismerError,
)
from prismer_cli.log import Log
from prismer_cli.output import Output, OutputClosed
from prismer_cli.protocol.commands import MARK_READ, SEND, SUBSCRIBE, Command, InvalidLine
from prismer_cli.protocol.dialects import JSON, REQUEST_PREFIX, error_message
from prismer_cli.transport import Endpoint, Resume, open_websocket
from prismer_cli.transport.base import Connection

if TYPE_CHECKING:  # imported where used: requests costs ~60 ms and most sends never need it
    from prismer_cli.transport.rest import RestClient

_GRAVITY = {ExitStatus.REJECTED: 1, ExitStatus.CONNECTION: 2, ExitStatus.AUTH: 3}
TICK = 0.05  # how often the reader thread looks for commands past --wait, and for the end


@dataclass(frozen=True)
class SendOptions:
    wait: float = 10.0
    policy: Policy = field(default_factory=lambda: Policy(max_retries=3))


@dataclass
class _Entry:
    command: Command
    request_id: str
    record: JSON | None = None
    status: ExitStatus = ExitStatus.OK
    sent_at: float = 0.0


class Ledger:
    """One result per command, printed in command order as soon as all before it are settled."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._entries: deque[_Entry] = deque()
        self._lock = threading.Lock()
        self.status = ExitStatus.OK

    def add(self, command: Command, request_id: str) -> _Entry:
        entry = _Entry(command, request_id)
        with self._lock:
            self._entries.append(entry)
        return entry

    def settle(
        self, entry: _Entry, ok: bool, status: ExitStatus = ExitStatus.OK, **fields: Any
    ) -> None:
        record: JSON = {"ok": ok, "action": entry.command.action}
        record["conversationId"] = entry.command.conversation_id
        if entry.command.line is not None:
            record["line"] = entry.command.line
        record.update(fields)
        with self._lock:
            entry.record, entry.status = record, status
            self._worsen(status)

    def fail(self, status: ExitStatus) -> None:
        """A failure that belongs to no command (an error frame naming none)."""
        with self._lock:
            self._worsen(status)

    def _worsen(self, status: ExitStatus) -> None:
        """Keep the gravest status seen: 3 (token refused) over 4 (connection) over 5 (rejected)."""
        if _GRAVITY.get(status, 0) > _GRAVITY.get(self.status, 0):
            self.status = status

    def emit(self, *, flush: bool = True) -> None:
        with self._lock:
            entries = self._entries
            while entries and entries[0].record is not None:
                self._out.record(entries.popleft().record)
            if flush:
                self._out.flush()

    def discard(self, entries: list[_Entry]) -> None:
        """Take back entries that have no result yet (their commands will be sent again)."""
        with self._lock:
            for entry in entries:
                if entry.record is None:
                    self._entries.remove(entry)

    def unsettled(self) -> list[_Entry]:
        with self._lock:
            return [e for e in self._entries if e.record is None]


def run(
    endpoint: Endpoint,
    batches: Iterable[Iterable[Command | InvalidLine]],
    out: Output,
    log: Log,
    options: SendOptions,
) -> ExitStatus:
    """Send every valid command; report every invalid line; exit status per cli-contract.md."""
    ledger = Ledger(out)
    invalid = False
    link = _Link()
    fatal: ConnectError | AuthError | None = None
    interrupted = False
    try:
        for batch in batches:
            commands = []
            for item in batch:
                if isinstance(item, InvalidLine):
                    log.error(f"stdin line {item.line}: {item.reason}; skipped")
                    invalid = True
                else:
                    commands.append(item)
            if not commands:
                continue
            if fatal is None:
                fatal = _deliver(link, commands, endpoint, ledger, log, options)
            else:  # retries exhausted: no more attempts, but a result for each command
                _fail_all(ledger, commands, f"not sent: {fatal}", fatal.status)
            ledger.emit()
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        raise
    finally:
        if link.channel is not None:
            _finish(link.channel, abandon=interrupted)
        ledger.emit()
    if fatal is not None:
        raise fatal
    if ledger.status != ExitStatus.OK:
        return ledger.status
    return ExitStatus.INVALID_INPUT if invalid else ExitStatus.OK


@dataclass
class _Link:
    """The open channel, known to run() the moment it exists: an interrupt may come any time."""

    channel: _Channel | None = None


def _finish(channel: _Channel, *, abandon: bool) -> None:
    """Close the channel; interrupted (Ctrl-C, SIGTERM), it waits for no confirmation."""
    try:
        channel.finish(abandon=abandon)
    except (KeyboardInterrupt, Interrupted):
        channel.finish(abandon=True)
        raise


class _Stopped(Exception):
    """submit() could not go on: `error` says why, `unsent` are the commands without a result.

    `retryable`: the commands may be sent again on a new connection (the socket broke while they
    were written); REST errors are not, since the REST client has already retried them.
    """

    def __init__(
        self, error: ConnectError | AuthError, unsent: list[Command], *, retryable: bool
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.unsent = unsent
        self.retryable = retryable


def _deliver(
    link: _Link,
    commands: list[Command],
    endpoint: Endpoint,
    ledger: Ledger,
    log: Log,
    options: SendOptions,
) -> ConnectError | AuthError | None:
    """Submit one batch, opening (or re-opening) the channel with bounded retries.

    Returns the error when the retries are exhausted or the token was refused, else None;
    every command has a result either way.
    """
    pending = commands
    retry = 0
    while True:
        error: ConnectError | AuthError
        try:
            if link.channel is not None and link.channel.broken:
                link.channel.finish()
                link.channel = None
            if link.channel is None:
                link.channel = _open_channel(endpoint, ledger, log, options)
            link.channel.submit(pending)
            return None
        except _Stopped as stop:
            error, pending, retryable = stop.error, stop.unsent, stop.retryable
        except ConnectError as exc:  # could not open: nothing of `pending` went out
            error, retryable = exc, True
        except AuthError as exc:
            error, retryable = exc, False
        if not pending and retryable:
            return None  # every command has its result; the next batch reconnects
        retry += 1
        if not retryable or not options.policy.allows(retry):
            _fail_all(ledger, pending, f"not sent: {error}", error.status)
            return error
        retry_after = error.retry_after if isinstance(error, ConnectError) else None
        delay = wait_for(options.policy.delay(retry), retry_after)
        log.info(f"{error}; retrying in {delay:.1f} s")
        time.sleep(delay)


def _fail_all(ledger: Ledger, commands: list[Command], error: str, status: ExitStatus) -> None:
    for command in commands:
        ledger.settle(ledger.add(command, ""), False, status, error=error)


def _open_channel(endpoint: Endpoint, ledger: Ledger, log: Log, options: SendOptions) -> _Channel:
    if endpoint.transport != "sse":
        try:
            return _SocketChannel(
                open_websocket(endpoint, Resume(dialect=endpoint.dialect)),
                endpoint,
                ledger,
                log,
                options,
            )
        except NoWebSocket as exc:
            if endpoint.transport == "ws":
                raise ConnectError(str(exc)) from None
            log.info(f"{exc}; sending over REST")
    return _RestChannel(endpoint, ledger, log, options)


class _Channel:
    broken = False

    def submit(self, commands: list[Command]) -> None:
        """Send the commands in order; raises _Stopped when it cannot finish."""
        raise NotImplementedError

    def finish(self, *, abandon: bool = False) -> None:
        """Close; `abandon`: fail what awaits confirmation instead of waiting for it."""
        raise NotImplementedError


def _rest_client(endpoint: Endpoint, log: Log, options: SendOptions) -> RestClient:
    from prismer_cli.transport.rest import RestClient

    return RestClient(endpoint, log, options.policy)


class _RestChannel(_Channel):
    def __init__(self, endpoint: Endpoint, ledger: Ledger, log: Log, options: SendOptions) -> None:
        self._rest = _rest_client(endpoint, log, options)
        self._ledger = ledger

    def submit(self, commands: list[Command]) -> None:
        for index, command in enumerate(commands):
            entry = self._ledger.add(command, "")
            try:
                rest_call(self._rest, self._ledger, entry)
            except (ConnectError, AuthError) as exc:
                self._ledger.emit()
                raise _Stopped(exc, commands[index + 1 :], retryable=False) from None
            self._ledger.emit()

    def finish(self, *, abandon: bool = False) -> None:
        self._rest.close()


def rest_call(rest: RestClient, ledger: Ledger, entry: _Entry) -> None:
    """Run one command over REST and settle its result (AuthError and ConnectError propagate)."""
    from prismer_cli.transport.rest import message_of

    command = entry.command
    try:
        if command.action == SEND:
            assert command.content is not None
            answer = rest.send_message(
                command.conversation_id, command.content, command.message_type, command.extra
            )
            ledger.settle(entry, True, message=message_of(answer))
        elif command.action == MARK_READ:
            rest.mark_read(command.conversation_id)
            ledger.settle(entry, True)
        else:
            ledger.settle(entry, False, ExitStatus.REJECTED, error="subscribe needs a WebSocket")
    except CommandRejected as exc:
        ledger.settle(entry, False, ExitStatus.REJECTED, error=str(exc))
    except (ConnectError, AuthError) as exc:
        ledger.settle(entry, False, exc.status, error=str(exc))
        raise


class _SocketChannel(_Channel):
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
        self._by_request: dict[str, _Entry] = {}
        self._by_content: dict[tuple[Any, ...], deque[_Entry]] = {}
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
            written: list[_Entry] = []  # settled once the write succeeded
            entries: list[_Entry] = []
            over_rest: _Entry | None = None
            with self._lock:
                now = time.monotonic()
                for command in commands[index:]:
                    index += 1
                    entry = self._ledger.add(command, self._request_id())
                    frame = self._frame(entry)
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
                raise _Stopped(ConnectError(str(exc)), rest, retryable=True) from None
            for entry in written:
                self._ledger.settle(entry, True, sent=True)
            if over_rest is not None:
                self._barrier()
                try:
                    self._rest_call(over_rest)
                except (ConnectError, AuthError) as exc:
                    self._ledger.emit()
                    raise _Stopped(exc, commands[index:], retryable=False) from None
            self._ledger.emit()

    def _request_id(self) -> str:
        self._counter += 1
        return f"{REQUEST_PREFIX}{self._counter}"

    def _frame(self, entry: _Entry) -> JSON | None:
        """The command's frame, or None for a command that only REST can carry."""
        command, dialect = entry.command, self._dialect
        if command.action == SEND:
            assert command.content is not None
            return dialect.send_message(
                command.conversation_id,
                command.content,
                command.message_type,
                command.extra,
                entry.request_id,
            )
        if command.action == SUBSCRIBE:
            return dialect.subscribe(command.conversation_id, entry.request_id)
        if command.up_to is None:
            return None  # "everything read": only POST .../read says that, in both dialects
        return dialect.mark_read(command.conversation_id, command.up_to, entry.request_id)

    def _expect(self, entry: _Entry, now: float) -> None:
        """Wait for the server's echo of this message (caller holds the lock)."""
        command = entry.command
        entry.sent_at = now
        self._by_request[entry.request_id] = entry
        key = (command.conversation_id, command.content, command.message_type)
        self._by_content.setdefault(key, deque()).append(entry)

    def _barrier(self) -> None:
        """Wait (at most --wait) until the server has handled every frame written so far.

        A ping is answered after the frames before it, so its pong says they are done; a
        dialect without a protocol-level ping cannot say, and the REST call just follows.
        """
        self._counter += 1
        request_id = f"{REQUEST_PREFIX}sync-{self._counter}"
        ping = self._dialect.ping(request_id)
        if ping is None or self.broken:
            return
        answered = threading.Event()
        with self._lock:
            self._pongs[request_id] = answered
        try:
            self._conn.send(ping)
            if self._reader.is_alive():  # else nothing reads the answer
                answered.wait(self._wait)
        except ConnectionLost:
            self.broken = True
        finally:
            with self._lock:
                self._pongs.pop(request_id, None)

    def _rest_call(self, entry: _Entry) -> None:
        if self._rest is None:
            self._rest = _rest_client(self._endpoint, self._log, self._options)
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
        ack_id = frame.get("ackId")
        if ack_id is not None:
            self._conn.ack(ack_id)
        kind = frame.get("type")
        if kind == "pong" or (kind == "error" and frame.get("requestId") in self._pongs):
            self._on_pong(frame)
        elif kind == "error":
            self._on_error(frame)
        elif kind == "message.new":
            payload = frame.get("payload")
            if isinstance(payload, dict) and payload.get("senderId") == self._me:
                self._on_echo(payload)

    def _on_pong(self, frame: JSON) -> None:
        with self._lock:
            answered = self._pongs.get(frame.get("requestId") or "")
        if answered is not None:
            answered.set()

    # Entries are settled while the lock is held, so that once submit() has taken an entry out
    # of the lookup tables under the lock, its result is known: settled, or for it to send again.
    def _on_error(self, frame: JSON) -> None:
        payload = frame.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        fields = {"error": payload.get("message") or "rejected"}
        if payload.get("code"):
            fields["code"] = payload["code"]
        with self._lock:
            entry = self._by_request.get(frame.get("requestId") or "")
            if entry is not None:
                self._forget(entry)
                self._ledger.settle(
                    entry, False, ExitStatus.REJECTED, requestId=entry.request_id, **fields
                )
                return
        self._log.error(f"the server answered with an error: {error_message(frame)}")
        self._ledger.fail(ExitStatus.REJECTED)

    def _on_echo(self, payload: JSON) -> None:
        key = (payload.get("conversationId"), payload.get("content"), payload.get("type", "text"))
        with self._lock:
            queue = self._by_content.get(key)
            if not queue:
                return
            entry = queue[0]
            self._forget(entry)
            self._ledger.settle(entry, True, requestId=entry.request_id, message=payload)

    def _forget(self, entry: _Entry) -> None:
        """Drop an entry from the lookup tables (caller holds the lock)."""
        self._by_request.pop(entry.request_id, None)
        command = entry.command
        key = (command.conversation_id, command.content, command.message_type)
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
