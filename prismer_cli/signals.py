"""Signals as flags (README "Signals"): no handler raises, none takes a lock.

An exception raised from a signal handler lands wherever the main thread happens to be: between
a lock's acquisition and its `with` block (the lock is then never released, and a join waits
for ever), half-way through writing the cursor file, inside a library. So:

- `install()`, the first thing the program does, gives SIGINT, SIGTERM and SIGHUP handlers that
  only note the signal, and points `signal.set_wakeup_fd` at a pipe: a signal in the program's
  first moment is kept, never the default action (SIGHUP would end `listen` with 129).
- `listening(reload)` (listen, subscribe) starts a watcher thread that reads that pipe: SIGHUP
  calls `reload`; SIGINT and SIGTERM (and `hang_up()`, when stdout's reader goes away) *stop*:
  the flag is set, a second pipe wakes the main thread's waits (`wake_fd`, in select), a sleep
  (`sleep`) returns, and each hook of `on_stop` runs (the watchdog shuts the sockets of the
  steps under way, which makes their blocking reads fail at once).
- The main thread acts at its own safe points: `check()` raises Interrupted (exit 130, 143) or
  the hang-up's OutputClosed (exit 0) there, synchronously, between two events or when a wait
  returns. Clean-up then runs as for any other exit: the cursor saved, the socket closed.
- Every other command (send, whoami, serve...) gets the usual handlers back (`settle`), and a
  signal that came in its first moment is delivered again, as it would have been.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from functools import partial
from types import FrameType

from prismer_cli.errors import Interrupted

NOTED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOPPING = frozenset({signal.SIGINT, signal.SIGTERM})


class _State:
    installed = False
    listening = False
    stop: Callable[[], BaseException] | None = None  # what check() raises, once stopping
    delivered = False  # check() raised it: clean-up runs on, undisturbed
    noted: list[int] = []  # signals noted before the watcher ran (replayed by settle)
    reload: Callable[[], None] | None = None
    signal_r = -1  # set_wakeup_fd's pipe: the signal numbers, as bytes
    signal_w = -1
    wake_r = -1  # the main thread's waits select on this; written once, at the stop
    wake_w = -1
    stopped = threading.Event()
    on_stop: list[Callable[[], None]] = []


def _note(signum: int, frame: FrameType | None) -> None:
    """The handler of every noted signal: remember it. Nothing else (see the docstring)."""
    _State.noted.append(signum)


def install() -> None:
    """Note SIGINT, SIGTERM and SIGHUP from now on (the program's first step)."""
    if _State.installed or threading.current_thread() is not threading.main_thread():
        return
    read, write = os.pipe()
    for fd in (read, write):
        os.set_blocking(fd, fd == read)
        os.set_inheritable(fd, False)
    _State.signal_r, _State.signal_w = read, write
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    for signum in NOTED:
        signal.signal(signum, _note)
    _State.installed = True


def settle(listening: bool) -> None:
    """Once the command is known: listen keeps the flags (see `listening`); any other command
    gets the default handlers back, and a signal noted meanwhile is delivered again."""
    if not _State.installed or listening:
        return
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    for fd in (_State.signal_r, _State.signal_w):
        os.close(fd)
    _State.installed = False
    noted, _State.noted = _State.noted, []
    for signum in noted:
        signal.raise_signal(signum)


def listening(reload: Callable[[], None]) -> None:
    """listen: SIGHUP calls `reload` (from the watcher thread, never from a handler); SIGINT
    and SIGTERM stop the main thread at its next safe point."""
    if not _State.installed or _State.listening:
        return
    _State.reload = reload
    read, write = os.pipe()
    os.set_blocking(write, False)
    _State.wake_r, _State.wake_w = read, write
    _State.listening = True
    threading.Thread(target=_watch, name="prismer-rt-signals", daemon=True).start()


def _watch() -> None:
    """The watcher thread: act on each signal the wake-up pipe carries."""
    while True:
        try:
            data = os.read(_State.signal_r, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum == signal.SIGHUP:
                if _State.reload is not None:
                    _State.reload()
            elif signum in STOPPING:
                request_stop(partial(Interrupted, signum))


def request_stop(cause: Callable[[], BaseException]) -> None:
    """Stop the main thread at its next safe point with the exception `cause()` makes: wake
    its waits and cut the steps under way (callable from any thread, never from a handler)."""
    if _State.stop is None:  # the first cause wins; a second one only cuts the steps again
        _State.stop = cause
    _interrupt()


def hang_up(cause: Callable[[], BaseException]) -> None:
    """stdout's reader went away (output.close_on_hangup's watcher): stop with `cause`."""
    if _State.listening:
        request_stop(cause)


def _interrupt() -> None:
    _State.stopped.set()
    if _State.wake_w >= 0:
        with contextlib.suppress(OSError):  # full: it is readable already
            os.write(_State.wake_w, b"!")
    for hook in list(_State.on_stop):
        hook()


def on_stop(hook: Callable[[], None]) -> None:
    """Run `hook` (from the watcher thread) at each stop: it must be quick and take no lock
    that a blocked thread may hold."""
    _State.on_stop.append(hook)


def stopping() -> bool:
    return _State.stop is not None


def noting() -> bool:
    """Whether signals are noted as flags (listen), not handled the usual way."""
    return _State.installed


def check() -> None:
    """At a safe point of the main thread: raise the stop's exception, if one came, once; the
    clean-up that follows is not interrupted again (a second signal only cuts its steps)."""
    cause = _State.stop
    if cause is None or _State.delivered:
        return
    if threading.current_thread() is threading.main_thread():
        _State.delivered = True
        with contextlib.suppress(OSError):
            os.read(_State.wake_r, 64)  # waits that select on it wait again
        raise cause()


def delivered(cause: Callable[[], BaseException]) -> None:
    """`cause`'s exception was raised by other means (a write that found stdout's reader
    gone): check() is not to raise it a second time, in the clean-up."""
    if _State.stop is cause:
        _State.delivered = True


def wake_fd() -> int | None:
    """A descriptor that becomes readable at a stop, for the main thread's select(); None in
    other threads and commands (their waits end by their own means)."""
    if _State.listening and threading.current_thread() is threading.main_thread():
        return _State.wake_r
    return None


def sleep(seconds: float) -> None:
    """Sleep, but wake at a stop (and raise it, in the main thread)."""
    if _State.stopped.wait(max(0.0, seconds)):
        check()
