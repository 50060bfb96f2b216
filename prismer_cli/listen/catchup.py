"""The catch-up (durable.py): the stored events after the cursor, page after page, filtered
(filters.py) and de-duplicated (dedupe.py) as the live ones are.

The hot path of --no-follow and of a durable listen's start: one pass per page with everything
bound locally, no filter call when no filter is set; the lines of a page are written with one
write, then flushed, then the cursor follows (`page_done`).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable
from itertools import compress, repeat
from operator import itemgetter, setitem

import orjson

from prismer_cli.errors import PrismerError
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.eventlog import SyncReader, envelope, seq_of, stored_key
from prismer_cli.listen.filters import Predicate
from prismer_cli.listen.prefetch import read_ahead
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.protocol.endpoints import JSON


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
    log: Log | None = None,
) -> bool:
    """Print the stored events after `cursor`; True when --count is reached.

    `page_done(cursor, printed)` follows each page, once its lines are flushed. `mark`: the log's
    head before the live connection opened (None: no live connection); the keys of what prints
    after it are held (RecentKeys.hold), since those events may also come live, however many
    there are. `one(line, seq)`, when given, takes each event instead, one at a time (a handler,
    hooks.Hand). The pages are read one ahead (prefetch.py), which ends before this returns,
    whatever ends it."""
    write, limit = out.line, -1 if count is None else count
    pages = read_ahead(reader, cursor, log or Log())
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], COLLECT_EVERY), *thresholds[1:])
    try:
        for events in pages:
            if mark is not None and _last_seq(events) > mark:
                seen.hold()
                mark = None
            if passes is None and one is None and (limit < 0 or printed + len(events) < limit):
                lines, shown, cursor = _plain_page(events, seen, cursor)
                done = False
            else:
                lines, shown, cursor, done = _page(
                    events, seen, passes, cursor, one, limit - printed
                )
            printed += shown
            if lines:
                write(lines)
            out.flush()
            page_done(cursor, printed)
            if done:
                return True
        return False
    finally:
        gc.set_threshold(*thresholds)
        pages.close()


COLLECT_EVERY = 20_000  # container allocations between two young collections, in a catch-up
# (the interpreter's 700 means several collections a page, each walking the page's thousands of
# young objects; what a page allocates has no cycles and is freed as it goes: memory is the same)


def _plain_page(events: list[JSON], seen: RecentKeys, cursor: int) -> tuple[bytes, int, int]:
    """A page with no filter, no handler and --count not within reach: (lines, printed, cursor).
    A page of plain messages (the log's usual page) is done in bulk (`_messages`), any other
    one event at a time."""
    done = _messages(events, seen, cursor)
    if done is not None:
        return done
    lines, printed, cursor, _ = _page(events, seen, None, cursor, None, -1)
    return lines, printed, cursor


NO_METADATA = orjson.Fragment(b"{}")  # the log's "{}", printed as the object it stands for
_fields = itemgetter("seq", "conversationId", "at")
_data, _type, _metadata, _id = (itemgetter(name) for name in ("data", "type", "metadata", "id"))


def _messages(events: list[JSON], seen: RecentKeys, cursor: int) -> tuple[bytes, int, int] | None:
    """The same lines, printed count and cursor as `_page`, for a page whose every record is a
    message.new with seq, conversationId, at, and data an object with a string id and the
    metadata `"{}"`; None for any other page (nothing done). Each such record's envelope is
    {"type", "payload": data with metadata {}, "seq", "conversationId", "at"}, its key the
    message id: checked and built per field over the whole page (map, count), then each line
    made by one dict and one dumps."""
    count = len(events)
    try:
        datas = list(map(_data, events))
        fields = list(map(_fields, events))
        if list(map(_type, events)).count("message.new") != count or set(map(type, datas)) != {
            dict
        }:
            return None
        if list(map(_metadata, datas)).count("{}") != count:
            return None
        keys = list(map(_id, datas))
    except KeyError:
        return None
    if set(map(type, keys)) != {str}:
        return None
    deque(map(setitem, datas, repeat("metadata"), repeat(NO_METADATA, count)), maxlen=0)
    for seq, _, _ in reversed(fields):
        if type(seq) is int:
            cursor = seq
            break
    new = seen.news(keys)
    pairs = zip(fields, datas, strict=True)
    if new is not None:
        pairs = compress(pairs, new)  # type: ignore[assignment]
    dumps = orjson.dumps
    lines = [
        dumps({"type": "message.new", "payload": data, "seq": seq, "conversationId": c, "at": at})
        for (seq, c, at), data in pairs
    ]
    return b"\n".join(lines), len(lines), cursor


def _page(
    events: list[JSON],
    seen: RecentKeys,
    passes: Predicate | None,
    cursor: int,
    one: Callable[[bytes, int], None] | None,
    left: int,
) -> tuple[bytes, int, int, bool]:
    """Any page, one event at a time: (lines, printed, cursor, --count reached). `left`: how
    many more may print (negative: no --count)."""
    is_seen, dumps = seen.seen, orjson.dumps
    lines: list[bytes] = []
    add = lines.append
    printed, done = 0, False
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
            if printed == left:
                done = True
        if type(seq) is int:
            cursor = seq
        if done:
            break
    return b"\n".join(lines), printed, cursor, done


def _last_seq(events: list[JSON]) -> int:
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
