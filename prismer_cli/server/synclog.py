"""The event log behind ``GET /api/im/sync``, as the real server keeps it (both dialects).

Like the real ``IMSyncEvent`` table (``services/sync.service.ts``, ``api/sync.ts``), the log is
one server-wide list of rows with an increasing ``seq`` (the row id). Each row has a ``type``,
its ``data``, a ``conversationId`` (or null) and the user it was written for. A user sees the
rows of the conversations they take part in *now* plus the rows written for them.

``GET /api/im/sync?since=<seq>&limit=<n>`` (``Authorization: Bearer``) answers
``{"ok": true, "data": {"events": [{"seq", "type", "data", "conversationId", "at"}],
"cursor", "hasMore"}}``, oldest first; ``cursor`` is the last event's ``seq``, or ``since``
itself when there is none. The real server's parsing is reproduced, traps included:

- ``since`` and ``limit`` are read like JavaScript's ``parseInt`` (``"12abc"`` is 12);
  a missing ``since`` is 0, a missing ``limit`` is 100, a limit above 500 is 500;
- a ``since`` or ``limit`` that is not a number at all is HTTP 500
  ``{"ok": false, "error": "Sync failed"}``;
- nothing is checked against the head: ``since=99999`` answers ``cursor: 99999``;
- ``limit=0`` answers no events and ``hasMore: true`` whenever anything follows ``since``;
  a negative limit answers no events and ``hasMore: true`` always.

What is written (the real writers, ``message.service.ts``, ``conversation.service.ts``,
``task.service.ts``):

- ``message.new`` for every stored message (WebSocket or REST, either dialect), ``data``
  ``{id, conversationId, senderId, type, content, metadata, parentId, createdAt}`` with
  ``metadata`` a JSON *string* (``"{}"``), written for the sender;
- ``conversation.create`` once per participant when a conversation is created, so it appears
  twice in a direct conversation's members' logs: ``{id, type: "direct", participants}``,
  or ``{id, type: "group", members}`` for the conversations the stand-in creates on a join;
- events pushed with ``POST /_control/emit`` whose type is durable (:data:`DURABLE_TYPES`;
  the docs dialect's names are mapped, :data:`DOCS_LOG_TYPES`), one row per target user,
  ``data`` the payload, ``conversationId`` the payload's (null for ``task.notification``,
  which the real server always writes without one). With ``to`` null the targets are the
  users connected at that moment, so an event for an offline user needs ``to``.

Simplified on purpose: the stand-in has no ``boundarySeq`` (a later version of the real
server adds it), does not log participant changes (its joins are leniencies the real server
does not have), and keeps the log in memory only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prismer_cli.server.formats import dumps, iso, utcnow

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
DURABLE_TYPES = frozenset(
    {
        "message.new",
        "message.edit",
        "message.delete",
        "message.updated",
        "conversation.create",
        "conversation.update",
        "conversation.archive",
        "participant.add",
        "participant.remove",
        "task.notification",
    }
)
DOCS_LOG_TYPES = {
    "message.new": "message.new",
    "message.edited": "message.edit",
    "message.deleted": "message.delete",
    "conversation.created": "conversation.create",
    "task.updated": "task.notification",
}

FOREIGN = "usr_foreign"  # the user of the rows the foreign-seqs fault adds (faults.py)

_JS_INT = re.compile(r"\s*([+-]?\d+)")


class SyncFailed(Exception):
    """The real server's 500 ``Sync failed`` (a query it cannot run, e.g. ``since=abc``)."""


def js_parse_int(text: str) -> int | None:
    """``parseInt(text, 10)``: the leading integer, None where JavaScript says NaN."""
    match = _JS_INT.match(text)
    return int(match.group(1)) if match else None


@dataclass
class SyncRecord:
    """One row of the log. ``docs`` is the docs dialect's live form (event name, payload)
    when the row was delivered over that dialect's SSE, so a resume replays it as it was."""

    seq: int
    type: str
    data: Any
    conversation_id: str | None
    user_id: str
    at: datetime = field(default_factory=utcnow)
    docs: tuple[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "data": self.data,
            "conversationId": self.conversation_id,
            "at": iso(self.at),
        }


def message_data(
    *,
    message_id: str,
    conversation_id: str,
    sender_id: str,
    kind: str,
    content: str,
    metadata: dict[str, Any],
    parent_id: str | None,
    created_at: datetime,
) -> dict[str, Any]:
    """The ``data`` of a ``message.new`` row: the stored row, ``metadata`` as a JSON string."""
    return {
        "id": message_id,
        "conversationId": conversation_id,
        "senderId": sender_id,
        "type": kind,
        "content": content,
        "metadata": dumps(metadata),
        "parentId": parent_id,
        "createdAt": iso(created_at),
    }


class SyncLog:
    """All rows, oldest first; ``seq`` N is at index N - 1."""

    def __init__(self) -> None:
        self._rows: list[SyncRecord] = []
        self._message_seq: dict[str, int] = {}
        self.foreign: Callable[[], int] = lambda: 0  # rows of nobody's before each (a fault)

    @property
    def head(self) -> int:
        """The last ``seq`` written, 0 for an empty log."""
        return len(self._rows)

    def write(
        self, event_type: str, data: Any, conversation_id: str | None, user_id: str
    ) -> SyncRecord:
        for _ in range(self.foreign()):
            self._rows.append(SyncRecord(len(self._rows) + 1, "message.new", {}, None, FOREIGN))
        record = SyncRecord(len(self._rows) + 1, event_type, data, conversation_id, user_id)
        self._rows.append(record)
        if event_type == "message.new" and isinstance(data, dict) and "id" in data:
            self._message_seq.setdefault(str(data["id"]), record.seq)
        return record

    def write_for_each(
        self, event_type: str, data: Any, conversation_id: str | None, user_ids: Iterable[str]
    ) -> list[SyncRecord]:
        """One row per user, as ``writeSyncForParticipants`` does."""
        return [self.write(event_type, data, conversation_id, u) for u in dict.fromkeys(user_ids)]

    def record(self, seq: int) -> SyncRecord | None:
        return self._rows[seq - 1] if 0 < seq <= len(self._rows) else None

    def message_seq(self, message_id: str) -> int | None:
        """The ``seq`` of a message's ``message.new`` row."""
        return self._message_seq.get(message_id)

    def visible_after(
        self, since: int, visible: Callable[[SyncRecord], bool], take: int
    ) -> list[SyncRecord]:
        """Up to ``take`` rows after ``since`` that pass ``visible``, oldest first."""
        found: list[SyncRecord] = []
        if take <= 0:
            return found
        for index in range(max(since, 0), len(self._rows)):
            record = self._rows[index]
            if visible(record):
                found.append(record)
                if len(found) >= take:
                    break
        return found

    def page(
        self, since_text: str | None, limit_text: str | None, visible: Callable[[SyncRecord], bool]
    ) -> dict[str, Any]:
        """The ``data`` of ``GET /sync``; raises SyncFailed where the real server answers 500."""
        since = js_parse_int("0" if since_text is None else since_text)
        limit = js_parse_int(str(DEFAULT_LIMIT) if limit_text is None else limit_text)
        if since is None or limit is None:
            raise SyncFailed("Sync failed")
        limit = min(limit, MAX_LIMIT)
        # Prisma's take: limit + 1 (0 takes nothing; a negative take reads from the end, but
        # slice(0, limit) then keeps nothing, so only "nothing" is observable there).
        rows = self.visible_after(since, visible, limit + 1) if limit >= 0 else []
        has_more = len(rows) > limit
        batch = rows[:limit] if limit > 0 else []
        return {
            "events": [r.view() for r in batch],
            "cursor": batch[-1].seq if batch else since,
            "hasMore": has_more,
        }


def log_emitted(
    log: SyncLog, log_type: str, payload: Any, user_ids: Iterable[str]
) -> list[SyncRecord]:
    """Rows for an event pushed by ``/_control/emit``: one per target user, ``conversationId``
    from the payload (never for ``task.notification``, as the real task service writes it)."""
    conversation_id = payload.get("conversationId") if isinstance(payload, dict) else None
    if log_type == "task.notification" or not isinstance(conversation_id, str):
        conversation_id = None
    return log.write_for_each(log_type, payload, conversation_id, user_ids)
