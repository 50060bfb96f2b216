"""--no-follow, the cron mode: the stored events after the cursor, then exit (durable.py)."""

from __future__ import annotations

from prismer_cli.errors import ExitStatus
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.durable import Durable
from prismer_cli.output import Output
from prismer_cli.retry import Deadline


def no_follow(durable: Durable, out: Output, count: int | None, deadline: Deadline) -> ExitStatus:
    """--no-follow: print the stored events after the cursor and exit: 0, or 124 when --count
    was given and not reached (the cron mode)."""
    durable.start(deadline)
    clean = False
    try:
        _, done = durable.catch_up(out, RecentKeys(), 0, count, None)
        if not done:
            durable._caught_up(out)
        clean = True
    finally:
        durable.finish(out, clean)
    return ExitStatus.TIMEOUT if count is not None and not done else ExitStatus.OK
