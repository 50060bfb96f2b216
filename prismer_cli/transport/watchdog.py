"""Deadlines for whole steps, which a server that trickles bytes cannot defeat.

A socket timeout bounds each read, not a step: a server that sends one byte every 2 s never
trips a 10 s read timeout, and an HTTP answer or a WebSocket handshake read that way takes as
long as the server likes. So each step that a library performs for us (TCP connect, TLS, the
WebSocket upgrade and authentication, each REST call, each page of the event log) runs inside
`Watch.step`: every socket created while it runs, in whatever library (websocket-client,
requests, urllib3, ssl), is adopted by the Watch (an audit hook sees each socket as it is
made), and one watchdog thread shuts those sockets down when the step's deadline passes. The
blocked read then fails at once, and the step raises StepTimeout, a ConnectError (exit 4 once
the command gives up) saying which step and how long.

A Watch outlives its steps: a keep-alive session's socket, adopted by the step that opened it,
is shut by a later step of the same Watch too. `arm`/`disarm` bound a stretch that opens no
socket (an SSE stream read until --timeout). Nothing here runs per frame or per read: a step
costs two lock operations and a heap entry.

A stop (SIGINT, SIGTERM, stdout's reader gone: prismer_cli/signals.py) cuts every step under way
the same way, at once: in the main thread the step then raises the stop's exception (Interrupted,
OutputClosed), in another thread a ConnectError that its loop already handles.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from prismer_cli import signals
from prismer_cli.errors import ConnectError


class StepTimeout(ConnectError):
    """A step did not finish by its deadline (the server answers too slowly, or not at all)."""


_local = threading.local()  # .watch: the Watch whose step this thread is running
_hooked = False
_hook_lock = threading.Lock()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Adopt each socket made while a step runs (installed once, on the first Watch)."""
    if event == "socket.__new__":
        watch = getattr(_local, "watch", None)
        if watch is not None:
            watch.adopt(args[0])


def _install_hook() -> None:
    global _hooked
    with _hook_lock:
        if not _hooked:
            sys.addaudithook(_audit)
            _hooked = True


_armed: weakref.WeakSet[Watch] = weakref.WeakSet()  # the watches of the steps under way
_armed_lock = threading.Lock()


def _interrupt_all() -> None:
    """A stop: cut every step under way (signals.on_stop, from the signal watcher thread)."""
    with _armed_lock:
        watches = list(_armed)
    for watch in watches:
        watch.interrupt()


signals.on_stop(_interrupt_all)
DEADLINE, STOP, WAKE = "deadline", "stop", "wake"


class Watch:
    """The sockets of one connection or one HTTP session, and the deadline of its current step."""

    def __init__(self) -> None:
        _install_hook()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._armed: int | None = None  # the serial of the current arming; None: disarmed
        self._on = False  # a step (or stretch) is under way
        self.fired: str | None = None  # why the current (or last) one was cut: DEADLINE, STOP

    def adopt(self, sock: socket.socket) -> None:
        with contextlib.suppress(TypeError):  # a socket type without weak references
            self._sockets.add(sock)

    def arm(self, at: float | None) -> None:
        """Shut the sockets down at the monotonic time `at` (None: never), or at a stop,
        unless disarmed first. A stop that came before is raised here (main thread)."""
        signals.check()
        with self._lock:
            self.fired = None
            self._on = True
            self._armed = None
            if at is not None:
                self._armed = _dog.watch(at, self)
        with _armed_lock:
            _armed.add(self)

    def disarm(self) -> str | None:
        """Stop watching; why the sockets were shut down meanwhile (DEADLINE, STOP), or None."""
        with _armed_lock:
            _armed.discard(self)
        with self._lock:
            self._armed = None
            self._on = False
            return self.fired

    def fire(self, serial: int) -> None:
        """The watchdog's call at a deadline: shut every socket down, if still armed."""
        self._shut(DEADLINE, serial)

    def interrupt(self) -> None:
        """A stop: shut every socket down, if a step is under way."""
        self._shut(STOP)

    def wake(self) -> None:
        """End the stretch under way as its deadline would (the sockets shut down), now."""
        self._shut(WAKE)

    def _shut(self, why: str, serial: int | None = None) -> None:
        with self._lock:
            if not self._on if serial is None else self._armed != serial:
                return
            self._armed = None
            self.fired = why
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # detached (wrapped by TLS), closed, unconnected
                # socket.socket's own shutdown, not SSLSocket's, which would drop its TLS
                # state under the thread that is reading: the descriptor is all that must go.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    @contextlib.contextmanager
    def step(self, at: float | None, what: str, seconds: float | None = None) -> Iterator[None]:
        """Run a step that must end by `at` (monotonic; None: no deadline); the sockets it
        opens are adopted. Raises StepTimeout ("timed out: WHAT took more than S s") if it did not,
        whatever the library said when its socket was shut."""
        if seconds is None and at is not None:
            seconds = max(0.0, at - time.monotonic())
        self.arm(at)
        previous = getattr(_local, "watch", None)
        _local.watch = self
        try:
            yield
        except Exception:
            cut = self.disarm()
            if cut is not None:
                raise self._cut(cut, what, seconds) from None
            raise
        else:
            cut = self.disarm()
            if cut is not None:
                raise self._cut(cut, what, seconds)
        finally:
            _local.watch = previous

    @classmethod
    def _cut(cls, why: str, what: str, seconds: float | None) -> Exception:
        if why == STOP:
            signals.check()  # the main thread: the stop's own exception
            return ConnectError(f"{what} was cut short: the program is stopping")
        return cls._timeout(what, seconds)

    @staticmethod
    def _timeout(what: str, seconds: float | None) -> StepTimeout:
        took = f"took more than {seconds:.1f} s" if seconds is not None else "was cut short"
        slow = "the server answers too slowly, or not at all"
        return StepTimeout(f"timed out: {what} {took} ({slow})")


class _Watchdog:
    """One daemon thread that fires each armed Watch whose deadline has passed."""

    def __init__(self) -> None:
        self._ready = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, Watch]] = []
        self._serials = itertools.count(1)
        self._thread: threading.Thread | None = None

    def watch(self, at: float, watch: Watch) -> int:
        with self._ready:
            serial = next(self._serials)
            heapq.heappush(self._due, (at, serial, watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="prismer-rt-watchdog")
                self._thread.daemon = True
                self._thread.start()
            elif self._due[0][1] == serial:
                self._ready.notify()  # sooner than what the thread waits for
            return serial

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._due:
                    self._ready.wait()
                at, serial, watch = self._due[0]
                left = at - time.monotonic()
                if left > 0:
                    self._ready.wait(left)
                    continue
                heapq.heappop(self._due)
            watch.fire(serial)


_dog = _Watchdog()
