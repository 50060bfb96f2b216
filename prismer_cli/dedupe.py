"""A set that remembers the last `size` keys: de-duplication with bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class RecentKeys:
    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._keys: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def seen(self, key: Hashable) -> bool:
        """True if key was added before (and is still remembered); otherwise remember it."""
        keys = self._keys
        if key in keys:
            return True
        keys.add(key)
        order = self._order
        order.append(key)
        if len(order) > self._size:
            keys.discard(order.popleft())
        return False

    def __len__(self) -> int:
        return len(self._keys)
