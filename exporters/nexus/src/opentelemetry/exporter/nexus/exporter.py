"""``NexusSpanExporter``: sends each OpenTelemetry trace to Nexus (Keylight Digital) as ONE Nexus trace.

Spans are buffered per trace id until the trace's local root span (no parent, or a remote parent) ends; the
whole trace is then handed to background sender workers (``nexus_sender``; a few traces in flight at once,
each trace on one worker), so :meth:`export` never waits on the network. Usage::

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.exporter.nexus import NexusSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NexusSpanExporter()))  # reads NEXUS_* variables

or zero-code: ``OTEL_TRACES_EXPORTER=nexus NEXUS_API_KEY=nxs_... opentelemetry-instrument python app.py``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import mapping
from .client import NexusClient, endpoint_problem
from .sender import LogOnce, NexusSender, Stats, TraceBatch

__all__ = ["NexusSpanExporter", "DEFAULT_ENDPOINT"]

_logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://nexus.keylightdigital.dev"
_KEY_SHAPE = re.compile(r"^nxs_[0-9a-f]{64}$")
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")  # what a Bearer token may hold (no spaces, no line breaks)
_MAX_WORKERS = 64  # a typo must not start thousands of threads
#: Counters reported by the periodic "dropped" warning.
_LOSS_COUNTERS = (
    "spans_dropped_queue_full",
    "spans_dropped_buffer_full",
    "spans_dropped_trace_too_large",
    "spans_dropped_late",
    "spans_failed",
    "traces_failed",
)


@dataclass
class _Buffer:
    spans: list[ReadableSpan] = field(default_factory=list)
    deadline: float = 0.0  # monotonic time after which the spans are sent without waiting for the root


class NexusSpanExporter(SpanExporter):
    """OpenTelemetry span exporter for Nexus. Every argument falls back to its environment variable.

    Args:
        api_key: ``NEXUS_API_KEY``. Without one the exporter logs one warning and drops everything.
        endpoint: ``NEXUS_ENDPOINT`` (default ``https://nexus.keylightdigital.dev``); plain http only to loopback.
        agent_id: ``NEXUS_AGENT_ID``; default: the run span's ``gen_ai.agent.name``, else ``service.name``.
        export_all: ``NEXUS_EXPORT_ALL``; by default only traces with a GenAI span are sent.
        connect_timeout / read_timeout: per HTTP attempt (``NEXUS_CONNECT_TIMEOUT`` 5 s, ``NEXUS_READ_TIMEOUT`` 10 s).
        export_timeout: total budget for delivering one trace, retries included (``NEXUS_EXPORT_TIMEOUT`` 30 s).
        max_trace_age: a trace whose root has not ended after this long is sent with status ``timeout``
            (``NEXUS_MAX_TRACE_AGE`` 900 s).
        max_concurrent_traces: sender workers, i.e. traces delivered at the same time
            (``NEXUS_MAX_CONCURRENT_TRACES``, 4, at most 64). Each trace stays on one worker, posted in order;
            more workers hide network latency (the API takes one POST per span).
        shutdown_timeout: used by ``shutdown()`` when called without ``timeout_millis`` (10 s).
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        endpoint: Optional[str] = None,
        agent_id: Optional[str] = None,
        *,
        export_all: Optional[bool] = None,
        connect_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        export_timeout: Optional[float] = None,
        max_trace_age: Optional[float] = None,
        max_concurrent_traces: Optional[int] = None,
        shutdown_timeout: float = 10.0,
        max_buffered_traces: int = 1024,
        max_spans_per_trace: int = 1000,
        max_queue_size: int = 256,
        max_payload_bytes: int = mapping.DEFAULT_MAX_PAYLOAD_BYTES,
        late_span_grace: float = 2.0,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        idle_interval: float = 0.5,
        drop_log_interval: float = 60.0,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("NEXUS_API_KEY", "")
        key = key.strip()
        self.endpoint = (endpoint or os.environ.get("NEXUS_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")
        self.agent_id = agent_id or os.environ.get("NEXUS_AGENT_ID") or None
        self.export_all = export_all if export_all is not None else _env_bool("NEXUS_EXPORT_ALL")
        self._shutdown_timeout = shutdown_timeout
        self._max_trace_age = max_trace_age if max_trace_age is not None else _env_float("NEXUS_MAX_TRACE_AGE", 900.0)
        self._max_buffered_traces = max_buffered_traces
        self._max_spans_per_trace = max_spans_per_trace
        self._late_span_grace = late_span_grace
        self._drop_log_interval = drop_log_interval
        self._stats = Stats()
        self._log_once = LogOnce()
        self._lock = threading.Lock()
        self._buffers: dict[int, _Buffer] = {}
        self._finished: OrderedDict[int, None] = OrderedDict()  # traces whose root was handed over
        self._is_shutdown = False
        self._shutting_down = False
        self._last_loss_report = time.monotonic()
        self._reported: dict[str, int] = {}
        self._report_lock = threading.Lock()
        self._sender: Optional[NexusSender] = None
        self._has_key = bool(key)

        problem = None
        if not key:
            problem = "NEXUS_API_KEY is not set: the Nexus exporter drops all spans"
        else:
            problem = endpoint_problem(self.endpoint)
            if problem is not None:
                problem = f"Nexus exporter disabled ({self.endpoint}): {problem}"
            elif not _HEADER_SAFE.match(key):
                problem = "Nexus exporter disabled: NEXUS_API_KEY holds characters not allowed in an HTTP header"
            elif not _KEY_SHAPE.match(key):
                _logger.warning("NEXUS_API_KEY does not look like a Nexus key (nxs_ followed by 64 hex digits)")
        if problem is None:
            try:
                client = NexusClient(
                    self.endpoint,
                    key,
                    connect_timeout=connect_timeout or _env_float("NEXUS_CONNECT_TIMEOUT", 5.0),
                    read_timeout=read_timeout or _env_float("NEXUS_READ_TIMEOUT", 10.0),
                    backoff_base=backoff_base,
                    backoff_max=backoff_max,
                )
            except ImportError:
                problem = (
                    "urllib3 is not installed (pip install 'opentelemetry-instrumentation-azure-ai-agents[nexus]')"
                )
                problem = f"Nexus exporter disabled: {problem}"
            else:
                self._sender = NexusSender(
                    client,
                    agent_id=self.agent_id,
                    export_all=self.export_all,
                    export_timeout=export_timeout or _env_float("NEXUS_EXPORT_TIMEOUT", 30.0),
                    max_payload_bytes=max_payload_bytes,
                    queue_size=max_queue_size,
                    stats=self._stats,
                    log_once=self._log_once,
                    on_idle=self._on_idle,
                    idle_interval=idle_interval,
                    workers=min(_MAX_WORKERS, max_concurrent_traces or _env_int("NEXUS_MAX_CONCURRENT_TRACES", 4)),
                )
        if problem is not None:
            _logger.warning("%s", problem)
        del key

    def __repr__(self) -> str:
        key = "<set>" if self._has_key else "<missing>"
        return f"NexusSpanExporter(endpoint={self.endpoint!r}, agent_id={self.agent_id!r}, api_key={key})"

    @property
    def enabled(self) -> bool:
        """False when the exporter drops everything (no key, refused endpoint, urllib3 missing)."""
        return self._sender is not None

    @property
    def stats(self) -> dict[str, int]:
        """Counters: spans_received, traces_sent, spans_sent, traces_filtered, traces_timed_out, drops..."""
        return self._stats.snapshot()

    # -- SpanExporter -------------------------------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Buffer ``spans``; hand over every trace whose local root ended. Never touches the network."""
        if self._is_shutdown:
            return SpanExportResult.FAILURE
        if self._sender is None:
            return SpanExportResult.SUCCESS
        self._stats.add("spans_received", len(spans))
        ready: list[TraceBatch] = []
        now = time.monotonic()
        with self._lock:
            for span in spans:
                if span.context is None:
                    continue
                trace_id = span.context.trace_id
                root = mapping.is_local_root(span)
                buffer = self._buffers.get(trace_id)
                if buffer is None:
                    if root:  # a root with nothing buffered: no need to buffer at all
                        ready.append(TraceBatch(trace_id, [span], True))
                        self._mark_finished(trace_id)
                        continue
                    if len(self._buffers) >= self._max_buffered_traces:
                        self._stats.add("spans_dropped_buffer_full")
                        continue
                    late = trace_id in self._finished
                    buffer = _Buffer(deadline=now + (self._late_span_grace if late else self._max_trace_age))
                    self._buffers[trace_id] = buffer
                if len(buffer.spans) >= self._max_spans_per_trace and not root:
                    self._stats.add("spans_dropped_trace_too_large")
                    continue
                buffer.spans.append(span)
                if root:
                    del self._buffers[trace_id]
                    ready.append(TraceBatch(trace_id, buffer.spans, True))
                    self._mark_finished(trace_id)
        for batch in ready:
            self._submit(batch)
        if not ready:
            self._sender.ensure_started()  # its idle loop enforces the max age of buffered traces
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send every buffered trace (those whose root has not ended with status ``timeout``) and wait."""
        if self._is_shutdown:
            return False
        if self._sender is None:
            return True
        deadline = time.monotonic() + timeout_millis / 1000
        if not self._drain_buffers(deadline):
            return False
        return self._sender.flush(deadline)

    def shutdown(self, timeout_millis: Optional[float] = None) -> None:
        """Deliver what is buffered within the timeout (``shutdown_timeout`` by default), then stop."""
        with self._lock:
            if self._is_shutdown or self._shutting_down:
                return
            self._shutting_down = True
        seconds = self._shutdown_timeout if timeout_millis is None else timeout_millis / 1000
        deadline = time.monotonic() + max(0.0, seconds)
        if self._sender is not None:
            self._sender.interrupt(deadline)  # no retry or request may outlive the shutdown deadline
            self._drain_buffers(deadline)
            self._is_shutdown = True
            if not self._sender.stop(deadline):
                _logger.warning("Nexus exporter: shutdown timed out; undelivered traces were abandoned")
            self._report_losses(force=True)
        self._is_shutdown = True

    # -- internals ----------------------------------------------------------------------------------------
    def _submit(self, batch: TraceBatch, block_until: Optional[float] = None) -> bool:
        assert self._sender is not None
        if self._sender.submit(batch, block_until):
            return True
        self._stats.add("spans_dropped_queue_full", len(batch.spans))
        self._report_losses()
        return False

    def _drain_buffers(self, deadline: float) -> bool:
        with self._lock:
            batches = [TraceBatch(tid, b.spans, False) for tid, b in self._buffers.items()]
            self._buffers.clear()
            timed_out = sum(1 for b in batches if b.trace_id not in self._finished)
        self._stats.add("traces_timed_out", timed_out)
        return all([self._submit(batch, block_until=deadline) for batch in batches])

    def _on_idle(self) -> None:
        """Sender housekeeping (on one worker at a time): send traces past their deadline, report losses."""
        now = time.monotonic()
        with self._lock:
            expired = [tid for tid, b in self._buffers.items() if b.deadline <= now]
            batches = [TraceBatch(tid, self._buffers.pop(tid).spans, False) for tid in expired]
            timed_out = sum(1 for b in batches if b.trace_id not in self._finished)
        if timed_out:
            self._stats.add("traces_timed_out", timed_out)
        for batch in batches:
            self._submit(batch)
        self._report_losses()

    def _mark_finished(self, trace_id: int) -> None:
        self._finished[trace_id] = None
        self._finished.move_to_end(trace_id)
        while len(self._finished) > 4 * self._max_buffered_traces:
            self._finished.popitem(last=False)

    def _report_losses(self, force: bool = False) -> None:
        """One warning per ``drop_log_interval`` at most, summarising what was lost since the last one."""
        with self._report_lock:
            now = time.monotonic()
            if not force and now - self._last_loss_report < self._drop_log_interval:
                return
            stats = self._stats.snapshot()
            delta = {k: stats.get(k, 0) - self._reported.get(k, 0) for k in _LOSS_COUNTERS}
            delta = {k: v for k, v in delta.items() if v > 0}
            if not delta:
                return
            self._last_loss_report = now
            self._reported.update({k: stats.get(k, 0) for k in _LOSS_COUNTERS})
        _logger.warning("Nexus exporter lost data: %s", ", ".join(f"{k}={v}" for k, v in sorted(delta.items())))


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
