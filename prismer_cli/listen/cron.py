"""--no-follow, the cron mode: the stored events after the cursor, then exit (durable.py)."""

from __future__ import annotations

from prismer_cli.errors import ConnectError, ExitStatus
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.durable import Durable
from prismer_cli.output import Output
from prismer_cli.retry import Deadline


def no_follow(durable: Durable, out: Output, count: int | None, deadline: Deadline) -> ExitStatus:
    """--no-follow: print the stored events after the cursor and exit: 0, or 124 when --count
    was given and not reached (the cron mode). --timeout during the reading ends it as it ends
    a live listen, with the cursor where the reading got to."""
    durable.start(deadline)
    clean = False
    try:
        try:
            done = durable.catch_up(out, RecentKeys(), 0, count, None)
        except ConnectError:
            if not deadline.expired():
                raise
            durable.log.info("--timeout came before the end of the event log")
            done = False
        else:
            if not done:
                durable._caught_up(out)
        clean = True
    finally:
        durable.finish(out, clean)
    return ExitStatus.TIMEOUT if count is not None and not done else ExitStatus.OK
