"""A bounded, thread-safe LRU mapping, shared by the caches of workers and server."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LRUCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """A thread-safe mapping that forgets its least recently used entries.

    Bounded by ``max_entries`` and, given ``weigh``, by ``max_weight`` (the sum of
    ``weigh(value)``); a value heavier than ``max_weight`` alone is not kept.

    Usage::

        cache: LRUCache[str, QuantumCircuit] = LRUCache(max_entries=64)
        cache.put("k", circuit)
        cache.get("k")     # the circuit, now the most recently used
    """

    def __init__(
        self,
        *,
        max_entries: int,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if (max_weight is None) != (weigh is None):
            raise ValueError("give both max_weight and weigh, or neither")
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weigh = weigh
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    @property
    def weight(self) -> int:
        """The summed weight of the values held (0 without ``weigh``)."""
        return self._weight

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            self._data.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value) if self._weigh is not None else 0
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            if self.max_weight is not None and weight > self.max_weight:
                return
            self._data[key] = (value, weight)
            self._weight += weight
            while len(self._data) > self.max_entries or (
                self.max_weight is not None and self._weight > self.max_weight
            ):
                _key, (_value, dropped) = self._data.popitem(last=False)
                self._weight -= dropped

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._weight = 0
