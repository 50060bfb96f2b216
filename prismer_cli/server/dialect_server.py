"""The server dialect: what the open-source Prismer Cloud server does (``--dialect server``).

Reproduces the recorded transcripts: every frame carries ``timestamp`` (ms), errors carry the
command's ``requestId``, pushed events carry an ``ackId`` (see :mod:`~prismer_cli.server.acks`).

WebSocket ``GET /ws``
    ``?token=`` valid → ``authenticated {userId}``, then any undelivered frames with
    ``isRetry: true``. A bad token → ``error {"Invalid token", AUTH_FAILED}`` and the socket
    stays open until the auth timeout sends ``error {"Authentication timeout"}`` and closes
    with 4001. Without a token the client may send ``authenticate {token}`` (the answer carries
    its requestId). Before authentication ``ping`` and ``ack`` work and everything else gets
    ``AUTH_REQUIRED``. After authentication the user is in every conversation they take part in.

    Commands: ``message.send`` (broadcasts ``message.new`` to the conversation, the sender
    included; no reply of its own), ``conversation.join|leave``, ``typing.start|stop``
    (``typing.indicator`` to the others), ``presence.update`` (``presence.changed`` to every
    connected client, the sender included, as the real server's global broadcast does),
    ``ping`` (``pong``; a ``requestId`` inside the ping's payload, as Prismer's Python SDK sends
    it, is echoed inside the pong's payload too), ``ack``, ``reconnect`` (re-sends undelivered
    frames, then ``reconnect.ack``), ``agent.heartbeat`` (ignored). An unknown type gets
    ``UNKNOWN_EVENT``; text that is not JSON gets ``error {"Invalid JSON"}`` without a code.
    ``message.send`` to a conversation that does not exist, that the sender is not part of, or
    without ``conversationId``/``content`` gets ``error {"Internal error handling
    message.send", INTERNAL}``, as recorded. A ``metadata._idempotencyKey`` already used in
    the conversation stores nothing: the stored message's ``message.new`` is broadcast again
    (new ackId, no isRetry), see :mod:`~prismer_cli.server.idempotency`. Live ``message.new``
    frames carry the message ``id`` and no ``seq`` (the real server sends none); a client
    finds their place in the log by reading ``/api/im/sync``.

    At most 5 connections (WebSocket and SSE) per user, see :mod:`~prismer_cli.server.sockets`.
    Each new message is also POSTed to the webhook of each agent in the conversation but the
    sender that registered an ``endpoint``, see :mod:`~prismer_cli.server.webhooks`.

    Frames are handled one after the other, in the order they came; with the
    ``concurrent-handling`` fault each ``message.send`` is handled after a random delay of up
    to 5 ms instead, as on the real server (see :mod:`~prismer_cli.server.faults`).

SSE ``GET /sse?token=``
    401 JSON ``Invalid or expired token`` / ``Token required (?token=<JWT>)``. Otherwise
    unnamed ``data: <envelope>`` frames starting with ``authenticated``, ``: heartbeat`` every
    ``heartbeat`` seconds, no ``id:``. Read-only: commands go over REST.
    ``/api/im/events/stream`` is 404 in this dialect.

Leniency of the stand-in
    ``conversation.join`` of an unknown conversation creates it, and joining makes the user a
    participant. A user is in the "room" of every conversation they take part in, including ones
    created after they connected, unless they left it with ``conversation.leave`` since their
    last authentication. REST posts to an unknown conversation are 404.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from prismer_cli.server import sockets
from prismer_cli.server.acks import AckTracker
from prismer_cli.server.context import ServerContext
from prismer_cli.server.formats import dumps, iso, now_ms, utcnow
from prismer_cli.server.idempotency import key_of
from prismer_cli.server.links import ClientLink
from prismer_cli.server.records import Conversation, Message, User
from prismer_cli.server.synclog import DURABLE_TYPES, log_emitted
from prismer_cli.server.webhooks import Webhooks

IGNORED_TYPES = frozenset(
    {
        "agent.heartbeat",
        "agent.capability.declare",
        "message.stream.start",
        "message.stream.chunk",
        "message.stream.end",
    }
)

CONCURRENT_DELAY = 0.005  # the longest random delay of a message.send, concurrent-handling

EventHandler = Callable[[ClientLink, str, dict[str, Any], Any], None]


class CommandFailed(Exception):
    """A command the real server answers with ``Internal error handling <type>``."""


def frame(event_type: str, payload: Any, request_id: Any = None) -> dict[str, Any]:
    """An envelope as ``makeEvent`` builds it: type, payload, requestId?, timestamp."""
    envelope: dict[str, Any] = {"type": event_type, "payload": payload}
    if request_id is not None:
        envelope["requestId"] = request_id
    envelope["timestamp"] = now_ms()
    return envelope


def error_frame(message: str, code: str | None = None, request_id: Any = None) -> dict[str, Any]:
    payload = {"message": message} if code is None else {"message": message, "code": code}
    return frame("error", payload, request_id)


def js_string(value: Any) -> str:
    """How a template string would show a value: ``undefined`` for a missing one."""
    if value is None:
        return "undefined"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return dumps(value)


def wire_text(conn: ClientLink, text: str) -> str:
    return text if conn.kind == "ws" else f"data: {text}\n\n"


class ServerDialect:
    name = "server"

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._acks = AckTracker(ctx.options.ack_timeout)
        self._webhooks = Webhooks(ctx.store, ctx.log)
        ctx.store.on_message = self._webhooks.dispatch
        self._left: dict[str, set[str]] = {}
        self._handlers: dict[str, EventHandler] = {
            "message.send": self._message_send,
            "typing.start": self._typing,
            "typing.stop": self._typing,
            "presence.update": self._presence_update,
            "conversation.join": self._join,
            "conversation.leave": self._leave,
            "reconnect": self._reconnect,
        }

    # ── delivery ─────────────────────────────────────────────────────────

    def _reply(self, conn: ClientLink, envelope: dict[str, Any]) -> None:
        conn.push_reply(wire_text(conn, dumps(envelope)))

    def send_to_user(self, user_id: str, envelope: dict[str, Any]) -> int:
        """Push to all of a user's connections, with one ackId for the user when due."""
        conns = self._ctx.hub.of(user_id)
        if not conns:
            return 0
        if self._acks.needs_ack(envelope["type"]):
            envelope = {**envelope, "ackId": self._acks.track(user_id, envelope)}
        text = dumps(envelope)
        for conn in conns:
            conn.push_event(wire_text(conn, text))
        return len(conns)

    def room_members(self, conversation: Conversation) -> list[str]:
        return [
            user_id
            for user_id in conversation.participants
            if conversation.id not in self._left.get(user_id, ())
        ]

    def broadcast_room(
        self, conversation_id: str, envelope: dict[str, Any], exclude: str | None = None
    ) -> int:
        conversation = self._ctx.store.conversation(conversation_id)
        if conversation is None:
            return 0
        members = [u for u in self.room_members(conversation) if u != exclude]
        return sum(self.send_to_user(user_id, envelope) for user_id in members)

    def broadcast_global(self, envelope: dict[str, Any]) -> int:
        text = dumps(envelope)
        conns = [conn for user_id in self._ctx.hub.users() for conn in self._ctx.hub.of(user_id)]
        for conn in conns:
            conn.push_event(wire_text(conn, text))
        return len(conns)

    # ── connections ──────────────────────────────────────────────────────

    def _attach(self, conn: ClientLink, user_id: str) -> None:
        """Register an authenticated connection, evicting the oldest beyond five."""
        hub = self._ctx.hub
        if conn.user_id is not None:
            hub.remove(conn)
        sockets.evict_oldest(self._ctx, user_id)
        hub.add(conn, user_id)
        self._left.pop(user_id, None)  # auto-join every conversation again

    def _detach(self, conn: ClientLink) -> None:
        user_id = conn.user_id
        self._ctx.hub.remove(conn)
        if user_id is not None:
            self._acks.disconnected(user_id)

    # ── WebSocket ────────────────────────────────────────────────────────

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx
        ws, conn = await sockets.open_websocket(ctx, request)
        token = request.query.get("token")
        if token:
            self._authenticate(conn, token, None)
        auth = "none" if not token else ("ok" if conn.user_id else "failed")
        ctx.log.add(
            "ws_connect",
            path=sockets.logged_path(request),
            status=101,
            user=conn.user_id,
            auth=auth,
            conn=conn.id,
        )
        loop = asyncio.get_running_loop()
        timeout = loop.call_later(ctx.options.auth_timeout, self._auth_timeout, conn)
        try:
            await sockets.pump(ctx, ws, conn, self._handle_text, self._detach)
        finally:
            timeout.cancel()
        ctx.log.add("ws_close", conn=conn.id, user=conn.user_id, code=ws.close_code)
        await sockets.close_websocket(ctx, ws, conn)
        return ws

    def _auth_timeout(self, conn: ClientLink) -> None:
        if conn.user_id is None:
            self._reply(conn, error_frame("Authentication timeout"))
            conn.push_close(4001, "Authentication timeout")

    def _authenticate(self, conn: ClientLink, token: Any, request_id: Any) -> None:
        user = self._ctx.store.user_for_token(token) if isinstance(token, str) else None
        if user is None:
            self._reply(conn, error_frame("Invalid token", "AUTH_FAILED", request_id))
            return
        self._attach(conn, user.id)
        self._reply(conn, frame("authenticated", {"userId": user.id}, request_id))
        sockets.push_ws_garbage(self._ctx, conn)
        self._send_retries(conn, user.id)

    def _send_retries(self, conn: ClientLink, user_id: str) -> None:
        for envelope in self._acks.take_retries(user_id):
            conn.push_event(wire_text(conn, dumps(envelope)))

    def _handle_text(self, conn: ClientLink, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self._ctx.log.add("ws_frame_in", conn=conn.id, user=conn.user_id, text=text[:200])
            self._reply(conn, error_frame("Invalid JSON"))
            return
        self._ctx.log.add("ws_frame_in", conn=conn.id, user=conn.user_id, frame=message)
        if message is None:  # destructuring null throws in the real handler
            self._reply(conn, error_frame("Invalid JSON"))
            return
        if not isinstance(message, dict):
            message = {}
        self._dispatch(conn, message.get("type"), message.get("payload"), message.get("requestId"))

    def _dispatch(self, conn: ClientLink, event_type: Any, payload: Any, request_id: Any) -> None:
        if event_type in ("authenticate", "ack") and payload is None:
            self._reply(conn, error_frame("Invalid JSON"))  # `const {x} = undefined` throws
        elif event_type == "authenticate":
            token = payload.get("token") if isinstance(payload, dict) else None
            self._authenticate(conn, token, request_id)
        elif event_type == "ping":
            self._pong(conn, payload, request_id)
        elif event_type == "ack":
            ack_id = payload.get("ackId") if isinstance(payload, dict) else None
            if isinstance(ack_id, str):
                self._acks.ack(ack_id)
        elif conn.user_id is None:
            self._reply(conn, error_frame("Not authenticated", "AUTH_REQUIRED", request_id))
        else:
            self._run(conn, event_type, payload, request_id)

    def _run(self, conn: ClientLink, event_type: Any, payload: Any, request_id: Any) -> None:
        name = js_string(event_type)
        handler = self._handlers.get(event_type) if isinstance(event_type, str) else None
        if handler is None and event_type in IGNORED_TYPES:
            return
        if handler is None:
            self._reply(
                conn, error_frame(f"Unknown event type: {name}", "UNKNOWN_EVENT", request_id)
            )
            return
        if name == "message.send" and self._ctx.faults.concurrent_handling:
            # handler.ts does not await one frame's handling before the next: each send is
            # stored and broadcast when its database calls return, so pipelined ones race.
            delay = random.uniform(0.0, CONCURRENT_DELAY)
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._command, conn, handler, name, payload, request_id)
            return
        self._command(conn, handler, name, payload, request_id)

    def _command(
        self, conn: ClientLink, handler: EventHandler, name: str, payload: Any, request_id: Any
    ) -> None:
        try:
            if not isinstance(payload, dict):
                raise CommandFailed(name)
            handler(conn, name, payload, request_id)
        except CommandFailed:
            self._reply(
                conn, error_frame(f"Internal error handling {name}", "INTERNAL", request_id)
            )

    # ── commands ─────────────────────────────────────────────────────────

    def _pong(self, conn: ClientLink, payload: Any, request_id: Any) -> None:
        body: dict[str, Any] = {}
        if isinstance(payload, dict) and "requestId" in payload:
            body["requestId"] = payload["requestId"]  # what Prismer's Python SDK waits for
        self._reply(conn, frame("pong", body, request_id))

    def _message_send(
        self, conn: ClientLink, name: str, payload: dict[str, Any], request_id: Any
    ) -> None:
        user_id = conn.user_id or ""
        conversation = self._ctx.store.conversation(_text(payload, "conversationId"))
        content = payload.get("content")
        kind = payload.get("type", "text")
        metadata = payload.get("metadata", {})
        parent_id = payload.get("parentId")
        if (
            conversation is None
            or user_id not in conversation.participants
            or not isinstance(content, str)
            or not isinstance(kind, str)
            or not isinstance(metadata, dict)
            or not (parent_id is None or isinstance(parent_id, str))
        ):
            raise CommandFailed(name)
        key = key_of(metadata)
        message = self._ctx.store.idempotency.find(conversation.id, key) if key else None
        if message is None:  # a repeated key: the stored message is broadcast again
            message = self._ctx.store.post_message(
                conversation,
                sender=user_id,
                content=content,
                kind=kind,
                metadata=metadata,
                parent_id=parent_id,
            )
        self.broadcast_room(conversation.id, frame("message.new", message.event_view()))

    def _typing(
        self, conn: ClientLink, name: str, payload: dict[str, Any], request_id: Any
    ) -> None:
        conversation_id = _text(payload, "conversationId")
        indicator = {
            "conversationId": conversation_id,
            "userId": conn.user_id,
            "isTyping": name == "typing.start",
        }
        self.broadcast_room(conversation_id, frame("typing.indicator", indicator), conn.user_id)

    def _presence_update(
        self, conn: ClientLink, name: str, payload: dict[str, Any], request_id: Any
    ) -> None:
        changed: dict[str, Any] = {"userId": conn.user_id}
        if payload.get("status") is not None:
            changed["status"] = payload["status"]
        changed["lastSeen"] = now_ms()
        self.broadcast_global(frame("presence.changed", changed))

    def _join(self, conn: ClientLink, name: str, payload: dict[str, Any], request_id: Any) -> None:
        conversation_id = _text(payload, "conversationId")
        if conversation_id and conn.user_id:
            self._ctx.store.join(conversation_id, conn.user_id)
            self._left.get(conn.user_id, set()).discard(conversation_id)

    def _leave(self, conn: ClientLink, name: str, payload: dict[str, Any], request_id: Any) -> None:
        conversation_id = _text(payload, "conversationId")
        if conversation_id and conn.user_id:
            self._left.setdefault(conn.user_id, set()).add(conversation_id)

    def _reconnect(
        self, conn: ClientLink, name: str, payload: dict[str, Any], request_id: Any
    ) -> None:
        user_id = conn.user_id or ""
        self._send_retries(conn, user_id)
        ack = {"userId": user_id, "undeliveredCount": 0, "syncAdvised": True}
        self._reply(conn, frame("reconnect.ack", ack, request_id))

    # ── SSE ──────────────────────────────────────────────────────────────

    async def sse(self, request: web.Request) -> web.StreamResponse:
        heartbeat = self._ctx.options.heartbeat
        return await sockets.serve_sse(
            self._ctx, request, self._sse_start, self._sse_end, heartbeat=heartbeat
        )

    def _sse_start(self, conn: ClientLink, user: User, request: web.Request) -> None:
        self._attach(conn, user.id)
        self._reply(conn, frame("authenticated", {"userId": user.id}))
        sockets.push_sse_garbage(self._ctx, conn)

    def _sse_end(self, conn: ClientLink, user: User) -> None:
        self._detach(conn)

    # ── what REST and /_control call ─────────────────────────────────────

    def unknown_conversation(self, conversation_id: str, user_id: str) -> Conversation | None:
        return None

    def may_post(self, conversation: Conversation, user_id: str) -> bool:
        return user_id in conversation.participants

    def message_posted(
        self, conversation: Conversation, message: Message, *, direct_to: str | None
    ) -> None:
        envelope = frame("message.new", message.event_view())
        targets = [message.sender_id, direct_to] if direct_to else conversation.participants
        for user_id in dict.fromkeys(targets):
            self.send_to_user(user_id, envelope)

    def conversation_read(
        self, conversation: Conversation, user_id: str, up_to: str | None
    ) -> None:
        read: dict[str, Any] = {
            "conversationId": conversation.id,
            "readBy": user_id,
            "readAt": iso(utcnow()),
        }
        if up_to is not None:
            read["lastReadMessageId"] = up_to
        self.broadcast_room(conversation.id, frame("message.read", read), exclude=user_id)

    def emit(self, event_type: str, payload: Any, to: str | None) -> int:
        envelope = frame(event_type, payload)
        targets = [to] if to is not None else self._ctx.hub.users()
        if event_type in DURABLE_TYPES:
            log_emitted(self._ctx.store.sync_log, event_type, payload, targets)
        return sum(self.send_to_user(user_id, envelope) for user_id in targets)

    def close(self) -> None:
        self._acks.close()
        self._webhooks.close()


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    return value if isinstance(value, str) else ""
