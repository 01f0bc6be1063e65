"""A small bounded, thread-safe least-recently-used map (caches and indexes both generations keep: agent facts,
posted conversation items, the calls an invocation asked for).

Open runs and invocations live in ``core.registry`` (one registry for both generations).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, Iterator, Optional, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruMap(Generic[K, V]):
    """A thread-safe mapping that keeps at most ``max_items`` entries, forgetting the least recently used."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max(1, int(max_items))
        self._lock = threading.Lock()
        self._items: "OrderedDict[K, V]" = OrderedDict()
        self.evicted = 0  #: entries forgotten because of the bound

    def get(self, key: K, default: Any = None) -> Any:
        """The value (lock-free read; not marked as recently used)."""
        return self._items.get(key, default)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
                self.evicted += 1

    def pop(self, key: K, default: Any = None) -> Any:
        with self._lock:
            return self._items.pop(key, default)

    def update(self, key: K, change: Callable[[Optional[V]], Optional[V]]) -> Optional[V]:
        """Replaces the value under ``key`` by ``change(old)`` atomically (None removes it); returns the new one."""
        with self._lock:
            value = change(self._items.get(key))
            if value is None:
                self._items.pop(key, None)
            else:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
                    self.evicted += 1
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))
