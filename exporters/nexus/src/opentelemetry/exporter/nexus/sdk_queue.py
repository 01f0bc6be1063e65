"""Noticing when the SDK's ``BatchSpanProcessor`` drops spans because its queue is full.

Those spans never reach any exporter, so the exporter cannot count them from what it receives: a run that lost
its run span waits for it (``NEXUS_MAX_TRACE_AGE``), and a run that lost some steps looks complete. The SDK
reports the drop in two ways only:

* a WARNING ``"Queue full, dropping Span."`` on the logger ``opentelemetry.sdk._shared_internal``
  (SDK 1.40 and later; the SDK's own filter passes at most one such record per 20 seconds; 1.37-1.39 drop
  silently);
* with ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true`` (SDK 1.42 and later), the metric
  ``otel.sdk.processor.span.processed`` with ``error.type=queue_full``: exact counts, for apps that export metrics.

This module watches the first without changing the SDK: a :class:`logging.Filter` that observes the SDK
logger's records and lets every record through (a filter, not a handler, so an app without logging
configuration still gets Python's last-resort output of the SDK's own warnings). Each record it sees tells
the live exporters "the SDK dropped spans just now" (at least one; the SDK says no more).
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Optional, Protocol

SDK_LOGGER = "opentelemetry.sdk._shared_internal"
_QUEUE_FULL = "Queue full, dropping %s."


class QueueFullListener(Protocol):
    def on_sdk_queue_full(self) -> None: ...


class _QueueFullWatcher(logging.Filter):
    """Observes the SDK logger's records; never filters any out."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: weakref.WeakSet[QueueFullListener] = weakref.WeakSet()

    def add(self, listener: QueueFullListener) -> None:
        self._listeners.add(listener)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _QUEUE_FULL and record.args == ("Span",):
            for listener in list(self._listeners):
                try:
                    listener.on_sdk_queue_full()
                except Exception:  # runs inside the app's span.end(): never raise there
                    pass
        return True


_lock = threading.Lock()
_watcher: Optional[_QueueFullWatcher] = None


def watch(listener: QueueFullListener) -> None:
    """Call ``listener.on_sdk_queue_full()`` whenever the SDK reports a span queue overflow (weakly held)."""
    global _watcher
    with _lock:
        if _watcher is None:
            _watcher = _QueueFullWatcher()
            logging.getLogger(SDK_LOGGER).addFilter(_watcher)
        _watcher.add(listener)
