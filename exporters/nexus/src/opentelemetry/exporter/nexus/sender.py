"""Background delivery of buffered traces to Nexus: a few worker threads, one bounded queue, at most one Nexus
trace per OpenTelemetry trace.

Workers. The Nexus API takes one POST per span, so a trace is a chain of round trips: with network latency
one thread mostly waits. ``workers`` threads take batches from the shared queue, each *owning* a trace while
it delivers a batch of it: a batch of a trace another worker owns is handed to that worker (run after its
current batch, in queue order) instead of being delivered beside it. So within a trace parents are still
posted before children, a trace is created once, and its late batches follow in order; only different
traces are in flight together.

Duplicate policy. Nexus assigns ids on POST and has no idempotency key, so a blind POST retry after a
response was lost could create a second trace (or span). The client retries a POST only when the request
certainly did not reach the server (connection refused / connect timeout) or the server answered 5xx/429
(taken to mean "not applied"). When a POST may have been applied (read timeout, connection reset after
sending) the sender first *looks it up*: the trace by ``GET /api/v1/traces?agent_id=&since=&until=`` (exact
``started_at``) matching ``metadata.otel_trace_id``, a span by name + started_at + parent in
``GET /api/v1/traces/{id}``. Found: its id is adopted. Lookup succeeded without a match: the POST is retried.
Lookup failed: the item is given up (counted, logged) rather than risk a duplicate.

Spans that end after their trace was sent (late spans) are appended to the same Nexus trace; a trace first
sent as ``timeout`` (its root had not ended) is PATCHed to its final status when the root arrives.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan

from . import mapping
from .client import NexusAmbiguous, NexusClient, NexusError, NexusRejected, NexusUnavailable

_logger = logging.getLogger(__name__)
_STOP = object()
_MAX_REMEMBERED_TRACES = 1024


@dataclass
class TraceBatch:
    """Finished spans of one trace handed to the sender. ``root_ended``: the local root span is among them."""

    trace_id: int
    spans: list[ReadableSpan]
    root_ended: bool


@dataclass
class _Delivered:
    """What Nexus holds for one OpenTelemetry trace (``nexus_id`` None: filtered out or failed)."""

    nexus_id: Optional[str]
    span_ids: dict[int, str] = field(default_factory=dict)
    root_span: Optional[str] = None
    complete: bool = False


class Stats:
    """Thread-safe counters, exposed read-only by the exporter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class LogOnce:
    """Logs a message the first time its key is seen; later occurrences go to DEBUG."""

    def __init__(self, limit: int = 256) -> None:
        self._seen: set[str] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def __call__(self, level: int, key: str, message: str, *args: Any) -> None:
        with self._lock:
            first = key not in self._seen and len(self._seen) < self._limit
            if first:
                self._seen.add(key)
        _logger.log(level if first else logging.DEBUG, message, *args)


class NexusSender:
    """Owns the worker threads; every network call of the exporter happens on one of them."""

    def __init__(
        self,
        client: NexusClient,
        *,
        agent_id: Optional[str],
        export_all: bool,
        export_timeout: float,
        max_payload_bytes: int,
        queue_size: int,
        stats: Stats,
        log_once: LogOnce,
        on_idle: Callable[[], None],
        idle_interval: float,
        workers: int = 4,
    ) -> None:
        self._client = client
        self._agent_id = agent_id
        self._export_all = export_all
        self._export_timeout = export_timeout
        self._max_payload_bytes = max_payload_bytes
        self._stats = stats
        self._log_once = log_once
        self._on_idle = on_idle
        self._idle_interval = idle_interval
        self._workers = max(1, workers)
        self._reset(queue_size)
        if hasattr(os, "register_at_fork"):
            own = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (own() or (lambda: None))())

    def _reset(self, queue_size: int) -> None:
        """Fresh threading state (at start, and in a forked child where the threads are gone)."""
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopping = False
        self._spawn_lock = threading.Lock()  # guards _threads and _stopping: stop() must see every worker
        self._abandon = False  # shutdown's deadline passed: workers leave without draining the queue
        self._lock = threading.Lock()  # guards everything below and _delivered
        self._progress = threading.Condition(self._lock)  # notified whenever a batch is done
        self._owned: dict[int, deque[tuple[int, TraceBatch]]] = {}  # trace id -> batches its owner runs next
        self._unfinished: set[int] = set()  # sequence numbers of batches queued and not yet done
        self._next_seq = 0
        self._last_idle = time.monotonic()
        self._delivered: OrderedDict[int, _Delivered] = OrderedDict()

    def _after_fork(self) -> None:
        """In a forked child the threads are gone and the sockets are shared with the parent: start afresh."""
        delivered = self._delivered
        self._reset(self._queue.maxsize)
        self._delivered = delivered
        self._client.close(after_fork=True)

    # -- producer side (any thread) -----------------------------------------------------------------------
    def submit(self, batch: TraceBatch, block_until: Optional[float] = None) -> bool:
        """Queue a batch; False (nothing queued) when the queue is full (after waiting until ``block_until``)."""
        self.ensure_started()
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            self._unfinished.add(seq)
        try:
            if block_until is None:
                self._queue.put_nowait((seq, batch))
            else:
                self._queue.put((seq, batch), timeout=max(0.0, block_until - time.monotonic()))
            return True
        except queue.Full:
            self._done(seq)
            return False

    def flush(self, deadline: float) -> bool:
        """Wait until every batch queued before this call was delivered (or given up), or ``deadline``."""
        with self._lock:
            target = self._next_seq
            return self._progress.wait_for(
                lambda: min(self._unfinished, default=target) >= target, max(0.0, deadline - time.monotonic())
            )

    def interrupt(self, deadline: float) -> None:
        """From now on no request, retry or backoff outlives ``deadline`` (monotonic), less a small margin."""
        self._client.interrupt(_with_margin(deadline))

    def stop(self, deadline: float) -> bool:
        """Deliver what is queued until ``deadline``, then abandon the rest. Returns whether it all went out."""
        hard_deadline = _with_margin(deadline)  # leaves the workers time to count and log their losses
        self._client.interrupt(hard_deadline)
        with self._spawn_lock:
            self._stopping = True
        if not self._started:
            self._client.close()
            return True
        queued = True
        for _ in self._threads:  # one stop per worker, behind everything already queued
            try:
                self._queue.put(_STOP, timeout=max(0.0, hard_deadline - time.monotonic()))
            except queue.Full:
                queued = False
                break
        self._join(hard_deadline)
        if any(t.is_alive() for t in self._threads):
            self._abandon = True
            self._client.abort()  # wake workers still waiting for an answer: requests end at the deadline
            self._join(deadline)
        return queued and not any(t.is_alive() for t in self._threads)

    def ensure_started(self) -> None:
        """Start the first worker (lazily: no thread for an exporter that never sees a span); it starts the
        others, so that the exporting thread waits for one thread start only (~0.3 ms each)."""
        if not self._started:
            with self._lock:
                if not self._started:
                    self._spawn()
                    self._started = True

    def _spawn(self) -> bool:
        """Start one more worker unless all are running or stop() began; False when none was started."""
        with self._spawn_lock:
            if self._stopping or len(self._threads) >= self._workers:
                return False
            thread = threading.Thread(target=self._run, name=f"NexusSpanExporter-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)
            return True

    def _join(self, deadline: float) -> None:
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _done(self, seq: int) -> None:
        with self._lock:
            self._unfinished.discard(seq)
            self._progress.notify_all()

    # -- workers ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        # Our own HTTP calls must never be traced (an instrumented client would feed spans back to us).
        ctx = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        http_key = getattr(otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None)
        if http_key is not None:
            ctx = otel_context.set_value(http_key, True, ctx)
        otel_context.attach(ctx)
        while self._spawn():
            pass
        try:
            while not self._abandon:
                try:
                    item = self._queue.get(timeout=self._idle_interval)
                except queue.Empty:
                    item = None
                if item is _STOP:
                    break
                if item is not None:
                    self._own(*item)
                self._housekeeping()
        finally:
            self._client.close_thread()

    def _own(self, seq: int, batch: TraceBatch) -> None:
        """Deliver ``batch``, then the batches of its trace handed over meanwhile; or hand it to the owner."""
        with self._lock:
            handed_over = self._owned.get(batch.trace_id)
            if handed_over is not None:  # another worker is delivering this trace: it takes this batch next
                handed_over.append((seq, batch))
                return
            handed_over = self._owned[batch.trace_id] = deque()
        while True:
            try:
                self._deliver(batch)
            except Exception:  # never let one bad trace kill a worker
                _logger.exception("Nexus exporter: unexpected error while sending a trace")
                self._stats.add("traces_failed")
            with self._lock:
                self._unfinished.discard(seq)
                self._progress.notify_all()
                if not handed_over:
                    del self._owned[batch.trace_id]
                    return
                seq, batch = handed_over.popleft()

    def _housekeeping(self) -> None:
        """At most once per ``idle_interval``, on whichever worker comes first: the exporter's timers."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_idle < self._idle_interval:
                return
            self._last_idle = now
        try:
            self._on_idle()
        except Exception:  # never let housekeeping kill a worker
            _logger.exception("Nexus exporter: unexpected error in housekeeping")

    def _deliver(self, batch: TraceBatch) -> None:
        deadline = time.monotonic() + self._export_timeout
        with self._lock:
            state = self._delivered.get(batch.trace_id)
        fresh = state is None
        if state is None:
            if not self._export_all and not any(mapping.is_genai(s) for s in batch.spans):
                if batch.root_ended:  # decided for good: later stragglers of this trace are dropped too
                    self._remember(batch.trace_id, _Delivered(None))
                    self._stats.add("traces_filtered")
                else:  # a partial trace: its root (maybe a GenAI span) may still come
                    self._stats.add("spans_filtered", len(batch.spans))
                return
            payload = mapping.build_trace(batch.spans, agent_id=self._agent_id, complete=batch.root_ended)
            try:
                nexus_id = self._create_trace(payload, deadline)
            except NexusError as error:
                self._report(error, "create trace")
                self._remember(batch.trace_id, _Delivered(None))
                self._stats.add("traces_failed")
                self._stats.add("spans_failed", len(batch.spans))
                return
            state = _Delivered(nexus_id, complete=batch.root_ended)
            self._remember(batch.trace_id, state)
            self._stats.add("traces_sent")
        elif state.nexus_id is None:
            self._stats.add("spans_dropped_late", len(batch.spans))
            return
        else:
            self._remember(batch.trace_id, state)
        if not self._post_spans(state, batch.spans, deadline):
            return
        if not fresh and batch.root_ended and not state.complete and state.nexus_id is not None:
            update = mapping.trace_update(batch.spans)
            if update:
                try:
                    self._client.update_trace(state.nexus_id, update, deadline)
                    self._stats.add("traces_updated")
                except NexusError as error:
                    self._report(error, "update trace")
            state.complete = True

    def _post_spans(self, state: _Delivered, spans: Sequence[ReadableSpan], deadline: float) -> bool:
        assert state.nexus_id is not None
        ordered = mapping.order_spans(spans, known=state.span_ids.keys())
        for index, (span, parent) in enumerate(ordered):
            parent_nexus = state.span_ids.get(parent) if parent is not None else None
            if parent_nexus is None and not mapping.is_local_root(span):
                parent_nexus = state.root_span  # orphan: attach to the root (None when there is none yet)
            payload = mapping.build_span(span, parent_nexus, self._max_payload_bytes)
            try:
                nexus_span = self._create_span(state, payload, deadline)
            except NexusRejected as error:
                self._report(error, "create span")
                self._stats.add("spans_failed")
                if error.status == 404:  # the trace is gone: nothing more can be attached to it
                    state.nexus_id = None
                    self._stats.add("spans_failed", len(ordered) - index - 1)
                    return False
                continue
            except NexusError as error:
                self._report(error, "create span")
                self._stats.add("spans_failed", len(ordered) - index)
                return False
            state.span_ids[mapping.span_id(span)] = nexus_span
            if state.root_span is None and mapping.is_local_root(span):
                state.root_span = nexus_span
            self._stats.add("spans_sent")
        return True

    # -- at-most-once creation ----------------------------------------------------------------------------
    def _create_trace(self, payload: Mapping[str, Any], deadline: float) -> str:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._client.create_trace(payload, deadline)
            except NexusAmbiguous as error:
                found = self._lookup(error, deadline, attempt, lambda: self._find_trace(payload, deadline))
                if found:
                    return found

    def _create_span(self, state: _Delivered, payload: Mapping[str, Any], deadline: float) -> str:
        assert state.nexus_id is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._client.create_span(state.nexus_id, payload, deadline)
            except NexusAmbiguous as error:
                found = self._lookup(error, deadline, attempt, lambda: self._find_span(state, payload, deadline))
                if found:
                    return found

    def _lookup(
        self, error: NexusError, deadline: float, attempt: int, find: Callable[[], Optional[str]]
    ) -> Optional[str]:
        """Resolve an ambiguous POST: the id if it was applied, None if it was not (caller re-posts)."""
        if not self._client.backoff(attempt, deadline):  # give the server time to finish the first request
            raise NexusUnavailable(f"{error}; outcome unknown, not retried to avoid a duplicate")
        try:
            found = find()
        except NexusError as lookup_error:
            raise NexusUnavailable(
                f"{error}; lookup failed ({lookup_error}), not retried to avoid a duplicate"
            ) from None
        if found:
            self._stats.add("reconciled")
        return found

    def _find_trace(self, payload: Mapping[str, Any], deadline: float) -> Optional[str]:
        query = {
            "agent_id": payload["agent_id"],
            "since": payload["started_at"],
            "until": payload["started_at"],
            "limit": 200,
        }
        wanted = payload["metadata"]["otel_trace_id"]
        for item in self._client.list_traces(query, deadline):
            metadata = item.get("metadata") if isinstance(item, Mapping) else None
            if isinstance(metadata, str):
                try:
                    metadata = json.loads(metadata)
                except ValueError:
                    metadata = None
            if isinstance(metadata, Mapping) and metadata.get("otel_trace_id") == wanted and item.get("id"):
                return str(item["id"])
        return None

    def _find_span(self, state: _Delivered, payload: Mapping[str, Any], deadline: float) -> Optional[str]:
        assert state.nexus_id is not None
        taken = set(state.span_ids.values())
        for item in self._client.get_trace(state.nexus_id, deadline).get("spans") or ():
            if (
                isinstance(item, Mapping)
                and item.get("id") not in taken
                and item.get("name") == payload["name"]
                and item.get("started_at") == payload["started_at"]
                and item.get("parent_span_id") == payload.get("parent_span_id")
            ):
                return str(item["id"])
        return None

    # -- bookkeeping --------------------------------------------------------------------------------------
    def _remember(self, trace_id: int, state: _Delivered) -> None:
        with self._lock:
            self._delivered[trace_id] = state
            self._delivered.move_to_end(trace_id)
            while len(self._delivered) > _MAX_REMEMBERED_TRACES:
                self._delivered.popitem(last=False)

    def _report(self, error: NexusError, what: str) -> None:
        if isinstance(error, NexusRejected):
            self._log_once(
                logging.ERROR,
                f"{what}:{error.status}:{error.message}",
                "Nexus rejected %s (not retried): HTTP %s %s",
                what,
                error.status,
                error.message,
            )
        else:
            self._log_once(
                logging.WARNING, f"{what}:{type(error).__name__}", "Nexus exporter could not %s: %s", what, error
            )


def _with_margin(deadline: float) -> float:
    """``deadline`` less a small margin (0.1 s, or 10 % of what is left) for winding down before it."""
    return deadline - min(0.1, 0.1 * max(0.0, deadline - time.monotonic()))
