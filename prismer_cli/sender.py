"""send and mark-read: commands over one connection, one result line each, in order.

Over a WebSocket a reader thread answers pings, acknowledges frames, and matches the server's
answers to the commands while the main thread keeps writing (never one round trip at a time):
- server dialect: a message is confirmed by the `message.new` the server echoes to its sender
  (matched on conversation, content and type, first come first served), or failed by an `error`
  frame carrying the command's requestId; after --wait seconds it is reported unconfirmed;
- docs dialect: nothing confirms a command, so it is reported as sent once written; an `error`
  frame, which names no command, is reported on stderr and makes the exit status 5.
Without a WebSocket (--transport sse, or none to be had) commands go over REST.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from prismer_cli.backoff import Policy
from prismer_cli.commands import MARK_READ, SEND, SUBSCRIBE, Command, InvalidLine
from prismer_cli.dialects import JSON, error_message
from prismer_cli.errors import (
    AuthError,
    CommandRejected,
    ConnectError,
    ConnectionLost,
    NoWebSocket,
    PrismerError,
)
from prismer_cli.log import Log
from prismer_cli.output import Output, OutputClosed
from prismer_cli.status import ExitStatus
from prismer_cli.transport import Endpoint, Resume, open_websocket
from prismer_cli.transport.base import Connection

TICK = 0.25  # how often the reader thread looks for commands past --wait


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
            if status != ExitStatus.OK and self.status in (ExitStatus.OK, ExitStatus.REJECTED):
                self.status = status

    def emit(self, *, flush: bool = True) -> None:
        with self._lock:
            entries = self._entries
            while entries and entries[0].record is not None:
                self._out.record(entries.popleft().record)
            if flush:
                self._out.flush()

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
    channel: _Channel | None = None
    try:
        for batch in batches:
            commands = []
            for item in batch:
                if isinstance(item, InvalidLine):
                    log.error(f"stdin line {item.line}: {item.reason}; skipped")
                    invalid = True
                else:
                    commands.append(item)
            if commands:
                channel = _deliver(channel, commands, endpoint, ledger, log, options)
    finally:
        if channel is not None:
            channel.finish()
        ledger.emit()
    if ledger.status != ExitStatus.OK:
        return ledger.status
    return ExitStatus.INVALID_INPUT if invalid else ExitStatus.OK


def _deliver(
    channel: _Channel | None,
    commands: list[Command],
    endpoint: Endpoint,
    ledger: Ledger,
    log: Log,
    options: SendOptions,
) -> _Channel:
    """Submit one batch, opening (or re-opening) the channel with bounded retries."""
    retry = 0
    while True:
        try:
            if channel is None or channel.broken:
                if channel is not None:
                    channel.finish()
                channel = _open_channel(endpoint, ledger, log, options)
            channel.submit(commands)
            return channel
        except ConnectError as exc:
            retry += 1
            if not options.policy.allows(retry):
                _fail_all(ledger, commands, f"not sent: {exc}", ExitStatus.CONNECTION)
                raise
            delay = options.policy.delay(retry)
            log.info(f"{exc}; retrying in {delay:.1f} s")
            time.sleep(delay)
        except AuthError as exc:
            _fail_all(ledger, commands, f"not sent: {exc}", ExitStatus.AUTH)
            raise


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
    return _RestChannel(endpoint, ledger, log)


class _Channel:
    broken = False

    def submit(self, commands: list[Command]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class _RestChannel(_Channel):
    def __init__(self, endpoint: Endpoint, ledger: Ledger, log: Log) -> None:
        from prismer_cli.transport.rest import RestClient

        self._rest = RestClient(endpoint, log)
        self._ledger = ledger

    def submit(self, commands: list[Command]) -> None:
        for command in commands:
            entry = self._ledger.add(command, "")
            rest_call(self._rest, self._ledger, entry)
            self._ledger.emit()

    def finish(self) -> None:
        self._rest.close()


def rest_call(rest: Any, ledger: Ledger, entry: _Entry) -> None:
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
        self._wait = options.wait
        self._dialect = conn.hello.dialect
        self._me = conn.hello.user_id
        self._lock = threading.Lock()
        self._by_request: dict[str, _Entry] = {}
        self._by_content: dict[tuple[Any, ...], deque[_Entry]] = {}
        self._counter = 0
        self._finishing = False
        self._rest: Any = None
        self._reader = threading.Thread(
            target=self._read_loop, name="prismer-rt-reader", daemon=True
        )
        self._reader.start()

    # -- main thread -----------------------------------------------------------------------
    def submit(self, commands: list[Command]) -> None:
        frames: list[JSON] = []
        settle_after_send: list[_Entry] = []
        entries: list[_Entry] = []
        with self._lock:
            now = time.monotonic()
            for command in commands:
                self._counter += 1
                entry = self._ledger.add(command, f"prt-{self._counter}")
                entries.append(entry)
                frame = self._frame(entry, now, settle_after_send)
                if frame is not None:
                    frames.append(frame)
        try:
            if frames:
                self._conn.send_many(frames)
        except ConnectionLost as exc:
            self.broken = True
            for entry in entries:
                if entry.record is None:
                    self._forget(entry)
                    self._ledger.settle(
                        entry, False, ExitStatus.CONNECTION, error=f"not sent: {exc}"
                    )
            self._ledger.emit()
            raise ConnectError(str(exc)) from None
        for entry in settle_after_send:
            self._settle_after_send(entry)
        self._ledger.emit()

    def _frame(self, entry: _Entry, now: float, later: list[_Entry]) -> JSON | None:
        command, dialect = entry.command, self._dialect
        if command.action == SEND:
            assert command.content is not None
            if dialect.confirms_sends:
                entry.sent_at = now
                self._by_request[entry.request_id] = entry
                key = (command.conversation_id, command.content, command.message_type)
                self._by_content.setdefault(key, deque()).append(entry)
            else:
                later.append(entry)
            return dialect.send_message(
                command.conversation_id,
                command.content,
                command.message_type,
                command.extra,
                entry.request_id,
            )
        later.append(entry)
        if command.action == SUBSCRIBE:
            return dialect.subscribe(command.conversation_id, entry.request_id)
        return dialect.mark_read(command.conversation_id, command.up_to, entry.request_id)

    def _settle_after_send(self, entry: _Entry) -> None:
        """Commands that nothing will confirm: done once written (or once REST answered)."""
        command = entry.command
        if (
            command.action == MARK_READ
            and self._dialect.mark_read(command.conversation_id, None, "") is None
        ):
            if self._rest is None:
                from prismer_cli.transport.rest import RestClient

                self._rest = RestClient(self._endpoint, self._log)
            rest_call(self._rest, self._ledger, entry)
        else:
            self._ledger.settle(entry, True, sent=True)

    def finish(self) -> None:
        """Wait for the outstanding confirmations (bounded by --wait), then close with 1000."""
        self._finishing = True
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
            self.broken = True
            self._fail_pending(f"connection lost before the server confirmed it: {exc}")
        except OutputClosed:
            self.broken = True
            self._fail_pending("stdout closed")
        except PrismerError as exc:
            self.broken = True
            self._fail_pending(str(exc))

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
        if kind == "error":
            self._on_error(frame)
        elif kind == "message.new":
            payload = frame.get("payload")
            if isinstance(payload, dict) and payload.get("senderId") == self._me:
                self._on_echo(payload)

    def _on_error(self, frame: JSON) -> None:
        payload = frame.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        with self._lock:
            entry = self._by_request.get(frame.get("requestId") or "")
            if entry is not None:
                self._forget(entry)
        if entry is None:
            self._log.error(f"the server answered with an error: {error_message(frame)}")
            self._ledger.status = (
                ExitStatus.REJECTED if self._ledger.status == ExitStatus.OK else self._ledger.status
            )
            return
        fields = {"error": payload.get("message") or "rejected"}
        if payload.get("code"):
            fields["code"] = payload["code"]
        self._ledger.settle(entry, False, ExitStatus.REJECTED, requestId=entry.request_id, **fields)

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
        with self._lock:
            late = [e for e in self._by_request.values() if e.sent_at <= limit]
            for entry in late:
                self._forget(entry)
        for entry in late:
            self._ledger.settle(
                entry,
                False,
                ExitStatus.CONNECTION,
                requestId=entry.request_id,
                error=(
                    f"not confirmed by the server within {self._wait:g} s; "
                    "it may or may not have been delivered"
                ),
            )

    def _fail_pending(self, error: str) -> None:
        with self._lock:
            entries = list(self._by_request.values())
            for entry in entries:
                self._forget(entry)
        for entry in entries:
            self._ledger.settle(
                entry, False, ExitStatus.CONNECTION, requestId=entry.request_id, error=error
            )
        self._ledger.emit()


def commands_from_args(command: Command) -> Iterator[list[Command]]:
    yield [command]
