"""Tests for prismer_cli.transport.sseparse: the incremental Server-Sent Events parser."""

from __future__ import annotations

import random
import re

import pytest

from prismer_cli.transport.sseparse import SSEEvent, SSEParser


def ev(
    data: bytes, event: str = "message", id: str | None = None, retry: int | None = None
) -> SSEEvent:
    """Build the SSEEvent a test expects."""
    return SSEEvent(event, data, id, retry)


def parse(*chunks: bytes, parser: SSEParser | None = None) -> list[SSEEvent]:
    """Feed ``chunks`` to one parser and return every event, in order."""
    parser = parser or SSEParser()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def state(parser: SSEParser) -> tuple[str | None, int | None, int, str]:
    """The parser's public attributes, for comparing two parsers."""
    return parser.last_event_id, parser.retry, parser.comment_count, parser.last_comment


# -- line endings --------------------------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        b"data: a\n\ndata: b\n\n",
        b"data: a\r\n\r\ndata: b\r\n\r\n",
        b"data: a\r\rdata: b\r\r",
        b"data: a\r\n\ndata: b\r\r\n",
        b"data: a\n\r\ndata: b\n\r",
    ],
    ids=["LF", "CRLF", "CR", "mixed-1", "mixed-2"],
)
def test_line_endings(stream: bytes) -> None:
    """LF, CRLF and CR all end lines, alone or mixed."""
    assert parse(stream) == [ev(b"a"), ev(b"b")]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"data: a\r", b"\ndata: b\r\n\r\n"], [ev(b"a\nb")]),
        ([b"data: a\r", b"\rdata: b\n\n"], [ev(b"a"), ev(b"b")]),
        ([b"data: a\r", b"", b"\n", b"\r\n"], [ev(b"a")]),
        ([b"data: a\r\n\r", b"\n"], [ev(b"a")]),
        ([b"data: a\r\n\r", b"\ndata: b\n\n"], [ev(b"a"), ev(b"b")]),
        ([b"data: a\r", b"\n", b"\n"], [ev(b"a")]),
        ([b"data: a\r", b"\n\r", b"\n"], [ev(b"a")]),
    ],
    ids=[
        "CRLF split",
        "CR then CR",
        "CR, empty chunk, LF",
        "blank CRLF split",
        "blank CRLF split, more",
        "CRLF split then LF",
        "two CRLFs split",
    ],
)
def test_cr_lf_split_across_chunks(chunks: list[bytes], expected: list[SSEEvent]) -> None:
    """A CR ending one chunk and an LF starting the next make one line break."""
    assert parse(*chunks) == expected


def test_lf_after_cr_only_skipped_once() -> None:
    """Only the LF right after a chunk-final CR is swallowed, not later ones."""
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [ev(b"a")]


# -- fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: hello\n\n", [ev(b"hello")]),
        (b"data:hello\n\n", [ev(b"hello")]),
        (b"data:  two spaces\n\n", [ev(b" two spaces")]),
        (b"data:\ttab\n\n", [ev(b"\ttab")]),
        (b"data: a\ndata: b\ndata: c\n\n", [ev(b"a\nb\nc")]),
        (b"data: a\ndata\ndata: c\n\n", [ev(b"a\n\nc")]),
        (b"data\n\n", [ev(b"")]),
        (b"data:\n\n", [ev(b"")]),
        (b"data: \n\n", [ev(b"")]),
        (b"data:\ndata:\n\n", [ev(b"\n")]),
        (b"data: a: b: c\n\n", [ev(b"a: b: c")]),
        (b'data: {"k": 1}\n\n', [ev(b'{"k": 1}')]),
        (b"data: \xff\xfe not utf-8\n\n", [ev(b"\xff\xfe not utf-8")]),
        (b"event: update\ndata: x\n\n", [ev(b"x", "update")]),
        (b"event:update\ndata: x\n\n", [ev(b"x", "update")]),
        (b"event:\ndata: x\n\n", [ev(b"x")]),
        (b"event: a\nevent: b\ndata: x\n\n", [ev(b"x", "b")]),
        (b"event: \xff\ndata: x\n\n", [ev(b"x", "\ufffd")]),
        (b"event: a\n\ndata: x\n\n", [ev(b"x")]),
        (b"event: a\ndata: x\n\ndata: y\n\n", [ev(b"x", "a"), ev(b"y")]),
        (b"Data: x\n\n", []),
        (b"DATA: x\ndata: y\n\n", [ev(b"y")]),
        (b"foo: bar\ndata: x\nbaz\n\n", [ev(b"x")]),
        (b" data: x\n\n", []),
        (b"data: x\n", []),
        (b"data: x", []),
        (b"\n\n\n", []),
        (b"event: only\n\n", []),
    ],
)
def test_fields(stream: bytes, expected: list[SSEEvent]) -> None:
    """Field names, the optional space, data joining and event types follow the spec."""
    assert parse(stream) == expected


def test_incomplete_event_waits_for_blank_line() -> None:
    """An event is only dispatched by the blank line that ends it."""
    parser = SSEParser()
    assert parser.feed(b"data: x\n") == []
    assert parser.feed(b"data: y") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [ev(b"x\ny")]


def test_events_are_named_tuples() -> None:
    """Events are SSEEvent tuples with named fields."""
    (event,) = parse(b"id: 7\nevent: e\nretry: 10\ndata: d\n\n")
    assert isinstance(event, SSEEvent)
    assert (event.event, event.data, event.id, event.retry) == ("e", b"d", "7", 10)
    assert type(event.data) is bytes


# -- id and retry ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "expected", "last_id"),
    [
        (b"id: 1\ndata: a\n\n", [ev(b"a", id="1")], "1"),
        (b"id: 1\ndata: a\n\ndata: b\n\n", [ev(b"a", id="1"), ev(b"b", id="1")], "1"),
        (b"data: a\nid: 1\n\n", [ev(b"a", id="1")], "1"),
        (b"id: 1\n\ndata: b\n\n", [ev(b"b", id="1")], "1"),
        (b"id: 1\nid: 2\ndata: a\n\n", [ev(b"a", id="2")], "2"),
        (b"id: 1\ndata: a\n\nid\ndata: b\n\n", [ev(b"a", id="1"), ev(b"b", id="")], ""),
        (b"id: 1\ndata: a\n\nid:\ndata: b\n\n", [ev(b"a", id="1"), ev(b"b", id="")], ""),
        (b"id: 1\n\nid: a\x00b\ndata: x\n\n", [ev(b"x", id="1")], "1"),
        (b"id: \x00\ndata: x\n\n", [ev(b"x")], None),
        (b"id:  spaced \ndata: x\n\n", [ev(b"x", id=" spaced ")], " spaced "),
        (b"id: \xe2\x9c\x93\ndata: x\n\n", [ev(b"x", id="\u2713")], "\u2713"),
        (b"data: x\n\n", [ev(b"x")], None),
    ],
)
def test_id_rules(stream: bytes, expected: list[SSEEvent], last_id: str | None) -> None:
    """Ids persist across events, apply at the blank line, and NUL ids are ignored."""
    parser = SSEParser()
    assert parse(stream, parser=parser) == expected
    assert parser.last_event_id == last_id


def test_id_without_data_is_remembered() -> None:
    """A block with an id but no data dispatches nothing yet sets last_event_id."""
    parser = SSEParser()
    assert parser.feed(b"id: 42\n\n") == []
    assert parser.last_event_id == "42"
    assert parser.feed(b"data: x\n\n") == [ev(b"x", id="42")]


def test_id_takes_effect_at_blank_line() -> None:
    """last_event_id changes only when the block holding the id ends."""
    parser = SSEParser()
    parser.feed(b"id: 1\ndata: a\n\nid: 2\n")
    assert parser.last_event_id == "1"
    parser.feed(b"\n")
    assert parser.last_event_id == "2"


def test_initial_last_event_id() -> None:
    """A last_event_id passed in (after a reconnection) applies to the first events."""
    parser = SSEParser(last_event_id="99")
    assert parser.last_event_id == "99"
    assert parser.feed(b"data: a\n\nid: 100\ndata: b\n\n") == [
        ev(b"a", id="99"),
        ev(b"b", id="100"),
    ]


@pytest.mark.parametrize(
    ("stream", "event_retry", "parser_retry"),
    [
        (b"retry: 3000\ndata: x\n\n", 3000, 3000),
        (b"retry:3000\ndata: x\n\n", 3000, 3000),
        (b"retry: 0\ndata: x\n\n", 0, 0),
        (b"retry: 007\ndata: x\n\n", 7, 7),
        (b"retry: 30a0\ndata: x\n\n", None, None),
        (b"retry: -1\ndata: x\n\n", None, None),
        (b"retry: 1.5\ndata: x\n\n", None, None),
        (b"retry: +1\ndata: x\n\n", None, None),
        (b"retry: \ndata: x\n\n", None, None),
        (b"retry\ndata: x\n\n", None, None),
        (b"retry:  5\ndata: x\n\n", None, None),
        (b"retry: 5 \ndata: x\n\n", None, None),
        (b"retry: \xd9\xa3\ndata: x\n\n", None, None),
        (b"retry: " + b"9" * 5000 + b"\ndata: x\n\n", None, None),
        (b"retry: 10\nretry: bad\ndata: x\n\n", 10, 10),
    ],
)
def test_retry_rules(stream: bytes, event_retry: int | None, parser_retry: int | None) -> None:
    """retry is taken only when it is all ASCII digits."""
    parser = SSEParser()
    assert parse(stream, parser=parser) == [ev(b"x", retry=event_retry)]
    assert parser.retry == parser_retry


def test_retry_persists_on_parser_not_on_events() -> None:
    """retry stays on the parser; only the event whose block set it carries it."""
    parser = SSEParser()
    assert parser.feed(b"retry: 500\n\n") == []
    assert parser.retry == 500
    assert parser.feed(b"data: a\n\nretry: 700\ndata: b\n\ndata: c\n\n") == [
        ev(b"a"),
        ev(b"b", retry=700),
        ev(b"c"),
    ]
    assert parser.retry == 700


# -- comments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "count", "last"),
    [
        (b": heartbeat\n", 1, "heartbeat"),
        (b":heartbeat\n", 1, "heartbeat"),
        (b":\n", 1, ""),
        (b": \n", 1, ""),
        (b":  two\n", 1, " two"),
        (b"::x\n", 1, ":x"),
        (b": a\n: b\r\n:c\r", 3, "c"),
        (b": \xff\n", 1, "\ufffd"),
        (b": partial", 0, ""),
        (b"data: x\n", 0, ""),
    ],
)
def test_comments_are_counted(stream: bytes, count: int, last: str) -> None:
    """Each complete comment line bumps comment_count and sets last_comment."""
    parser = SSEParser()
    assert parser.feed(stream) == []
    assert parser.comment_count == count
    assert parser.last_comment == last


def test_comments_inside_an_event() -> None:
    """Comments between an event's lines do not split or end the event."""
    parser = SSEParser()
    assert parser.feed(b"data: a\n: keep-alive\ndata: b\n\n") == [ev(b"a\nb")]
    assert parser.comment_count == 1


def test_comment_only_blocks_dispatch_nothing() -> None:
    """A heartbeat block yields no event but is visible through the counter."""
    parser = SSEParser()
    for i in range(1, 4):
        assert parser.feed(b": heartbeat\n\n") == []
        assert parser.comment_count == i


# -- byte order mark ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"\xef\xbb\xbfdata: x\n\n"], [ev(b"x")]),
        ([b"\xef", b"\xbb", b"\xbf", b"data: x\n\n"], [ev(b"x")]),
        ([b"\xef\xbb", b"\xbfdata: x\n\n"], [ev(b"x")]),
        ([b"", b"\xef\xbb\xbf", b"data: x\n\n"], [ev(b"x")]),
        ([b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n"], [ev(b"y")]),
        ([b"data: x\n\n\xef\xbb\xbfdata: y\n\ndata: z\n\n"], [ev(b"x"), ev(b"z")]),
        ([b"\xef", b"data: x\n\ndata: y\n\n"], [ev(b"y")]),
        ([b"\xef\xbb\xbf:c\n", b"data: x\n\n"], [ev(b"x")]),
    ],
    ids=[
        "whole",
        "byte by byte",
        "split 2+1",
        "after empty chunk",
        "only one BOM skipped",
        "not skipped later",
        "BOM prefix then other bytes",
        "then comment",
    ],
)
def test_bom(chunks: list[bytes], expected: list[SSEEvent]) -> None:
    """One UTF-8 BOM at the very start is skipped, even split across chunks."""
    assert parse(*chunks) == expected


# -- chunking ---------------------------------------------------------------------

RICH_STREAM = (
    b"\xef\xbb\xbf: welcome\n"
    b"retry: 2500\n"
    b"id: 1\n"
    b"event: greet\n"
    b"data: hello\n"
    b"data:world\n"
    b"\n"
    b": heartbeat\n"
    b"\n"
    b'data: {"seq": 2, "text": "caf\xc3\xa9"}\n'
    b"\n"
    b"id: 3\n"
    b"\n"
    b"id: bad\x00id\n"
    b"data\n"
    b"\n"
    b"unknown: field\n"
    b"data:  spaced\n"
    b"event: last\n"
    b"\n"
    b"data: trailing, never dispatched\n"
)
RICH_EXPECTED = [
    ev(b"hello\nworld", "greet", "1", 2500),
    ev(b'{"seq": 2, "text": "caf\xc3\xa9"}', id="1"),
    ev(b"", id="3"),
    ev(b" spaced", "last", "3"),
]


def with_endings(stream: bytes, ending: bytes) -> bytes:
    """Rewrite a LF-terminated stream with another line ending."""
    return stream.replace(b"\n", ending)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_rich_stream_whole(ending: bytes) -> None:
    """A stream using every feature parses to the expected events and state."""
    parser = SSEParser()
    assert parser.feed(with_endings(RICH_STREAM, ending)) == RICH_EXPECTED
    assert state(parser) == ("3", 2500, 2, "heartbeat")


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_chunking_at_every_byte_offset(ending: bytes) -> None:
    """Cutting the stream in two at any byte gives the same events and state."""
    stream = with_endings(RICH_STREAM, ending)
    for cut in range(len(stream) + 1):
        parser = SSEParser()
        assert parse(stream[:cut], stream[cut:], parser=parser) == RICH_EXPECTED, cut
        assert state(parser) == ("3", 2500, 2, "heartbeat"), cut


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_chunking_at_every_pair_of_offsets(ending: bytes) -> None:
    """Cutting the stream in three at any two bytes gives the same events."""
    stream = with_endings(RICH_STREAM, ending)[:120]
    whole = parse(stream)
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            got = parse(stream[:first], stream[first:second], stream[second:])
            assert got == whole, (first, second)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_byte_at_a_time(ending: bytes) -> None:
    """Feeding one byte per chunk gives the same events and state."""
    stream = with_endings(RICH_STREAM, ending)
    parser = SSEParser()
    assert parse(*(stream[i : i + 1] for i in range(len(stream))), parser=parser) == RICH_EXPECTED
    assert state(parser) == ("3", 2500, 2, "heartbeat")


def test_empty_chunks_are_harmless() -> None:
    """Empty chunks anywhere change nothing."""
    assert parse(b"", b"data: a", b"", b"\n", b"", b"\n", b"") == [ev(b"a")]


def test_many_events_in_one_chunk() -> None:
    """A large chunk holding thousands of events returns them all, in order."""
    stream = b"".join(b'id: %d\ndata: {"n": %d}\n\n' % (i, i) for i in range(5000))
    events = parse(stream)
    assert [e.id for e in events] == [str(i) for i in range(5000)]
    assert events[-1].data == b'{"n": 4999}'


# -- differential check against a literal reading of the spec ------------------------


def reference_parse(
    stream: bytes,
) -> tuple[list[SSEEvent], tuple[str | None, int | None, int, str]]:
    """Parse a whole stream by following the WHATWG algorithm step by step."""
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    lines = re.split(rb"\r\n|\r|\n", stream)[:-1]
    events: list[SSEEvent] = []
    data = b""
    has_data = False
    event_type = ""
    id_buffer: str | None = None
    last_id: str | None = None
    retry: int | None = None
    event_retry: int | None = None
    comments = 0
    last_comment = ""
    for line in lines:
        if line == b"":
            last_id = id_buffer
            if has_data:
                events.append(SSEEvent(event_type or "message", data[:-1], last_id, event_retry))
            data, has_data, event_type, event_retry = b"", False, "", None
            continue
        if line.startswith(b":"):
            comments += 1
            text = line[1:]
            last_comment = (text[1:] if text.startswith(b" ") else text).decode("utf-8", "replace")
            continue
        if b":" in line:
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
        else:
            name, value = line, b""
        if name == b"data":
            data += value + b"\n"
            has_data = True
        elif name == b"event":
            event_type = value.decode("utf-8", "replace")
        elif name == b"id" and b"\x00" not in value:
            id_buffer = value.decode("utf-8", "replace")
        elif name == b"retry" and value and all(48 <= c <= 57 for c in value):
            retry = event_retry = int(value)
    return events, (last_id, retry, comments, last_comment)


def matches_reference(stream: bytes, rng: random.Random, cuts: int) -> None:
    """The stream, cut in up to `cuts` random places, parses as the reference parses it."""
    at = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(cuts)))
    chunks = [stream[a:b] for a, b in zip([0, *at], [*at, len(stream)], strict=True)]
    parser = SSEParser()
    got = parse(*chunks, parser=parser)
    expected, expected_state = reference_parse(stream)
    assert got == expected, stream
    assert state(parser) == expected_state, stream


def test_random_streams_match_reference() -> None:
    """Random streams, randomly chunked, parse exactly as the step-by-step reference does."""
    rng = random.Random(2024)
    lines = [
        b"data: x",
        b"data:y",
        b"data",
        b"data:  z",
        b"data: \xc3\xa9",
        b"event: e",
        b"event:",
        b"id: 1",
        b"id: 22",
        b"id",
        b"id: a\x00b",
        b"retry: 10",
        b"retry: x1",
        b": hb",
        b":",
        b"other: v",
        b"",
        b"",
        b"",
        b"\xef\xbb\xbfdata: bom",
    ]
    endings = [b"\n", b"\r\n", b"\r"]
    for _ in range(400):
        parts = [b"\xef\xbb\xbf"] if rng.random() < 0.2 else []
        for _ in range(rng.randrange(30)):
            parts += [rng.choice(lines), rng.choice(endings)]
        matches_reference(b"".join(parts), rng, cuts=6)


def test_long_line_across_many_chunks() -> None:
    """A 2 MB data line arriving in 1000-byte chunks is reassembled intact."""
    payload = bytes(range(32, 127)) * 22000
    stream = b"data: " + payload + b"\r\n\r\n"
    chunks = [stream[i : i + 1000] for i in range(0, len(stream), 1000)]
    assert parse(*chunks) == [ev(payload)]


def test_runs_of_like_events_match_reference() -> None:
    """Runs of events of one shape (read a chunk at a time: id/event/data fields, each once,
    `data` last) parse as the reference does, whatever breaks the run and wherever the chunks
    are cut: a field out of order or repeated, a comment, a retry, an id with NUL, a name that is
    not UTF-8."""
    rng = random.Random(21)
    shapes = [(b"data: ",), (b"event: ",), (b"event: ", b"data: "), (b"id: ", b"event: ")]
    shapes += [(b"id: ", b"data: "), (b"id: ", b"event: ", b"data: ")]
    values = {
        b"id: ": [b"7", b"", b"\xc3\xa9", b"8", b"a\x00"],
        b"event: ": [b"a", b"", b"\xff", b"b.c"],
    }
    odd = [b": hb\n", b"retry: 5\n", b"id: x\x00\n", b"data: 2\n", b"event: z\n", b"\n"]
    for _ in range(300):
        shape = rng.choice(shapes)
        if shape[-1] != b"data: " and rng.random() < 0.8:  # else events that dispatch nothing
            shape = (*shape, b"data: ")
        parts = []
        for n in range(rng.randrange(2, 40)):
            if rng.random() < 0.1:
                parts.append(rng.choice(odd))
            fields = [f + rng.choice(values.get(f, [b"{}"])) + b"\n" for f in shape]
            if shape[-1] == b"data: ":
                fields[-1] = b'data: {"n":%d}\n' % n
            if rng.random() < 0.05:
                rng.shuffle(fields)
            parts.append(b"".join(fields) + b"\n")
        matches_reference(b"".join(parts), rng, cuts=4)
