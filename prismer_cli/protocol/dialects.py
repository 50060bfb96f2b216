"""The frames of both dialects (docs/protocol.md): their names, and how each command is said.

Nothing else in the package knows what a frame or a payload field is called, so a transport or an
engine never branches on the dialect itself: it asks the Dialect object.

- docs: what the public cookbook page describes (`auth_success`, flat `action` commands,
  named SSE events at /api/im/events/stream).
- server: what the open-source Prismer Cloud server does (`authenticated`, envelopes with a
  `requestId`, acks, unnamed SSE envelopes at /sse, REST for mark-read).
"""

from __future__ import annotations

from collections.abc import Hashable

import orjson

from prismer_cli.protocol.commands import MARK_READ, SEND, SUBSCRIBE, Command
from prismer_cli.protocol.endpoints import JSON, SSE_DOCS_PATH, SSE_SERVER_PATH
from prismer_cli.records import Frozen

# Every requestId the CLI sends starts with this, so answers to its own traffic are known.
REQUEST_PREFIX = "prt-"


# Envelope fields that differ between deliveries of one event (docs/cli.md "listen").
_VOLATILE = frozenset({"ackId", "timestamp", "isRetry", "seq"})  # seq: a stored event's
_dumps, _SORTED = orjson.dumps, orjson.OPT_SORT_KEYS


def request_id(tag: str) -> str:
    """A requestId of the CLI's own: `tag` made recognisable (see answers_us)."""
    return REQUEST_PREFIX + tag


class Hello(Frozen):
    """What the server said when it accepted the token."""

    dialect: Dialect
    user_id: str | None
    name: str | None

    def __init__(
        self, dialect: Dialect, user_id: str | None = None, name: str | None = None
    ) -> None:
        self._init(locals())


# What a sent message and its echo share: the idempotency key (server dialect), or else
# conversation, content and type.
EchoKey = Hashable
IDEMPOTENCY_FIELD = "_idempotencyKey"  # in payload.metadata (server dialect, docs/protocol.md)
# A message.send frame around its payload's start (ServerDialect.command_text): the start, the
# payload's type, its key (the part for a text message holds both), its requestId, the end
_SEND_START = b'{"type":"message.send","payload":'
_TYPE_FIELD = b',"type":'
_KEY_FIELD = b',"metadata":{"' + IDEMPOTENCY_FIELD.encode() + b'":"'
_TEXT_KEY_FIELDS = _TYPE_FIELD + b'"text"' + _KEY_FIELD
_REQUEST_FIELD, _SEND_END = b'"}},"requestId":"', b'"}'


class Dialect:
    name = ""
    auth_ok = ""
    sse_path = ""
    sse_named_events = False  # SSE events are named (`event: T` + `data: payload`), not envelopes
    sse_authenticates = False  # the SSE stream starts with an `auth_ok` envelope
    # Frames that only answer the CLI's own protocol traffic: consumed, never printed.
    consumed: frozenset[str] = frozenset()
    error_type = "error"
    confirms_sends = False  # the server echoes a sent message back to its sender
    carries_keys = False  # a socket message can carry an idempotency key
    # Payload and envelope fields the engines read, bound to locals in listen's hot loop.
    ack_field = "ackId"
    time_field = "timestamp"
    retry_field = "isRetry"  # a frame the server sends again (server dialect)
    conversation_field = "conversationId"
    sender_field = "senderId"
    # The field of an echo's `payload.metadata` that holds the sent message's idempotency key,
    # where the server keeps it (see own_echo); None: an echo is known by its content.
    echo_key_field: str | None = None

    def hello(self, frame: JSON) -> Hello:
        payload = frame.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        user = payload.get("userId")
        name = payload.get("name")
        return Hello(
            self, user if isinstance(user, str) else None, name if isinstance(name, str) else None
        )

    def is_auth_failure(self, frame: JSON) -> bool:
        raise NotImplementedError

    # -- commands ---------------------------------------------------------------------------
    def command_frame(self, command: Command, request_id: str) -> JSON | None:
        """The socket frame for a command, or None for one that only REST can carry: a message
        with the user's own idempotency key where the socket has no field for it (the docs
        dialect), so that a re-run never posts twice (REST sends X-Idempotency-Key)."""
        if command.action == SEND:
            assert command.content is not None
            if command.key_given and not self.carries_keys:
                return None
            return self.send_message(command, request_id)
        if command.action == SUBSCRIBE:
            return self.subscribe(command.conversation_id, request_id)
        assert command.action == MARK_READ
        if command.up_to is None:
            return None  # "everything read": only POST .../read says that, in both dialects
        return self.mark_read(command.conversation_id, command.up_to, request_id)

    def command_text(self, command: Command, request_id: str) -> bytes | None:
        """command_frame, serialised: what a socket channel writes."""
        frame = self.command_frame(command, request_id)
        return None if frame is None else _dumps(frame)

    def send_message(self, command: Command, request_id: str) -> JSON:
        """The socket frame of a message (a SEND command)."""
        raise NotImplementedError

    def subscribe(self, conversation_id: str, request_id: str) -> JSON:
        raise NotImplementedError

    def mark_read(self, conversation_id: str, up_to: str | None, request_id: str) -> JSON | None:
        """The socket command, or None where only REST can mark a conversation read."""
        raise NotImplementedError

    def ack(self, ack_id: str) -> JSON:
        return {"type": "ack", "payload": {"ackId": ack_id}}

    def ping(self, request_id: str) -> JSON | None:
        return None

    def reconnect(self, last_event_time: int | None) -> JSON | None:
        return None

    # -- answers ----------------------------------------------------------------------------
    def is_pong(self, frame: JSON) -> bool:
        return frame.get("type") == "pong"

    def is_error(self, frame: JSON) -> bool:
        return frame.get("type") == self.error_type

    def request_id_of(self, frame: JSON) -> str:
        """The requestId a frame answers, or ""."""
        value = frame.get("requestId")
        return value if isinstance(value, str) else ""

    def error_fields(self, frame: JSON) -> JSON:
        """An error frame as a result's fields: {"error": message, "code"?: code}."""
        payload = frame.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        fields = {"error": payload.get("message") or "rejected"}
        if payload.get("code"):
            fields["code"] = payload["code"]
        return fields

    def echo_key(self, command: Command) -> EchoKey:
        """What the server's echo of this sent message will share with it."""
        return (command.conversation_id, command.content, command.message_type)

    def own_echo(self, frame: JSON, me: str | None) -> tuple[EchoKey, JSON] | None:
        """A new message sent by `me`, as its echo key and payload; None for any other frame."""
        payload = self._own_message(frame, me)
        return None if payload is None else (self.content_key(payload), payload)

    def _own_message(self, frame: JSON, me: str | None) -> JSON | None:
        """The payload of a new message sent by `me`, else None."""
        if frame.get("type") != "message.new":
            return None
        payload = frame.get("payload")
        if not isinstance(payload, dict) or payload.get(self.sender_field) != me:
            return None
        return payload

    def content_key(self, payload: JSON) -> EchoKey:
        """The echo key of a message known by its content (echo_key, of the sent command)."""
        return (
            payload.get(self.conversation_field),
            payload.get("content"),
            payload.get("type", "text"),
        )

    @staticmethod  # a plain function: it is called once per event in listen's hot loop
    def dedupe_key(kind: str, payload: JSON, frame: JSON) -> Hashable:
        """What a re-delivery of this event shares with the first delivery (docs/cli.md).

        A message is new only once: `message.new` is keyed by its `payload.id` alone (one
        dict lookup; a re-broadcast of a stored message comes with a new ackId). Any other
        event is keyed by its whole envelope but the fields that change on a re-send (`ackId`,
        `timestamp`, `isRetry`) and a stored event's `seq`, so an edit or a status change about
        the same message is a new event, and a stored event and its live twin share a key.
        Nothing that belongs to one server process (an ackId) is ever a key.
        """
        if kind == "message.new":
            message_id = payload.get("id")
            if type(message_id) is str:
                return message_id
        stable = {k: v for k, v in frame.items() if k not in _VOLATILE}
        try:
            return hash(_dumps(stable, option=_SORTED))  # an int: never equal to an id
        except TypeError:  # a value orjson cannot write again (a huge int): not de-duplicated
            return object()


class DocsDialect(Dialect):
    name = "docs"
    auth_ok = "auth_success"
    sse_path = SSE_DOCS_PATH
    sse_named_events = True
    consumed = frozenset({"auth_success"})

    def is_auth_failure(self, frame: JSON) -> bool:
        return frame.get("type") == "auth_error"

    # The page's commands carry exactly the page's fields: a server built from it may
    # reject anything else, so no requestId goes out in this dialect.
    def send_message(self, command: Command, request_id: str) -> JSON:
        return {
            "action": SEND,
            "conversationId": command.conversation_id,
            "content": command.content,
            "type": command.message_type,
        }

    def subscribe(self, conversation_id: str, request_id: str) -> JSON:
        return {"action": SUBSCRIBE, "conversationId": conversation_id}

    def mark_read(self, conversation_id: str, up_to: str | None, request_id: str) -> JSON | None:
        command: JSON = {"action": MARK_READ, "conversationId": conversation_id}
        if up_to is not None:
            command["upToMessageId"] = up_to
        return command


class ServerDialect(Dialect):
    name = "server"
    auth_ok = "authenticated"
    sse_path = SSE_SERVER_PATH
    sse_authenticates = True
    consumed = frozenset({"authenticated", "pong", "reconnect.ack"})
    confirms_sends = True
    carries_keys = True
    echo_key_field = IDEMPOTENCY_FIELD

    def is_auth_failure(self, frame: JSON) -> bool:
        if frame.get("type") != "error":
            return False
        payload = frame.get("payload")
        return isinstance(payload, dict) and payload.get("code") in ("AUTH_FAILED", "AUTH_REQUIRED")

    def command_frame(self, command: Command, request_id: str) -> JSON | None:
        if command.action == SEND and command.key and not command.extra:  # the usual message:
            return {  # send_message's frame, without its calls (send's hot path, per message)
                "type": "message.send",
                "payload": {
                    "conversationId": command.conversation_id,
                    "content": command.content,
                    "type": command.message_type,
                    "metadata": {IDEMPOTENCY_FIELD: command.key},
                },
                "requestId": request_id,
            }
        return super().command_frame(command, request_id)

    def command_text(self, command: Command, request_id: str) -> bytes | None:
        """The usual message from its stdin line's own bytes (Command.source): the frame
        command_frame makes of it, with the line's object as the payload's start, and no dict
        built or serialised (send's hot path, per message). The key (new_key) and the request
        id (the channel's) are letters, digits and "-": nothing to escape."""
        source = command.source
        if source is not None and command.key and not command.key_given:
            kind = command.message_type
            fields = _TEXT_KEY_FIELDS if kind == "text" else _TYPE_FIELD + _dumps(kind) + _KEY_FIELD
            return b"".join(
                (
                    _SEND_START,
                    source[:-1],
                    fields,
                    command.key.encode(),
                    _REQUEST_FIELD,
                    request_id.encode(),
                    _SEND_END,
                )
            )
        return super().command_text(command, request_id)

    def send_message(self, command: Command, request_id: str) -> JSON:
        payload: JSON = {
            "conversationId": command.conversation_id,
            "content": command.content,
            "type": command.message_type,
        }
        extra, metadata = command.extra, None
        if extra:
            if extra.get("parentId") is not None:
                payload["parentId"] = extra["parentId"]
            metadata = extra.get("metadata")
        if command.key:  # the real server's de-duplication (message.service.ts)
            key = {IDEMPOTENCY_FIELD: command.key}
            metadata = {**metadata, **key} if metadata else key
        if metadata is not None:
            payload["metadata"] = metadata
        return {"type": "message.send", "payload": payload, "requestId": request_id}

    def echo_key(self, command: Command) -> EchoKey:
        """The idempotency key: the server keeps `metadata`, and its echo carries the key."""
        return command.key or super().echo_key(command)

    def own_echo(self, frame: JSON, me: str | None) -> tuple[EchoKey, JSON] | None:
        if frame.get("type") != "message.new":  # _own_message, without the call (send's
            return None  # hot path: once per echo)
        payload = frame.get("payload")
        if not isinstance(payload, dict) or payload.get(self.sender_field) != me:
            return None
        metadata = payload.get("metadata")
        key = metadata.get(self.echo_key_field) if isinstance(metadata, dict) else None
        return (key if isinstance(key, str) else self.content_key(payload)), payload

    def subscribe(self, conversation_id: str, request_id: str) -> JSON:
        return {
            "type": "conversation.join",
            "payload": {"conversationId": conversation_id},
            "requestId": request_id,
        }

    def mark_read(self, conversation_id: str, up_to: str | None, request_id: str) -> JSON | None:
        return None  # POST /api/im/conversations/{id}/read

    def ping(self, request_id: str) -> JSON | None:
        return {"type": "ping", "payload": {}, "requestId": request_id}

    def reconnect(self, last_event_time: int | None) -> JSON | None:
        payload: JSON = {} if last_event_time is None else {"lastEventTime": last_event_time}
        return {"type": "reconnect", "payload": payload}


DOCS = DocsDialect()
SERVER = ServerDialect()
DIALECTS: dict[str, Dialect] = {"docs": DOCS, "server": SERVER}
# Over SSE the docs path is tried first; a 404 there means the server dialect's path.
SSE_PROBE_ORDER = (DOCS, SERVER)


def detect(first_frame: JSON, forced: Dialect | None) -> Dialect | None:
    """The dialect that the first frame of a WebSocket speaks, or None if it is neither."""
    if forced is not None:
        return forced
    kind = first_frame.get("type")
    if kind in ("auth_success", "auth_error"):
        return DOCS
    if kind in ("authenticated", "error"):
        return SERVER
    return None


def answers_us(frame: JSON) -> bool:
    """An error frame that answers one of the CLI's own commands (its requestId is ours)."""
    request_id = frame.get("requestId")
    return isinstance(request_id, str) and request_id.startswith(REQUEST_PREFIX)


# What the real server (at most five connections per user) and proxies say when they close a
# connection to make room for another: the connection is fine, the user has too many.
_EVICTION_WORDS = ("replaced by newer", "too many connections", "connection limit")
EVICTION_CLOSE_CODES = frozenset({1013, 4029})  # "try again later", "too many"


def eviction(text: str | None, close_code: int | None = None) -> bool:
    """Whether an error or close reason means "too many connections of this user"."""
    if close_code in EVICTION_CLOSE_CODES:
        return True
    lowered = (text or "").lower()
    return any(words in lowered for words in _EVICTION_WORDS)


def error_message(frame: JSON) -> str:
    """What an error frame says; the eviction frame has `data` where others have `payload`."""
    for field in ("payload", "data"):
        body = frame.get(field)
        if isinstance(body, dict):
            message = body.get("message") or body.get("error")
            code = body.get("code")
            if message:
                return f"{message} ({code})" if code else str(message)
    return "rejected by the server"
