"""stdout as NDJSON: one finished line at a time, flushed before the program waits again.

Lines are written to a buffer and flushed whenever the transport has nothing more buffered, so
a quiet stream shows each event at once and a storm costs one write() per burst, not per line.
A reader that went away (`prismer-rt listen | head -1`) raises OutputClosed, which ends the
program quietly: at the next write, or at once with `close_on_hangup`, which watches the pipe
while the program waits for the network.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import sys
import threading
import time
from types import FrameType
from typing import Any, BinaryIO

import orjson


class OutputClosed(Exception):
    """stdout's reader has gone away."""


_reported = threading.Event()  # OutputClosed was raised once: the hang-up watcher stays quiet


def _closed() -> OutputClosed:
    _reported.set()
    return OutputClosed()


class OutputFailed(Exception):
    """stdout cannot be written: closed (`>&-`), a full disk (`> /dev/full`), an I/O error.
    Unlike a reader that went away, this is an error: exit 2 (docs/cli.md "Exit statuses")."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"write error on stdout: {error.strerror or error}")
        self.error = error


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


HANGUP_SIGNAL = signal.SIGUSR1  # how the watcher wakes the main thread from a blocking wait
HANGUP_GRACE = 5.0  # seconds of clean-up after stdout's reader went away, then exit 0


def close_on_hangup() -> None:
    """When stdout is a pipe or socket, raise OutputClosed in the main thread as soon as its
    reader goes away, even while the main thread is blocked waiting for the network."""
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return
    main = threading.main_thread()
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) or threading.current_thread() is not main:
        return
    hung_up = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Once, and only if no write has said so already: the program's own clean-up (a
        # generator being closed, a socket being shut) must not be interrupted again.
        if hung_up.is_set() and not _reported.is_set():
            hung_up.clear()
            raise _closed()

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # no events asked for: only POLLERR, POLLHUP, POLLNVAL come back
        poller.poll()
        hung_up.set()
        assert main.ident is not None
        signal.pthread_kill(main.ident, HANGUP_SIGNAL)
        # Nobody reads what this program would still print: its clean-up (saving a cursor,
        # closing a socket) gets a bounded grace, never a hang (seen once in CI, in a durable
        # listen into `head -1`). The cursor is at worst one save behind: at least once.
        time.sleep(HANGUP_GRACE)
        sys.stderr.flush()
        os._exit(0)

    signal.signal(HANGUP_SIGNAL, on_signal)
    threading.Thread(target=watch, name="prismer-rt-stdout-watch", daemon=True).start()
