"""The one retry mechanism of listen, the sender and the REST client.

- `delays` yields the backoff: delays start at `initial` (1 s), double up to `cap` (30 s), and
  are drawn in [d/2, d] ("equal jitter"): clients restarted together spread out, and below the
  cap the shortest next delay is the longest previous one, so the delays still grow.
- `retryable` is the one decision: a TransportError (could not connect, connection lost, 5xx,
  429) is worth another attempt; a refused token or a rejected command never is.
- `Retries` counts one loop's consecutive failures against its bound and gives the delay before
  the next attempt, with a server's Retry-After as a floor.
- `Deadline` is one monotonic deadline (--timeout, or one connection attempt's bound) that
  every wait of a command is cut to, so that no timeout of a library can overrun it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prismer_cli import signals
from prismer_cli.errors import ConnectError, TransportError
from prismer_cli.records import Frozen
from prismer_cli.tuning import Backoff

MAX_RETRY_AFTER = 300.0  # a longer Retry-After is not waited for in full


def delays(backoff: Backoff, rand: Callable[[], float] | None = None) -> Iterator[float]:
    """The delays before retry 1, 2, 3 ... for ever (random.random for the jitter by default,
    imported at the first retry: most runs make none)."""
    if rand is None:
        import random

        rand = random.random
    ceiling = min(backoff.cap, backoff.initial)
    while True:
        yield ceiling / 2 + rand() * ceiling / 2
        ceiling = min(backoff.cap, ceiling * 2)


def floor(delay: float, retry_after: float | None, max_wait: float = MAX_RETRY_AFTER) -> float:
    """The delay to sleep: the backoff, or the server's Retry-After if longer (bounded)."""
    if retry_after is None:
        return delay
    return max(delay, min(retry_after, max_wait))


def retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed where this one failed."""
    return isinstance(exc, TransportError)


def retry_after_of(exc: BaseException) -> float | None:
    """The server's Retry-After carried by a failed attempt, if any."""
    return exc.retry_after if isinstance(exc, ConnectError) else None


class Policy(Frozen):
    """How a loop retries: the backoff, and how many consecutive retries it may make."""

    backoff: Backoff
    max_retries: int | None  # None: retry for ever; 0: never
    give_up_after: float | None  # seconds from an operation's first attempt; None: never

    def __init__(
        self,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
        give_up_after: float | None = None,
    ) -> None:
        backoff = Backoff() if backoff is None else backoff
        self._init(locals())

    def allows(self, retry: int) -> bool:
        return self.max_retries is None or retry <= self.max_retries


class Retries:
    """One loop's consecutive failures: `failed()` counts one, `succeeded()` starts over."""

    def __init__(self, policy: Policy, rand: Callable[[], float] | None = None) -> None:
        self.policy = policy
        self._rand = rand
        self.count = 0  # failures since the last success: the coming attempt is retry `count`
        self._delays = delays(policy.backoff, rand)

    def failed(self) -> bool:
        """Count a failure; False when the policy allows no further retry."""
        self.count += 1
        return self.policy.allows(self.count)

    def delay(self, retry_after: float | None = None, instead: float | None = None) -> float:
        """The delay before the coming retry: the backoff or `instead`; Retry-After is a floor."""
        backoff = next(self._delays)
        return floor(backoff if instead is None else instead, retry_after)

    def succeeded(self) -> None:
        self.count = 0
        self._delays = delays(self.policy.backoff, self._rand)


MIN_WAIT = 0.05  # the shortest wait a cut timeout is given: a socket timeout of 0 means "never"


class Deadline:
    """A monotonic deadline, or none; every wait of a command is cut to what is left of it."""

    def __init__(
        self,
        seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        at: float | None = None,
    ) -> None:
        self._clock = clock
        self.at = at if seconds is None else clock() + seconds

    def left(self) -> float | None:
        return None if self.at is None else self.at - self._clock()

    def expired(self) -> bool:
        return self.at is not None and self._clock() >= self.at

    def within(self, seconds: float | None) -> Deadline:
        """The sooner of this deadline and `seconds` from now."""
        if seconds is None:
            return self
        at = self._clock() + seconds
        return Deadline(clock=self._clock, at=at if self.at is None else min(self.at, at))

    def cut(self, seconds: float) -> float:
        """A timeout of `seconds`, shortened so that it ends by the deadline."""
        left = self.left()
        return seconds if left is None else max(MIN_WAIT, min(seconds, left))

    def sleep(self, delay: float) -> bool:
        """Sleep, but not past the deadline; False if the deadline came first. A stop
        (SIGINT, SIGTERM in listen: signals.py) ends it and is raised."""
        if self.at is not None and self._clock() + delay >= self.at:
            signals.sleep(max(0.0, self.at - self._clock()))
            return False
        signals.sleep(delay)
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Deadline) and other.at == self.at

    def __hash__(self) -> int:
        return hash(self.at)
