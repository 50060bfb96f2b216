"""What the benchmark's servers send, as bytes: the events (a ~250-byte docs-dialect
`message.new` envelope whose payload carries a unique `id` and a sequence number `seq`), the
hellos, the latency probes, the event log's rows and pages, and whole prebuilt streams."""

from __future__ import annotations

import struct
from collections.abc import Callable

from wire import CLOSE_1000, ws_frame

CONTENT_PAD = 250  # target size in bytes of one WebSocket event (the envelope)

# One event: the docs dialect's message.new envelope. Everything but the id and seq is fixed.
_PAYLOAD = (
    b'{"id":"msg-%09d","seq":%d,"conversationId":"conv-bench-0001",'
    b'"senderId":"user-bench-0002","senderName":"Bench Bot","type":"text",'
    b'"createdAt":"2025-01-01T00:00:00.000Z","content":"%s"}'
)
_ENVELOPE_HEAD = b'{"type":"message.new","payload":'
AUTH_SUCCESS = (
    b'{"type":"auth_success","payload":{"userId":"user-bench-0001",'
    b'"name":"Bench","connectedAt":"2025-01-01T00:00:00.000Z"}}'
)


def _content_for(size: int) -> bytes:
    """Content that makes the envelope of a 6-digit event `size` bytes long."""
    probe = _ENVELOPE_HEAD + _PAYLOAD % (100_000, 100_000, b"") + b"}"
    text = b"Benchmark message: the quick brown fox jumps over the lazy dog. " * 4
    return text[: max(0, size - len(probe))]


_CONTENT = _content_for(CONTENT_PAD)


def payload(seq: int) -> bytes:
    """The payload JSON of event number `seq` (1-based)."""
    return _PAYLOAD % (seq, seq, _CONTENT)


def envelope(seq: int) -> bytes:
    return _ENVELOPE_HEAD + payload(seq) + b"}"


_LATENCY_PAYLOAD = (
    b'{"id":"lat-%09d","seq":%d,"sentNs":%d,"conversationId":"conv-bench-0001",'
    b'"senderId":"user-bench-0002","senderName":"Bench Bot","type":"text",'
    b'"content":"Latency probe: the quick brown fox jumps over the lazy dog."}'
)


def latency_event(seq: int, sent_ns: int) -> bytes:
    """A message.new envelope carrying the time it was written (time.perf_counter_ns)."""
    return _ENVELOPE_HEAD + _LATENCY_PAYLOAD % (seq, seq, sent_ns) + b"}"


def latency_event_server(seq: int, sent_ns: int) -> bytes:
    """The same probe in the server dialect: with a timestamp and an ackId, as makeEvent."""
    return (
        _ENVELOPE_HEAD
        + _LATENCY_PAYLOAD % (seq, seq, sent_ns)
        + b',"timestamp":1735689600000,"ackId":"ack_%d"}' % seq
    )


_LATENCY_STORED = (
    b'{"seq":%d,"type":"message.new","data":{"id":"lat-%09d","conversationId":"conv-bench-0001",'
    b'"senderId":"user-bench-0002","type":"text","content":"Latency probe","metadata":"{}",'
    b'"parentId":null,"createdAt":"2025-01-01T00:00:00.000Z"},'
    b'"conversationId":"conv-bench-0001","at":"2025-01-01T00:00:00.000Z"}'
)


def latency_stored(seq: int) -> bytes:
    """Probe `seq` as the event log stores it (same message id as the live frame)."""
    return _LATENCY_STORED % (seq, seq)


AUTHENTICATED = (
    b'{"type":"authenticated","payload":{"userId":"user-bench-0001"},"timestamp":1735689600000}'
)


# -- the event log (GET /api/im/sync) -----------------------------------------------------------
SYNC_PAGE = 500  # the real server's largest page
SYNC_USER = "user-bench-0001"
_SYNC_EVENT = (
    b'{"seq":%d,"type":"message.new","data":{"id":"msg-%09d","conversationId":"conv-bench-0001",'
    b'"senderId":"user-bench-0002","type":"text","content":"%s","metadata":"{}",'
    b'"parentId":null,"createdAt":"2025-01-01T00:00:00.000Z"},'
    b'"conversationId":"conv-bench-0001","at":"2025-01-01T00:00:00.000Z"}'
)
ME_ANSWER = (
    b'{"ok":true,"data":{"user":{"id":"' + SYNC_USER.encode() + b'","username":"bench",'
    b'"displayName":"Bench","role":"agent"}}}'
)


def sync_event(seq: int) -> bytes:
    """Stored event `seq` as the log serves it: the message.new row, metadata a JSON string."""
    return _SYNC_EVENT % (seq, seq, _CONTENT)


def sync_page(
    head: int, since: int, limit: int, event: Callable[[int], bytes] = sync_event
) -> bytes:
    """The answer of GET /api/im/sync for a log of `head` events, as the real server pages it:
    at most 500, `cursor` the last seq or `since` itself, `hasMore` when anything follows."""
    limit = min(limit, SYNC_PAGE)
    first = max(since, 0) + 1
    last = min(head, since + limit) if limit > 0 else since
    events = b",".join(event(seq) for seq in range(first, last + 1))
    cursor = last if last >= first else since
    has_more = head > (last if last >= first else max(since, 0)) if limit >= 0 else True
    return (
        b'{"ok":true,"data":{"events":['
        + events
        + b'],"cursor":%d,"hasMore":%s}}' % (cursor, b"true" if has_more else b"false")
    )


def ws_stream_bytes(n: int) -> bytes:
    """auth_success, n events, close: the whole server side of a listen run."""
    parts = [ws_frame(AUTH_SUCCESS)]
    head16 = struct.Struct("!BBH").pack
    for seq in range(1, n + 1):
        body = _ENVELOPE_HEAD + _PAYLOAD % (seq, seq, _CONTENT) + b"}"
        parts.append(head16(0x81, 126, len(body)) + body)
    parts.append(CLOSE_1000)
    return b"".join(parts)


def sse_stream_bytes(n: int) -> bytes:
    """n named events, docs dialect: `event: message.new` + `data: <payload>`."""
    return b"".join(
        b"event: message.new\ndata: " + _PAYLOAD % (seq, seq, _CONTENT) + b"\n\n"
        for seq in range(1, n + 1)
    )
