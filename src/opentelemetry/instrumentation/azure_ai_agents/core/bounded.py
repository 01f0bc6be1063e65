"""Bounded, thread-safe bookkeeping both generations can share: an open-set of tracked items (runs, invocations)
and a small least-recently-used map.

:class:`OpenSet` holds what is still open: items by key, least recently active first, beyond ``max_open`` the
oldest are pushed out, idle ones are swept, everything is taken at shutdown; items begun before their key is known
are held weakly until it is. It owns the *ending-exactly-once* rule: an item leaves the set once, through
:meth:`OpenSet.claim` (or the eviction, sweep and shutdown paths that claim for the caller), which sets its
``finishing`` flag under the set's lock.

**Finalizers never take a lock.** Code that may run inside garbage collection (``weakref.finalize`` callbacks,
generators closed when collected) must not take this lock, or any other: the collection may run on a thread that
already holds it (non-reentrant locks deadlock, reentrant ones let half-done updates be seen). Such code calls
:meth:`OpenSet.defer` (a lock-free ``deque.append``); the queued work runs at the next ordinary call
(:meth:`drain_deferred`, which the wrappers call when the queue is not empty), at flush and at shutdown.
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Callable, Generic, Hashable, Iterator, Optional, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Tracked(Protocol):
    """What an item of an :class:`OpenSet` carries: whether it is ending, and when it was last active."""

    finishing: bool
    last_seen: float


T = TypeVar("T", bound=Tracked)


class OpenSet(Generic[T]):
    """Open items by key (see the module docstring). ``on_evict(item, reason)`` is not called here: the methods
    return what they pushed out, to be ended by the caller outside the lock."""

    def __init__(self, max_open: int, idle_timeout_s: float) -> None:
        self.max_open = max(1, int(max_open))
        self.idle_timeout_s = idle_timeout_s
        self.lock = threading.Lock()
        self._open: "OrderedDict[str, T]" = OrderedDict()  # least recently active first
        self._unregistered: "weakref.WeakSet[Any]" = weakref.WeakSet()
        #: Work queued by code that must not take locks (finalizers); see :meth:`defer`.
        self.deferred: "collections.deque[Callable[[], None]]" = collections.deque()

    # ---- lock-free reads (dict reads are atomic in CPython) ------------------------------------------------
    def get(self, key: Any) -> Optional[T]:
        return self._open.get(key) if isinstance(key, str) else None

    def __len__(self) -> int:
        return len(self._open)

    # ---- membership ------------------------------------------------------------------------------------
    def hold(self, item: T) -> None:
        """``item`` is open but has no key yet (a stream before its first event): it is still ended at shutdown."""
        with self.lock:
            if not item.finishing:
                self._unregistered.add(item)

    def update(self, item: T, key: Optional[str], change: Callable[[T], bool]) -> Optional[tuple[bool, list[T]]]:
        """Under the lock: None if ``item`` is already ending. Else ``change(item)`` says whether it ends now; if
        so it is claimed (it leaves the set), else it becomes the most recently active item under ``key`` (when
        given) and the least recently active ones beyond ``max_open`` are claimed and returned to be ended."""
        evicted: list[T] = []
        with self.lock:
            if item.finishing:
                return None
            item.last_seen = time.monotonic()
            ends = change(item)
            if ends:
                item.finishing = True
                self._forget(item, key)
            elif key is not None:
                self._unregistered.discard(item)
                self._open[key] = item
                self._open.move_to_end(key)
                while len(self._open) > self.max_open:
                    old = self._open.popitem(last=False)[1]
                    old.finishing = True
                    self._unregistered.discard(old)
                    evicted.append(old)
        return ends, evicted

    def claim(self, item: T, key: Optional[str] = None) -> bool:
        """True exactly once per item: the caller ends it (it leaves the set)."""
        with self.lock:
            if item.finishing:
                return False
            item.finishing = True
            self._forget(item, key)
            return True

    def take_idle(self) -> list[T]:
        """Items nobody touched for ``idle_timeout_s`` (least recently active first): claimed for the caller."""
        if not self._open:
            return []
        deadline = time.monotonic() - self.idle_timeout_s
        idle: list[T] = []
        with self.lock:
            while self._open:
                item = next(iter(self._open.values()))
                if item.last_seen > deadline:
                    break
                self._open.popitem(last=False)
                item.finishing = True
                idle.append(item)
        return idle

    def take_all(self) -> list[T]:
        """Every open or held item not ending yet (shutdown): claimed for the caller."""
        with self.lock:
            items = [i for i in self._open.values() if not i.finishing]
            items += [i for i in list(self._unregistered) if not i.finishing and i not in items]
            for item in items:
                item.finishing = True
            self._open.clear()
            self._unregistered.clear()
        return items

    def _forget(self, item: T, key: Optional[str]) -> None:
        self._unregistered.discard(item)
        if key is not None and self._open.get(key) is item:
            del self._open[key]

    # ---- work queued by finalizers -------------------------------------------------------------------------
    def defer(self, work: Callable[[], None]) -> None:
        """Queues ``work`` for the next ordinary call. Lock-free: safe inside garbage collection."""
        self.deferred.append(work)

    def drain_deferred(self) -> None:
        """Runs the queued work (never raising)."""
        while True:
            try:
                work = self.deferred.popleft()
            except IndexError:
                return
            try:
                work()
            except Exception:  # noqa: BLE001 - queued instrumentation work never raises into the app
                pass


class LruMap(Generic[K, V]):
    """A thread-safe mapping that keeps at most ``max_items`` entries, forgetting the least recently used."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max(1, int(max_items))
        self._lock = threading.Lock()
        self._items: "OrderedDict[K, V]" = OrderedDict()

    def get(self, key: K, default: Any = None) -> Any:
        """The value (lock-free read; not marked as recently used)."""
        return self._items.get(key, default)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

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
