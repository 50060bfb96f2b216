"""Reconnection policy: exponential backoff with jitter, a cap, and a bound on retries.

Delays start at `initial` (1 s), double up to `cap` (30 s), and are drawn in [d/2, d] ("equal
jitter"): clients restarted together spread out, and below the cap the shortest next delay is
the longest previous one, so the delays still grow. A server's Retry-After is a floor.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    initial: float = 1.0
    cap: float = 30.0
    max_retries: int | None = None  # None: retry for ever; 0: never

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The delay before retry number `retry` (1-based)."""
        ceiling = min(self.cap, self.initial * 2.0 ** min(retry - 1, 32))
        return ceiling / 2 + rand() * ceiling / 2

    def allows(self, retry: int) -> bool:
        return self.max_retries is None or retry <= self.max_retries


def wait_for(delay: float, retry_after: float | None, max_wait: float = 300.0) -> float:
    """The delay to sleep: the backoff, or the server's Retry-After if longer (bounded)."""
    if retry_after is None:
        return delay
    return max(delay, min(retry_after, max_wait))
