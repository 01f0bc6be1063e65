"""``NexusSpanExporter``: one Nexus trace per agent run, on the standard ``SpanExporter`` contract.

Use it behind the SDK's ``BatchSpanProcessor``, which queues spans and calls :meth:`export` on its own thread::

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.exporter.nexus import NexusSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NexusSpanExporter()))  # reads NEXUS_* variables

or zero-code: ``OTEL_TRACES_EXPORTER=nexus NEXUS_API_KEY=nxs_... opentelemetry-instrument python app.py``.

:meth:`export` files the spans into runs (``runs``), posts every run that is complete, with what an earlier
failure left over (the *backlog*), concurrently (``sender``), and returns the real outcome: SUCCESS when all
of it is in Nexus, FAILURE otherwise. So ``TracerProvider.force_flush()`` returns once the runs are in Nexus.

While Nexus is unreachable, runs wait in the bounded backlog and ``export`` does not touch the network until
a backoff delay has passed (a timer retries the backlog then, so an idle app still delivers it); nothing is
posted twice. Every span that is dropped is counted per reason in :attr:`stats` and reported by a warning
within ``drop_log_interval`` seconds. A forked child starts empty: it never sends its parent's spans.

Spans the SDK's ``BatchSpanProcessor`` drops from its full queue never reach :meth:`export`; the exporter
notices the SDK's report of it (``sdk_queue``), counts it as ``sdk_queue_full`` and warns with the fix.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from typing import Optional, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import mapping, sdk_queue
from .client import NexusClient, endpoint_problem
from .runs import NexusTrace, RunGrouper
from .sender import Counters, LogOnce, Sender

__all__ = ["NexusSpanExporter", "DEFAULT_ENDPOINT"]

_logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://nexus.keylightdigital.dev"
_KEY_SHAPE = re.compile(r"^nxs_[0-9a-f]{64}$")
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")  # what a Bearer token may hold (no spaces, no line breaks)
_MAX_CONCURRENCY = 256  # a typo must not start thousands of threads


class NexusSpanExporter(SpanExporter):
    """OpenTelemetry span exporter for Nexus. Every argument falls back to its environment variable.

    Args:
        api_key: ``NEXUS_API_KEY``. Without one the exporter logs one warning and drops everything.
        endpoint: ``NEXUS_ENDPOINT`` (default ``https://nexus.keylightdigital.dev``); plain http only to loopback.
        agent_id: ``NEXUS_AGENT_ID``; default: each run's ``gen_ai.agent.name``, else ``service.name``.
        export_all: ``NEXUS_EXPORT_ALL``; by default spans outside agent runs are not sent.
        export_timeout: how long one :meth:`export` may take, retries included (``NEXUS_EXPORT_TIMEOUT``, 10 s).
        connect_timeout / read_timeout: per HTTP attempt (``NEXUS_CONNECT_TIMEOUT`` 5 s, ``NEXUS_READ_TIMEOUT`` 10 s).
        max_concurrent_requests: requests in flight at once, and the connection pool's size
            (``NEXUS_MAX_CONCURRENT_REQUESTS``, 64). Each span is one request and a child needs its parent's
            id, so throughput comes from many runs and sibling spans in flight together.
        max_trace_age: spans whose parent has not ended after this long (``NEXUS_MAX_TRACE_AGE``, 900 s) are
            sent as an incomplete trace (status ``timeout``) if they hold GenAI data, else discarded.
        max_backlog_spans: spans kept for a later retry while Nexus is unavailable (10,000).
        shutdown_timeout: the most ``shutdown()`` waits (10 s; less when called with ``timeout_millis``).
        drop_log_interval: the most often a warning about dropped spans is logged (5 s).
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        endpoint: Optional[str] = None,
        agent_id: Optional[str] = None,
        *,
        export_all: Optional[bool] = None,
        export_timeout: Optional[float] = None,
        connect_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        max_concurrent_requests: Optional[int] = None,
        max_trace_age: Optional[float] = None,
        max_backlog_spans: int = 10_000,
        max_waiting_spans: int = 20_000,
        max_payload_bytes: int = mapping.DEFAULT_MAX_PAYLOAD_BYTES,
        shutdown_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        drop_log_interval: float = 5.0,
    ) -> None:
        key = (api_key if api_key is not None else os.environ.get("NEXUS_API_KEY", "")).strip()
        self.endpoint = (endpoint or os.environ.get("NEXUS_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")
        self.agent_id = agent_id or os.environ.get("NEXUS_AGENT_ID") or None
        self.export_all = export_all if export_all is not None else _env_bool("NEXUS_EXPORT_ALL")
        self._export_timeout = export_timeout or _env_float("NEXUS_EXPORT_TIMEOUT", 10.0)
        self._shutdown_timeout = shutdown_timeout
        self._max_backlog_spans = max_backlog_spans
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._drop_log_interval = drop_log_interval
        self._grouper = RunGrouper(
            agent_id=self.agent_id,
            export_all=self.export_all,
            max_waiting=max_waiting_spans,
            max_age=max_trace_age or _env_float("NEXUS_MAX_TRACE_AGE", 900.0),
        )
        self._counters = Counters()
        self._has_key = bool(key)
        self._is_shutdown = False
        self._sender: Optional[Sender] = None
        self._reset_state()

        problem = None
        if not key:
            problem = "NEXUS_API_KEY is not set: the Nexus exporter drops all spans"
        elif endpoint_problem(self.endpoint) is not None:
            problem = f"Nexus exporter disabled ({self.endpoint}): {endpoint_problem(self.endpoint)}"
        elif not _HEADER_SAFE.match(key):
            problem = "Nexus exporter disabled: NEXUS_API_KEY holds characters not allowed in an HTTP header"
        elif not _KEY_SHAPE.match(key):
            _logger.warning("NEXUS_API_KEY does not look like a Nexus key (nxs_ followed by 64 hex digits)")
        if problem is None:
            concurrency = max_concurrent_requests or _env_int("NEXUS_MAX_CONCURRENT_REQUESTS", 64)
            concurrency = max(1, min(_MAX_CONCURRENCY, concurrency))
            client = NexusClient(
                self.endpoint,
                key,
                connect_timeout=connect_timeout or _env_float("NEXUS_CONNECT_TIMEOUT", 5.0),
                read_timeout=read_timeout or _env_float("NEXUS_READ_TIMEOUT", 10.0),
                backoff_base=min(backoff_base, 0.5),
                backoff_max=min(backoff_max, 4.0),
                max_connections=concurrency,
            )
            self._sender = Sender(
                client,
                concurrency=concurrency,
                max_payload_bytes=max_payload_bytes,
                counters=self._counters,
                log_once=LogOnce(),
            )
            if hasattr(os, "register_at_fork"):
                own = weakref.WeakMethod(self._after_fork)
                os.register_at_fork(after_in_child=lambda: (own() or (lambda: None))())
            sdk_queue.watch(self)
        else:
            _logger.warning("%s", problem)
        del key

    def _reset_state(self) -> None:
        """Locks, backlog and timers (at start, and in a forked child where other threads' locks may be held)."""
        self._round_lock = threading.Lock()  # one delivery round at a time; guards the grouper and the backlog
        self._backlog: list[NexusTrace] = []
        self._failures = 0  # consecutive rounds that left work behind
        self._retry_at = 0.0  # monotonic; no network before it unless forced (flush, shutdown)
        self._timer: Optional[threading.Timer] = None
        self._report_lock = threading.Lock()
        self._reported: dict[str, int] = {}
        self._last_report = 0.0
        self._report_timer: Optional[threading.Timer] = None

    def __repr__(self) -> str:
        key = "<set>" if self._has_key else "<missing>"
        return f"NexusSpanExporter(endpoint={self.endpoint!r}, agent_id={self.agent_id!r}, api_key={key})"

    @property
    def enabled(self) -> bool:
        """False when the exporter drops everything (no key, or an endpoint the key must not be sent to)."""
        return self._sender is not None

    @property
    def stats(self) -> dict[str, int]:
        """Counters: traces_sent, spans_sent, spans_late, spans_filtered, reconciled, and every drop by reason
        (spans_dropped_buffer_full, spans_dropped_backlog_full, spans_dropped_shutdown,
        spans_dropped_reconcile_unknown, spans_rejected_http_NNN). Outcomes without a span count:
        reconcile_unknown (a lookup of an unanswered POST got an answer it could not read; the object waits
        for another lookup) and sdk_queue_full (the SDK reported its batch queue full: spans were dropped
        before they reached the exporter; the SDK reports at most once per 20 s)."""
        return self._counters.snapshot()

    @property
    def backlog_spans(self) -> int:
        """Spans waiting for Nexus to come back."""
        return sum(len(t.unsent) for t in self._backlog)

    # -- SpanExporter -------------------------------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Deliver the runs completed by ``spans`` and the backlog; SUCCESS only when all of it is in Nexus."""
        if self._is_shutdown or self._sender is None:
            return SpanExportResult.FAILURE
        with self._round_lock:
            traces = self._grouper.add(spans) + self._grouper.expire()
            self._take_counts()
            ok = self._round(traces, time.monotonic() + self._export_timeout, force=False)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Retry the backlog now (the SDK's processors flush their own queues through :meth:`export`)."""
        if self._is_shutdown:
            return False
        if self._sender is None:
            return True
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._round_lock.acquire(timeout=max(0.0, timeout_millis / 1000)):
            return False
        try:
            return self._round([], min(deadline, time.monotonic() + self._export_timeout), force=True)
        finally:
            self._round_lock.release()

    def shutdown(self, timeout_millis: Optional[float] = None) -> None:
        """Send what is left (runs cut short, spans still waiting as incomplete traces) within the timeout:
        ``timeout_millis`` if given, at most ``shutdown_timeout``. Skipped while Nexus is known to be down."""
        if self._is_shutdown:
            return
        self._is_shutdown = True
        seconds = (
            self._shutdown_timeout if timeout_millis is None else min(self._shutdown_timeout, timeout_millis / 1000)
        )
        deadline = time.monotonic() + max(0.0, seconds)
        if self._timer is not None:
            self._timer.cancel()
        if self._sender is None:
            return
        if self._round_lock.acquire(timeout=max(0.0, seconds)):
            try:
                traces = self._grouper.expire(everything=True)
                self._take_counts()
                if time.monotonic() >= self._retry_at:
                    self._round(traces, deadline, force=True)
                else:
                    self._backlog.extend(traces)
                lost = self.backlog_spans
                self._backlog = []
            finally:
                self._round_lock.release()
        else:
            lost = self.backlog_spans
        self._counters.add("spans_dropped_shutdown", lost)
        self._report_losses(final=True)
        self._sender.close()

    # -- internals ----------------------------------------------------------------------------------------
    def _round(self, traces: list[NexusTrace], deadline: float, force: bool, probe: bool = False) -> bool:
        """One delivery round (round lock held): the backlog and ``traces``. True when nothing is left.
        ``probe``: one attempt per request (the timer's retry must not hold the lock for a whole timeout)."""
        assert self._sender is not None
        work = list({id(t): t for t in [*self._backlog, *traces] if t.unsent}.values())
        lost_before = self._lost()
        attempted = bool(work) and (force or time.monotonic() >= self._retry_at)
        if attempted:
            self._sender.deliver(work, deadline, single_attempt=probe)
        left = [t for t in work if t.unsent]
        self._backlog = self._bounded(left)
        if left and attempted:
            self._failures += 1
            delay = min(self._backoff_max, self._backoff_base * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + delay
            self._schedule_retry(delay)
        elif not left:
            self._failures, self._retry_at = 0, 0.0
        self._report_losses()
        return not left and self._lost() == lost_before

    def _bounded(self, left: list[NexusTrace]) -> list[NexusTrace]:
        """Keep the newest runs within ``max_backlog_spans``; count the others as dropped."""
        total = sum(len(t.unsent) for t in left)
        while left and total > self._max_backlog_spans:
            oldest = left.pop(0)
            total -= len(oldest.unsent)
            self._counters.add("spans_dropped_backlog_full", len(oldest.unsent))
            oldest.unsent = []
            oldest.rejected = True  # its late spans are dropped (and counted) too
        return left

    def _schedule_retry(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(delay, self._retry_backlog)
        self._timer.daemon = True
        self._timer.start()

    def _retry_backlog(self) -> None:
        """Timer: an app that stops producing spans still gets its backlog delivered once Nexus is back."""
        if self._is_shutdown or not self._round_lock.acquire(blocking=False):
            return  # a round is running: it takes the backlog along
        try:
            if not self._is_shutdown:
                self._round([], time.monotonic() + self._export_timeout, force=True, probe=True)
        finally:
            self._round_lock.release()

    def _take_counts(self) -> None:
        for name, n in self._grouper.counts.items():
            self._counters.add(name, n)
        self._grouper.counts.clear()

    def _lost(self) -> int:
        """Spans rejected or given up so far (a round that adds to them did not deliver everything)."""
        return sum(
            n for name, n in self._counters.snapshot().items() if name.startswith(("spans_rejected", "spans_dropped"))
        )

    def on_sdk_queue_full(self) -> None:
        """The SDK reported dropping spans from its full batch queue (called on the app's thread: cheap)."""
        if not self._is_shutdown:
            self._counters.add("sdk_queue_full")
            self._report_losses()

    def _report_losses(self, final: bool = False) -> None:
        """A warning with the spans dropped since the last one; at most one per ``drop_log_interval`` (the
        rest follows by timer). Rejections are not repeated here: each kind is logged when it first happens."""
        with self._report_lock:
            now = time.monotonic()
            wait = self._last_report + self._drop_log_interval - now
            if wait > 0 and not final:
                if self._report_timer is None:
                    self._report_timer = threading.Timer(wait, self._report_losses)
                    self._report_timer.daemon = True
                    self._report_timer.start()
                return
            self._report_timer = None
            counts = self._counters.snapshot()
            delta = {
                k: v - self._reported.get(k, 0)
                for k, v in counts.items()
                if (k.startswith("spans_dropped") or k == "sdk_queue_full") and v > self._reported.get(k, 0)
            }
            if not delta:
                return
            self._reported.update({k: counts[k] for k in delta})
            self._last_report = now
        sdk_full = delta.pop("sdk_queue_full", 0)
        if sdk_full:
            _logger.warning(
                "The OpenTelemetry SDK's batch span queue is full: it dropped spans before they reached the Nexus "
                "exporter (%d report(s); whole agent runs can be missing). Raise OTEL_BSP_MAX_QUEUE_SIZE (default "
                "2048); see 'Bursts' in the opentelemetry-exporter-nexus README",
                sdk_full,
            )
        if not delta:
            return
        backlog = self.backlog_spans
        _logger.warning(
            "Nexus exporter dropped spans: %s%s",
            ", ".join(f"{k[len('spans_dropped_') :]}={v}" for k, v in sorted(delta.items())),
            f" ({backlog} spans wait for a retry)" if backlog else "",
        )

    def _after_fork(self) -> None:
        """In a forked child: nothing of the parent's is sent (its runs are the parent's to deliver)."""
        self._reset_state()
        self._grouper.forget_waiting()
        if self._sender is not None:
            self._sender.after_fork()


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_int(name: str, default: int) -> int:
    value = _env_float(name, float(default))
    if not value.is_integer():
        _logger.warning("Ignoring invalid %s=%r; using %s", name, os.environ.get(name), default)
        return default
    return int(value)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        _logger.warning("Ignoring invalid %s=%r; using %s", name, raw, default)
        return default
    return value
