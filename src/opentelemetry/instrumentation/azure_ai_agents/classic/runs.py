"""A tracked classic run (its pure state, its span, its lock) and the registry of runs: the shared bounded
registry (``core.registry``, whose locking rule applies) plus which open run owns each pending function call.

A run's lock guards every read-modify-write of its :class:`~.run_state.RunState` and every write to its spans,
and those writes happen only while ``state.ended`` is False for the run span (step and tool spans of late step
listings are the one exception: they are new spans, parented by the ended run's span context). A run is ended at
most once, by whoever first set ``state.finishing`` under the lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from opentelemetry.context import Context
from opentelemetry.trace import Span

from ..core.registry import Registry
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
    def key(self) -> Optional[str]:
        return self.state.run_id

    @property
    def last_seen(self) -> float:
        return self.state.last_seen

    @property
    def run_id(self) -> Optional[str]:
        return self.state.run_id

    @property
    def thread_id(self) -> Optional[str]:
        return self.state.thread_id


class RunRegistry(Registry[Run]):
    """Open runs by id, recently finished runs (late step listings), and which open run owns each pending
    function call (a function the SDK runs for the app is traced under the run that asked for it)."""

    def __init__(self, config: TrackerConfig) -> None:
        super().__init__(config.max_open_runs, config.idle_timeout_s, config.finished_runs_kept)
        self._call_owner: dict[str, str] = {}  # pending function call id -> run id (open runs only)

    def owner_of_call(self, call_id: Optional[str]) -> Optional[Run]:
        return self._open.get(self._call_owner.get(call_id, "")) if call_id else None

    def own_calls(self, run: Run, call_ids: list[str]) -> None:
        with self._lock:
            if run.key is not None and self._open.get(run.key) is run:
                for call_id in call_ids:
                    self._call_owner[call_id] = run.key

    def runs_named_by(self, agent_id: str) -> list[Run]:
        """Open runs of ``agent_id`` whose span does not carry the agent's name yet."""
        with self._lock:
            return [r for r in self._open.values() if r.state.agent_id == agent_id and not r.state.agent_named]

    def _forget(self, run: Run) -> Run:
        super()._forget(run)
        for call_id in list(run.state.calls):
            if self._call_owner.get(call_id) == run.key:
                del self._call_owner[call_id]
        return run

    def forget_after_fork(self) -> list[Run]:
        """The parent's runs, each marked as ending (``finishing`` and ``ended`` on the child's copy of its state)
        so that nothing in the child can end it, extend it or list its steps (a dropped stream's finalizer, say)."""
        runs = super().forget_after_fork()
        for run in runs:
            run.state.finishing = True
            run.state.ended = True
        return runs

    def _clear_indexes(self) -> None:
        self._call_owner.clear()
