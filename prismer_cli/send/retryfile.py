"""`send --retry-file FILE`: the commands a run did not finish, as JSON lines `send` reads again.

A command goes to the file when its result is not ok for a reason a new run can mend: uncertain
("may or may not have been delivered"), not sent for want of a connection, a refused token, or
an interrupt. A message's line carries its idempotency key, so that `prismer-rt send < FILE`
posts nothing twice where the server knows the key (the server dialect; REST). Rejected
commands (exit 5) and invalid lines (exit 6) would fail again: they are not written.

The lines go to a temporary file beside FILE that replaces it when the run ends, so that
`send --retry-file F < F` reads the old F while it writes the new one, and F is empty when
everything was done.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, BinaryIO

import orjson

from prismer_cli.errors import ExitStatus, UsageError
from prismer_cli.protocol.commands import MARK_READ, SEND, Command

MENDABLE = frozenset({ExitStatus.CONNECTION, ExitStatus.AUTH, ExitStatus.INTERRUPTED})


def line_of(command: Command) -> bytes:
    """The command as a stdin line of `send` (with its idempotency key, for a message)."""
    line: dict[str, Any]
    if command.action == SEND:
        line = {"conversationId": command.conversation_id, "content": command.content}
        line["type"] = command.message_type
        line.update(command.extra)  # metadata, parentId
        line["idempotencyKey"] = command.key
    elif command.action == MARK_READ:
        line = {"action": MARK_READ, "conversationId": command.conversation_id}
        if command.up_to is not None:
            line["upToMessageId"] = command.up_to
    else:
        line = {"action": command.action, "conversationId": command.conversation_id}
    return orjson.dumps(line) + b"\n"


class RetryFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.error: OSError | None = None  # the first failure to write; the run goes on
        folder = os.path.dirname(path) or "."
        if not path:
            raise UsageError("--retry-file: the path is empty")
        if os.path.isdir(path):
            raise UsageError(f"--retry-file {path}: is a directory")
        try:
            import tempfile  # ~1 ms (random, ...): only with --retry-file

            fd, self._temp = tempfile.mkstemp(
                dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".partial"
            )
        except OSError as exc:
            raise UsageError(f"--retry-file {path}: {exc.strerror or exc}") from None
        self._file: BinaryIO = os.fdopen(fd, "wb")

    def add(self, command: Command) -> None:
        if self.error is None:
            try:
                self._file.write(line_of(command))
            except OSError as exc:
                self.error = exc

    def flush(self) -> None:
        if self.error is None:
            try:
                self._file.flush()
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        """Put the file in place of FILE (or, after a failure, leave FILE as it was)."""
        try:
            self._file.close()
            if self.error is None:
                os.replace(self._temp, self.path)
        except OSError as exc:
            self.error = self.error or exc
        if self.error is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp)
