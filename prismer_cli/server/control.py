"""``/_control``: debug endpoints that exist only on this local server; they need no token.

- ``POST /_control/emit`` ``{"type": T, "payload": {...}, "to": USER_ID | null}`` pushes any
  event through the normal delivery path (so SSE ids and ackIds apply), to one user's
  connections or, with ``to`` null, to every connected user. Answers
  ``{"ok": true, "delivered": <connections>}``. Durable types are written to the event log
  first, one row per target user (see :mod:`~prismer_cli.server.synclog`). Every emit is a
  new event, even one that repeats an earlier one: a new SSE ``id:`` (docs dialect) or a new
  ``ackId`` (server dialect). Repeated events about one message are emitted this way, in the
  dialect's names:

  - edits: server dialect ``message.edit`` ``{id, conversationId, content, type, editedAt,
    editedBy}``; docs dialect ``message.edited`` ``{id, conversationId, content}``;
  - status changes: server dialect ``message.updated`` ``{id, conversationId, status:
    "sent" | "delivered" | "read"}`` (and ``message.delivered`` ``{conversationId,
    messageIds, deliveredBy, deliveredAt}``, ``message.read`` ``{conversationId, readBy,
    readAt, lastReadMessageId}``); the docs dialect has no status event, so any type works.

- ``GET /_control/log``: the list of records of :mod:`~prismer_cli.server.control_log`.
- ``GET /_control/messages?conversationId=ID``: what the server stored in that conversation,
  oldest first: ``{"ok": true, "conversationId": ID, "count": N, "messages": [{"id",
  "senderId", "type", "content", "metadata", "createdAt"}, ...]}`` (``metadata`` an object,
  with ``_idempotencyKey`` when the sender gave one); an unknown conversation has count 0.
  Without ``conversationId``: ``{"ok": true, "counts": {CONVERSATION_ID: N, ...}}``.
- ``GET /_control/sync-head``: ``{"ok": true, "head": <last seq of the event log, 0 if
  empty>}`` (see :mod:`~prismer_cli.server.synclog`).
- ``POST /_control/faults`` ``{"faults": [SPEC, ...]}`` replaces the active faults (see
  :mod:`~prismer_cli.server.faults`); ``GET /_control/faults`` shows them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from prismer_cli.server.context import Endpoints
from prismer_cli.server.faults import FaultSpecError
from prismer_cli.server.formats import iso
from prismer_cli.server.responses import json_answer, json_error


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class ControlApi(Endpoints):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_control/emit", self.emit),
            web.get("/_control/log", self.log),
            web.get("/_control/messages", self.messages),
            web.get("/_control/sync-head", self.sync_head),
            web.get("/_control/faults", self.faults),
            web.post("/_control/faults", self.set_faults),
        ]

    async def emit(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if body is None or not isinstance(body.get("type"), str) or not body["type"]:
            return json_error('expected {"type": T, "payload": {...}, "to": USER_ID | null}', 400)
        to = body.get("to")
        if to is not None and not isinstance(to, str):
            return json_error('"to" must be a user id or null', 400)
        delivered = self._dialect.emit(body["type"], body.get("payload", {}), to)
        return json_answer({"ok": True, "delivered": delivered})

    async def log(self, request: web.Request) -> web.StreamResponse:
        return json_answer(self._ctx.log.records())

    async def messages(self, request: web.Request) -> web.StreamResponse:
        store = self._ctx.store
        conversation_id = request.query.get("conversationId")
        if conversation_id is None:
            counts = {c.id: len(c.messages) for c in store.conversations()}
            return json_answer({"ok": True, "counts": counts})
        conversation = store.conversation(conversation_id)
        stored = conversation.messages if conversation is not None else []
        views = [
            {
                "id": m.id,
                "senderId": m.sender_id,
                "type": m.type,
                "content": m.content,
                "metadata": m.metadata,
                "createdAt": iso(m.created_at),
            }
            for m in stored
        ]
        answer = {"ok": True, "conversationId": conversation_id, "count": len(views)}
        return json_answer({**answer, "messages": views})

    async def sync_head(self, request: web.Request) -> web.StreamResponse:
        return json_answer({"ok": True, "head": self._ctx.store.sync_log.head})

    async def faults(self, request: web.Request) -> web.StreamResponse:
        return json_answer({"ok": True, "faults": self._ctx.faults.specs()})

    async def set_faults(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        specs = body.get("faults") if body is not None else None
        if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
            return json_error('expected {"faults": [SPEC, ...]}', 400)
        try:
            self._ctx.faults.replace(specs)
        except FaultSpecError as exc:
            return json_error(str(exc), 400)
        self._ctx.log.add("faults", faults=self._ctx.faults.specs())
        return json_answer({"ok": True, "faults": self._ctx.faults.specs()})
