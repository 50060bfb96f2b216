"""The rows the stand-in server keeps: users, messages and conversations, and how each is shown
on the wire (the REST answers' shapes, the server dialect's ``message.new`` payload).

Nothing here knows about tokens, sockets or dialects; :mod:`~prismer_cli.server.state` keeps
the rows and :mod:`~prismer_cli.server.users` says who a token stands for.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prismer_cli.server.formats import dumps, iso, utcnow


@dataclass
class User:
    id: str
    username: str
    display_name: str
    role: str = "agent"
    agent_type: str | None = None
    capabilities: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    endpoint: str | None = None  # an agent's webhook URL (POST /register), webhooks.py
    webhook_secret: str | None = None

    def brief_view(self) -> dict[str, Any]:
        """Who a participant is, in ``GET /conversations/{id}``."""
        return {
            "id": self.id,
            "username": self.username,
            "displayName": self.display_name,
            "role": self.role,
            "agentType": self.agent_type,
        }

    def profile_view(self) -> dict[str, Any]:
        """``GET /users/{id}``, and the ``user`` of ``GET /me``."""
        return {**self.brief_view(), "avatarUrl": None, "createdAt": iso(self.created_at)}


@dataclass
class Message:
    id: str
    conversation_id: str
    sender_id: str
    type: str
    content: str
    metadata: dict[str, Any]
    parent_id: str | None
    created_at: datetime

    def event_view(self) -> dict[str, Any]:
        """The payload of the server dialect's ``message.new`` (and of ``/sync``)."""
        payload: dict[str, Any] = {
            "id": self.id,
            "conversationId": self.conversation_id,
            "senderId": self.sender_id,
            "type": self.type,
            "content": self.content,
            "metadata": self.metadata,
        }
        if self.parent_id is not None:
            payload["parentId"] = self.parent_id
        payload["createdAt"] = iso(self.created_at)
        return payload

    def rest_view(self) -> dict[str, Any]:
        """The stored row as the REST answers show it (metadata is a JSON string there)."""
        created = iso(self.created_at)
        return {
            "id": self.id,
            "conversationId": self.conversation_id,
            "senderId": self.sender_id,
            "type": self.type,
            "content": self.content,
            "metadata": dumps(self.metadata),
            "parentId": self.parent_id,
            "quotedMessageId": None,
            "status": "sent",
            "createdAt": created,
            "updatedAt": created,
            "secVersion": None,
            "senderKeyId": None,
            "sequence": None,
            "contentHash": None,
            "prevHash": None,
            "signature": None,
            "senderDid": None,
            "delegationProof": None,
            "encrypted": False,
        }


@dataclass
class Conversation:
    id: str
    type: str  # "direct" | "group"
    created_by: str
    participants: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    last_message_at: datetime | None = None
    messages: list[Message] = field(default_factory=list)
    read_markers: dict[str, str | None] = field(default_factory=dict)
    joined_at: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for user_id in self.participants:
            self.joined_at.setdefault(user_id, self.created_at)

    def add_participant(self, user_id: str) -> bool:
        """Add a participant; False when they already were one."""
        if user_id in self.participants:
            return False
        self.participants.append(user_id)
        self.updated_at = self.joined_at[user_id] = utcnow()
        return True

    def unread_count(self, user_id: str) -> int:
        """Messages from others after the user's read marker."""
        marker = self.read_markers.get(user_id)
        ids = [m.id for m in self.messages]
        start = ids.index(marker) + 1 if marker in ids else 0
        return sum(1 for m in self.messages[start:] if m.sender_id != user_id)

    def history(self, limit: int, before: str | None, after: str | None) -> list[Message]:
        """A page of ``GET /messages/{id}``, oldest first, as ``models/message.ts`` pages: the
        newest ``limit`` messages (older than ``before``), or the oldest ``limit`` newer than
        ``after``; a cursor that names no message of the conversation is ignored."""
        ids = [m.id for m in self.messages]
        if limit <= 0:
            return []
        if before in ids:
            return self.messages[: ids.index(before)][-limit:]
        if after in ids:
            return self.messages[ids.index(after) + 1 :][:limit]
        return self.messages[-limit:]

    def participants_view(self, users: Callable[[str], User | None]) -> list[dict[str, Any]]:
        """The ``participants`` of ``GET /conversations/{id}``: the creator is the owner."""
        views = []
        for user_id in self.participants:
            user = users(user_id)
            if user is None:
                continue
            views.append(
                {
                    "id": _participant_id(self.id, user_id),
                    "role": "owner" if user_id == self.created_by else "member",
                    "joinedAt": iso(self.joined_at[user_id]),
                    "user": user.brief_view(),
                }
            )
        return views

    def row_view(self) -> dict[str, Any]:
        """The conversation's own row, as ``GET /conversations`` and ``/conversations/{id}``
        begin."""
        return {
            "id": self.id,
            "type": self.type,
            "title": None,
            "description": None,
            "status": "active",
            "metadata": dumps(self.metadata),
            "createdById": self.created_by,
            "workspaceId": None,
            "lastMessageAt": iso(self.last_message_at) if self.last_message_at else None,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }

    def list_view(self, user_id: str, *, with_unread: bool) -> dict[str, Any]:
        """One item of ``GET /conversations``, in the transcript's shape."""
        return {
            **self.row_view(),
            "myRole": "member",
            "pinned": False,
            "muted": False,
            "pinnedAt": None,
            "unreadCount": self.unread_count(user_id) if with_unread else 0,
        }


def _participant_id(conversation_id: str, user_id: str) -> str:
    """The id of a participant's row: stable, as the real server's database keeps it."""
    return "ptc_" + hashlib.sha256(f"{conversation_id}:{user_id}".encode()).hexdigest()[:20]


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def new_conversation_id() -> str:
    return "conv_" + uuid.uuid4().hex[:20]
