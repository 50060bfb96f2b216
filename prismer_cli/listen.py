"""listen and subscribe: one event a line on stdout, for as long as it takes, across reconnects.

The loop in `_pump` is the hot path (README "Design notes"): one orjson.loads per frame, the
frame's own bytes written back unchanged, acks batched and sent once the output is flushed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from prismer_cli.backoff import Policy, wait_for
from prismer_cli.dedupe import RecentKeys
from prismer_cli.errors import ConnectError, ConnectionLost, ExitStatus, TransportError
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.protocol.dialects import REQUEST_PREFIX, answers_us, error_message
from prismer_cli.transport import Connection, Endpoint, Resume, open_connection

META = "prismer-rt."  # --meta records: prismer-rt.connected, .reconnecting, .disconnected


@dataclass(frozen=True)
class Filters:
    types: frozenset[str] = frozenset()
    conversations: frozenset[str] = frozenset()
    ignore_self: bool = False


@dataclass(frozen=True)
class ListenOptions:
    filters: Filters = field(default_factory=Filters)
    subscribe: tuple[str, ...] = ()
    count: int | None = None
    timeout: float | None = None
    policy: Policy = field(default_factory=Policy)
    meta: bool = False


@dataclass
class _Progress:
    printed: int = 0
    connections: int = 0


class _Done(Exception):
    """--count reached."""


def listen(endpoint: Endpoint, options: ListenOptions, out: Output, log: Log) -> ExitStatus:
    """Stream events until --count or --timeout; reconnect as the policy allows."""
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    resume = Resume()
    progress = _Progress()
    seen = RecentKeys()
    retry, reason, retry_after = 0, "", None
    while True:
        if retry:
            if not options.policy.allows(retry):
                raise TransportError(_give_up(retry, reason))
            delay = _delay(options.policy, retry, resume, retry_after)
            log.info(f"reconnecting in {delay:.1f} s (attempt {retry + 1}): {reason}")
            _meta(
                out,
                options,
                "reconnecting",
                attempt=retry + 1,
                delay=round(delay, 3),
                reason=reason,
            )
            if not _sleep(delay, deadline):
                return _timed_out(options, progress)
        retry_after = None
        try:
            conn = open_connection(_within(endpoint, deadline), resume, log)
        except ConnectError as exc:
            retry, reason, retry_after = retry + 1, str(exc), exc.retry_after
            continue
        retry = 0
        try:
            _announce(conn, options, out, log, progress, resume, endpoint)
            _pump(conn, options, out, log, seen, progress, resume, deadline)
        except _Done:
            return ExitStatus.OK
        except ConnectionLost as exc:
            retry, reason = 1, str(exc)
            log.info(f"connection lost: {exc}")
            _meta(out, options, "disconnected", reason=reason)
            continue
        finally:
            conn.close()
        return _timed_out(options, progress)


def _within(endpoint: Endpoint, deadline: float | None) -> Endpoint:
    """The endpoint with its waits (connect, auth, an SSE answer) cut short by --timeout."""
    if deadline is None:
        return endpoint
    left = max(0.1, deadline - time.monotonic())
    t = endpoint.timeouts
    bounded = replace(
        t,
        connect=min(t.connect, left),
        auth=min(t.auth, left),
        sse_silence=min(t.sse_silence, left),
    )
    return endpoint if bounded == t else replace(endpoint, timeouts=bounded)


def _give_up(retry: int, reason: str) -> str:
    if retry == 1:
        return f"{reason} (reconnecting is off)"
    return f"giving up after {retry - 1} retries: {reason}"


def _delay(policy: Policy, retry: int, resume: Resume, retry_after: float | None) -> float:
    delay = policy.delay(retry)
    if retry == 1 and resume.retry_ms is not None:  # only an SSE stream sets it
        delay = resume.retry_ms / 1000  # the stream's own retry: field, as EventSource does
    return wait_for(delay, retry_after)


def _sleep(delay: float, deadline: float | None) -> bool:
    """Sleep, but not past the deadline; False if the deadline came first."""
    if deadline is not None and time.monotonic() + delay >= deadline:
        time.sleep(max(0.0, deadline - time.monotonic()))
        return False
    time.sleep(delay)
    return True


def _timed_out(options: ListenOptions, progress: _Progress) -> ExitStatus:
    if options.count is not None and progress.printed < options.count:
        return ExitStatus.TIMEOUT
    return ExitStatus.OK


def _meta(out: Output, options: ListenOptions, kind: str, **payload: Any) -> None:
    if options.meta:
        out.record({"type": META + kind, "payload": payload})
        out.flush()


def _announce(
    conn: Connection,
    options: ListenOptions,
    out: Output,
    log: Log,
    progress: _Progress,
    resume: Resume,
    endpoint: Endpoint,
) -> None:
    """After each authentication: subscriptions first, then the server dialect's reconnect."""
    progress.connections += 1
    dialect = conn.hello.dialect
    log.info(f"connected over {conn.kind}, {dialect.name} dialect")
    _meta(
        out,
        options,
        "connected",
        transport=conn.kind,
        dialect=dialect.name,
        userId=conn.hello.user_id,
        connection=progress.connections,
    )
    if options.subscribe and conn.kind == "sse":
        log.info("an SSE stream cannot subscribe; the conversations only filter the events")
    if conn.kind == "ws":
        frames = [
            dialect.subscribe(c, f"{REQUEST_PREFIX}sub-{i}")
            for i, c in enumerate(options.subscribe, 1)
        ]
        if progress.connections > 1:
            again = dialect.reconnect(resume.last_event_time)
            if again is not None:
                frames.append(again)
        for frame in frames:
            conn.send(frame)
    if options.filters.ignore_self and resume.user_id is None:
        resume.user_id = conn.hello.user_id or _whoami(endpoint, log)
        if resume.user_id is None:
            log.warning(
                "--ignore-self: the server did not say which user this is; nothing is dropped"
            )


def _whoami(endpoint: Endpoint, log: Log) -> str | None:
    """The user behind the token, asked over REST (a docs-dialect SSE stream does not say)."""
    from prismer_cli.transport.rest import RestClient

    rest = RestClient(endpoint, log)
    try:
        return rest.whoami()
    finally:
        rest.close()


def _pump(
    conn: Connection,
    options: ListenOptions,
    out: Output,
    log: Log,
    seen: RecentKeys,
    progress: _Progress,
    resume: Resume,
    deadline: float | None,
) -> None:
    """Print every new event that passes the filters; raises _Done at --count.

    Whatever became of a frame (printed, filtered, consumed, skipped), once the transport has
    nothing more buffered the output is flushed, and only then are the acks sent.
    """
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    consumed = conn.hello.dialect.consumed
    filters = options.filters
    types, conversations = filters.types, filters.conversations
    me = resume.user_id if filters.ignore_self else None
    ack, is_seen = conn.ack, seen.seen

    def line_for(data: bytes) -> bytes | None:
        """The line to print for one frame, or None; acknowledges and de-duplicates."""
        try:
            frame = loads(data)
        except decode_error:
            frame = None
        if type(frame) is not dict:
            log.warning(f"skipped a frame that is not a JSON object: {_preview(data)}")
            return None
        kind, payload = frame.get("type"), frame.get("payload")
        if type(kind) is not str or type(payload) is not dict:
            frame, payload, data = _normalise(frame, log)
            if frame is None:
                return None
            kind = frame["type"]
        if kind in consumed:
            return None
        if kind == "error" and answers_us(frame):
            log.warning(f"the server refused a command of ours: {error_message(frame)}")
            return None
        ack_id = frame.get("ackId")
        if ack_id is not None:
            ack(ack_id)
        if _duplicate(kind, payload, ack_id, is_seen):
            return None
        stamp = frame.get("timestamp")
        if stamp is not None:
            resume.last_event_time = stamp
        if (
            (types and kind not in types)
            or (conversations and payload.get("conversationId") not in conversations)
            or (me is not None and payload.get("senderId") == me)
        ):
            return None
        return data if b"\n" not in data else orjson.dumps(frame)

    write, flush, pending, flush_acks = out.line, out.flush, conn.pending, conn.flush_acks
    count = options.count
    for data in conn.messages(deadline):
        line = line_for(data)
        if line is not None:
            write(line)
            progress.printed += 1
            if count is not None and progress.printed >= count:
                flush()
                flush_acks()
                raise _Done
        if not pending():
            flush()
            flush_acks()
    flush()
    flush_acks()


def _duplicate(kind: str, payload: dict[str, Any], ack_id: Any, is_seen: Any) -> bool:
    """A message event whose id was printed before, or a re-sent frame already seen.

    The keys kept are hashes (small ints), not the ids: 10,000 of them cost well under 1 MiB.
    """
    if kind.startswith("message."):
        message_id = payload.get("id")
        if message_id is not None and is_seen(hash((kind, message_id))):
            return True
    elif ack_id is not None and is_seen(hash(("ack", ack_id))):
        return True
    return False


def _normalise(frame: dict[str, Any], log: Log) -> tuple[Any, Any, bytes]:
    """Give a frame the contract's keys: `type` must be a string, `payload` is added if absent."""
    if type(frame.get("type")) is not str:
        log.warning(f"skipped a frame without a string 'type': {_preview(orjson.dumps(frame))}")
        return None, None, b""
    if "payload" not in frame:
        frame["payload"] = {}
    payload = frame["payload"]
    return frame, payload if type(payload) is dict else {}, orjson.dumps(frame)


def _preview(data: bytes, limit: int = 80) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > limit else ""))
