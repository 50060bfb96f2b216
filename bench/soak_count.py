"""The soak test's counts, by message id: what the producer sent, what the server stored, what
the durable listener printed run after run, and which of those are losses or repeats.

A message printed again by a later run is allowed only if every run since the one that printed
it first ended by SIGKILL, and only if it comes after the cursor the new run started from (it
was printed after the last save of a killed run: at least once, as documented). Any other
repeat counts: after a SIGTERM or an exit of its own (the cursor is saved then), before the
cursor, or within one run.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from soak_listener import Run

PREFIX = "soak-"


def printed(run: Run) -> list[str]:
    """The soak messages a run printed, by message id, in order (a cut last line is skipped)."""
    return [mid for mid, _ in printed_as(run)]


def printed_as(run: Run) -> list[tuple[str, str]]:
    """(message id, how it came) of each soak message a run printed: "stored" (from the event
    log: it has a seq), "isRetry" (a live re-delivery of a frame not acknowledged in time) or
    "live" (a live frame: the first broadcast, or the broadcast again of an idempotent
    re-send)."""
    ids: list[tuple[str, str]] = []
    try:
        data = run.out.read_bytes()
    except OSError:
        return ids
    for raw in data.splitlines():
        try:
            frame = json.loads(raw)
        except ValueError:
            continue
        payload = frame.get("payload") if isinstance(frame, dict) else None
        if (
            frame.get("type") == "message.new"
            and isinstance(payload, dict)
            and str(payload.get("content", "")).startswith(PREFIX)
        ):
            how = "stored" if "seq" in frame else "isRetry" if frame.get("isRetry") else "live"
            ids.append((str(payload.get("id")), how))
    return ids


@dataclass
class Counts:
    produced: int = 0
    stored: int = 0
    printed: int = 0
    not_stored: int = 0  # produced, never stored
    not_printed: int = 0  # stored, never printed
    posted_twice: int = 0  # stored again under an idempotency key already stored
    twice_after_kill: int = 0  # allowed: after a SIGKILL, since the last save
    twice_after_term: int = 0  # after a SIGTERM, an exit of its own, or before the cursor
    twice_in_run: int = 0
    twice_as: Counter[str] = field(default_factory=Counter)  # how the repeats that count came
    cursor_past_unprinted: int = 0  # a run ended with its cursor past a message never printed
    cursor_invalid: int = 0
    hung: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.not_stored + self.not_printed

    def must_be_zero(self) -> dict[str, int]:
        return {
            "lost": self.lost,
            "posted twice": self.posted_twice,
            "printed twice after SIGTERM (or within a run, or before the cursor)": (
                self.twice_after_term + self.twice_in_run
            ),
            "cursor saved past an unprinted message": self.cursor_past_unprinted,
            "cursor file invalid after a run": self.cursor_invalid,
            "listener hung after SIGTERM": self.hung,
        }

    def example(self, what: str, item: str) -> None:
        items = self.examples.setdefault(what, [])
        if len(items) < 5:
            items.append(item)


def count(
    produced: list[str], stored: list[dict[str, Any]], seqs: dict[str, int], runs: list[Run]
) -> Counts:
    c = Counts(produced=len(set(produced)))
    ours = [m for m in stored if str(m.get("content", "")).startswith(PREFIX)]
    stored_ids = {str(m["id"]) for m in ours}
    c.stored = len(stored_ids)
    keys = Counter(
        (m.get("metadata") or {}).get("_idempotencyKey") or f"content:{m['content']}" for m in ours
    )
    c.posted_twice = sum(n - 1 for n in keys.values() if n > 1)
    for key, n in keys.items():
        if n > 1:
            c.example("posted twice", str(key))
    for content in sorted(set(produced) - {str(m["content"]) for m in ours}):
        c.not_stored += 1
        c.example("not stored", content)
    past: set[str] = set()
    first_run: dict[str, int] = {}  # message id -> index of the run that first printed it
    for position, run in enumerate(runs):
        before = runs[position - 1] if position else None
        in_this_run: set[str] = set()
        for mid, how in printed_as(run):
            if mid in in_this_run:
                c.twice_in_run += 1
                c.twice_as[how] += 1
                c.example("printed twice within a run", f"{mid} (run {run.index})")
                continue
            in_this_run.add(mid)
            if mid not in first_run:
                first_run[mid] = run.index
                continue
            seq = seqs.get(mid, 0)
            after_cursor = run.cursor_start is None or seq > run.cursor_start
            killed = all(r.ended_by == "SIGKILL" for r in runs[first_run[mid] - 1 : position])
            if killed and after_cursor:
                c.twice_after_kill += 1
            else:
                c.twice_after_term += 1
                c.twice_as[how] += 1
                end = before.ended_by if before is not None else "?"
                c.example("printed twice", f"{mid} seq {seq}, {how} (run {run.index} after {end})")
        if run.cursor_end is not None:
            beyond = [
                mid
                for mid, seq in seqs.items()
                if seq <= run.cursor_end and mid in stored_ids and mid not in first_run
            ]
            for mid in sorted(set(beyond) - past):
                c.example("cursor past an unprinted message", f"{mid} (run {run.index})")
            past.update(beyond)
        c.cursor_invalid += not run.cursor_valid
        c.hung += run.hung
    c.cursor_past_unprinted = len(past)
    c.printed = len(first_run)
    for mid in sorted(stored_ids - set(first_run)):
        c.not_printed += 1
        c.example("stored, never printed", f"{mid} seq {seqs.get(mid)}")
    return c
