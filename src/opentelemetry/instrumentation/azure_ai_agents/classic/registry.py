"""The runs the instrumentation tracks: open runs (bounded, idle sweep), recently finished runs, shutdown.

**The locking rule.** Every tracked run has its own reentrant lock, :attr:`Run.lock`. Every read-modify-write
of a run's :class:`~.run_state.RunState` and *every write to that run's spans* (the run span's attributes,
events, name and end; its step and tool spans) happens while holding that run's lock, and only while
``state.ended`` is False for the run span (step and tool spans of late step listings are the one exception:
they are new spans, parented by the ended run's span context). A run is ended at most once, by whoever first
set ``state.finishing`` under the lock. The registry's own lock guards only the registry's maps; it may be
taken while a run's lock is held, never the reverse (the registry never takes a run's lock and calls nothing
back), so the lock order is fixed: run, then registry. Weakref finalizers and other callbacks that may run at
any point (garbage collection) take no lock at all: they only append to :attr:`Registry.deferred`, drained by
the next ordinary call.
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from opentelemetry.context import Context
from opentelemetry.trace import Span

from .run_state import RunState, TrackerConfig


@dataclass(eq=False)
class Run:
    """A tracked run: its pure state, its span (and the context that makes it current), and its lock."""

    state: RunState
    span: Span
    context: Context
    lock: threading.RLock = field(default_factory=threading.RLock)
    driver: Any = None  #: the adapter now carrying the run (its newest stream); opaque to the core

    @property
    def run_id(self) -> Optional[str]:
        return self.state.run_id

    @property
    def thread_id(self) -> Optional[str]:
        return self.state.thread_id


class Registry:
    """Open runs by id (least recently active first), runs not registered yet, recently finished runs, and
    which open run owns each pending function call. See the module's locking rule."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._open: "OrderedDict[str, Run]" = OrderedDict()
        self._call_owner: dict[str, str] = {}  # pending function call id -> run id (open runs only)
        #: Runs begun whose id is not known yet (a stream before its first event): ended at shutdown too.
        self._unregistered: "weakref.WeakSet[Run]" = weakref.WeakSet()
        self._finished: "OrderedDict[str, Run]" = OrderedDict()
        #: Work queued by code that must not take locks (finalizers): drained by :meth:`drain_deferred`.
        self.deferred: "collections.deque[Callable[[], None]]" = collections.deque()

    # ---- lookups (lock-free reads of dicts are atomic in CPython) ----------------------------------------
    def open_run(self, run_id: Any) -> Optional[Run]:
        return self._open.get(run_id) if isinstance(run_id, str) else None

    def known_run(self, run_id: Any) -> Optional[Run]:
        """An open or recently finished run."""
        if not isinstance(run_id, str):
            return None
        return self._open.get(run_id) or self._finished.get(run_id)

    def owner_of_call(self, call_id: Optional[str]) -> Optional[Run]:
        return self._open.get(self._call_owner.get(call_id, "")) if call_id else None

    @property
    def open_runs(self) -> int:
        return len(self._open)

    # ---- membership ------------------------------------------------------------------------------------
    def add_unregistered(self, run: Run) -> None:
        with self._lock:
            self._unregistered.add(run)

    def register(self, run: Run) -> list[tuple[Run, str]]:
        """Makes ``run`` open under its id. Returns the runs it pushed out, with the reason (to end)."""
        evicted: list[tuple[Run, str]] = []
        run_id = run.state.run_id
        assert run_id is not None
        with self._lock:
            self._unregistered.discard(run)
            replaced = self._open.pop(run_id, None)
            if replaced is not None and replaced is not run:
                evicted.append((self._forget(replaced), "replaced"))
            self._open[run_id] = run
            while len(self._open) > self.config.max_open_runs:
                evicted.append((self._forget(self._open.popitem(last=False)[1]), "evicted"))
        return evicted

    def touch(self, run: Run) -> None:
        """The run was just active: it moves to the end of the idle order."""
        with self._lock:
            if run.state.run_id is not None and self._open.get(run.state.run_id) is run:
                self._open.move_to_end(run.state.run_id)

    def own_calls(self, run: Run, call_ids: list[str]) -> None:
        with self._lock:
            if run.state.run_id is not None and self._open.get(run.state.run_id) is run:
                for call_id in call_ids:
                    self._call_owner[call_id] = run.state.run_id

    def close(self, run: Run, finished: bool = True) -> None:
        """The run leaves the open registry (it ended); ``finished`` keeps it known for late step listings."""
        with self._lock:
            if run.state.run_id is not None and self._open.get(run.state.run_id) is run:
                del self._open[run.state.run_id]
            self._forget(run)
            if finished and run.state.run_id is not None:
                self._finished[run.state.run_id] = run
                while len(self._finished) > self.config.finished_runs_kept:
                    self._finished.popitem(last=False)

    def _forget(self, run: Run) -> Run:
        """Bookkeeping for a run leaving the open registry (caller holds the registry lock)."""
        self._unregistered.discard(run)
        for call_id in list(run.state.calls):
            if self._call_owner.get(call_id) == run.state.run_id:
                del self._call_owner[call_id]
        return run

    def runs_named_by(self, agent_id: str) -> list[Run]:
        with self._lock:
            return [r for r in self._open.values() if r.state.agent_id == agent_id and not r.state.agent_named]

    # ---- bounds ----------------------------------------------------------------------------------------
    def take_idle(self) -> list[Run]:
        """Open runs nobody has asked about for ``idle_timeout_s`` (least recently active first): removed."""
        deadline = time.monotonic() - self.config.idle_timeout_s
        idle: list[Run] = []
        with self._lock:
            while self._open:
                run = next(iter(self._open.values()))
                if run.state.last_seen > deadline:
                    break
                self._open.popitem(last=False)
                idle.append(self._forget(run))
        return idle

    def take_all(self) -> list[Run]:
        """Every open or unregistered run (shutdown); finished runs are forgotten."""
        with self._lock:
            runs = list(self._open.values()) + [r for r in list(self._unregistered) if r not in self._open.values()]
            for run in runs:
                self._forget(run)
            self._open.clear()
            self._finished.clear()
            self._call_owner.clear()
        return runs

    def forget_after_fork(self) -> None:
        """In a forked child, before it runs anything else: every run known so far is the parent's, to end and
        export there. Each is marked as ending (``finishing`` and ``ended`` on the child's copy of its state) so
        that nothing in this process can end it, extend it or list its steps (a dropped stream's finalizer, say),
        and the registry starts empty, with a fresh lock (a thread of the parent may have held the old one)."""
        runs = [*self._open.values(), *list(self._unregistered), *self._finished.values()]
        for run in runs:
            run.state.finishing = True
            run.state.ended = True
        self._lock = threading.Lock()
        self._open = OrderedDict()
        self._call_owner = {}
        self._unregistered = weakref.WeakSet()
        self._finished = OrderedDict()
        self.deferred.clear()

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
