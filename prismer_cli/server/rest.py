"""The REST endpoints under ``/api/im``, the same in both dialects.

Answer shapes follow the recorded transcripts and the real server's ``api/*.ts``:
``{"ok": true, "data": ...}``, errors ``{"ok": false, "error": "..."}``. Every endpoint except
``/register`` needs ``Authorization: Bearer <token>`` (401 otherwise).

- ``POST /register`` ``{type: "agent"|"human", username, displayName, agentType?,
  capabilities?}``: 201 ``{imUserId, username, displayName, role, token, expiresIn,
  capabilities, isNew: true}`` (``capabilities`` only for agents; ``token`` a JWT, see
  :mod:`~prismer_cli.server.tokens`). 400 ``type must be "agent" or "human"``, ``username is
  required``, ``username must be 3-32 characters, alphanumeric, underscore, or hyphen``
  (``^[a-zA-Z0-9_-]{3,32}$``), ``displayName is required``, ``agentType must be one of: ...``,
  checked in that order; 409 ``Username 'X' is already taken``. With a valid Bearer JWT the
  caller's own user is updated instead: 200 with ``isNew: false`` (as ``api/register.ts``).
- ``POST /token/refresh``: see :mod:`~prismer_cli.server.tokenapi`.
- ``GET /me``: ``{user, stats, agentCard (agents only), bindings, credits}``.
- ``GET /conversations``: the user's conversations (``?withUnread=true`` fills
  ``unreadCount``).
- ``POST /direct/{userId}/messages``: uses (or creates) the direct conversation of the two
  users; 201 ``{conversationId, message}``.
- ``POST /messages/{conversationId}``: body ``{content, type?, metadata?, parentId?}``; 201
  ``{conversationId, message}``. An unknown conversation is created in the docs dialect and 404
  in the server dialect.
- ``POST /conversations/{id}/read``: marks everything read; 200 ``{"ok": true}``.
- ``GET /sync?since=&limit=``: the event log, see :mod:`~prismer_cli.server.synclog`; 404
  ``Not found`` with the ``no-history`` fault.
- ``GET /conversations/{id}``, ``/users/{id}``, ``/messages/{conversationId}``: server dialect
  only, see :mod:`~prismer_cli.server.lookups`.

Both message posts honour ``X-Idempotency-Key`` as :mod:`~prismer_cli.server.idempotency`
says (the key is added to the message's metadata as ``_idempotencyKey``). A posted message is
delivered over WebSocket and SSE exactly like one sent over a socket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from prismer_cli.server import tokens
from prismer_cli.server.context import Endpoints
from prismer_cli.server.idempotency import KEY_FIELD, key_of
from prismer_cli.server.records import Conversation, Message, User
from prismer_cli.server.responses import json_answer, json_error
from prismer_cli.server.state import Store
from prismer_cli.server.synclog import SyncFailed
from prismer_cli.server.users import RegistrationError

Target = Callable[[web.Request, User], tuple[Conversation, str | None]]


class BadRequest(Exception):
    """A request answered with a 4xx ``{"ok": false, "error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest(400, "Invalid JSON body") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "Invalid JSON body")
    return body


def _message_fields(body: dict[str, Any]) -> tuple[str, str, dict[str, Any], str | None]:
    content, kind = body.get("content"), body.get("type", "text")
    metadata, parent_id = body.get("metadata") or {}, body.get("parentId")
    if not isinstance(content, str) or not content:
        raise BadRequest(400, "content is required")
    if not isinstance(kind, str):
        raise BadRequest(400, "type must be a string")
    if not isinstance(metadata, dict):
        raise BadRequest(400, "metadata must be an object")
    if parent_id is not None and not isinstance(parent_id, str):
        raise BadRequest(400, "parentId must be a string")
    return content, kind, metadata, parent_id


def bearer_user(store: Store, request: web.Request) -> User:
    """The user of the request's ``Authorization: Bearer`` token, else BadRequest 401."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise BadRequest(401, "Missing or invalid Authorization header")
    user = store.user_for_token(header[len("Bearer ") :])
    if user is None:
        raise BadRequest(401, "Invalid or expired token")
    return user


def me_view(user: User, stats: dict[str, int]) -> dict[str, Any]:
    card = {
        "capabilities": list(user.capabilities),
        "description": "",
        "status": "online",
        "endpoint": user.endpoint,
        "agentType": user.agent_type,
    }
    return {
        "user": user.profile_view(),
        "stats": stats,
        **({"agentCard": card} if user.role == "agent" else {}),
        "bindings": [],
        "credits": {"balance": 100000, "totalSpent": 0},
    }


class RestApi(Endpoints):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/im/register", self.register),
            web.get("/api/im/me", self.me),
            web.get("/api/im/conversations", self.conversations),
            web.post("/api/im/conversations/{conversationId}/read", self.read),
            web.post("/api/im/direct/{userId}/messages", self.direct_message),
            web.post("/api/im/messages/{conversationId}", self.conversation_message),
            web.get("/api/im/sync", self.sync),
        ]

    def _user(self, request: web.Request) -> User:
        return bearer_user(self._ctx.store, request)

    # ── endpoints ────────────────────────────────────────────────────────

    async def register(self, request: web.Request) -> web.StreamResponse:
        store = self._ctx.store
        try:
            user, is_new = store.register(await _json_body(request), self._jwt_caller(request))
        except RegistrationError as exc:
            return json_error(exc.message, exc.status)
        except BadRequest as exc:
            return json_error(exc.message, exc.status)
        data: dict[str, Any] = {
            "imUserId": user.id,
            "username": user.username,
            "displayName": user.display_name,
            "role": user.role,
            "token": store.issue_token(user),
            "expiresIn": tokens.expires_in(store.token_ttl),
        }
        if user.role == "agent":
            data["capabilities"] = list(user.capabilities)
        data["isNew"] = is_new
        return json_answer({"ok": True, "data": data}, status=201 if is_new else 200)

    def _jwt_caller(self, request: web.Request) -> User | None:
        """``optionalAuthMiddleware``: the user of a valid Bearer JWT, else anonymous."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        try:
            claims = tokens.verify(header[len("Bearer ") :])
        except tokens.TokenRejected:
            return None
        return self._ctx.store.user_from_claims(claims)

    async def me(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self._user(request)
        except BadRequest as exc:
            return json_error(exc.message, exc.status)
        return json_answer({"ok": True, "data": me_view(user, self._stats(user))})

    def _stats(self, user: User) -> dict[str, int]:
        store = self._ctx.store
        mine = store.conversations_of(user.id)
        return {
            "conversationCount": len(mine),
            "directCount": sum(1 for c in mine if c.type == "direct"),
            "groupCount": sum(1 for c in mine if c.type != "direct"),
            "contactCount": 0,
            "messagesSent": store.messages_sent_by(user.id),
            "unreadCount": sum(c.unread_count(user.id) for c in mine),
        }

    async def conversations(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self._user(request)
        except BadRequest as exc:
            return json_error(exc.message, exc.status)
        with_unread = request.query.get("withUnread") == "true"
        mine = sorted(
            self._ctx.store.conversations_of(user.id),
            key=lambda c: c.last_message_at or c.updated_at,
            reverse=True,
        )
        views = [c.list_view(user.id, with_unread=with_unread) for c in mine]
        return json_answer({"ok": True, "data": views})

    async def read(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self._user(request)
        except BadRequest as exc:
            return json_error(exc.message, exc.status)
        conversation_id = request.match_info["conversationId"]
        conversation = self._ctx.store.conversation(conversation_id)
        participant = conversation is not None and user.id in conversation.participants
        if not participant and self._dialect.name == "server":
            return json_error("Not a participant", 403)
        up_to = self._ctx.store.mark_read(conversation_id, user.id, None)
        if conversation is not None:
            self._dialect.conversation_read(conversation, user.id, up_to)
        return json_answer({"ok": True})

    async def sync(self, request: web.Request) -> web.StreamResponse:
        if self._ctx.faults.no_history:
            return json_error("Not found", 404)
        try:
            user = self._user(request)
        except BadRequest as exc:
            return json_error(exc.message, exc.status)
        store = self._ctx.store
        query = request.query
        try:
            data = store.sync_log.page(
                query.get("since"), query.get("limit"), store.log_visibility(user.id)
            )
        except SyncFailed:
            return json_error("Sync failed", 500)
        return json_answer({"ok": True, "data": data})

    async def direct_message(self, request: web.Request) -> web.StreamResponse:
        return await self._post(request, self._direct_target)

    async def conversation_message(self, request: web.Request) -> web.StreamResponse:
        return await self._post(request, self._named_target)

    # ── posting, shared by both message endpoints ────────────────────────

    async def _post(self, request: web.Request, target: Target) -> web.StreamResponse:
        try:
            user = self._user(request)
            body = await _json_body(request)
        except BadRequest as exc:
            return json_error(exc.message, exc.status)
        try:
            content, kind, metadata, parent_id = _message_fields(body)
            conversation, direct_to = target(request, user)
        except BadRequest as exc:
            return json_error(exc.message, exc.status)
        header_key = request.headers.get("X-Idempotency-Key")
        if header_key:
            metadata = {**metadata, KEY_FIELD: header_key}
        key = key_of(metadata)
        stored = self._ctx.store.idempotency.find(conversation.id, key) if key else None
        if stored is not None:
            return json_answer(self._repeat(conversation, stored, direct_to), status=201)
        fields = content, kind, metadata, parent_id
        answer = self._store_and_deliver(user, conversation, direct_to, fields)
        return json_answer(answer, status=201)

    def _repeat(
        self, conversation: Conversation, message: Message, direct_to: str | None
    ) -> dict[str, Any]:
        """A repeated idempotency key: the stored message again, nothing stored or logged."""
        if self._dialect.name == "server":  # api/messages.ts pushes message.new again
            self._dialect.message_posted(conversation, message, direct_to=direct_to)
        data = {"conversationId": conversation.id, "message": message.rest_view()}
        return {"ok": True, "data": data}

    def _store_and_deliver(
        self,
        user: User,
        conversation: Conversation,
        direct_to: str | None,
        fields: tuple[str, str, dict[str, Any], str | None],
    ) -> dict[str, Any]:
        content, kind, metadata, parent_id = fields
        message = self._ctx.store.post_message(
            conversation,
            sender=user.id,
            content=content,
            kind=kind,
            metadata=metadata,
            parent_id=parent_id,
        )
        self._dialect.message_posted(conversation, message, direct_to=direct_to)
        data = {"conversationId": conversation.id, "message": message.rest_view()}
        return {"ok": True, "data": data}

    def _direct_target(self, request: web.Request, user: User) -> tuple[Conversation, str]:
        wanted = request.match_info["userId"]
        other = self._ctx.store.find_user(wanted)
        if other is None:
            raise BadRequest(404, f"User not found: {wanted}. They need to register first.")
        if other.id == user.id:
            raise BadRequest(400, "Cannot send message to yourself")
        return self._ctx.store.direct_conversation(user.id, other.id), other.id

    def _named_target(self, request: web.Request, user: User) -> tuple[Conversation, None]:
        conversation_id = request.match_info["conversationId"]
        conversation = self._ctx.store.conversation(conversation_id)
        if conversation is None:
            conversation = self._dialect.unknown_conversation(conversation_id, user.id)
            if conversation is None:
                raise BadRequest(404, "Conversation not found")
        elif not self._dialect.may_post(conversation, user.id):
            raise BadRequest(403, "Not a participant")
        conversation.add_participant(user.id)
        return conversation, None
