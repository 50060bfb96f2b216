"""A set that remembers the last `size` keys: de-duplication with bounded memory.

Each key remembers when it was added (`serial`, counting from 0), so a reader can tell the keys
added before a point (say, the last flush of the output) from those added after it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class RecentKeys:
    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._keys: dict[Hashable, int] = {}
        self._order: deque[Hashable] = deque()
        self.added = 0  # keys added so far: the serial of the next one

    def seen(self, key: Hashable) -> bool:
        """True if key was added before (and is still remembered); otherwise remember it."""
        keys = self._keys
        if key in keys:
            return True
        keys[key] = self.added
        self.added += 1
        order = self._order
        order.append(key)
        if len(order) > self._size:
            del keys[order.popleft()]
        return False

    def serial(self, key: Hashable) -> int | None:
        """When `key` was added, or None if it is not remembered."""
        return self._keys.get(key)

    def __len__(self) -> int:
        return len(self._keys)
