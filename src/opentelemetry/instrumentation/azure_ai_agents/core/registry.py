"""What the instrumentation keeps open: classic runs and new-agent invocations, by id, bounded.

One implementation for both generations (each tracker holds one instance): open items by id, least recently
active first; items begun whose id is not known yet; recently finished items (late observations still reach
them); bounds (``max_open``, ``idle_timeout_s``, ``finished_kept``) and the idle sweep; everything still open at
shutdown; and a queue of work left by code that must not take locks.

**The locking rule.** Every tracked item has its own reentrant lock (``item.lock``) guarding its state and every
write to its spans. The registry's own lock guards only the registry's maps; it may be taken while an item's lock
is held, never the reverse (the registry never takes an item's lock and calls nothing back), so the lock order is
fixed: item, then registry. Weakref finalizers and other callbacks that may run at any point (garbage collection)
take no lock at all: they only append to :attr:`Registry.deferred`, drained by the next ordinary call.
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar


class Tracked(Protocol):
    """What the registry needs of an item: its id once known, and when it was last active."""

    @property
    def key(self) -> Optional[str]: ...

    @property
    def last_seen(self) -> float: ...


T = TypeVar("T", bound=Tracked)


class Registry(Generic[T]):
    """Open items by id (least recently active first), items not registered yet, recently finished items.
    See the module's locking rule."""

    def __init__(self, max_open: int, idle_timeout_s: float, finished_kept: int = 0) -> None:
        self.max_open, self.idle_timeout_s, self.finished_kept = max_open, idle_timeout_s, finished_kept
        self._lock = threading.Lock()
        self._open: "OrderedDict[str, T]" = OrderedDict()
        #: Items begun whose id is not known yet (a stream before its first event): ended at shutdown too.
        self._unregistered: "weakref.WeakSet[T]" = weakref.WeakSet()
        self._finished: "OrderedDict[str, T]" = OrderedDict()
        #: Work queued by code that must not take locks (finalizers): drained by :meth:`drain_deferred`.
        self.deferred: "collections.deque[Callable[[], None]]" = collections.deque()

    # ---- lookups (lock-free reads of dicts are atomic in CPython) ----------------------------------------
    def open_item(self, key: Any) -> Optional[T]:
        return self._open.get(key) if isinstance(key, str) else None

    def known_item(self, key: Any) -> Optional[T]:
        """An open or recently finished item."""
        if not isinstance(key, str):
            return None
        return self._open.get(key) or self._finished.get(key)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def open_items(self) -> list[T]:
        with self._lock:
            return list(self._open.values())

    # ---- membership ------------------------------------------------------------------------------------
    def add_unregistered(self, item: T) -> None:
        with self._lock:
            self._unregistered.add(item)

    def register(self, item: T) -> list[tuple[T, str]]:
        """Makes ``item`` open under its id. Returns the items it pushed out, with the reason (to end)."""
        evicted: list[tuple[T, str]] = []
        key = item.key
        assert key is not None
        with self._lock:
            self._unregistered.discard(item)
            replaced = self._open.pop(key, None)
            if replaced is not None and replaced is not item:
                evicted.append((self._forget(replaced), "replaced"))
            self._open[key] = item
            while len(self._open) > self.max_open:
                evicted.append((self._forget(self._open.popitem(last=False)[1]), "evicted"))
        return evicted

    def touch(self, item: T) -> None:
        """The item was just active: it moves to the end of the idle order."""
        with self._lock:
            if item.key is not None and self._open.get(item.key) is item:
                self._open.move_to_end(item.key)

    def close(self, item: T, finished: bool = True) -> None:
        """The item leaves the open registry (it ended); ``finished`` keeps it known for late observations."""
        with self._lock:
            if item.key is not None and self._open.get(item.key) is item:
                del self._open[item.key]
            self._forget(item)
            if finished and item.key is not None and self.finished_kept > 0:
                self._finished[item.key] = item
                while len(self._finished) > self.finished_kept:
                    self._finished.popitem(last=False)

    def _forget(self, item: T) -> T:
        """Bookkeeping for an item leaving the open registry (caller holds the registry lock); subclasses
        that index items by other keys drop them here."""
        self._unregistered.discard(item)
        return item

    # ---- bounds ----------------------------------------------------------------------------------------
    def take_idle(self) -> list[T]:
        """Open items nobody has asked about for ``idle_timeout_s`` (least recently active first): removed."""
        if not self._open:
            return []
        deadline = time.monotonic() - self.idle_timeout_s
        idle: list[T] = []
        with self._lock:
            while self._open:
                item = next(iter(self._open.values()))
                if item.last_seen > deadline:
                    break
                self._open.popitem(last=False)
                idle.append(self._forget(item))
        return idle

    def take_all(self) -> list[T]:
        """Every open or unregistered item (shutdown); finished items are forgotten."""
        with self._lock:
            items = list(self._open.values())
            items += [i for i in list(self._unregistered) if all(i is not o for o in items)]
            for item in items:
                self._forget(item)
            self._open.clear()
            self._finished.clear()
            self._clear_indexes()
        return items

    def _clear_indexes(self) -> None:
        """Subclasses' other indexes, emptied with the registry (caller holds the registry lock)."""

    def forget_after_fork(self) -> list[T]:
        """In a forked child, before it runs anything else: every item known so far is the parent's, to end and
        export there. The registry starts empty, with a fresh lock (a thread of the parent may have held the old
        one) and no queued work; the parent's items are returned so that the caller can make its copies inert."""
        items = [*self._open.values(), *list(self._unregistered), *self._finished.values()]
        self._lock = threading.Lock()
        self._open = OrderedDict()
        self._unregistered = weakref.WeakSet()
        self._finished = OrderedDict()
        self.deferred.clear()
        self._clear_indexes()
        return items

    def drain_deferred(self) -> None:
        """Runs the work finalizers queued (never raising)."""
        while True:
            try:
                work = self.deferred.popleft()
            except IndexError:
                return
            try:
                work()
            except Exception:  # noqa: BLE001 - queued instrumentation work never raises into the app
                pass
