"""What listen prints for a batch of frames: the hot loop of `Listener._pump` (engine.py).

A batch is every frame one receive brought (Connection.batches), so the loop runs once per
frame with its names bound once per batch, and the batch's lines are written with one call:
one orjson.loads per frame (to filter, de-duplicate and acknowledge), the frame's own bytes
printed unchanged (README "Design notes").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.listen.filters import Predicate
from prismer_cli.log import Log
from prismer_cli.protocol.dialects import Dialect, answers_us, error_message, eviction
from prismer_cli.transport.base import Resume

# (batch, printed so far) -> printed so far, counting the batch's printed lines
PrintBatch = Callable[[list[bytes], int], int]


def batch_printer(
    dialect: Dialect,
    *,
    log: Log,
    resume: Resume,
    passes: Predicate | None,
    seen: RecentKeys,
    ack: Callable[[str], None],
    stale_retries: bool,
    write: Callable[[bytes], None],
    hand: Callable[[bytes], None] | None,
    show: Callable[[], None],
    flush: Callable[[], None],
    on_error: Callable[[dict[str, Any]], None],
    count: int | None,
) -> PrintBatch:
    """The function that prints a batch of frames: each new event that passes the filters, on
    stdout (`write`: several lines at once), then handed on (`hand`: --forward-to, --exec; each
    line shown, handed, then flushed). It acknowledges and de-duplicates each frame it reads,
    and reads none after the one that reaches --count. `on_error` takes an error frame about a
    command of ours or the connection (said on stderr; a human view shows it)."""
    loads, decode_error, dumps = orjson.loads, orjson.JSONDecodeError, orjson.dumps
    consumed, error_type = dialect.consumed, dialect.error_type
    dedupe_key, is_seen = dialect.dedupe_key, seen.seen
    ack_field, time_field = dialect.ack_field, dialect.time_field
    retry_field = dialect.retry_field

    def emit(lines: list[bytes], printed: int) -> int:
        text = b"\n".join(lines)
        if text.count(b"\n") >= len(lines):  # a frame on several lines: printed on one
            lines = [dumps(loads(line)) if b"\n" in line else line for line in lines]
            text = b"\n".join(lines)
        if hand is None:
            write(text)
            return printed + len(lines)
        for line in lines:  # on stdout, handed on, and once it was accepted
            write(line)
            show()  # the flush that lets the cursor pass it
            hand(line)
            flush()
        return printed + len(lines)

    def print_batch(batch: list[bytes], printed: int) -> int:
        lines: list[bytes] = []
        append = lines.append
        room = -1 if count is None else max(1, count - printed)  # lines before --count
        payload: Any
        for data in batch:
            try:
                frame = loads(data)
            except decode_error:
                frame = None
            if type(frame) is not dict:
                log.warning(f"skipped a frame that is not a JSON object: {preview(data)}")
                continue
            kind, payload = frame.get("type"), frame.get("payload")
            bare = type(payload) is not dict  # no payload: not an event (the eviction frame)
            if type(kind) is not str or bare:
                frame, payload, data = _normalise(frame, log)
                if frame is None:
                    continue
                kind = frame["type"]
            if kind in consumed:
                continue
            if kind == error_type and (bare or answers_us(frame) or eviction(error_message(frame))):
                if lines:  # the lines before it first: a human view shows it on stdout
                    printed = emit(lines, printed)  # `room` counted them as appended
                    lines = []
                    append = lines.append
                on_error(frame)
                continue
            ack_id = frame.get(ack_field)
            if ack_id is not None:
                ack(ack_id)
                if stale_retries and kind == "message.new" and frame.get(retry_field) is True:
                    continue  # the log gave this message already (durable.py)
            if is_seen(dedupe_key(kind, payload, frame)):
                continue
            stamp = frame.get(time_field)
            if stamp is not None:
                resume.last_event_time = stamp
            if passes is not None and not passes(kind, payload, frame):
                continue
            append(data)
            room -= 1
            if not room:
                break
        return emit(lines, printed) if lines else printed

    return print_batch


def _normalise(frame: dict[str, Any], log: Log) -> tuple[Any, Any, bytes]:
    """Give a frame the contract's keys: `type` must be a string, `payload` is added if absent."""
    if type(frame.get("type")) is not str:
        log.warning(f"skipped a frame without a string 'type': {preview(orjson.dumps(frame))}")
        return None, None, b""
    if "payload" not in frame:
        frame["payload"] = {}
    payload = frame["payload"]
    return frame, payload if type(payload) is dict else {}, orjson.dumps(frame)


def preview(data: bytes, limit: int = 80) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > limit else ""))
