"""Posting Nexus traces concurrently: the traces of a round in parallel, sibling spans in parallel once their
parent has its Nexus id (a child needs its parent's server-assigned id, so the depth of a run sets the number
of sequential round trips; everything else overlaps).

Threads. A small pool of daemon threads runs the requests; a task never waits for another task, it schedules
the next ones (a span's children) when it is done, so the pool cannot deadlock. The pool is not
``concurrent.futures.ThreadPoolExecutor``: that one refuses new work once the interpreter starts exiting,
which is exactly when the SDK flushes the last spans.

Duplicates. Nexus assigns ids on POST and has no idempotency key, so a POST whose answer was lost (read
timeout, connection reset) may or may not have been applied. Such an object is *looked up* before it is
posted again: the trace by ``GET /api/v1/traces?agent_id=&since=&until=`` (exact ``started_at``) matching
``metadata.otel_span_id``, a span by name + started_at + parent in ``GET /api/v1/traces/{id}``. When the lookup
fails too, the object stays marked and the lookup is retried in a later round; it is never posted blindly.

A lookup reads both list shapes (a bare array, or an object holding it, see ``client.read_list``). An answer it
cannot read means "unknown", never "not found": the object stays marked for a later round (counted as
``reconcile_unknown``); after ``MAX_UNKNOWN_LOOKUPS`` such answers it is given up, counted as
``spans_dropped_reconcile_unknown`` and logged, rather than risk a duplicate.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from typing import Any, Callable, Mapping, Optional

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan

from . import mapping
from .client import NexusAmbiguous, NexusClient, NexusError, NexusRejected, NexusUnreadable, describe_shape
from .runs import NexusTrace

_logger = logging.getLogger(__name__)

#: Unreadable lookup answers after which an unanswered POST is given up (dropped, counted), never re-posted.
MAX_UNKNOWN_LOOKUPS = 5
#: Page size of the trace lookup; a full page without the trace does not prove it absent.
_LIST_LIMIT = 200
#: Listed traces without ``metadata`` fetched one by one to compare it; more make the lookup unknown.
_MAX_FETCHED_CANDIDATES = 5
_TRACE = 0  #: key of the trace itself in ``NexusTrace.unknown_lookups`` (OTel span ids are never 0)


class Counters:
    """Thread-safe counters, exposed read-only by the exporter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        if n:
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


class _Pool:
    """``size`` daemon threads (started on first use) running tasks from one queue."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> None:
        if len(self._threads) < self._size:
            with self._lock:
                while len(self._threads) < self._size:
                    thread = threading.Thread(
                        target=self._work, name=f"NexusSpanExporter-{len(self._threads)}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        self._tasks.put(task)

    def _work(self) -> None:
        # Our own HTTP calls must never be traced (an instrumented urllib3 would feed spans back to us).
        ctx = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
        http_key = getattr(otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None)
        if http_key is not None:
            ctx = otel_context.set_value(http_key, True, ctx)
        otel_context.attach(ctx)
        while True:
            self._tasks.get()()


class _Round:
    """The tasks of one delivery round: counts those in flight, wakes the waiter when none are left."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.lock = threading.Lock()
        self._idle = threading.Condition(self.lock)
        self._in_flight = 0

    def started(self) -> None:
        with self.lock:
            self._in_flight += 1

    def finished(self) -> None:
        with self.lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.lock:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


class Sender:
    """Delivers Nexus traces; :meth:`deliver` returns when a round is over (done, failed or out of time)."""

    def __init__(
        self,
        client: NexusClient,
        *,
        concurrency: int,
        max_payload_bytes: int,
        counters: Counters,
        log_once: LogOnce,
        max_unknown_lookups: int = MAX_UNKNOWN_LOOKUPS,
    ) -> None:
        self._client = client
        self._max_unknown_lookups = max(1, max_unknown_lookups)
        self._concurrency = concurrency
        self._max_payload_bytes = max_payload_bytes
        self._counters = counters
        self._log_once = log_once
        self._pool = _Pool(concurrency)

    def after_fork(self) -> None:
        """In a forked child the pool threads are gone: new ones start on first use."""
        self._pool = _Pool(self._concurrency)
        self._client.after_fork()

    def close(self) -> None:
        self._client.close()

    def deliver(self, traces: list[NexusTrace], deadline: float, single_attempt: bool = False) -> None:
        """Post what each trace still lacks, concurrently, until done or ``deadline`` (monotonic);
        ``single_attempt``: no retries (a probe while Nexus was unavailable). One round at a time.

        Afterwards ``trace.unsent`` holds what is left to retry (empty when delivered or given up)."""
        if not traces:
            return
        self._client.single_attempt = single_attempt
        work = _Round(deadline)
        for trace in traces:
            self._spawn(work, functools.partial(self._start, work, trace))
        # Requests end by the deadline (their timeouts are cut to it); the margin covers the last answers.
        if not work.wait(max(0.0, deadline - time.monotonic()) + 2.0):
            _logger.debug("Nexus exporter: requests still running past the round's deadline")

    # -- tasks ------------------------------------------------------------------------------------------------
    def _spawn(self, work: _Round, task: Callable[[], None]) -> None:
        work.started()

        def run() -> None:
            try:
                task()
            except Exception:  # never let one bad trace kill a pool thread
                _logger.exception("Nexus exporter: unexpected error while sending a trace")
            finally:
                work.finished()

        self._pool.submit(run)

    def _start(self, work: _Round, trace: NexusTrace) -> None:
        if trace.nexus_id is None:
            try:
                trace.nexus_id = self._create_trace(trace, work.deadline)
            except NexusRejected as error:
                self._report(error, "create trace")
                self._give_up(trace, f"spans_rejected_http_{error.status}")
                return
            except NexusUnreadable as error:
                if self._unknown_lookup(trace, _TRACE, error):
                    self._give_up(trace, "spans_dropped_reconcile_unknown")
                return  # stays unsent and marked: looked up again in a later round
            except NexusError as error:
                self._report(error, "create trace")
                return  # stays unsent: retried in a later round
            trace.payload = {}
            self._counters.add("traces_sent")
        with work.lock:
            pending = {mapping.span_id(s) for s in trace.unsent}
            ready = [s for s in trace.unsent if mapping.parent_id(s) not in pending]
        for span in ready:
            self._spawn(work, functools.partial(self._post, work, trace, span))

    def _post(self, work: _Round, trace: NexusTrace, span: ReadableSpan) -> None:
        sid, parent = mapping.span_id(span), mapping.parent_id(span)
        top = sid == trace.top_id
        # A span whose parent failed or is not part of the trace goes under the top span.
        parent_nexus = None if top else (trace.span_ids.get(parent) if parent is not None else None) or trace.root_span
        payload = mapping.build_span(span, parent_nexus, self._max_payload_bytes)
        try:
            nexus_span: Optional[str] = self._create_span(trace, sid, payload, work.deadline)
            self._counters.add("spans_sent")
        except NexusRejected as error:
            self._report(error, "create span")
            if error.status == 404:  # the trace is gone: nothing more can be attached to it
                self._give_up(trace, "spans_rejected_http_404")
                return
            self._counters.add(f"spans_rejected_http_{error.status}")
            nexus_span = None  # its children go under the top span
        except NexusUnreadable as error:
            if not self._unknown_lookup(trace, sid, error):
                return  # stays unsent and marked: looked up again in a later round
            self._counters.add("spans_dropped_reconcile_unknown")
            nexus_span = None  # given up: its children go under the top span
        except NexusError as error:
            self._report(error, "create span")
            return  # this span and its subtree stay unsent: retried in a later round
        with work.lock:
            if trace.rejected:
                return
            trace.span_ids[sid] = nexus_span
            if top:
                trace.root_span = nexus_span
            trace.unsent = [s for s in trace.unsent if mapping.span_id(s) != sid]
            children = [s for s in trace.unsent if mapping.parent_id(s) == sid]
        for child in children:
            self._spawn(work, functools.partial(self._post, work, trace, child))

    def _give_up(self, trace: NexusTrace, reason: str) -> None:
        self._counters.add(reason, len(trace.unsent))
        trace.rejected = True
        trace.unsent = []

    # -- at-most-once creation ------------------------------------------------------------------------------
    def _create_trace(self, trace: NexusTrace, deadline: float) -> str:
        if trace.maybe_created:
            found = self._find_trace(trace.payload, deadline)
            trace.maybe_created = False
            if found:
                self._counters.add("reconciled")
                return found
        try:
            return self._client.create_trace(trace.payload, deadline)
        except NexusAmbiguous:
            trace.maybe_created = True
        self._client.backoff(1, deadline)  # give the server time to finish the first request
        return self._create_trace(trace, deadline)

    def _create_span(self, trace: NexusTrace, sid: int, payload: Mapping[str, Any], deadline: float) -> str:
        assert trace.nexus_id is not None
        if sid in trace.maybe_posted:
            found = self._find_span(trace, payload, deadline)
            trace.maybe_posted.discard(sid)
            if found:
                self._counters.add("reconciled")
                return found
        try:
            return self._client.create_span(trace.nexus_id, payload, deadline)
        except NexusAmbiguous:
            trace.maybe_posted.add(sid)
        self._client.backoff(1, deadline)
        return self._create_span(trace, sid, payload, deadline)

    def _unknown_lookup(self, trace: NexusTrace, key: int, error: NexusUnreadable) -> bool:
        """A lookup answered in a shape that cannot be read: counted; True when the object is to be given up."""
        self._counters.add("reconcile_unknown")
        count = trace.unknown_lookups[key] = trace.unknown_lookups.get(key, 0) + 1
        what = "trace" if key == _TRACE else "span"
        if count < self._max_unknown_lookups:
            self._log_once(
                logging.WARNING,
                f"unknown:{what}",
                "Nexus exporter cannot tell whether Nexus created a %s whose answer was lost (%s); "
                "it is looked up again later, never posted blindly",
                what,
                error,
            )
            return False
        self._log_once(
            logging.WARNING,
            f"gave-up:{what}",
            "Nexus exporter gave up a %s whose answer was lost: %d lookups could not be read (%s); "
            "dropped rather than risk a duplicate (counted as spans_dropped_reconcile_unknown)",
            what,
            count,
            error,
        )
        return True

    def _find_trace(self, payload: Mapping[str, Any], deadline: float) -> Optional[str]:
        """The id of the trace an unanswered POST created, None when Nexus certainly holds none.

        Raises :class:`NexusUnreadable` when the answers do not tell: an unknown shape, a full page, listed
        traces without an id, or too many without ``metadata`` to compare."""
        query = {
            "agent_id": payload["agent_id"],
            "since": payload["started_at"],
            "until": payload["started_at"],
            "limit": _LIST_LIMIT,
        }
        wanted = payload["metadata"]["otel_span_id"]
        items = self._client.list_traces(query, deadline)
        unsure: list[str] = []
        for item in items:
            if not isinstance(item, Mapping):
                raise NexusUnreadable(f"GET /traces listed {describe_shape(item)}, not a trace")
            item_id = _item_id(item)
            if item_id is None:
                raise NexusUnreadable("GET /traces listed a trace without an id")
            if "metadata" not in item:
                unsure.append(item_id)
            elif _otel_span_id(item) == wanted:
                return item_id
        if len(unsure) > _MAX_FETCHED_CANDIDATES:
            raise NexusUnreadable(f"GET /traces listed {len(unsure)} traces without metadata")
        for item_id in unsure:
            trace = self._client.get_trace(item_id, deadline)
            if "metadata" not in trace:
                raise NexusUnreadable("GET /traces/{id} answered a trace without metadata")
            if _otel_span_id(trace) == wanted:
                return item_id
        if len(items) >= _LIST_LIMIT:
            raise NexusUnreadable(f"GET /traces answered a full page ({len(items)} traces) without it")
        return None

    def _find_span(self, trace: NexusTrace, payload: Mapping[str, Any], deadline: float) -> Optional[str]:
        """The id of the span an unanswered POST created, None when the trace certainly holds none;
        :class:`NexusUnreadable` when the trace's spans cannot be read."""
        assert trace.nexus_id is not None
        taken = set(trace.span_ids.values())
        spans = self._client.get_trace(trace.nexus_id, deadline).get("spans")
        if not isinstance(spans, list):
            raise NexusUnreadable(f"GET /traces/{{id}} answered {describe_shape(spans)} as its spans, not a list")
        for item in spans:
            if not isinstance(item, Mapping):
                raise NexusUnreadable(f"GET /traces/{{id}} listed {describe_shape(item)}, not a span")
            item_id = _item_id(item, "span_id")
            if (
                item_id is not None
                and item_id not in taken
                and item.get("name") == payload["name"]
                and item.get("started_at") == payload["started_at"]
                and item.get("parent_span_id") == payload.get("parent_span_id")
            ):
                return item_id
        return None

    def _report(self, error: NexusError, what: str) -> None:
        if isinstance(error, NexusRejected):
            hint = " (check NEXUS_API_KEY)" if error.status == 401 else ""
            self._log_once(
                logging.ERROR,
                f"{error.status}:{error.message}",
                "Nexus rejected %s: HTTP %s %s%s; not retried",
                what,
                error.status,
                error.message,
                hint,
            )
        else:
            self._log_once(
                logging.WARNING, f"{what}:{type(error).__name__}", "Nexus exporter could not %s: %s", what, error
            )


def _item_id(item: Mapping[str, Any], alias: str = "trace_id") -> Optional[str]:
    """A listed object's id: ``id``, or ``alias`` (the name the create answer gives it)."""
    value = item.get("id") if item.get("id") is not None else item.get(alias)
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "" else None


def _otel_span_id(item: Mapping[str, Any]) -> Any:
    """``metadata.otel_span_id`` of a listed trace (Nexus stores metadata as JSON text: both forms are read)."""
    metadata = item.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return None
    return metadata.get("otel_span_id") if isinstance(metadata, Mapping) else None
