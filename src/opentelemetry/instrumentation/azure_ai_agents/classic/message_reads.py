"""Thread messages, for content capture only: the messages the app posts before a run (its input) and the ones a
run creates (its answer).

* :class:`PostedMessages` keeps what the app posted with ``messages.create`` / ``create_message`` until the next
  run on that thread consumes it (bounded: threads and messages per thread; the oldest thread goes first).
* :class:`MessageLister` lists a finished run's messages through the SDK (``messages.list(thread_id,
  run_id=...)`` / ``list_messages``): one request, made only when content capture is on and the run's answer was
  not seen otherwise (stream events, the app's own listings), never retried.
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from typing import Any, Optional

from ..core import attributes as attrs
from ..core import messages

MAX_THREADS = 1024
MAX_POSTED_PER_THREAD = 32
PAGE_SIZE = 100
#: Our own listing: no retries, bounded waits (seconds).
_Items = list  # ``list`` inside MessageLister's body names its method
NO_RETRY = {"retry_total": 0}


class PostedMessages:
    """Messages posted to threads since each thread's last run, in the conventions' format."""

    def __init__(self, max_threads: int = MAX_THREADS, per_thread: int = MAX_POSTED_PER_THREAD) -> None:
        self._lock = threading.Lock()
        self._threads: "OrderedDict[str, list[dict[str, Any]]]" = OrderedDict()
        self._max_threads, self._per_thread = max_threads, per_thread
        self.dropped = 0  #: messages not kept because of the bounds

    def add(self, thread_id: Optional[str], message: Any) -> None:
        converted = messages.message(attrs.text_field(message, "role"), attrs.field(message, "content"))
        if thread_id is None or converted is None:
            return
        with self._lock:
            posted = self._threads.setdefault(thread_id, [])
            self._threads.move_to_end(thread_id)
            if len(posted) >= self._per_thread:
                posted.pop(0)
                self.dropped += 1
            posted.append(converted)
            while len(self._threads) > self._max_threads:
                self.dropped += len(self._threads.popitem(last=False)[1])

    def take(self, thread_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return self._threads.pop(thread_id, [])

    def clear(self) -> None:
        with self._lock:
            self._threads.clear()


class MessageLister:
    """Lists one run's messages through the SDK: ``messages.list`` on the client (or on a sibling operations
    group built from a ``RunsOperations`` instance's pipeline), or the legacy ``list_messages``."""

    def __init__(self, module: Optional[str] = None, legacy_method: Optional[str] = None) -> None:
        self._module, self._legacy = module, legacy_method

    def list(self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float = 5.0) -> _Items:
        if not thread_id or not run_id:
            return []
        if self._legacy is not None:
            options = {**NO_RETRY, **_waits(timeout_s)}
            page = getattr(instance, self._legacy)(thread_id, run_id=run_id, limit=PAGE_SIZE, **options)
            data = attrs.field(page, "data")
            return list(data) if isinstance(data, list) else []
        options = {**NO_RETRY, **_waits(timeout_s)}
        items = self._operations(instance).list(thread_id=thread_id, run_id=run_id, limit=PAGE_SIZE, **options)
        return list(next(iter(items.by_page()), []))

    async def list_async(
        self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float = 5.0
    ) -> _Items:
        if not thread_id or not run_id:
            return []
        if self._legacy is not None:
            options = {**NO_RETRY, **_waits(timeout_s)}
            page = await getattr(instance, self._legacy)(thread_id, run_id=run_id, limit=PAGE_SIZE, **options)
            data = attrs.field(page, "data")
            return list(data) if isinstance(data, list) else []
        options = {**NO_RETRY, **_waits(timeout_s)}
        items = self._operations(instance).list(thread_id=thread_id, run_id=run_id, limit=PAGE_SIZE, **options)
        async for page in items.by_page():
            return [item async for item in page]
        return []

    def _operations(self, instance: Any) -> Any:
        found = getattr(instance, "messages", None)
        if found is not None:
            return found
        cls = importlib.import_module(self._module or "").MessagesOperations
        return cls(instance._client, instance._config, instance._serialize, instance._deserialize)


def _waits(timeout_s: float) -> dict[str, float]:
    """azure-core per-request connect and read timeouts."""
    return {"connection_timeout": timeout_s, "read_timeout": timeout_s}
