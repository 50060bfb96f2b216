"""The docs dialect: the protocol of the public cookbook page (``--dialect docs``).

WebSocket ``GET /ws?token=``
    A good token gets ``auth_success`` ``{userId, name, connectedAt}`` first; a bad or missing
    one gets ``auth_error`` ``{"message": "Invalid token"}`` and a close with code 4001.
    Commands are flat objects with an ``action``:

    - ``send_message {conversationId, content, type?}`` stores the message and delivers
      ``message.new`` ``{id, conversationId, senderId, senderName, content, type, createdAt}``
      to every connection of every participant, the sender's own included;
    - ``mark_read {conversationId, upToMessageId}`` records the read marker; nothing comes back;
    - ``subscribe {conversationId}`` joins the conversation.

    Frames are plain ``{"type", "payload"}``: no timestamp, no ackId.

SSE ``GET /api/im/events/stream?token=``
    401 JSON on a bad token. Otherwise ``retry: 1000`` first, then each event as
    ``id: SEQ`` / ``event: TYPE`` / ``data: PAYLOAD``. The ``id`` is the event's ``seq`` in the
    event log (:mod:`~prismer_cli.server.synclog`), so it is also a ``/api/im/sync`` cursor.
    Durable events have one: ``message.new``, ``message.edited``, ``message.deleted``,
    ``conversation.created``, ``task.updated`` (logged as ``message.new``, ``message.edit``,
    ``message.delete``, ``conversation.create``, ``task.notification``). Ephemeral ones
    (``presence.update``, ``evolution.signal``, anything else emitted) come without an ``id:``
    line and are never replayed. A ``Last-Event-ID: SEQ`` request header first replays, with
    their ids, the user's durable events after SEQ that this stream delivered or would have
    delivered, then goes live, with nothing lost or doubled in between. With the
    ``no-history`` fault there are no ``id:`` lines and no replay. ``GET /sse`` is 404 here.

Connections
    At most five per user, as in the server dialect (see :mod:`~prismer_cli.server.sockets`).

Presence
    When a user's first connection (WebSocket or SSE) opens, or their last one closes, the
    other users who share a conversation with them get ``presence.update``
    ``{userId, name, status: "online" | "offline"}``.

Choices of the stand-in, where the page says nothing
    - Anything invalid (not JSON, not an object, unknown action, a missing or mistyped field)
      gets ``{"type":"error","payload":{"message": "..."}}`` on that socket; the page describes
      no errors at all. Extra fields are accepted (and visible in ``/_control/log``).
    - ``send_message`` to an unknown conversation creates it with the sender as participant
      and sends ``conversation.created`` to the sender; sending to an existing conversation
      one is not part of makes the sender a participant. ``subscribe`` to an unknown
      conversation creates it; ``mark_read`` of an unknown conversation is recorded silently.
    - A REST post to an unknown conversation creates it the same way, and
      ``POST /conversations/{id}/read`` is accepted for any conversation.
    - ``message.edited``, ``message.deleted``, ``task.updated``, ``evolution.signal`` and
      anything else are produced with ``POST /_control/emit``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from prismer_cli.server import sockets
from prismer_cli.server.context import ServerContext
from prismer_cli.server.formats import dumps, iso, utcnow
from prismer_cli.server.links import ClientLink
from prismer_cli.server.records import Conversation, Message, User
from prismer_cli.server.synclog import DOCS_LOG_TYPES, log_emitted

ActionHandler = Callable[[User, dict[str, Any]], None]


class CommandError(Exception):
    """A client command the stand-in refuses; the message goes back in an ``error`` frame."""


def sse_event(event_type: str, payload: Any, seq: int | None) -> str:
    """One named SSE event, with an ``id:`` line when it has a place in the log."""
    head = "" if seq is None else f"id: {seq}\n"
    return f"{head}event: {event_type}\ndata: {dumps(payload)}\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _text_field(frame: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = frame.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise CommandError(f'"{name}" must be a non-empty string')
    return value


def message_payload(message: Message, sender: User | None) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversationId": message.conversation_id,
        "senderId": message.sender_id,
        "senderName": sender.display_name if sender else message.sender_id,
        "content": message.content,
        "type": message.type,
        "createdAt": iso(message.created_at),
    }


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "conversationId": conversation.id,
        "type": conversation.type,
        "participants": list(conversation.participants),
        "createdBy": conversation.created_by,
        "createdAt": iso(conversation.created_at),
    }


class DocsDialect:
    name = "docs"

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._commands: dict[str, ActionHandler] = {
            "send_message": self._send_message,
            "mark_read": self._mark_read,
            "subscribe": self._subscribe,
        }

    # ── delivery ─────────────────────────────────────────────────────────

    def deliver(
        self,
        user_ids: Iterable[str],
        event_type: str,
        payload: Any,
        seqs: Mapping[str, int] | int | None = None,
    ) -> int:
        """Send an event to every connection of each user; return how many got it.

        ``seqs`` is the log row the event stands for (one for all users, or per user); the
        row remembers this rendering so that a ``Last-Event-ID`` resume replays it."""
        ws_text = dumps({"type": event_type, "payload": payload})
        log = self._ctx.store.sync_log
        count = 0
        for user_id in dict.fromkeys(user_ids):
            seq = seqs.get(user_id) if isinstance(seqs, Mapping) else seqs
            record = log.record(seq) if seq is not None else None
            if record is not None:
                record.docs = (event_type, payload)
            no_id = record is None or self._ctx.faults.no_history
            sse_text = sse_event(event_type, payload, None if no_id else seq)
            for conn in self._ctx.hub.of(user_id):
                conn.push_event(ws_text if conn.kind == "ws" else sse_text)
                count += 1
        return count

    def _presence(self, user: User, status: str) -> None:
        payload = {"userId": user.id, "name": user.display_name, "status": status}
        self.deliver(sorted(self._ctx.store.partners_of(user.id)), "presence.update", payload)

    def _connected(self, conn: ClientLink, user: User) -> None:
        sockets.evict_oldest(self._ctx, user.id)
        if self._ctx.hub.add(conn, user.id):
            self._presence(user, "online")

    def _disconnected(self, conn: ClientLink, user: User) -> None:
        if self._ctx.hub.remove(conn):
            self._presence(user, "offline")

    # ── WebSocket ────────────────────────────────────────────────────────

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx
        user = ctx.store.user_for_token(request.query.get("token"))
        ws, conn = await sockets.open_websocket(ctx, request)
        ctx.log.add(
            "ws_connect",
            path=sockets.logged_path(request),
            status=101,
            user=user.id if user else None,
            auth="ok" if user else "failed",
            conn=conn.id,
        )
        if user is None:
            conn.push_reply(dumps({"type": "auth_error", "payload": {"message": "Invalid token"}}))
            conn.push_close(4001, "Invalid token")
            await sockets.pump(ctx, ws, conn, self._log_only, self._forget)
            return ws
        self._greet(conn, user)
        await sockets.pump(ctx, ws, conn, self._handle_text, self._detach)
        ctx.log.add("ws_close", conn=conn.id, user=user.id, code=ws.close_code)
        await sockets.close_websocket(ctx, ws, conn)
        return ws

    def _forget(self, conn: ClientLink) -> None:
        self._ctx.hub.remove(conn)

    def _detach(self, conn: ClientLink) -> None:
        user = self._ctx.store.user(conn.user_id or "")
        if user is None:
            self._forget(conn)
        else:
            self._disconnected(conn, user)

    def _greet(self, conn: ClientLink, user: User) -> None:
        self._connected(conn, user)
        hello = {"userId": user.id, "name": user.display_name, "connectedAt": iso(utcnow())}
        conn.push_reply(dumps({"type": "auth_success", "payload": hello}))
        sockets.push_ws_garbage(self._ctx, conn)

    def _log_only(self, conn: ClientLink, text: str) -> None:
        with contextlib.suppress(CommandError):
            self._log_frame(conn, text)

    def _log_frame(self, conn: ClientLink, text: str) -> Any:
        try:
            frame = json.loads(text)
        except ValueError:
            self._ctx.log.add("ws_frame_in", conn=conn.id, user=conn.user_id, text=text[:200])
            raise CommandError("Invalid JSON") from None
        self._ctx.log.add("ws_frame_in", conn=conn.id, user=conn.user_id, frame=frame)
        return frame

    def _handle_text(self, conn: ClientLink, text: str) -> None:
        try:
            self._run_command(conn, self._log_frame(conn, text))
        except CommandError as exc:
            conn.push_reply(dumps({"type": "error", "payload": {"message": str(exc)}}))

    def _run_command(self, conn: ClientLink, frame: Any) -> None:
        if not isinstance(frame, dict):
            raise CommandError("Expected a JSON object with an action")
        action = frame.get("action")
        command = self._commands.get(action) if isinstance(action, str) else None
        if command is None:
            known = ", ".join(self._commands)
            raise CommandError(f"Unknown action: {action!r} (known: {known})")
        user = self._ctx.store.user(conn.user_id or "")
        if user is None:
            raise CommandError("Not authenticated")
        command(user, frame)

    # ── commands ─────────────────────────────────────────────────────────

    def _send_message(self, user: User, frame: dict[str, Any]) -> None:
        conversation_id = _text_field(frame, "conversationId") or ""
        content = frame.get("content")
        if not isinstance(content, str):
            raise CommandError('"content" must be a string')
        kind = _text_field(frame, "type", required=False) or "text"
        conversation = self._conversation_for_post(conversation_id, user.id)
        message = self._ctx.store.post_message(
            conversation, sender=user.id, content=content, kind=kind
        )
        self._deliver_message(conversation, message)

    def _mark_read(self, user: User, frame: dict[str, Any]) -> None:
        conversation_id = _text_field(frame, "conversationId") or ""
        up_to = _text_field(frame, "upToMessageId")
        self._ctx.store.mark_read(conversation_id, user.id, up_to)

    def _subscribe(self, user: User, frame: dict[str, Any]) -> None:
        conversation_id = _text_field(frame, "conversationId") or ""
        self._ctx.store.join(conversation_id, user.id)

    def _conversation_for_post(self, conversation_id: str, user_id: str) -> Conversation:
        conversation = self._ctx.store.conversation(conversation_id)
        if conversation is None:
            return self.unknown_conversation(conversation_id, user_id)
        conversation.add_participant(user_id)
        return conversation

    def _deliver_message(self, conversation: Conversation, message: Message) -> None:
        sender = self._ctx.store.user(message.sender_id)
        seq = self._ctx.store.sync_log.message_seq(message.id)
        payload = message_payload(message, sender)
        self.deliver(conversation.participants, "message.new", payload, seq)

    # ── SSE ──────────────────────────────────────────────────────────────

    async def sse(self, request: web.Request) -> web.StreamResponse:
        return await sockets.serve_sse(
            self._ctx, request, self._sse_start, self._disconnected, heartbeat=None
        )

    def _sse_start(self, conn: ClientLink, user: User, request: web.Request) -> None:
        ctx = self._ctx
        conn.user_id = user.id
        conn.push_reply("retry: 1000\n\n")
        sockets.push_sse_garbage(ctx, conn)
        last_id = parse_last_event_id(request.headers.get("Last-Event-ID"))
        if last_id is not None and not ctx.faults.no_history:
            for text in self._replay(user.id, last_id):
                conn.push_event(text)
        self._connected(conn, user)  # same step as the replay: nothing falls in between

    def _replay(self, user_id: str, last_id: int) -> list[str]:
        """The durable events after ``last_id`` this user's stream carries, as it sent them."""
        log = self._ctx.store.sync_log
        rows = log.visible_after(last_id, self._ctx.store.log_visibility(user_id), log.head)
        return [sse_event(*r.docs, r.seq) for r in rows if r.docs is not None]

    # ── what REST and /_control call ─────────────────────────────────────

    def unknown_conversation(self, conversation_id: str, user_id: str) -> Conversation:
        log = self._ctx.store.sync_log
        before = log.head
        conversation = self._ctx.store.create_conversation(
            creator=user_id, participants=[], conversation_id=conversation_id
        )
        seq = log.head if log.head > before else None  # the creator's conversation.create row
        self.deliver([user_id], "conversation.created", conversation_payload(conversation), seq)
        return conversation

    def may_post(self, conversation: Conversation, user_id: str) -> bool:
        return True

    def message_posted(
        self, conversation: Conversation, message: Message, *, direct_to: str | None
    ) -> None:
        self._deliver_message(conversation, message)

    def conversation_read(
        self, conversation: Conversation, user_id: str, up_to: str | None
    ) -> None:
        """The page describes no read event."""

    def emit(self, event_type: str, payload: Any, to: str | None) -> int:
        targets = [to] if to is not None else self._ctx.hub.users()
        log_type = DOCS_LOG_TYPES.get(event_type)
        if log_type is None:
            return self.deliver(targets, event_type, payload)
        rows = log_emitted(self._ctx.store.sync_log, log_type, payload, targets)
        return self.deliver(targets, event_type, payload, {r.user_id: r.seq for r in rows})

    def close(self) -> None:
        """No timers in this dialect."""
