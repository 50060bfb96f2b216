"""The REST look-ups of the server dialect, as ``api/conversations.ts``, ``api/users.ts`` and
``api/messages.ts`` answer them. Each needs ``Authorization: Bearer <token>`` (401 otherwise).

- ``GET /conversations/{id}``: the conversation's row (as in ``GET /conversations``) and its
  ``participants: [{id, role, joinedAt, user: {id, username, displayName, role,
  agentType}}]`` (the creator's role is ``owner``, the others' ``member``); 404 ``Conversation
  not found``, 403 ``Not a participant``.
- ``GET /users/{id}``: ``{id, username, displayName, role, agentType, avatarUrl, createdAt}``
  by id only (not by username); 404 ``User not found``.
- ``GET /messages/{conversationId}?limit=N&before=ID&after=ID``: ``{"ok": true, "data":
  [message, ...], "meta": {"total", "pageSize"}}``, the messages as the REST posts answer them
  (``metadata`` a JSON string), oldest first: the newest N (default 50, at most 200), older than
  ``before``, or the oldest N newer than ``after``; ``pageSize`` echoes N as given. 403 ``Not a
  participant`` (also for an unknown conversation, as the real server checks participation
  first).

The docs dialect answers all three 404 ``Not found``, without looking at the token: the page
describes none of them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from prismer_cli.server.context import Endpoints
from prismer_cli.server.records import User
from prismer_cli.server.responses import json_answer, json_error
from prismer_cli.server.rest import BadRequest, bearer_user

DEFAULT_PAGE = 50
MAX_PAGE = 200
LEADING_INTEGER = re.compile(r"\s*([+-]?\d+)")

Lookup = Callable[[web.Request, User], web.Response]


def parse_limit(text: str | None) -> int:
    """``limit`` as ``parseInt`` reads it (leading digits); missing or unreadable: 50."""
    found = LEADING_INTEGER.match(text) if text is not None else None
    return int(found.group(1)) if found else DEFAULT_PAGE


class LookupApi(Endpoints):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/im/conversations/{conversationId}", self._guarded(self.conversation)),
            web.get("/api/im/users/{userId}", self._guarded(self.user)),
            web.get("/api/im/messages/{conversationId}", self._guarded(self.messages)),
        ]

    def _guarded(self, lookup: Lookup) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The dialect check and the Bearer token, then the look-up."""

        async def handler(request: web.Request) -> web.Response:
            if self._dialect.name != "server":
                return json_error("Not found", 404)
            try:
                user = bearer_user(self._ctx.store, request)
            except BadRequest as exc:
                return json_error(exc.message, exc.status)
            return lookup(request, user)

        return handler

    def conversation(self, request: web.Request, user: User) -> web.Response:
        store = self._ctx.store
        conversation = store.conversation(request.match_info["conversationId"])
        if conversation is None:
            return json_error("Conversation not found", 404)
        if user.id not in conversation.participants:
            return json_error("Not a participant", 403)
        data = {
            **conversation.row_view(),
            "participants": conversation.participants_view(store.user),
        }
        return json_answer({"ok": True, "data": data})

    def user(self, request: web.Request, user: User) -> web.Response:
        found = self._ctx.store.user(request.match_info["userId"])
        if found is None:
            return json_error("User not found", 404)
        return json_answer({"ok": True, "data": found.profile_view()})

    def messages(self, request: web.Request, user: User) -> web.Response:
        conversation = self._ctx.store.conversation(request.match_info["conversationId"])
        if conversation is None or user.id not in conversation.participants:
            return json_error("Not a participant", 403)
        query = request.query
        limit = parse_limit(query.get("limit"))
        page = conversation.history(min(limit, MAX_PAGE), query.get("before"), query.get("after"))
        meta = {"total": len(conversation.messages), "pageSize": limit}
        data = [message.rest_view() for message in page]
        return json_answer({"ok": True, "data": data, "meta": meta})
