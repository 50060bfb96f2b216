"""Users, conversations and messages of the stand-in server, all in memory.

Nothing here knows about sockets or dialects: the WebSocket, SSE and REST handlers call a
:class:`Store` and then decide who hears about it.

Users and tokens
    With ``--token`` values the server accepts only those (``TOKEN=NAME`` sets the display
    name); without any it runs in *open mode* and accepts every non-empty token. A user's id is
    stable per token, ``"usr_" + sha256(token)[:12]``, so a script can predict it; the default
    name is ``"agent-"`` and the first six hex digits of that hash. ``--token`` tokens are
    opaque and never expire.

    ``POST /api/im/register`` and ``/api/im/token/refresh`` hand out JWTs
    (:mod:`~prismer_cli.server.tokens`) for ``token_ttl`` seconds. A JWT signed by this server
    and not expired is accepted in either mode and stands for the user of its ``sub`` (a user
    unknown since a restart is re-created from the claims, as the real server's database would
    still hold it); an expired one is refused everywhere. In open mode the signature is *not*
    checked, so tests can craft tokens: any JWT-shaped token is the user of its ``sub`` unless
    its ``exp`` has passed, then it is refused.

Leniency (documented, on purpose)
    Joining (``subscribe`` / ``conversation.join``) an unknown conversation creates it with the
    joiner as participant, and joining an existing one adds the joiner as participant: the real
    server has other ways to create conversations and add members that a local stand-in does
    not need. Which dialect applies which leniency is said in the dialect modules.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prismer_cli.server import tokens
from prismer_cli.server.formats import dumps, iso, utcnow
from prismer_cli.server.idempotency import IdempotencyIndex, key_of
from prismer_cli.server.synclog import SyncLog, SyncRecord, message_data

DEFAULT_TOKEN_TTL = 604800.0
USERNAME = re.compile(r"^[a-zA-Z0-9_-]{3,32}$")
AGENT_TYPES = ("assistant", "specialist", "orchestrator", "tool", "bot")


class RegistrationError(Exception):
    """A ``/register`` request the real server refuses; carries the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class User:
    id: str
    username: str
    display_name: str
    role: str = "agent"
    agent_type: str | None = None
    capabilities: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)


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

    def add_participant(self, user_id: str) -> bool:
        """Add a participant; False when they already were one."""
        if user_id in self.participants:
            return False
        self.participants.append(user_id)
        self.updated_at = utcnow()
        return True

    def unread_count(self, user_id: str) -> int:
        """Messages from others after the user's read marker."""
        marker = self.read_markers.get(user_id)
        ids = [m.id for m in self.messages]
        start = ids.index(marker) + 1 if marker in ids else 0
        return sum(1 for m in self.messages[start:] if m.sender_id != user_id)

    def list_view(self, user_id: str, *, with_unread: bool) -> dict[str, Any]:
        """One item of ``GET /conversations``, in the transcript's shape."""
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
            "myRole": "member",
            "pinned": False,
            "muted": False,
            "pinnedAt": None,
            "unreadCount": self.unread_count(user_id) if with_unread else 0,
        }


def user_id_for_token(token: str) -> str:
    return "usr_" + hashlib.sha256(token.encode()).hexdigest()[:12]


def default_name_for_token(token: str) -> str:
    return "agent-" + hashlib.sha256(token.encode()).hexdigest()[:6]


def parse_token_spec(spec: str) -> tuple[str, str | None]:
    """``"TOKEN"`` or ``"TOKEN=NAME"`` → (token, name or None). Raises ValueError if empty."""
    token, sep, name = spec.partition("=")
    if not token:
        raise ValueError("a --token value must not be empty")
    return token, (name or None) if sep else None


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def new_conversation_id() -> str:
    return "conv_" + uuid.uuid4().hex[:20]


class Store:
    """The whole server-side world: users, tokens, conversations, messages, catch-up feed."""

    def __init__(
        self, token_specs: Iterable[str] = (), *, token_ttl: float = DEFAULT_TOKEN_TTL
    ) -> None:
        self._users: dict[str, User] = {}
        self._token_users: dict[str, str] = {}
        self._usernames: dict[str, str] = {}
        self._conversations: dict[str, Conversation] = {}
        self.token_ttl = token_ttl
        self.sync_log = SyncLog()
        self.idempotency: IdempotencyIndex[Message] = IdempotencyIndex()
        specs = list(token_specs)
        self.open_mode = not specs
        for spec in specs:
            token, name = parse_token_spec(spec)
            self._add_token_user(token, name)

    # ── users ────────────────────────────────────────────────────────────

    def _add_token_user(self, token: str, name: str | None) -> User:
        uid = user_id_for_token(token)
        user = self._users.get(uid)
        if user is None:
            label = name or default_name_for_token(token)
            user = User(id=uid, username=label, display_name=label)
            self._users[uid] = user
            self._usernames.setdefault(label, uid)
        self._token_users[token] = uid
        return user

    def user_for_token(self, token: str | None) -> User | None:
        """The user a token stands for, or None when the token is not accepted."""
        if not token:
            return None
        uid = self._token_users.get(token)
        if uid is not None:
            return self._users[uid]
        claims = tokens.decode(token)
        if claims is not None and (self.open_mode or tokens.signed_by_us(token)):
            if tokens.is_expired(claims):
                return None
            user = self.user_from_claims(claims)
            if user is not None:
                return user
        if self.open_mode:
            return self._add_token_user(token, None)
        return None

    def user_from_claims(self, claims: dict[str, Any]) -> User | None:
        """The user of a JWT's ``sub``, created from its claims when unknown (None without)."""
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            return None
        user = self._users.get(sub)
        if user is None:
            username = claims.get("username")
            name = username if isinstance(username, str) and username else sub
            role = claims.get("role") if claims.get("role") in ("agent", "human") else "agent"
            agent_type = claims.get("agentType")
            user = User(
                id=sub,
                username=name,
                display_name=name,
                role=str(role),
                agent_type=agent_type if isinstance(agent_type, str) else None,
            )
            self._users[sub] = user
            self._usernames.setdefault(name, sub)
        return user

    def issue_token(self, user: User) -> str:
        """A JWT for this user, valid ``token_ttl`` seconds."""
        claims = {
            "sub": user.id,
            "username": user.username,
            "role": user.role,
            "agentType": user.agent_type if user.role == "agent" else None,
        }
        return tokens.issue(claims, self.token_ttl)

    def user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def find_user(self, id_or_username: str) -> User | None:
        """A user by id, or else by username, as the real server resolves a target."""
        user = self._users.get(id_or_username)
        if user is None and id_or_username in self._usernames:
            user = self._users.get(self._usernames[id_or_username])
        return user

    def register(self, body: dict[str, Any], caller: User | None = None) -> tuple[User, bool]:
        """``POST /register`` as ``api/register.ts`` checks it: (user, is new) or a
        RegistrationError. ``caller`` is the user of a valid Bearer JWT, who is updated."""
        kind = body.get("type")
        if kind not in ("agent", "human"):
            raise RegistrationError(400, 'type must be "agent" or "human"')
        username = body.get("username")
        if not username:
            raise RegistrationError(400, "username is required")
        if not isinstance(username, str) or not USERNAME.match(username):
            message = "username must be 3-32 characters, alphanumeric, underscore, or hyphen"
            raise RegistrationError(400, message)
        display = body.get("displayName")
        if not display:
            raise RegistrationError(400, "displayName is required")
        agent_type = body.get("agentType")
        if kind == "agent" and agent_type and agent_type not in AGENT_TYPES:
            raise RegistrationError(400, f"agentType must be one of: {', '.join(AGENT_TYPES)}")
        holder = self._usernames.get(username)
        if holder is not None and (caller is None or holder != caller.id):
            raise RegistrationError(409, f"Username '{username}' is already taken")
        capabilities = body.get("capabilities")
        user = caller or User(id="usr_" + secrets.token_hex(6), username=username, display_name="")
        if caller is not None:
            self._usernames.pop(caller.username, None)
        is_new = caller is None or (caller.role == "human" and kind == "agent")
        user.username = username
        user.display_name = str(display)
        user.role = kind
        user.agent_type = (
            (agent_type if isinstance(agent_type, str) else "assistant")
            if kind == "agent"
            else None
        )
        user.capabilities = (
            [c for c in capabilities if isinstance(c, str)]
            if isinstance(capabilities, list)
            else []
        )
        self._users[user.id] = user
        self._usernames[username] = user.id
        return user, is_new

    # ── conversations ────────────────────────────────────────────────────

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self._conversations.get(conversation_id)

    def create_conversation(
        self,
        *,
        creator: str,
        participants: Iterable[str],
        kind: str = "group",
        conversation_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Conversation:
        members = list(dict.fromkeys([creator, *participants]))
        conversation = Conversation(
            id=conversation_id or new_conversation_id(),
            type=kind,
            created_by=creator,
            participants=members,
            metadata=metadata or {},
        )
        self._conversations[conversation.id] = conversation
        data: dict[str, Any] = {"id": conversation.id, "type": kind}
        data["participants" if kind == "direct" else "members"] = list(members)
        self.sync_log.write_for_each("conversation.create", data, conversation.id, members)
        return conversation

    def join(self, conversation_id: str, user_id: str) -> tuple[Conversation, bool]:
        """Make the user a participant, creating the conversation if unknown (lenient)."""
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            created = self.create_conversation(
                creator=user_id, participants=[], conversation_id=conversation_id
            )
            return created, True
        conversation.add_participant(user_id)
        return conversation, False

    def direct_conversation(self, a: str, b: str) -> Conversation:
        """The direct conversation between two users, created on first use."""
        for conversation in self._conversations.values():
            if conversation.type == "direct" and set(conversation.participants) == {a, b}:
                return conversation
        return self.create_conversation(
            creator=a, participants=[b], kind="direct", metadata={"autoCreated": True}
        )

    def conversations(self) -> list[Conversation]:
        return list(self._conversations.values())

    def conversations_of(self, user_id: str) -> list[Conversation]:
        return [c for c in self._conversations.values() if user_id in c.participants]

    def partners_of(self, user_id: str) -> set[str]:
        """Users who share at least one conversation with this one."""
        partners: set[str] = set()
        for conversation in self.conversations_of(user_id):
            partners.update(conversation.participants)
        partners.discard(user_id)
        return partners

    # ── messages ─────────────────────────────────────────────────────────

    def post_message(
        self,
        conversation: Conversation,
        *,
        sender: str,
        content: str,
        kind: str = "text",
        metadata: dict[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> Message:
        message = Message(
            id=new_message_id(),
            conversation_id=conversation.id,
            sender_id=sender,
            type=kind,
            content=content,
            metadata=dict(metadata or {}),
            parent_id=parent_id,
            created_at=utcnow(),
        )
        conversation.messages.append(message)
        conversation.last_message_at = message.created_at
        conversation.updated_at = message.created_at
        self._record_sync(message)
        key = key_of(message.metadata)
        if key is not None:
            self.idempotency.remember(conversation.id, key, message)
        return message

    def mark_read(self, conversation_id: str, user_id: str, up_to: str | None) -> str | None:
        """Record a read marker; None for ``up_to`` means everything so far."""
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return up_to
        if up_to is None and conversation.messages:
            up_to = conversation.messages[-1].id
        conversation.read_markers[user_id] = up_to
        return up_to

    def messages_sent_by(self, user_id: str) -> int:
        return sum(
            1 for c in self._conversations.values() for m in c.messages if m.sender_id == user_id
        )

    # ── the event log ────────────────────────────────────────────────────

    def _record_sync(self, message: Message) -> None:
        data = message_data(
            message_id=message.id,
            conversation_id=message.conversation_id,
            sender_id=message.sender_id,
            kind=message.type,
            content=message.content,
            metadata=message.metadata,
            parent_id=message.parent_id,
            created_at=message.created_at,
        )
        self.sync_log.write("message.new", data, message.conversation_id, message.sender_id)

    def log_visibility(self, user_id: str) -> Callable[[SyncRecord], bool]:
        """Which log rows a user sees: their conversations' (as of now) and their own."""
        mine = {c.id for c in self.conversations_of(user_id)}

        def visible(record: SyncRecord) -> bool:
            return record.user_id == user_id or record.conversation_id in mine

        return visible
