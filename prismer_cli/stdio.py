"""The standard streams at the program's edges (docs/cli.md "Hygiene").

At the start, `guard` puts /dev/null on a closed stdin, stdout or stderr (`>&-`), so that no
socket or file the program opens later takes that descriptor; a closed stdout becomes a stream
whose every write fails with EBADF, as the closed descriptor would. At the end, `finish`
flushes stdout and stderr: a write error on stdout (closed, a full disk with `> /dev/full`) is
said on stderr as "write error on stdout" and makes a successful status 2; a reader that went
away (EPIPE) changes nothing. Whatever failed is then pointed at /dev/null, so the
interpreter's own final flush cannot print a traceback or turn the status into 120.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import TextIO


class _ClosedRaw(io.RawIOBase):
    """What was a closed fd 1: every write fails with EBADF, until `finish` drops them."""

    failing = True

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        if self.failing:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return len(data)  # type: ignore[arg-type]

    def fileno(self) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


_closed_stdout: _ClosedRaw | None = None
_reported = False


def guard() -> None:
    """Occupy closed standard descriptors with /dev/null (docstring above)."""
    global _closed_stdout
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        devnull = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if devnull != fd:
            os.dup2(devnull, fd)
            os.close(devnull)
        if fd == 0:
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115  (reads as empty)
        elif fd == 1:
            _closed_stdout = _ClosedRaw()
            sys.stdout = io.TextIOWrapper(io.BufferedWriter(_closed_stdout), encoding="utf-8")
        else:
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115


def write_error(exc: OSError) -> None:
    """Say once on stderr that stdout could not be written (stderr may be gone as well)."""
    global _reported
    if not _reported:
        _reported = True
        _say(f"write error on stdout: {exc.strerror or exc}")


def finish(status: int) -> int:
    """Flush stdout and stderr; the exit status, 2 in place of 0 when stdout failed."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence(1)  # the reader went away: quiet, as `listen | head -1`
    except OSError as exc:
        write_error(exc)
        _silence(1)
        status = status or 2
    if _reported:  # a write error said earlier (by a command, or by the CLI framework)
        status = status or 2
    try:
        sys.stderr.flush()
    except OSError:
        _silence(2)
    return status


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"prismer-rt: error: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        _silence(2)


def _silence(fd: int) -> None:
    """Point fd at /dev/null so that what is still buffered for it goes nowhere, quietly."""
    if fd == 1 and _closed_stdout is not None:
        _closed_stdout.failing = False
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        return


def say(stream: TextIO | None, text: str) -> None:
    """Write and flush `text` to `stream` (None: stderr), quietly if it cannot be written."""
    try:
        (stream or sys.stderr).write(text)
        (stream or sys.stderr).flush()
    except (OSError, ValueError, AttributeError):
        return  # stderr is gone or full: there is no one left to tell
