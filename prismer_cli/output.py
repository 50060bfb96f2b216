"""stdout as NDJSON: one finished line at a time, flushed before the program waits again.

Lines are written to a buffer and flushed whenever the transport has nothing more buffered, so
a quiet stream shows each event at once and a storm costs one write() per burst, not per line.
A reader that went away (`prismer-rt listen | head -1`) raises OutputClosed, which ends the
program quietly: at the next write, or at the next safe point with `close_on_hangup`, which
watches the pipe while the program waits for the network.
"""

from __future__ import annotations

import os
import select
import stat
import sys
import threading
from typing import Any, BinaryIO

import orjson

from prismer_cli import signals


class OutputClosed(Exception):
    """stdout's reader has gone away."""


_reported = threading.Event()  # OutputClosed was raised once: the hang-up watcher stays quiet


def _closed() -> OutputClosed:
    _reported.set()
    signals.delivered(_closed)  # a hang-up seen by the watcher too is said once
    return OutputClosed()


class OutputFailed(Exception):
    """stdout cannot be written: closed (`>&-`), a full disk (`> /dev/full`), an I/O error.
    Unlike a reader that went away, this is an error: exit 2 (docs/cli.md "Exit statuses")."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"write error on stdout: {error.strerror or error}")
        self.error = error


# Lines serialised before one write: a bound on the serialised lines alive at once. Each holds
# far more memory than its length while it lives (about 4 KiB: orjson's output buffer, as
# measured): 100,000 results due at once (the docs dialect's clean close confirms every frame)
# serialised for one join made the process 420 MiB bigger, and twice as slow.
RECORDS_PER_WRITE = 128


class Output:
    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else _stdout()
        self._write = self._stream.write

    def line(self, data: bytes) -> None:
        """Write one JSON document (no newline inside) as a line."""
        try:
            self._write(data + b"\n")
        except BrokenPipeError:
            raise _closed() from None
        except OSError as exc:
            raise OutputFailed(exc) from None

    def record(self, obj: Any) -> None:
        self.line(orjson.dumps(obj))

    def records(self, objs: list[Any]) -> None:
        """record() of each, in order: NDJSON's RECORDS_PER_WRITE lines at a time (send's
        results, a burst at a time); the other views override it with a loop."""
        dumps, newline, write = orjson.dumps, orjson.OPT_APPEND_NEWLINE, self._write
        try:
            for start in range(0, len(objs), RECORDS_PER_WRITE):
                part = objs[start : start + RECORDS_PER_WRITE]
                write(b"".join([dumps(obj, option=newline) for obj in part]))
        except BrokenPipeError:
            raise _closed() from None
        except OSError as exc:
            raise OutputFailed(exc) from None

    def server_error(self, frame: dict[str, Any]) -> bool:
        """An error frame that is no event (about a command of ours, or the connection): a
        human view shows it as a line of its own (True); NDJSON leaves it to stderr."""
        return False

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise _closed() from None
        except OSError as exc:
            raise OutputFailed(exc) from None


def _stdout() -> BinaryIO:
    """fd 1 with a buffer of our own: with PYTHONUNBUFFERED set (as many container images do),
    sys.stdout.buffer would make one write() per line; we flush when the input runs dry."""
    try:
        sys.stdout.flush()
        return open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)
    except (AttributeError, OSError, ValueError):  # no real fd: a test runner's stream
        return sys.stdout.buffer


def silence_stdout() -> None:
    """Point fd 1 at /dev/null so that the interpreter's final flush cannot fail loudly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        return


def close_on_hangup() -> None:
    """When stdout is a pipe or socket, end the program (OutputClosed, exit 0) as soon as its
    reader goes away, even while the main thread waits for the network: a watcher thread polls
    stdout and asks the main thread to stop at its next safe point (prismer_cli/signals.py),
    which then cleans up as at any exit (the cursor saved, the socket closed)."""
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return
    main = threading.main_thread()
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) or threading.current_thread() is not main:
        return

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # no events asked for: only POLLERR, POLLHUP, POLLNVAL come back
        poller.poll()
        if not _reported.is_set():  # a write that failed said so already: nothing to add
            signals.hang_up(_closed)

    threading.Thread(target=watch, name="prismer-rt-stdout-watch", daemon=True).start()
