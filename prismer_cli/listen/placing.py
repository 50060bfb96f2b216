"""The server dialect's live events in the log (durable.py): a live `message.new` carries no seq,
so the cursor after the live events printed is found by reading the log after the cursor, off the
live path (the saver thread), and once more at exit.
"""

from __future__ import annotations

from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.eventlog import SyncReader, envelope, seq_of, stored_key
from prismer_cli.listen.filters import Predicate
from prismer_cli.output import Output
from prismer_cli.protocol.endpoints import JSON


def place(
    reader: SyncReader,
    cursor: int,
    seen: RecentKeys,
    limit: int,
    passes: Predicate | None,
    out: Output | None,
) -> tuple[int, list[JSON]]:
    """The cursor after the live events printed before serial `limit` (the last flush), and the
    stored events owed.

    Stops at the first event that passes the filters and was not printed. An event the live
    stream skipped (one printed live follows it: the server logs it but does not push it, as
    conversation.create) is owed: returned, to be printed at the main thread's next flush, or
    printed now when `out` is given (at exit)."""
    gap: list[JSON] = []
    for events in reader.after(cursor):
        for event in events:
            frame = envelope(event)
            kind, payload = frame["type"], frame["payload"]
            if passes is not None and not passes(
                kind, payload if type(payload) is dict else {}, frame
            ):
                if not gap:
                    cursor = seq_of(frame)
                continue
            serial = seen.serial(stored_key(kind, payload))
            if serial is not None and serial < limit:
                if gap:
                    if out is None:
                        return cursor, gap
                    for owed in gap:
                        if not seen.seen(stored_key(owed["type"], owed["payload"])):
                            out.record(owed)
                    gap = []
                cursor = seq_of(frame)
            else:
                gap.append(frame)
    if out is not None:
        out.flush()
    return cursor, []
