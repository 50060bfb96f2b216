"""Diagnostics on stderr: warnings by default, lifecycle with -v, nothing but errors with -q.

Every line passes through redact(), so no code path can print the token by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from prismer_cli.redact import redact
from prismer_cli.stdio import say

if TYPE_CHECKING:
    from prismer_cli.transport.trace import Tracer


class Log:
    def __init__(
        self, *, verbosity: int = 0, secret: str | None = None, stream: TextIO | None = None
    ):
        self.verbosity = verbosity  # -1 quiet, 0 normal, 1 verbose
        self.secret = secret
        self._stream = stream
        self.trace: Tracer | None = None  # --trace: the wire, on stderr too

    def redirect(self, stream: TextIO | None) -> None:
        """Write to `stream` from now on (None: stderr again); chat puts its lines above the
        input line this way."""
        self._stream = stream

    def _write(self, text: str) -> None:
        say(self._stream, f"prismer-rt: {redact(text, self.secret)}\n")

    def error(self, text: str) -> None:
        self._write(f"error: {text}")

    def warning(self, text: str) -> None:
        if self.verbosity >= 0:
            self._write(f"warning: {text}")

    def plain(self, text: str) -> None:
        """A line for a person, whatever the verbosity (the caller decides)."""
        self._write(text)

    def info(self, text: str) -> None:
        if self.verbosity >= 1:
            self._write(text)
