"""Order per conversation (server dialect): one unconfirmed message per conversation on the wire.

The real server handles each socket frame as it arrives, without awaiting the previous one
(`ws/handler.ts`), and each `message.send` awaits the database: two messages written back to
back to one conversation can be stored, and broadcast, in either order. So a message waits for
its turn: it is written once the previous message of its conversation is settled (its echo,
or its idempotent re-send's, or an error frame). A message that stays unconfirmed --wait
seconds is uncertain, and those waiting behind it are not sent (that could change their
order): each fails at once, for `--retry-file` to send again in order. Messages to other
conversations take their turns independently, so a stream over many conversations still
pipelines. Nothing is promised across conversations.
"""

from __future__ import annotations

from collections import deque

from prismer_cli.send.ledger import Entry

# Messages waiting for their turn before the writer stops reading stdin. Ten per conversation
# of a run over 100 keeps every conversation's next message ready; more only makes memory that
# each message's objects have left the processor's caches by the time it is written and
# confirmed (10,000 cost ~4 % of send's time over 100 conversations).
MAX_WAITING = 1_000


class Turns:
    """Whose turn it is in each conversation, and who waits (used under the Awaiting lock)."""

    def __init__(self) -> None:
        self._current: dict[str, Entry] = {}  # conversation -> its message on the wire
        self._waiting: dict[str, deque[Entry]] = {}  # conversation -> the next ones, in order
        self.waiting = 0

    def take(self, entry: Entry) -> bool:
        """True: the entry's turn is now (write it); False: it waits (see `done`)."""
        conversation = entry.command.conversation_id
        if conversation not in self._current:
            self._current[conversation] = entry
            return True
        queue = self._waiting.get(conversation)
        if queue is None:
            self._waiting[conversation] = deque((entry,))
        else:
            queue.append(entry)
        self.waiting += 1
        return False

    def done(self, entry: Entry) -> Entry | None:
        """The entry is settled, or taken back: the next of its conversation, whose turn it
        now is (the caller writes it), or None."""
        conversation = entry.command.conversation_id
        if self._current.get(conversation) is not entry:
            return None
        queue = self._waiting.get(conversation)
        if not queue:
            del self._current[conversation]
            return None
        following = queue.popleft()
        self.waiting -= 1
        if not queue:
            del self._waiting[conversation]
        self._current[conversation] = following
        return following

    def give_up(self, entry: Entry) -> list[Entry]:
        """The entry went unconfirmed: the ones waiting behind it, which are never written
        after it (that could change their order); its conversation is free again."""
        conversation = entry.command.conversation_id
        if self._current.get(conversation) is not entry:
            return []
        del self._current[conversation]
        behind = list(self._waiting.pop(conversation, ()))
        self.waiting -= len(behind)
        return behind

    def drain(self) -> list[Entry]:
        """Forget every turn (the connection is gone): the waiting entries, in order within
        each conversation, for a new connection to take their turns again."""
        waiting = [entry for queue in self._waiting.values() for entry in queue]
        self._current.clear()
        self._waiting.clear()
        self.waiting = 0
        return waiting
