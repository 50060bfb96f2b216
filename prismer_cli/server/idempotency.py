"""Idempotency keys of stored messages, as ``message.service.ts`` checks them.

The key travels in the message's metadata, ``metadata._idempotencyKey``: a WebSocket
``message.send`` (server dialect) puts it there itself, and a REST post
``POST /api/im/messages/{conversationId}`` (either dialect) with an ``X-Idempotency-Key``
header gets it added by the server (``api/messages.ts``). A key that repeats one of the last
24 hours *in the same conversation* stores nothing: the existing message is the answer. The
callers decide what to do with it, as the real server does:

- WebSocket ``message.send``: ``message.new`` of the stored message is broadcast to the room
  again, with a new ``ackId`` and no ``isRetry``;
- REST: 201 with the stored message in the same answer shape; the server dialect pushes
  ``message.new`` to the participants again, the docs dialect (where the page describes no
  keys) pushes nothing new.

Either way nothing is written to the event log again. Keys are kept per conversation, the
last :data:`MAX_KEYS` at most, each 24 hours.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

KEY_FIELD = "_idempotencyKey"
WINDOW = 24 * 60 * 60.0
MAX_KEYS = 100_000

T = TypeVar("T")


def key_of(metadata: Any) -> str | None:
    """The idempotency key a message's metadata carries, if any."""
    if isinstance(metadata, dict):
        key = metadata.get(KEY_FIELD)
        if isinstance(key, str) and key:
            return key
    return None


class IdempotencyIndex(Generic[T]):
    """(conversation, key) → the message stored with that key, for 24 hours."""

    def __init__(
        self, *, window: float = WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, T]] = OrderedDict()

    def find(self, conversation_id: str, key: str) -> T | None:
        entry = self._entries.get((conversation_id, key))
        if entry is None or self._clock() - entry[0] > self._window:
            return None
        return entry[1]

    def remember(self, conversation_id: str, key: str, message: T) -> None:
        self._entries[(conversation_id, key)] = (self._clock(), message)
        self._entries.move_to_end((conversation_id, key))
        while len(self._entries) > MAX_KEYS:
            self._entries.popitem(last=False)
