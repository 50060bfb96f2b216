"""Connection failures told on stderr without -v, as curl and ssh do (docs/cli.md "listen").

The first failure is reported at once; while the command keeps trying, at most one more line
per interval, the interval doubling from 5 s to 5 minutes, so that a long outage neither
floods a log nor goes unnoticed. With -v every attempt is logged anyway; with -q nothing is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prismer_cli.log import Log

FIRST_INTERVAL = 5.0
MAX_INTERVAL = 300.0


class FailureReport:
    """The failures of one run of connection attempts, since the last success."""

    def __init__(self, log: Log, where: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.where = where
        self.reason = ""
        self._clock = clock
        self._attempts = 0
        self._started = 0.0
        self._next = 0.0
        self._interval = FIRST_INTERVAL

    def failed(self, reason: str) -> None:
        """Count a failed attempt; report it if it is the first, or the interval has passed."""
        now = self._clock()
        self.reason = reason
        self._attempts += 1
        if self._attempts == 1:
            self._started, self._next = now, now
        if now < self._next or self.log.verbosity != 0:
            return
        if self._attempts == 1:
            self.log.warning(f"cannot connect to {self.where}: {reason}; retrying")
        else:
            elapsed = now - self._started
            self.log.warning(
                f"still no connection to {self.where} after {self._attempts} attempts"
                f" in {elapsed:.0f} s: {reason}"
            )
        self._next = now + self._interval
        self._interval = min(MAX_INTERVAL, self._interval * 2)

    def succeeded(self) -> None:
        self._attempts = 0
        self._interval = FIRST_INTERVAL
