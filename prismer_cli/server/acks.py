"""Delivery acknowledgements of the server dialect, as the real server's ack tracker does them.

Every pushed event frame (not ``pong``, ``error``, ``authenticated``, ``typing.indicator``,
``presence.changed``, ``message.stream.chunk``) gets one ``ackId`` per receiving *user*,
``ack_1``, ``ack_2``, ... from one server-wide counter; all that user's connections get the same
frame. The client answers ``{"type":"ack","payload":{"ackId":...}}``. A frame not acked within
the ack timeout, or still unacked when one of the user's connections closes, moves to the user's
undelivered queue (at most 100, each kept 5 minutes); the next authenticated connection of the
user gets them again right after ``authenticated``, same ``ackId``, with ``"isRetry": true``.

One difference from the real server, on purpose: there a re-sent frame is tracked again under a
new, unseen ackId, so acking the retry does not clear it and it keeps coming back on every
reconnect. Here the retry keeps its ackId and acking it clears it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SKIP_ACK_TYPES = frozenset(
    {
        "pong",
        "typing.indicator",
        "presence.changed",
        "authenticated",
        "error",
        "message.stream.chunk",
    }
)
MAX_UNDELIVERED = 100
UNDELIVERED_TTL = 300.0


@dataclass
class Pending:
    ack_id: str
    user_id: str
    frame: dict[str, Any]
    sent_at: float
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class AckTracker:
    """Pending acks and undelivered queues, per user; timers run on the given loop."""

    def __init__(
        self,
        ack_timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_undelivered: int = MAX_UNDELIVERED,
        ttl: float = UNDELIVERED_TTL,
    ) -> None:
        self._ack_timeout = ack_timeout
        self._clock = clock
        self._max_undelivered = max_undelivered
        self._ttl = ttl
        self._counter = 0
        self._pending: dict[str, Pending] = {}
        self._undelivered: dict[str, list[Pending]] = {}

    @staticmethod
    def needs_ack(frame_type: str) -> bool:
        return frame_type not in SKIP_ACK_TYPES

    def track(self, user_id: str, frame: dict[str, Any]) -> str:
        """Assign a new ackId to a frame for this user and start its timeout."""
        self._counter += 1
        ack_id = f"ack_{self._counter}"
        self._start(Pending(ack_id, user_id, frame, self._clock()))
        return ack_id

    def _start(self, entry: Pending) -> None:
        self._pending[entry.ack_id] = entry
        loop = asyncio.get_running_loop()
        entry.timer = loop.call_later(self._ack_timeout, self._expire, entry.ack_id)

    def _expire(self, ack_id: str) -> None:
        entry = self._pending.pop(ack_id, None)
        if entry is not None:
            self._queue(entry)

    def ack(self, ack_id: str) -> bool:
        entry = self._pending.pop(ack_id, None)
        if entry is None:
            return False
        if entry.timer is not None:
            entry.timer.cancel()
        return True

    def disconnected(self, user_id: str) -> None:
        """A connection of the user closed: queue all their pending frames now."""
        for ack_id in [a for a, e in self._pending.items() if e.user_id == user_id]:
            entry = self._pending.pop(ack_id)
            if entry.timer is not None:
                entry.timer.cancel()
            self._queue(entry)

    def _queue(self, entry: Pending) -> None:
        entry.timer = None
        queue = self._undelivered.setdefault(entry.user_id, [])
        queue.append(entry)
        del queue[: max(0, len(queue) - self._max_undelivered)]

    def take_retries(self, user_id: str) -> list[dict[str, Any]]:
        """The user's undelivered frames, ready to send again, tracked again under their ackId."""
        queue = self._undelivered.pop(user_id, [])
        now = self._clock()
        frames = []
        for entry in queue:
            if now - entry.sent_at >= self._ttl:
                continue
            frames.append({**entry.frame, "ackId": entry.ack_id, "isRetry": True})
            self._start(Pending(entry.ack_id, user_id, entry.frame, entry.sent_at))
        return frames

    def close(self) -> None:
        for entry in self._pending.values():
            if entry.timer is not None:
                entry.timer.cancel()
        self._pending.clear()
