"""Unit tests for the pure parts: retries, redaction, URLs, stdin parsing, de-duplication."""

from __future__ import annotations

import io
import itertools
import os

import orjson
import pytest

from prismer_cli.errors import (
    AuthError,
    CommandRejected,
    ConnectError,
    ConnectionLost,
    UsageError,
)
from prismer_cli.listen.dedupe import RecentKeys
from prismer_cli.protocol.commands import (
    MARK_READ,
    SEND,
    SUBSCRIBE,
    Command,
    InvalidLine,
    command_from,
    parse_batch,
    read_lines,
)
from prismer_cli.protocol.dialects import DOCS, SERVER, detect
from prismer_cli.records import replace
from prismer_cli.redact import mask, redact
from prismer_cli.retry import Deadline, Policy, Retries, delays, floor, retryable
from prismer_cli.transport.base import retry_after
from prismer_cli.transport.urls import http_base, ws_url
from prismer_cli.tuning import Backoff


def _first(n: int, backoff: Backoff, draw: float) -> list[float]:
    return list(itertools.islice(delays(backoff, rand=lambda: draw), n))


def test_backoff_doubles_from_initial_to_cap() -> None:
    """With no jitter drawn, delays go 0.5x of 1, 2, 4 ... and stop growing at the cap."""
    backoff = Backoff(initial=1.0, cap=30.0)
    assert _first(8, backoff, 1.0) == [1, 2, 4, 8, 16, 30, 30, 30]
    assert _first(8, backoff, 0.0) == [0.5, 1, 2, 4, 8, 15, 15, 15]


def test_backoff_starts_at_the_cap_when_initial_is_above_it() -> None:
    """PRISMER_RT_BACKOFF_INITIAL above PRISMER_RT_BACKOFF_MAX: every delay is the cap's."""
    assert _first(3, Backoff(initial=1.0, cap=0.4), 1.0) == [0.4, 0.4, 0.4]


def test_backoff_jitter_ranges_do_not_overlap_below_the_cap() -> None:
    """Equal jitter: below the cap, the shortest next delay is the longest previous one."""
    lows, highs = _first(5, Backoff(), 0.0), _first(5, Backoff(), 1.0)
    for n in range(4):
        assert lows[n + 1] == highs[n]


def test_backoff_retry_bound() -> None:
    """max_retries=N allows retries 1..N; None retries for ever; 0 never."""
    assert [Policy(max_retries=2).allows(n) for n in (1, 2, 3)] == [True, True, False]
    assert Policy().allows(10**6)
    assert not Policy(max_retries=0).allows(1)


def test_retries_count_and_start_over() -> None:
    """Retries counts failures against the bound; a success starts the delays over."""
    retries = Retries(Policy(Backoff(1.0, 30.0), max_retries=2), rand=lambda: 1.0)
    assert retries.failed() and retries.delay() == 1.0
    assert retries.failed() and retries.delay() == 2.0
    assert not retries.failed()
    retries.succeeded()
    assert retries.count == 0
    assert retries.failed() and retries.delay() == 1.0
    assert retries.delay(instead=0.25) == 0.25  # an SSE stream's own retry: field
    assert retries.delay(retry_after=9.0) == 9.0


def test_retry_after_is_a_floor() -> None:
    """A server's Retry-After lengthens the delay, never shortens it, and is bounded."""
    assert floor(1.0, None) == 1.0
    assert floor(1.0, 5.0) == 5.0
    assert floor(8.0, 2.0) == 8.0
    assert floor(1.0, 10_000.0) == 300.0


def test_retryable_is_one_decision() -> None:
    """Connection trouble is worth a retry; a refused token or a rejected command is not."""
    assert retryable(ConnectError("refused")) and retryable(ConnectionLost("gone"))
    assert not retryable(AuthError("no")) and not retryable(CommandRejected("no"))
    assert not retryable(ValueError("bug"))


def test_deadline_cuts_a_sleep_short() -> None:
    """A sleep past the deadline ends at the deadline and says so; none never ends early."""
    assert Deadline(None).left() is None and Deadline(None).sleep(0.0)
    deadline = Deadline(0.05)
    assert not deadline.sleep(10.0)
    left = deadline.left()
    assert left is not None and left <= 0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({}, None),
        (None, None),
        ({"Retry-After": "soon"}, None),
    ],
)
def test_retry_after_header(headers: dict[str, str] | None, expected: float | None) -> None:
    """Retry-After in seconds is read; garbage is ignored."""
    assert retry_after(headers) == expected


def test_redact_masks_token_everywhere() -> None:
    """Query tokens, Bearer credentials and the literal secret are all masked."""
    text = "GET wss://h/ws?token=abc.def.ghi&x=1 Authorization: Bearer abc.def.ghi and abc.def.ghi"
    out = redact(text, "abc.def.ghi")
    assert "abc.def.ghi" not in out
    assert "token=***&x=1" in out
    assert "Bearer ***" in out


def test_redact_masks_a_short_token_only_as_a_whole() -> None:
    """A short token is masked where it stands alone (end of sentence too), not inside words."""
    assert redact("expected x, got x. (x)", "x") == "expected ***, got ***. (***)"
    assert redact("a.x x.b xx", "x") == "a.x x.b xx"


def test_mask_shows_only_the_ends() -> None:
    """A masked token keeps four characters at each end of a long token, none of a short one."""
    token = "eyJhbGciOiJIUzI1NiJ9.payload.sig"
    assert mask(token) == f"eyJh….sig ({len(token)} chars)"
    assert mask("short") == "***"
    assert mask(None) == "(none)"


@pytest.mark.parametrize(
    ("given", "http", "ws"),
    [
        (
            "https://cloud.prismer.dev",
            "https://cloud.prismer.dev",
            "wss://cloud.prismer.dev/ws?token=t%2Bk",
        ),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765", "ws://127.0.0.1:8765/ws?token=t%2Bk"),
        ("wss://h.example/ws", "https://h.example", "wss://h.example/ws?token=t%2Bk"),
        ("ws://h:1/base/", "http://h:1/base", "ws://h:1/base/ws?token=t%2Bk"),
    ],
)
def test_urls(given: str, http: str, ws: str) -> None:
    """Any accepted base URL gives the same REST base and WebSocket address."""
    assert http_base(given) == http
    assert ws_url(given, "t+k") == ws


@pytest.mark.parametrize("bad", ["ftp://x", "cloud.prismer.dev", "https://"])
def test_bad_url_is_a_usage_error(bad: str) -> None:
    """A URL without a usable scheme or host is refused before any connection."""
    with pytest.raises(UsageError):
        http_base(bad)


def _parse(text: bytes, action: str = SEND) -> list[Command | InvalidLine]:
    items: list[Command | InvalidLine] = []
    for batch in read_lines(io.BytesIO(text)):
        items.extend(parse_batch(batch, action))
    return items


def test_stdin_lines_valid_and_invalid() -> None:
    """Every kind of bad line is reported with its number; valid ones become commands."""
    text = b"\n".join(
        [
            b'{"conversationId":"c1","content":"hi"}',
            b"",
            b"not json",
            b"[1,2]",
            b'{"content":"no conversation"}',
            b'{"conversationId":"c1"}',
            b'{"conversationId":"c1","content":""}',
            b'{"conversationId":"c1","content":5}',
            b'{"action":"explode","conversationId":"c1"}',
            b'{"action":"mark_read","conversationId":"c2","upToMessageId":"m1"}',
            b'{"action":"subscribe","conversationId":"c3"}',
            b'{"conversationId":"c1","content":"md","type":"markdown","metadata":{"k":"v"}}',
            b"   ",
        ]
    )
    items = _parse(text)
    invalid = {i.line: i.reason for i in items if isinstance(i, InvalidLine)}
    assert sorted(invalid) == [3, 4, 5, 6, 7, 8, 9]
    assert "JSON" in invalid[3] and "object" in invalid[4] and "conversationId" in invalid[5]
    commands = [i for i in items if isinstance(i, Command)]
    assert [(c.action, c.conversation_id, c.line) for c in commands] == [
        (SEND, "c1", 1),
        (MARK_READ, "c2", 10),
        (SUBSCRIBE, "c3", 11),
        (SEND, "c1", 12),
    ]
    assert commands[1].up_to == "m1"
    assert commands[3].message_type == "markdown" and commands[3].extra == {"metadata": {"k": "v"}}


def test_a_stdin_message_is_the_command_its_constructor_makes() -> None:
    """A message read from stdin (built field by field, without Command's __init__) has
    every field of Command, each as Command(...) would set it."""
    items = _parse(
        b'{"conversationId":"c1","content":"hi"}\n'
        b'{"conversationId":"c2","content":"x","type":"markdown","parentId":"m0",'
        b'"metadata":{"k":1},"idempotencyKey":"key-1"}'
    )
    first, second = items
    assert isinstance(first, Command) and isinstance(second, Command)
    assert list(vars(first)) == [*Command.FIELDS, "source"]  # and the line, not a field
    assert first.source == b'{"conversationId":"c1","content":"hi"}'
    assert first == Command(SEND, "c1", "hi", line=1, key=first.key)
    assert first.key and not first.key_given
    expected = Command(
        SEND,
        "c2",
        "x",
        "markdown",
        extra={"metadata": {"k": 1}, "parentId": "m0"},
        line=2,
        key="key-1",
        key_given=True,
    )
    assert second == expected and list(vars(second)) == list(vars(expected))


@pytest.mark.parametrize("action", [SEND, MARK_READ])
@pytest.mark.parametrize("message_type", ["text", "markdown"])
def test_the_usual_stdin_line_is_read_as_command_from_reads_it(
    action: str, message_type: str
) -> None:
    """parse_batch makes {"conversationId", "content"} lines into Commands without
    command_from: each is what command_from makes of it (but its fresh key), field by field
    and in field order, and a line that only looks like one gets command_from's answer."""
    lines = [
        b'{"conversationId":"c1","content":"hi"}',
        b'{"content":"\\u00e9 \\ud83d\\ude00","conversationId":"c\\u00e92"}',
        b'{"conversationId":"a/b","content":"x"}',
        b'{"conversationId":"..","content":"x"}',
        b'{"conversationId":"","content":"x"}',
        b'{"conversationId":"c1","content":""}',
        b'{"conversationId":"c1","content":5}',
        b'{"conversationId":7,"content":"x"}',
        b'{"conversationId":"c1","content":null}',
        b'{"conversationId":"c1","type":"x"}',
        b'{"conversationId":"c1","content":"x","type":"markdown"}',
        b'{"action":"subscribe","conversationId":"c1"}',
    ]
    for number, line in enumerate(lines, 1):
        (fast,) = parse_batch([(number, line)], action, message_type)
        try:
            general: Command | InvalidLine = command_from(
                orjson.loads(line), action, number, message_type
            )
        except ValueError as exc:
            general = InvalidLine(number, str(exc))
        if isinstance(fast, Command) and isinstance(general, Command):
            assert [name for name in vars(fast) if name != "source"] == list(vars(general))
            if fast.action == SEND:  # a fresh key each
                assert fast.key and fast.key != general.key and not fast.key_given
                general = replace(general, key=fast.key)
        assert fast == general, line


@pytest.mark.parametrize("message_type", ["text", 'say "hi"'])
@pytest.mark.parametrize(
    ("line", "kept"),
    [
        (b'{"conversationId":"c1","content":"hi"}', True),
        (b'{"content":"hi","conversationId":"c1"}', True),
        (b'{"conversationId":"c1","content":"\\u0068i"}', False),
        (b'{"content":"\\u00e9 \\ud83d\\ude00 \\"q\\"","conversationId":"c\\u00e92"}', False),
        ('{"conversationId":"c1","content":"\u00e9"}'.encode(), False),
        (b'{ "conversationId" : "c1",\t"content":"x" }', False),
        (b'{"conversationId":"c1","content":"x","content":"hi"}', False),
        (b'{"conversationId":"c1","content":"x"}\r', False),
    ],
)
def test_a_message_frame_made_from_its_line_is_the_serialised_frame(
    line: bytes, kept: bool, message_type: str
) -> None:
    """The server dialect writes the usual stdin message as its line's own bytes inside the
    frame (Command.source, send's hot path) when they are what serialising it gives: the same
    bytes as the frame command_frame serialises (its keys in the line's order). A line with
    escapes, non-ASCII, spaces or a repeated key is serialised: its own bytes could be longer."""
    (command,) = parse_batch([(1, line)], SEND, message_type)
    assert isinstance(command, Command)
    assert (command.source is not None) == kept
    text = SERVER.command_text(command, "prt-7")
    serialised = orjson.dumps(SERVER.command_frame(command, "prt-7"))
    assert text is not None and orjson.loads(text) == orjson.loads(serialised)
    assert len(text) == len(serialised)
    if line.startswith(b'{"conversationId"'):
        assert text == serialised
    again = replace(command, line=2)  # made otherwise: no source
    assert again.source is None and SERVER.command_text(again, "prt-7") == serialised


def test_last_line_without_newline_is_read() -> None:
    """A final line with no newline still counts."""
    items = _parse(b'{"conversationId":"a","content":"x"}\n{"conversationId":"b","content":"y"}')
    assert [c.conversation_id for c in items if isinstance(c, Command)] == ["a", "b"]


def test_stdin_from_a_pipe_batches_what_has_arrived() -> None:
    """read_lines hands over every complete line available, keeping a partial one for later."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'{"a":1}\n{"b":2}\n{"c"')
    with os.fdopen(read_fd, "rb") as stream:
        batches = read_lines(stream)
        assert next(batches) == [(1, b'{"a":1}'), (2, b'{"b":2}')]
        os.write(write_fd, b":3}\n")
        os.close(write_fd)
        assert next(batches) == [(3, b'{"c":3}')]
        assert list(batches) == []


def test_mark_read_lines_default_to_mark_read() -> None:
    """mark-read's stdin lines need no action."""
    items = _parse(b'{"conversationId":"c","upToMessageId":"m"}', MARK_READ)
    assert isinstance(items[0], Command) and items[0].action == MARK_READ


def test_recent_keys_is_bounded() -> None:
    """Old keys are forgotten once more than `size` newer ones were seen."""
    keys = RecentKeys(size=3)
    assert not keys.seen("a")
    assert keys.seen("a")
    for k in "bcd":
        keys.seen(k)
    assert len(keys) == 3
    assert not keys.seen("a")  # forgotten, so new again


@pytest.mark.parametrize(
    ("frame", "dialect"),
    [
        ({"type": "auth_success"}, DOCS),
        ({"type": "auth_error"}, DOCS),
        ({"type": "authenticated"}, SERVER),
        ({"type": "error"}, SERVER),
        ({"type": "hello"}, None),
    ],
)
def test_dialect_detection(frame: dict[str, str], dialect: object) -> None:
    """The first frame decides the dialect."""
    assert detect(frame, None) is dialect
    assert detect(frame, DOCS) is DOCS


def test_docs_commands_carry_exactly_the_pages_fields() -> None:
    """A server built from the page may reject extra fields: none are sent."""
    message = Command(SEND, "c", "hi", "text", extra={"metadata": {"k": 1}})
    assert DOCS.send_message(message, "r1") == {
        "action": "send_message",
        "conversationId": "c",
        "content": "hi",
        "type": "text",
    }
    assert DOCS.subscribe("c", "r") == {"action": "subscribe", "conversationId": "c"}
    assert SERVER.subscribe("c", "r") == {
        "type": "conversation.join",
        "payload": {"conversationId": "c"},
        "requestId": "r",
    }
    assert SERVER.mark_read("c", "m", "r") is None
    assert DOCS.mark_read("c", None, "r") == {"action": "mark_read", "conversationId": "c"}


@pytest.mark.parametrize(
    "command",
    [
        Command(SEND, "c", "hi", key="k1"),
        Command(SEND, "c", "hi", "markdown", key="k2", key_given=True),
        Command(SEND, "c", "hi", extra={"metadata": {"a": 1}}, key="k3"),
        Command(SEND, "c", "hi", extra={"parentId": "m0"}, key="k4"),
        Command(SEND, "c", "hi"),
        Command(SUBSCRIBE, "c"),
    ],
)
def test_the_server_dialects_usual_message_frame_is_send_messages(command: Command) -> None:
    """The server dialect builds the frame of a message without extra fields itself (send's
    hot path): the bytes send_message's frame makes, key order included; others go to it."""
    frame = SERVER.command_frame(command, "r1")
    if command.action == SEND:
        expected = SERVER.send_message(command, "r1")
    else:
        expected = SERVER.subscribe(command.conversation_id, "r1")
    assert orjson.dumps(frame) == orjson.dumps(expected)
