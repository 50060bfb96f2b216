"""The catch-up (durable.py): the stored events after the cursor, page after page, filtered
(filters.py) and de-duplicated (dedupe.py) as the live ones are.

The hot path of --no-follow and of a durable listen's start: one pass per page with everything
bound locally, no filter call when no filter is set; the lines of a page are written with one
write, then flushed, then the cursor follows (`page_done`).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from prismer_cli.errors import PrismerError
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.eventlog import SyncReader, envelope, seq_of, stored_key
from prismer_cli.listen.filters import Predicate
from prismer_cli.log import Log
from prismer_cli.output import Output


def catch_up(
    reader: SyncReader,
    cursor: int,
    out: Output,
    seen: RecentKeys,
    passes: Predicate | None,
    printed: int,
    count: int | None,
    mark: int | None,
    page_done: Callable[[int, int], None],
    one: Callable[[bytes, int], None] | None = None,
) -> bool:
    """Print the stored events after `cursor`; True when --count is reached.

    `page_done(cursor, printed)` follows each page, once its lines are flushed. `mark`: the log's
    head before the live connection opened (None: no live connection); the keys of what prints
    after it are held (RecentKeys.hold), since those events may also come live, however many
    there are. `one(line, seq)`, when given, takes each event instead, one at a time (a handler,
    hooks.Hand)."""
    is_seen, dumps, write = seen.seen, orjson.dumps, out.line
    limit = -1 if count is None else count
    for events in reader.after(cursor):
        if mark is not None and _last_seq(events) > mark:
            seen.hold()
            mark = None
        lines: list[bytes] = []
        add = lines.append
        done = False
        for event in events:
            frame = envelope(event)
            seq = frame["seq"]
            kind, payload = frame["type"], frame["payload"]
            if (
                passes is None or passes(kind, payload if type(payload) is dict else {}, frame)
            ) and not is_seen(stored_key(kind, payload)):
                if one is None:
                    add(dumps(frame))
                else:  # one at a time: the cursor passes each once it was accepted
                    one(dumps(frame), seq if type(seq) is int else cursor)
                printed += 1
                if printed == limit:
                    done = True
            if type(seq) is int:
                cursor = seq
            if done:
                break
        if lines:
            write(b"\n".join(lines))
        out.flush()
        page_done(cursor, printed)
        if done:
            return True
    return False


def _last_seq(events: list[dict[str, object]]) -> int:
    seq = events[-1].get("seq")
    return seq if type(seq) is int else 0


LOOK_BACK = 500  # log seqs before the start cursor whose messages are remembered as printed


def remember_passed(reader: SyncReader, start: int, seen: RecentKeys, log: Log) -> None:
    """Server dialect, once per run: the messages of the last LOOK_BACK seqs up to the start
    cursor count as printed. A send that repeats an idempotency key (a killed `send` run again)
    makes the server broadcast the stored message again, with a new ackId and no isRetry; a
    message the cursor passed in an earlier run would otherwise print again. A failure here
    costs nothing but that memory."""
    since = max(0, start - LOOK_BACK)
    if start <= since:
        return
    try:
        events = reader.page(since, start - since).events
    except PrismerError as exc:
        log.info(f"could not read the event log before the cursor: {exc}")
        return
    for event in events:
        frame = envelope(event)
        if frame["type"] == "message.new" and seq_of(frame) <= start:
            seen.seen(stored_key("message.new", frame["payload"]))
