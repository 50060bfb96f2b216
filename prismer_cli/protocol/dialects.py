"""The wire format of both dialects (protocol.md): frame names, command shapes, endpoints.

Nothing else in the package knows what a frame is called or where an endpoint lives, so a
transport or a subcommand never branches on the dialect itself: it asks the Dialect object.

- docs: what the public cookbook page describes (`auth_success`, flat `action` commands,
  named SSE events at /api/im/events/stream).
- server: what the open-source Prismer Cloud server does (`authenticated`, envelopes with a
  `requestId`, acks, unnamed SSE envelopes at /sse, REST for mark-read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

# Over SSE: the docs path first; a 404 there means the server dialect's path.
SSE_DOCS_PATH = "/api/im/events/stream"
SSE_SERVER_PATH = "/sse"
WS_PATH = "/ws"
REST_PREFIX = "/api/im"
# Every requestId the CLI sends starts with this, so answers to its own traffic are known.
REQUEST_PREFIX = "prt-"


@dataclass(frozen=True)
class Hello:
    """What the server said when it accepted the token."""

    dialect: Dialect
    user_id: str | None = None
    name: str | None = None


class Dialect:
    name = ""
    auth_ok = ""
    sse_path = ""
    # Frames that only answer the CLI's own protocol traffic: consumed, never printed.
    consumed: frozenset[str] = frozenset()
    confirms_sends = False

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

    def send_message(
        self, conversation_id: str, content: str, message_type: str, extra: JSON, request_id: str
    ) -> JSON:
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


class DocsDialect(Dialect):
    name = "docs"
    auth_ok = "auth_success"
    sse_path = SSE_DOCS_PATH
    consumed = frozenset({"auth_success"})

    def is_auth_failure(self, frame: JSON) -> bool:
        return frame.get("type") == "auth_error"

    # The page's commands carry exactly the page's fields: a server built from it may
    # reject anything else, so no requestId goes out in this dialect.
    def send_message(
        self, conversation_id: str, content: str, message_type: str, extra: JSON, request_id: str
    ) -> JSON:
        return {
            "action": "send_message",
            "conversationId": conversation_id,
            "content": content,
            "type": message_type,
        }

    def subscribe(self, conversation_id: str, request_id: str) -> JSON:
        return {"action": "subscribe", "conversationId": conversation_id}

    def mark_read(self, conversation_id: str, up_to: str | None, request_id: str) -> JSON | None:
        command: JSON = {"action": "mark_read", "conversationId": conversation_id}
        if up_to is not None:
            command["upToMessageId"] = up_to
        return command


class ServerDialect(Dialect):
    name = "server"
    auth_ok = "authenticated"
    sse_path = SSE_SERVER_PATH
    consumed = frozenset({"authenticated", "pong", "reconnect.ack"})
    confirms_sends = True

    def is_auth_failure(self, frame: JSON) -> bool:
        if frame.get("type") != "error":
            return False
        payload = frame.get("payload")
        return isinstance(payload, dict) and payload.get("code") in ("AUTH_FAILED", "AUTH_REQUIRED")

    def send_message(
        self, conversation_id: str, content: str, message_type: str, extra: JSON, request_id: str
    ) -> JSON:
        payload: JSON = {
            "conversationId": conversation_id,
            "content": content,
            "type": message_type,
        }
        for key in ("metadata", "parentId"):
            if extra.get(key) is not None:
                payload[key] = extra[key]
        return {"type": "message.send", "payload": payload, "requestId": request_id}

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


def error_message(frame: JSON) -> str:
    payload = frame.get("payload")
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error")
        code = payload.get("code")
        if message:
            return f"{message} ({code})" if code else str(message)
    return "rejected by the server"
