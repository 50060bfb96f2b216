"""When the cursor is saved (README "Cron and scripts"): at most four times a second while events
flow, off the live path (`Saver`, a thread), inline between the pages of a catch-up (`Pace`), and
at every exit (durable.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prismer_cli.errors import PrismerError
from prismer_cli.log import Log

SAVE_INTERVAL = 0.25  # at most this often while events flow; every exit saves too


class Pace:
    """At most one save per SAVE_INTERVAL, for the catch-up's pages (it holds the log)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next = clock() + SAVE_INTERVAL

    def due(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + SAVE_INTERVAL
        return True


class Saver(threading.Thread):
    """Saves the cursor off the live path: each poke asks for one more save, coalesced, and
    at most one save per SAVE_INTERVAL, so that the log look-up and the fsync do not compete
    with every event for the interpreter (bench: live latency with --cursor-file).

    A save that fails is said on stderr at once and kept in `failure`: the main thread raises it
    at its next flush (durable.py), so a run never goes on printing what it cannot record."""

    def __init__(self, work: Callable[[], None], log: Log) -> None:
        super().__init__(name="prismer-rt-cursor", daemon=True)
        self._work = work
        self._log = log
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._stopping = False
        self.failure: PrismerError | None = None

    def poke(self) -> None:
        self._wanted.set()

    def run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping:
                return
            self._wanted.clear()
            try:
                self._work()
            except PrismerError as exc:  # the cursor file cannot be written: exit 75 or 2
                self.failure = exc
                self._log.warning(str(exc))
                return
            self._stopped.wait(SAVE_INTERVAL)

    def stop(self, wait: float) -> None:
        """Ask the thread to end; wait for it `wait` s at most (its work is a save, or pages
        of the log, each ending by its own deadline, and cut at once by a stop)."""
        self._stopping = True
        self._stopped.set()
        self._wanted.set()
        self.join(wait)
