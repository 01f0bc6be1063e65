"""Which finished spans make which Nexus trace: one per agent run. Pure bookkeeping, no I/O, no threads.

A run is an ``invoke_agent`` span and everything under it. Spans end children first, so a run's steps and
tool calls arrive before the run span itself: they wait here, indexed by parent, until an ancestor decides
their fate:

* an ``invoke_agent`` span arrives: it and its waiting descendants are a new run (one Nexus trace);
* a span whose parent was already sent arrives (a *late* span): it and its waiting descendants join the
  Nexus trace of that parent (span ids are remembered in a bounded LRU);
* a local root (no parent, or a remote one) arrives: what waits under it belongs to no run; it becomes a
  Nexus trace of its own with ``export_all``, and is discarded otherwise.

Nothing waits on the application's root span: a run is sent when its own span ends, whether its parent is a
web request that ended long ago, a span of another tracer provider, or nothing. Spans still waiting after
``max_age`` (their parent never ended here) are sent as an incomplete trace when they hold GenAI data or
``export_all`` is set, and discarded otherwise.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan

from . import mapping


@dataclass(eq=False)
class NexusTrace:
    """One Nexus trace and what of it still has to be posted. ``nexus_id`` is None until it exists."""

    payload: dict[str, Any]  #: the create-trace body (dropped once the trace exists)
    top_id: int  #: OTel span id of the top span (the run's invoke_agent span)
    unsent: list[ReadableSpan] = field(default_factory=list)
    nexus_id: Optional[str] = None
    root_span: Optional[str] = None  #: Nexus id of the top span, the parent of spans whose own parent is unknown
    span_ids: dict[int, Optional[str]] = field(default_factory=dict)  #: OTel span id -> Nexus id (None: failed)
    maybe_created: bool = False  #: a create-trace POST went unanswered: look it up before posting again
    maybe_posted: set[int] = field(default_factory=set)  #: span POSTs that went unanswered
    #: lookups of an unanswered POST whose answer could not be read: OTel span id (0: the trace) -> count
    unknown_lookups: dict[int, int] = field(default_factory=dict)
    rejected: bool = False  #: Nexus refused the trace for good: late spans of it are dropped, counted


_FILTERED = None  # remembered span ids of groups that belong to no run (and no export_all)


class RunGrouper:
    """Turns finished spans into work: new Nexus traces, and late spans appended to known ones."""

    def __init__(
        self,
        *,
        agent_id: Optional[str],
        export_all: bool,
        max_waiting: int = 20_000,
        max_age: float = 900.0,
        max_remembered: int = 50_000,
    ) -> None:
        self._agent_id = agent_id
        self._export_all = export_all
        self._max_waiting = max_waiting
        self._max_age = max_age
        self._max_remembered = max_remembered
        self._waiting: dict[int, tuple[ReadableSpan, float]] = {}  # span id -> (span, arrival)
        self._children: dict[int, list[int]] = {}  # parent span id -> waiting children
        self._remembered: OrderedDict[int, Optional[NexusTrace]] = OrderedDict()
        self.counts: dict[str, int] = {}  #: spans_filtered, spans_dropped_buffer_full, ... (read and reset by caller)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def add(self, spans: Any, now: Optional[float] = None) -> list[NexusTrace]:
        """File ``spans``; returns the Nexus traces that gained spans to post (new ones and late-span targets)."""
        now = time.monotonic() if now is None else now
        touched: dict[int, NexusTrace] = {}
        for span in spans:
            if span.context is None:
                continue
            trace = self._place(span, now)
            if trace is not None:
                touched[id(trace)] = trace
        return list(touched.values())

    def expire(self, now: Optional[float] = None, everything: bool = False) -> list[NexusTrace]:
        """Decide on spans waiting longer than ``max_age`` (all of them with ``everything``, at shutdown)."""
        now = time.monotonic() if now is None else now
        old = [sid for sid, (_, arrived) in self._waiting.items() if everything or now - arrived >= self._max_age]
        tops = [
            sid for sid in old if sid in self._waiting and mapping.parent_id(self._waiting[sid][0]) not in self._waiting
        ]
        made: list[NexusTrace] = []
        for sid in tops:
            if sid not in self._waiting:
                continue
            span = self._waiting.pop(sid)[0]
            self._unlink(span)
            group = [span, *self._take_descendants(sid)]
            if self._export_all or any(mapping.is_genai(s) for s in group):
                made.append(self._new_trace(span, group, complete=False))
            else:
                self._remember(group, _FILTERED)
                self._count("spans_filtered", len(group))
        return made

    def forget_waiting(self) -> None:
        """Drop what waits (a forked child must not send its parent's spans)."""
        self._waiting.clear()
        self._children.clear()

    # -- internals ----------------------------------------------------------------------------------------
    def _place(self, span: ReadableSpan, now: float) -> Optional[NexusTrace]:
        sid, parent = mapping.span_id(span), mapping.parent_id(span)
        if mapping.is_run(span):
            return self._new_trace(span, [span, *self._take_descendants(sid)], complete=True)
        if parent is not None and parent in self._remembered:
            target = self._remembered[parent]
            group = [span, *self._take_descendants(sid)]
            self._remember(group, target)
            if target is None:
                self._count("spans_filtered", len(group))
                return None
            if target.rejected:
                self._count("spans_rejected", len(group))
                return None
            self._count("spans_late", len(group))
            target.unsent.extend(group)
            return target
        if parent is None:  # a local root outside any run
            group = [span, *self._take_descendants(sid)]
            if self._export_all:
                return self._new_trace(span, group, complete=True)
            self._remember(group, _FILTERED)
            self._count("spans_filtered", len(group))
            return None
        if len(self._waiting) >= self._max_waiting:
            self._count("spans_dropped_buffer_full")
            return None
        self._waiting[sid] = (span, now)
        self._children.setdefault(parent, []).append(sid)
        return None

    def _new_trace(self, top: ReadableSpan, group: list[ReadableSpan], complete: bool) -> NexusTrace:
        payload = mapping.build_trace(top, group, agent_id=self._agent_id, complete=complete)
        trace = NexusTrace(payload, mapping.span_id(top), list(group))
        self._remember(group, trace)
        return trace

    def _take_descendants(self, sid: int) -> list[ReadableSpan]:
        found: list[ReadableSpan] = []
        stack = [sid]
        while stack:
            for child in self._children.pop(stack.pop(), ()):
                entry = self._waiting.pop(child, None)
                if entry is not None:
                    found.append(entry[0])
                    stack.append(child)
        return found

    def _unlink(self, span: ReadableSpan) -> None:
        parent = mapping.parent_id(span)
        siblings = self._children.get(parent) if parent is not None else None
        if siblings is not None:
            sid = mapping.span_id(span)
            if sid in siblings:
                siblings.remove(sid)
            if not siblings:
                del self._children[parent]  # type: ignore[arg-type]

    def _remember(self, group: list[ReadableSpan], trace: Optional[NexusTrace]) -> None:
        for span in group:
            self._remembered[mapping.span_id(span)] = trace
            self._remembered.move_to_end(mapping.span_id(span))
        while len(self._remembered) > self._max_remembered:
            self._remembered.popitem(last=False)

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
