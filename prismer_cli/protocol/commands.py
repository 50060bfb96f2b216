"""Commands as `send` and `mark-read` read them: from arguments or from JSON lines on stdin.

A stdin line is one of
    {"conversationId": C, "content": T, "type"?: M, "metadata"?: {...}, "parentId"?: P,
     "idempotencyKey"?: K}
    {"conversationId": C, "upToMessageId"?: M}                     (mark-read's stdin)
    {"action": "send_message" | "mark_read" | "subscribe", ...}    (the docs page's commands)
Blank lines are skipped; anything else is an InvalidLine, reported with its line number.
"""

from __future__ import annotations

import io
import itertools
import os
import select
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

from prismer_cli.records import Frozen

SEND, MARK_READ, SUBSCRIBE = "send_message", "mark_read", "subscribe"
ACTIONS = (SEND, MARK_READ, SUBSCRIBE)


class Command(Frozen):
    action: str
    conversation_id: str
    content: str | None
    message_type: str
    up_to: str | None
    extra: dict[str, Any]  # metadata, parentId
    line: int | None  # stdin line number, for the result
    key: str  # a message's idempotency key: the same on every re-send (docs/cli.md)
    key_given: bool  # the user's own key: it must hold across runs too
    # The stdin line that said exactly this message, its own bytes, when they are what
    # serialising it gives (PLAIN_LINE: no spaces, escapes, non-ASCII or repeated keys; either
    # key first): the frame's payload is made of them instead (Dialect.command_text), the same
    # bytes and so the same size. Not a field: equal commands may come from differently
    # written lines, and a command made any other way has none.
    source: bytes | None = None

    def __init__(
        self,
        action: str,
        conversation_id: str,
        content: str | None = None,
        message_type: str = "text",
        up_to: str | None = None,
        extra: dict[str, Any] | None = None,
        line: int | None = None,
        key: str = "",
        key_given: bool = False,
    ) -> None:
        setter = object.__setattr__  # field by field: a Command is made per message
        setter(self, "action", action)
        setter(self, "conversation_id", conversation_id)
        setter(self, "content", content)
        setter(self, "message_type", message_type)
        setter(self, "up_to", up_to)
        setter(self, "extra", {} if extra is None else extra)
        setter(self, "line", line)
        setter(self, "key", key)
        setter(self, "key_given", key_given)


_new = object.__new__
_set = object.__setattr__


def _new_command(fields: dict[str, Any]) -> Command:
    """A Command from all its fields at once (in FIELDS order): what Command(...) makes,
    without the nine object.__setattr__ calls of its __init__ (1 us of a stdin line's 3)."""
    command: Command = _new(Command)
    _set(command, "__dict__", fields)
    return command


_KEY_PREFIX = os.urandom(12).hex()  # 96 random bits per process ...
_key_numbers = itertools.count(1)  # ... and a counter: unique, and cheap at 50k commands/s


def new_key() -> str:
    """A fresh idempotency key, unique to this command of this process."""
    return f"{_KEY_PREFIX}-{next(_key_numbers)}"


class InvalidLine(Frozen):
    line: int
    reason: str
    rejected: bool  # not invalid but too big to be sent: exit 5, as such a message

    def __init__(self, line: int, reason: str, rejected: bool = False) -> None:
        self._init(locals())


_NOT_IDS = ("", ".", "..")  # and any id holding a "/"


def id_problem(value: str) -> str | None:
    """Why `value` cannot be a conversation or message id, or None: ids go into REST paths
    (/api/im/conversations/{id}/read), where "", "." and ".." would name another endpoint and
    "/" another path; they are refused before any request."""
    if value in _NOT_IDS:
        return f"{value!r} is not an id"
    if "/" in value:
        return f"{value!r} is not an id: it contains '/'"
    return None


def _id(obj: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = _text(obj, key, required=required)
    problem = None if value is None else id_problem(value)
    if problem:
        raise ValueError(f'"{key}": {problem}')
    return value


def _text(obj: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ValueError(f'"{key}" is missing')
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f'"{key}" must be a non-empty string')
    return value


def command_from(
    obj: Any, default_action: str, line: int | None = None, default_type: str = "text"
) -> Command:
    """Validate one decoded stdin object; raises ValueError saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    action = obj.get("action", default_action)
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (expected one of {', '.join(ACTIONS)})")
    conversation = obj.get("conversationId")
    if type(conversation) is not str or conversation in _NOT_IDS or "/" in conversation:
        conversation = _id(obj, "conversationId", required=True)  # raises, saying why
    assert conversation is not None
    if action == SEND:
        content = obj.get("content")
        if not isinstance(content, str):
            raise ValueError(
                '"content" is missing' if content is None else '"content" must be a string'
            )
        if not content:
            raise ValueError('"content" is empty')
        extra: dict[str, Any] = {}
        metadata, parent = obj.get("metadata"), obj.get("parentId")
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise ValueError('"metadata" must be an object')
            extra["metadata"] = metadata
        if parent is not None:
            extra["parentId"] = parent
            _id(obj, "parentId", required=False)  # a valid id
        message_type = default_type
        if obj.get("type") is not None:
            message_type = _text(obj, "type", required=False) or default_type
        key = obj.get("idempotencyKey")
        given = key is not None
        if key is None:
            key = new_key()
        elif not isinstance(key, str) or not key:
            raise ValueError('"idempotencyKey" must be a non-empty string')
        return _new_command(
            {
                "action": SEND,
                "conversation_id": conversation,
                "content": content,
                "message_type": message_type,
                "up_to": None,
                "extra": extra,
                "line": line,
                "key": key,
                "key_given": given,
            }
        )
    if action == MARK_READ:
        return Command(
            MARK_READ, conversation, up_to=_id(obj, "upToMessageId", required=False), line=line
        )
    return Command(SUBSCRIBE, conversation, line=line)


LINE_SLACK = 1 << 16  # a line may be this much longer than the message it holds (JSON framing)
# The length of {"conversationId":"C","content":"T"} less C's and T's: a line of exactly this
# length more than its two strings has nothing else in it (each of those adds bytes).
PLAIN_LINE = len(b'{"conversationId":"","content":""}')


def too_big(max_bytes: int | None) -> str:
    """The result of a line read_lines did not keep (parse_batch)."""
    limit = f"the {max_bytes} bytes" if max_bytes is not None else "what"
    return (
        f"not sent: the line is more than {limit} the server accepts "
        "(PRISMER_RT_MAX_MESSAGE_BYTES), by over 64 KiB, so it was not even read"
    )


def read_lines(
    stream: BinaryIO, idle: float | None = None, limit: int | None = None
) -> Iterator[list[tuple[int, bytes | None]]]:
    """Batches of (line number, line) as they arrive: a line is handled as soon as it is complete.

    `idle`: an empty batch after that many seconds without input, so that a connection lost
    while a slow producer thinks is replaced (and its unconfirmed commands sent again) at once.
    `limit`: a line longer than this is not kept: its bytes are dropped up to its newline, and it
    comes as (number, None) (parse_batch: too_big, refused as a message over the server's limit
    is), so that a line with no end cannot take all the memory; the lines after it are read.

    os.read returns whatever the pipe holds, so a burst of lines is one batch (one write to the
    socket) and a single line from a slow producer is sent at once, not when a buffer fills. Each
    chunk is split once and a line that spans chunks is joined once: linear in the input, however
    long the lines.
    """
    try:
        fd = stream.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        fd = -1
    number = 0
    pending: list[bytes] = []  # the line so far, from earlier chunks
    size = 0  # its length
    dropping = False  # it went over the limit: its bytes are dropped up to its newline
    most = limit if limit is not None else -1
    while True:
        if fd >= 0 and idle is not None and not select.select((fd,), (), (), idle)[0]:
            yield []  # nothing for `idle` seconds: the caller may tend its connection
            continue
        chunk = os.read(fd, 1 << 16) if fd >= 0 else stream.readline(1 << 16)
        if not chunk:
            if pending or dropping:
                yield [(number + 1, None if dropping else b"".join(pending))]
            return
        pieces = chunk.split(b"\n")
        tail = pieces.pop()  # the start of the next line (or b"")
        batch: list[tuple[int, bytes | None]] = []
        if pieces:
            first = pieces[0]
            if dropping:
                line: bytes | None = None
            elif pending:
                pending.append(first)
                line = b"".join(pending) if most < 0 or size + len(first) <= most else None
            else:
                line = first if most < 0 or len(first) <= most else None
            batch.append((number + 1, line))
            if most < 0 or most >= 1 << 16:  # no whole line of a chunk can be over the limit
                batch += enumerate(pieces[1:], number + 2)
            else:
                batch += (
                    (n, piece if len(piece) <= most else None)
                    for n, piece in enumerate(pieces[1:], number + 2)
                )
            number += len(pieces)
            pending, size, dropping = [], 0, False
        if tail and not dropping:
            pending.append(tail)
            size += len(tail)
            if 0 <= most < size:
                pending, size, dropping = [], 0, True
        if batch:
            yield batch


def parse_batch(
    batch: list[tuple[int, bytes | None]],
    default_action: str,
    default_type: str = "text",
    max_bytes: int | None = None,
) -> Iterator[Command | InvalidLine]:
    """The commands of a batch; `max_bytes`: the server's limit, for a line too big to read.

    The usual line of `send`, {"conversationId": C, "content": T} and nothing else, is made
    into its Command here, without command_from's calls and checks (a third of a line's
    cost): the same Command command_from makes of it (tests/test_units.py holds them equal)."""
    loads, decode_error, new, numbers = orjson.loads, orjson.JSONDecodeError, _new, _key_numbers
    plain = default_action == SEND
    for number, raw in batch:
        if raw is None:
            yield InvalidLine(number, too_big(max_bytes), rejected=True)
            continue
        try:
            obj = loads(raw)
        except decode_error:
            if raw.strip():
                yield InvalidLine(number, "not valid JSON")
            continue
        if plain and type(obj) is dict and len(obj) == 2:
            conversation, content = obj.get("conversationId"), obj.get("content")
            if (
                type(conversation) is str
                and type(content) is str
                and content
                and conversation not in _NOT_IDS
                and "/" not in conversation
            ):
                command: Command = new(Command)
                fields = command.__dict__  # filled in FIELDS order, past the frozen __setattr__
                fields["action"] = SEND
                fields["conversation_id"] = conversation
                fields["content"] = content
                fields["message_type"] = default_type
                fields["up_to"] = None
                fields["extra"] = {}
                fields["line"] = number
                fields["key"] = f"{_KEY_PREFIX}-{next(numbers)}"
                fields["key_given"] = False
                if len(raw) == PLAIN_LINE + len(conversation) + len(content):
                    fields["source"] = raw  # the line as serialising it would write it
                yield command
                continue
        try:
            yield command_from(obj, default_action, number, default_type)
        except ValueError as exc:
            yield InvalidLine(number, str(exc))
