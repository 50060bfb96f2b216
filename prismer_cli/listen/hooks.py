"""The seam between the live engine (engine.py) and a mode that adds stored events to it (the
durable mode, durable.py), so that the dependency runs one way: the engine calls a `Stored`,
the durable mode implements it, and neither imports the other.

`Hand` is the other seam: the handlers of --forward-to and --exec (prismer_cli/handoff/), which
both the engine and the durable mode call with each event they print.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.output import Output
from prismer_cli.retry import Deadline
from prismer_cli.transport import Connection, Resume

# Called with each event's line once it is on stdout; returns once the handlers accepted it (or
# gave up on it), raises when the run must end first. Only after it returns may the cursor pass
# the event: the caller flushes (Stored.after_flush) then, one event at a time.
Hand = Callable[[bytes], None]


class Live(Protocol):
    """What a `Stored` reads of the running listen (engine.Listener) after each connect."""

    seen: RecentKeys  # the live keys, to print no stored event twice
    resume: Resume
    out: Output
    printed: int  # events printed so far; a `Stored` adds the stored events it prints

    @property
    def count(self) -> int | None:
        """--count, if given."""


# What live_id says of the live event about to be handled (docs dialect, durable.py).
GO, SKIP, DONE = 0, 1, 2  # print it as usual; the cursor has passed it; --count was reached


class Stored(Protocol):
    """Stored events around the live stream (--since, --cursor-file): the engine's hooks."""

    def start(self, deadline: Deadline) -> None:
        """Before anything connects; every request ends by the deadline (--timeout)."""

    def connected(self, live: Live, conn: Connection) -> bool:
        """After each authentication, before the live events; True when --count is reached.
        Raises ConnectError when the stored events cannot be read: a failed connection."""

    @property
    def drops_retried_messages(self) -> bool:
        """Whether a `message.new` the server sends again (isRetry) is one already handled."""

    def after_flush(self) -> None:
        """The output was flushed: everything handled so far is written (or filtered out)."""

    @property
    def live_ids(self) -> bool:
        """Whether `live_id` is to be called before each live event."""

    def live_id(self, printed: int, count: int | None) -> tuple[int, int]:
        """Before each live event: (printed, GO | SKIP | DONE), stored events printed first."""

    def wake_at(self) -> float | None:
        """When (time.monotonic) `woke` is due though no event came, or None."""

    def woke(self, printed: int, count: int | None) -> tuple[int, bool]:
        """At `wake_at`: (printed, --count reached), stored events printed."""

    def finish(self, out: Output | None, clean: bool) -> None:
        """At every exit; `clean`: stored events the live stream skipped may still be printed."""
