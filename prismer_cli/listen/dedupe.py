"""A set that remembers the last `size` keys: de-duplication with bounded memory.

Each key remembers when it was added (`serial`, counting from 0), so a reader can tell the keys
added before a point (say, the last flush of the output) from those added after it.

`hold()` keeps, from then on, every key added since the oldest one still remembered, until
`release()`: the durable mode holds the keys of the stored events printed after its live
connection opened (durable.py), whose live twins may still arrive however many there are; the
number held is bounded by what happened during one catch-up, not by the size of the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class RecentKeys:
    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._keys: dict[Hashable, int] = {}
        self._order: deque[Hashable] = deque()
        self.added = 0  # keys added so far: the serial of the next one
        self._held: int | None = None  # keys from this serial on are not forgotten

    def seen(self, key: Hashable) -> bool:
        """True if key was added before (and is still remembered); otherwise remember it."""
        keys = self._keys
        if key in keys:
            return True
        keys[key] = self.added
        self.added += 1
        order = self._order
        order.append(key)
        if len(order) > self.size:
            if self._held is None and len(order) == self.size + 1:  # the usual case, in line
                del keys[order.popleft()]
            else:
                self._forget()
        return False

    def news(self, keys: list[Hashable]) -> list[bool] | None:
        """`not seen(key)` for each key in turn: which are new (and now remembered). None when
        all are: the common case (a page of the event log), done in one go, with the same
        outcome as one key at a time (none is remembered now nor repeated in `keys`)."""
        known = self._keys
        if len(set(keys)) != len(keys) or not known.keys().isdisjoint(keys):
            return [not self.seen(key) for key in keys]
        first = self.added
        known.update(zip(keys, range(first, first + len(keys)), strict=True))
        self._order.extend(keys)
        self.added = first + len(keys)
        if len(self._order) > self.size:
            self._forget()
        return None

    def _forget(self) -> None:
        order, keys, held = self._order, self._keys, self._held
        while len(order) > self.size and (held is None or keys[order[0]] < held):
            del keys[order.popleft()]

    def hold(self) -> None:
        """Forget none of the keys remembered now, nor of those added from now on."""
        if self._held is None:
            self._held = max(0, self.added - self.size)

    def release(self) -> None:
        """Back to the last `size` keys (the excess goes as new keys come)."""
        self._held = None

    def serial(self, key: Hashable) -> int | None:
        """When `key` was added, or None if it is not remembered."""
        return self._keys.get(key)

    def __len__(self) -> int:
        return len(self._keys)
