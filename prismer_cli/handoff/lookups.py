"""Who sent a message and where, for the webhook body: the live event carries neither the
sender's username and role nor the conversation's type and title.

`GET /api/im/conversations/{id}` answers the conversation and its participants (each with its
`user`), kept per conversation and asked again when a sender is not among them; then
`GET /api/im/users/{id}`; where neither answers (a docs-dialect server), what the event carries.
A look-up that fails costs at most one connect timeout and never stops a delivery: the fields
it would have filled take the defaults below (README "Hand events to a handler").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from prismer_cli.handoff.webhook import Conversation, Sender
from prismer_cli.log import Log
from prismer_cli.protocol.endpoints import REST_PREFIX
from prismer_cli.transport import Endpoint
from prismer_cli.transport.tracehttp import traced
from prismer_cli.transport.urls import endpoint as endpoint_url

# What an unknown sender or conversation gets: values the SDKs' parsers accept
# (role "human" | "agent", type "direct" | "group"), the commonest case of a webhook.
UNKNOWN_ROLE = "agent"
UNKNOWN_TYPE = "direct"

JSON = dict[str, Any]


class _Missing:
    """The server answered that it has no such thing (4xx): not asked again."""


MISSING = _Missing()


class Lookups:
    def __init__(self, endpoint: Endpoint, log: Log, token: Callable[[], str]) -> None:
        self._endpoint = endpoint
        self._log = log
        self._token = token
        self._session = traced(requests.Session(), endpoint.trace)  # --trace shows them
        self._conversations: dict[str, JSON | _Missing] = {}
        self._users: dict[str, JSON | _Missing] = {}
        self._asked: set[tuple[str, str]] = set()  # (conversation, sender) asked again once

    def close(self) -> None:
        self._session.close()

    def sender_and_conversation(self, payload: JSON) -> tuple[Sender, Conversation]:
        conversation_id = _str(payload.get("conversationId"))
        sender_id = _str(payload.get("senderId"))
        row = self._conversation(conversation_id, sender_id)
        user = _participant(row, sender_id)
        if user is None and sender_id:
            found = self._user(sender_id)
            user = found if isinstance(found, dict) else None
        if user is None:
            sender = Sender(sender_id, "", _str(payload.get("senderName")), UNKNOWN_ROLE)
        else:
            sender = Sender(
                sender_id,
                _str(user.get("username")),
                _str(user.get("displayName")),
                _str(user.get("role")) or UNKNOWN_ROLE,
            )
        if isinstance(row, dict):
            title = row.get("title")
            conversation = Conversation(
                conversation_id,
                _str(row.get("type")) or UNKNOWN_TYPE,
                title if isinstance(title, str) else None,
            )
        else:
            conversation = Conversation(conversation_id, UNKNOWN_TYPE, None)
        return sender, conversation

    def _conversation(self, conversation_id: str, sender_id: str) -> JSON | _Missing | None:
        """The cached row, asked again when the sender is not among its participants."""
        if not conversation_id:
            return None
        row = self._conversations.get(conversation_id)
        stale = isinstance(row, dict) and _participant(row, sender_id) is None
        if stale:
            if (conversation_id, sender_id) in self._asked:
                return row
            self._asked.add((conversation_id, sender_id))
        if row is None or stale:
            fresh = self._get(f"/conversations/{quote(conversation_id, safe='')}")
            if fresh is not None:
                self._conversations[conversation_id] = row = fresh
        return row

    def _user(self, user_id: str) -> JSON | _Missing | None:
        user = self._users.get(user_id)
        if user is None:
            user = self._get(f"/users/{quote(user_id, safe='')}")
            if user is not None:
                self._users[user_id] = user
        return user

    def _get(self, path: str) -> JSON | _Missing | None:
        """The answer's object (`{ok, data}` or bare); MISSING on a 4xx; None when it failed
        (not kept: asked again for the next event)."""
        url = endpoint_url(self._endpoint.url, REST_PREFIX + path)
        try:
            answer = self._session.get(
                url,
                headers={"Authorization": f"Bearer {self._token()}"},
                timeout=self._endpoint.cut().timeouts.connect,
            )
        except requests.RequestException as exc:
            self._log.info(f"look-up GET {REST_PREFIX}{path} failed: {type(exc).__name__}")
            return None
        if 400 <= answer.status_code < 500 and answer.status_code not in (401, 408, 429):
            self._log.info(f"look-up GET {REST_PREFIX}{path}: HTTP {answer.status_code}")
            return MISSING
        try:
            data = answer.json() if answer.ok else None
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("data"), dict):
            data = data["data"]
        if not isinstance(data, dict):
            self._log.info(f"look-up GET {REST_PREFIX}{path}: HTTP {answer.status_code}")
            return None
        return data


def _participant(row: JSON | _Missing | None, user_id: str) -> JSON | None:
    if not isinstance(row, dict):
        return None
    participants = row.get("participants")
    for participant in participants if isinstance(participants, list) else ():
        user = participant.get("user") if isinstance(participant, dict) else None
        if isinstance(user, dict) and user.get("id") == user_id:
            return user
    return None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
