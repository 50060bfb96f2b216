"""The docs dialect's live ids (durable.py): the SSE `id:` of each live event is its seq in the
log, and the stream leaves some logged events out (a direct message's conversation.create), so
seqs it skipped after the cursor are read from the log and printed as stored events.

On a busy server most skipped seqs are other users' events (the seqs are global), so a gap is
read at once only when the log was not read for a gap in the last GAP_INTERVAL; otherwise it
stays open, the live events go on printing, and one read covers everything skipped so far when
the interval has passed (at the next live event, or when the engine wakes for it: `wake_at`),
at most one look-up a second whatever the traffic. While a gap is open the cursor stays before
it, and the live seqs printed past it are remembered (`live`: a second of traffic at most), so
the read prints only what the stream skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.eventlog import PAGE, SyncReader, envelope, seq_of, stored_key
from prismer_cli.listen.filters import Predicate
from prismer_cli.output import Output

GAP_INTERVAL = 1.0  # at most one look-up of skipped seqs per interval on the live path


class Gaps:
    """The open gap, if any: the live seqs handled past the cursor, and when the log was read."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.live: set[int] = set()  # live seqs handled past the cursor while a gap is open
        self.until = 0  # the newest of them
        self._read_at: float | None = None

    def due(self) -> bool:
        """Whether the log may be read for a gap now."""
        return self._read_at is None or self._clock() >= self._read_at + GAP_INTERVAL

    def wait(self, seq: int) -> None:
        """Leave the gap open: the live event `seq` prints now, the skipped ones later."""
        self.live.add(seq)
        self.until = max(self.until, seq)

    def read(self) -> None:
        """The log was read for the open gap: it closes."""
        self._read_at = self._clock()
        self.live = set()
        self.until = 0

    def tried(self) -> None:
        """The log could not be read: the gap stays open, to be read again an interval on."""
        self._read_at = self._clock()

    def wake_at(self) -> float | None:
        """When an open gap is due to be read (time.monotonic), or None."""
        if not self.live or self._read_at is None:
            return None
        return self._read_at + GAP_INTERVAL


def fill(
    reader: SyncReader,
    cursor: int,
    until: int,
    skip: set[int],
    out: Output | None,
    seen: RecentKeys,
    passes: Predicate | None,
    printed: int,
    count: int | None,
    one: Callable[[bytes, int], None] | None = None,
) -> tuple[int, int, bool]:
    """Print the stored events after `cursor` and before seq `until` that pass the filters,
    but those in `skip` (printed live); (cursor, printed, --count reached). With no `out` (an
    exit after --count) nothing prints: the cursor stops before the first event owed. `one(line,
    seq)`, when given, prints each instead (a handler, hooks.Hand)."""
    since = cursor
    while since < until - 1:
        page = reader.page(since, min(PAGE, until - 1 - since))
        for event in page.events:
            frame = envelope(event)
            seq = seq_of(frame)
            if seq >= until or seq <= since:
                return until - 1, printed, False
            payload = frame["payload"]
            view = payload if type(payload) is dict else {}
            if seq not in skip and (passes is None or passes(frame["type"], view, frame)):
                key = stored_key(frame["type"], payload)
                if out is None:
                    if seen.serial(key) is None:
                        return since, printed, False  # owed: the cursor stays before it
                elif not seen.seen(key):
                    if one is None:
                        out.record(frame)
                    else:
                        one(orjson.dumps(frame), seq)
                    printed += 1
                    if printed == count:
                        return seq, printed, True
            since = seq
        if not page.events or not page.has_more:
            break
    return until - 1, printed, False
