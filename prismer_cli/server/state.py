"""The stand-in server's world, all in memory: users (:mod:`~prismer_cli.server.users`),
conversations and their messages (:mod:`~prismer_cli.server.records`), and the event log
(:mod:`~prismer_cli.server.synclog`).

Nothing here knows about sockets or dialects: the WebSocket, SSE and REST handlers call a
:class:`Store` and then decide who hears about it.

Leniency (documented, on purpose)
    Joining (``subscribe`` / ``conversation.join``) an unknown conversation creates it with the
    joiner as participant, and joining an existing one adds the joiner as participant: the real
    server has other ways to create conversations and add members that a local stand-in does
    not need. Which dialect applies which leniency is said in the dialect modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prismer_cli.server.formats import utcnow
from prismer_cli.server.idempotency import IdempotencyIndex, key_of
from prismer_cli.server.records import (
    Conversation,
    Message,
    new_conversation_id,
    new_message_id,
)
from prismer_cli.server.synclog import SyncLog, SyncRecord, message_data
from prismer_cli.server.users import DEFAULT_TOKEN_TTL, UserDirectory


class Store(UserDirectory):
    """The whole server-side world: the users and their tokens (:class:`UserDirectory`),
    conversations, messages, the catch-up feed."""

    def __init__(
        self, token_specs: Iterable[str] = (), *, token_ttl: float = DEFAULT_TOKEN_TTL
    ) -> None:
        super().__init__(token_specs, token_ttl=token_ttl)
        self._conversations: dict[str, Conversation] = {}
        self.sync_log = SyncLog()
        self.idempotency: IdempotencyIndex[Message] = IdempotencyIndex()
        # Told of each new message (not of a repeated idempotency key): the webhooks.
        self.on_message: Callable[[Conversation, Message], None] | None = None

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
        if self.on_message is not None:
            self.on_message(conversation, message)
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
