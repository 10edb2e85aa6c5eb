"""A bounded least-recently-used store of verifier scores keyed on (image content hash, text)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class ScoreCache:
    """LRU map from a hashable key to a float score; ``capacity = 0`` stores nothing.

    Counts hits and misses so callers (and the benchmark) can see what the cache saves.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._store: OrderedDict[Hashable, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: Hashable) -> float | None:
        """The stored score, marking it recently used; None (and a counted miss) when absent."""
        value = self._store.get(key)
        if value is None:
            self.misses += 1
            return None
        self._store.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: float) -> None:
        if self.capacity == 0:
            return
        self._store[key] = value
        self._store.move_to_end(key)
        while len(self._store) > self.capacity:
            self._store.popitem(last=False)

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0
