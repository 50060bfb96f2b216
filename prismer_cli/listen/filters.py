"""What a listen prints: `--type`, `--conversation`, `--ignore-self`, `--match` (docs/cli.md
"listen"), as one predicate that every path applies: the live frames (engine.py), and the stored
events of the catch-up, `--no-follow`, the docs dialect's gap fill and the placing of live events
in the log (durable.py). No path has a filter of its own, so no mode can print what another drops.

The predicate takes the envelope (a live frame, or a stored event with its `seq`, `conversationId`
and `at`), its type and its payload (a dict: `{}` when the envelope has none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prismer_cli.listen.matcher import Match, all_hold
from prismer_cli.protocol.dialects import Dialect
from prismer_cli.protocol.endpoints import JSON

# (type, payload, envelope) -> whether the event prints
Predicate = Callable[[str, JSON, JSON], bool]

_CONVERSATION = Dialect.conversation_field  # payload.conversationId, and a stored record's own
_SENDER = Dialect.sender_field
_CONVERSATION_EVENTS = "conversation."  # conversation.create, .created, .update...: payload.id


@dataclass(frozen=True)
class Filters:
    types: frozenset[str] = frozenset()
    conversations: frozenset[str] = frozenset()
    ignore_self: bool = False
    match: tuple[Match, ...] = ()  # --match: every one must hold

    def predicate(self, me: str | None) -> Predicate | None:
        """The test an event must pass to print, or None when nothing is filtered (the hot
        paths then make no call per event). `me`: the authenticated user, for --ignore-self
        (None while unknown: nothing is dropped as one's own)."""
        types, conversations, match = self.types, self.conversations, self.match
        me = me if self.ignore_self else None
        if not (types or conversations or match or me is not None):
            return None

        def passes(kind: str, payload: JSON, frame: JSON) -> bool:
            if types and kind not in types:
                return False
            if conversations and not about(kind, payload, frame, conversations):
                return False
            if me is not None and payload.get(_SENDER) == me:
                return False
            return not match or all_hold(match, frame)

        return passes


def about(kind: str, payload: JSON, frame: JSON, conversations: frozenset[str]) -> bool:
    """Whether an event is about one of these conversations: by `payload.conversationId`, by a
    stored record's top-level `conversationId`, or, for a conversation event
    (`conversation.create`, ...), by `payload.id`, the conversation itself."""
    if _one_of(payload.get(_CONVERSATION), conversations):
        return True
    if _one_of(frame.get(_CONVERSATION), conversations):
        return True
    return kind.startswith(_CONVERSATION_EVENTS) and _one_of(payload.get("id"), conversations)


def _one_of(value: object, conversations: frozenset[str]) -> bool:
    return type(value) is str and value in conversations
