"""The ledger of send and mark-read: one result per command, printed in command order."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from prismer_cli.errors import ExitStatus
from prismer_cli.output import Output, OutputClosed, OutputFailed, silence_stdout
from prismer_cli.protocol.commands import SEND, Command
from prismer_cli.protocol.endpoints import JSON
from prismer_cli.send.retryfile import MENDABLE, RetryFile

# Which failure decides the exit status: 3 (token refused) over 4 (connection) over 5 (rejected).
_GRAVITY = {ExitStatus.REJECTED: 1, ExitStatus.CONNECTION: 2, ExitStatus.AUTH: 3}


@dataclass(slots=True)
class Entry:
    """A command in the ledger, and its result once it has one."""

    command: Command
    request_id: str
    record: JSON | None = None
    status: ExitStatus = ExitStatus.OK
    sent_at: float = 0.0


class Ledger:
    """One result per command, printed in command order as soon as all before it are settled.

    Thread-safe: a socket channel's reader thread settles entries while the main thread adds.
    With a retry file, each command whose result a new run could mend goes to it as well.
    """

    def __init__(self, out: Output, retry: RetryFile | None = None) -> None:
        self._out = out
        self.retry = retry
        self._entries: deque[Entry] = deque()
        self._lock = threading.Lock()
        self.status = ExitStatus.OK
        self.uncertain = 0  # results that say "may or may not have been delivered"
        self.closed = False  # stdout's reader went away: results are dropped, sending goes on
        self.write_error: OutputFailed | None = None  # stdout failed: the same, and exit 2

    def add(self, command: Command, request_id: str) -> Entry:
        entry = Entry(command, request_id)
        with self._lock:
            self._entries.append(entry)
        return entry

    def extend(self, entries: list[Entry]) -> None:
        """Entries made by the caller (`Entry(command, request_id)`), after the others."""
        with self._lock:
            self._entries.extend(entries)

    def settle(
        self, entry: Entry, ok: bool, status: ExitStatus = ExitStatus.OK, **fields: Any
    ) -> None:
        record = _result(entry.command, ok)
        record.update(fields)
        with self._lock:
            entry.record, entry.status = record, status
            self._worsen(status)

    def confirm(self, entry: Entry, message: JSON) -> None:
        """settle(entry, True, requestId=..., message=message): a message the server echoed
        (the hot path of the server dialect, without settle's keyword arguments)."""
        command = entry.command  # _result(command, True), without the call
        if command.line is not None and command.action == SEND:  # a message from stdin
            entry.record = {  # one store, which emit() sees whole; the status is OK already
                "ok": True,
                "action": SEND,
                "conversationId": command.conversation_id,
                "line": command.line,
                "idempotencyKey": command.key,
                "requestId": entry.request_id,
                "message": message,
            }
            return
        record = _result(command, True)
        record["requestId"] = entry.request_id
        record["message"] = message
        entry.record = record

    def invalid(self, line: int, reason: str, *, rejected: bool = False) -> None:
        """The result of an invalid stdin line: {"ok": false, "line": N, "error": ...}; or of
        one too big to be read (`rejected`), exit 5 as a message over the server's limit."""
        entry = Entry(Command("", "", line=line), "")
        entry.record = {"ok": False, "line": line, "error": reason}
        entry.status = ExitStatus.REJECTED if rejected else ExitStatus.INVALID_INPUT
        with self._lock:
            self._entries.append(entry)
            if rejected:
                self._worsen(ExitStatus.REJECTED)

    def fail_all(self, commands: list[Command], error: str, status: ExitStatus) -> None:
        """A failed result for each command, none of them attempted."""
        for command in commands:
            self.settle(self.add(command, ""), False, status, error=error)

    def fail(self, status: ExitStatus) -> None:
        """A failure that belongs to no command (an error frame naming none)."""
        with self._lock:
            self._worsen(status)

    def _worsen(self, status: ExitStatus) -> None:
        if _GRAVITY.get(status, 0) > _GRAVITY.get(self.status, 0):
            self.status = status

    def emit(self, *, flush: bool = True) -> None:
        """Print the results that are due: every settled one with none unsettled before it."""
        with self._lock:
            entries, retry = self._entries, self.retry
            due: list[JSON | None] = []  # each an entry.record, not None
            add = due.append
            try:
                while entries and entries[0].record is not None:
                    entry = entries.popleft()
                    if retry is not None and entry.status in MENDABLE:
                        retry.add(entry.command)
                    add(entry.record)
                if due and not self.closed:
                    self._out.records(due)
                if retry is not None:
                    retry.flush()
                if flush and not self.closed:
                    self._out.flush()
            except OutputClosed:  # `send | head -1`: the results are the report, sending
                self.closed = True  # is the job; the exit status is unchanged (docs/cli.md)
                silence_stdout()
            except OutputFailed as exc:  # `send > /dev/full`, `>&-`: sending goes on too
                self.closed, self.write_error = True, exc
                silence_stdout()

    def discard(self, entries: list[Entry]) -> None:
        """Take back entries that have no result yet (their commands will be sent again)."""
        with self._lock:
            for entry in entries:
                if entry.record is None:
                    self._entries.remove(entry)


def _result(command: Command, ok: bool) -> JSON:
    """The fields every result of a command starts with."""
    record: JSON = {"ok": ok, "action": command.action, "conversationId": command.conversation_id}
    if command.line is not None:
        record["line"] = command.line
    if command.action == SEND:  # to send it again, same key (--retry-file)
        record["idempotencyKey"] = command.key
    return record
