"""Everything the instrumentation reads for itself (a finished run's steps; later an agent, messages), off the
app's call path, bounded, with its own timeout and no retries, producing no spans.

API: ``fetcher.submit(kind, key, fetch, done, owner=...)``. ``fetch(timeout_s)`` is a plain function (run on a
small pool of daemon worker threads: sync clients) or a coroutine function (run as a task on the app's running
event loop: async clients, whose transports belong to that loop). ``done(result, None)`` or
``done(None, reason)`` is called exactly once, from the worker thread or the loop; ``reason`` says why there
is no result: ``queue_full``, ``timeout``, ``client_closed``, ``loop_closed``, ``cancelled``, ``shutdown``,
``error``. Each failure is counted (:attr:`Fetcher.failures`) and logged once per kind and reason. A second
submit of a pending ``(kind, key)`` joins it: one request, both callbacks.

While a fetch runs, OpenTelemetry instrumentation is suppressed (``suppress_instrumentation``: no spans from
our wrappers or other instrumentations such as requests/aiohttp); callers also pass azure-core's per-request
``tracing_options={"enabled": False}`` and call the SDK's undecorated method, so azure-core's own tracing and
other SDK-level wrappers record nothing either.

``flush(timeout)`` waits for pending fetches; :func:`hook_provider_flush` makes the SDK's
``TracerProvider.force_flush()`` do so (see there). ``flush(owners=...)`` / ``drain_async(owners)`` wait for the
fetches of one client (called when the app closes it: a closed client cannot finish them).
``shutdown(timeout)`` waits, then fails the rest.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from opentelemetry.instrumentation.utils import suppress_instrumentation

_log = logging.getLogger(__name__)

Done = Callable[[Any, Optional[str]], None]

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_PENDING = 1024
DEFAULT_WORKERS = 2


@dataclass(eq=False)
class _Job:
    kind: str
    key: str
    fetch: Callable[[float], Any]
    callbacks: list[Done]
    owner: Any = None
    loop: Optional[asyncio.AbstractEventLoop] = None
    task: Optional["asyncio.Task[Any]"] = None
    finished: threading.Event = field(default_factory=threading.Event)


class Fetcher:
    """A bounded off-path executor for the instrumentation's own requests (see the module docstring)."""

    def __init__(
        self,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self._workers_wanted = max(1, workers)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: "collections.deque[_Job]" = collections.deque()
        self._pending: dict[tuple[str, str], _Job] = {}  # queued or running, by (kind, key)
        self._threads: list[threading.Thread] = []
        self._idle_workers = 0
        self._closed = False
        self.failures: "collections.Counter[tuple[str, str]]" = collections.Counter()
        self._logged: set[tuple[str, str]] = set()
        #: called first by :meth:`flush` (the tracker runs the work finalizers queued)
        self.on_flush: Optional[Callable[[], None]] = None

    # ---- submitting ------------------------------------------------------------------------------------
    def submit(self, kind: str, key: str, fetch: Callable[[float], Any], done: Done, owner: Any = None) -> None:
        """Runs ``fetch(timeout_s)`` off the app's path; ``done`` gets its result or the reason it has none.
        Never raises and never blocks on I/O."""
        is_async = inspect.iscoroutinefunction(fetch)
        loop: Optional[asyncio.AbstractEventLoop] = None
        if is_async:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._complete_one(kind, done, None, "loop_closed")
                return
        with self._lock:
            if self._closed:
                reason: Optional[str] = "shutdown"
            else:
                job = self._pending.get((kind, key))
                if job is not None:
                    job.callbacks.append(done)
                    return
                reason = "queue_full" if len(self._pending) >= self.max_pending else None
            new: Optional[_Job] = None
            if reason is None:
                job = new = _Job(kind, key, fetch, [done], owner, loop)
                self._pending[(kind, key)] = job
                if not is_async:
                    self._queue.append(job)
                    self._ensure_worker()
                    self._changed.notify()
        if reason is not None:
            self._complete_one(kind, done, None, reason)
            return
        if is_async and new is not None and loop is not None:
            try:
                new.task = loop.create_task(self._run_async(new))
            except Exception:  # noqa: BLE001 - a closing loop refuses new tasks
                self._finish(new, None, "loop_closed")

    def _ensure_worker(self) -> None:
        """Starts a worker when none is idle (caller holds the lock); at most ``workers`` threads."""
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._idle_workers == 0 and len(self._threads) < self._workers_wanted:
            thread = threading.Thread(target=self._work, name="azure-ai-agents-fetcher", daemon=True)
            self._threads.append(thread)
            thread.start()

    # ---- running ---------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle_workers += 1
                try:
                    while not self._queue:
                        if self._closed or not self._changed.wait(timeout=30.0):
                            if not self._queue:  # idle for long (or shut down): the thread ends
                                self._threads = [t for t in self._threads if t is not threading.current_thread()]
                                return
                    job = self._queue.popleft()
                finally:
                    self._idle_workers -= 1
            result, reason = None, None
            try:
                with suppress_instrumentation():
                    result = job.fetch(self.timeout_s)  # bounded by its per-request timeouts
            except Exception as exc:  # noqa: BLE001 - a failed fetch only means no data
                reason = _reason_of(exc)
                _log.debug("could not %s", _describe(job), exc_info=True)
            self._finish(job, result, reason)

    async def _run_async(self, job: _Job) -> None:
        result, reason = None, None
        try:
            with suppress_instrumentation():
                result = await asyncio.wait_for(job.fetch(self.timeout_s), self.timeout_s)
        except asyncio.TimeoutError:
            reason = "timeout"
        except asyncio.CancelledError:
            self._finish(job, None, "cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - a failed fetch only means no data
            reason = _reason_of(exc)
            _log.debug("could not %s", _describe(job), exc_info=True)
        self._finish(job, result, reason)

    def _finish(self, job: _Job, result: Any, reason: Optional[str]) -> None:
        """Completes ``job`` once: its callbacks, then wakes flush()/drain() waiters."""
        with self._lock:
            if job.finished.is_set() or self._pending.get((job.kind, job.key)) is not job:
                return
            callbacks = list(job.callbacks)
        for done in callbacks:
            self._complete_one(job.kind, done, result, reason)
        with self._lock:
            if self._pending.get((job.kind, job.key)) is job:
                del self._pending[(job.kind, job.key)]
            job.finished.set()
            self._changed.notify_all()

    def _complete_one(self, kind: str, done: Done, result: Any, reason: Optional[str]) -> None:
        if reason is not None:
            self.failures[(kind, reason)] += 1
            if (kind, reason) not in self._logged:
                self._logged.add((kind, reason))
                _log.warning(
                    "azure-ai-agents instrumentation: a %s fetch could not finish (%s); the run span ends without "
                    "that data and says why. Logged once per reason.",
                    kind,
                    reason,
                )
        try:
            done(result, reason)
        except Exception:  # noqa: BLE001 - instrumentation callbacks never raise out of here
            _log.debug("azure-ai-agents: %s fetch callback failed", kind, exc_info=True)

    # ---- waiting -----------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, timeout_s: Optional[float] = None, owners: Optional[list[Any]] = None) -> bool:
        """Waits until no fetch (through one of ``owners``, if given) is pending; False on timeout. Fetches
        running on an event loop that is closed are failed (``loop_closed``); those on the loop this thread is
        running cannot finish while it waits, so they are not waited for."""
        if self.on_flush is not None:
            self.on_flush()
        deadline = time.monotonic() + (self.timeout_s * 2 if timeout_s is None else timeout_s)
        running_loop = _running_loop()
        while True:
            with self._lock:
                jobs = [j for j in self._pending.values() if owners is None or _owned(j, owners)]
            stale = [j for j in jobs if j.loop is not None and j.loop.is_closed()]
            for job in stale:
                self._finish(job, None, "loop_closed")
            waited = [j for j in jobs if j not in stale and (j.loop is None or j.loop is not running_loop)]
            if not waited:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

    async def drain_async(self, owners: list[Any], timeout_s: Optional[float] = None) -> None:
        """Awaits the fetches through ``owners`` running on this loop (an async client about to close)."""
        loop = _running_loop()
        with self._lock:
            tasks = [j.task for j in self._pending.values() if _owned(j, owners) and j.loop is loop and j.task]
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout_s if timeout_s is None else timeout_s)  # type: ignore[arg-type]

    def shutdown(self, timeout_s: Optional[float] = None) -> None:
        """Waits up to ``timeout_s`` (default: the fetch timeout) for pending fetches, then fails the rest
        (``shutdown``); no new ones."""
        self.flush(self.timeout_s if timeout_s is None else timeout_s)
        with self._lock:
            self._closed = True
            jobs = list(self._pending.values())
            self._queue.clear()
            self._changed.notify_all()
        for job in jobs:
            if job.task is not None and job.loop is not None and not job.loop.is_closed():
                try:
                    job.loop.call_soon_threadsafe(job.task.cancel)
                except RuntimeError:
                    pass
            self._finish(job, None, "shutdown")


def _describe(job: _Job) -> str:
    return f"list the steps of run {job.key}" if job.kind == "steps" else f"fetch {job.kind} {job.key}"


def _owned(job: _Job, owners: list[Any]) -> bool:
    return job.owner is not None and any(job.owner is owner for owner in owners)


def _reason_of(exc: BaseException) -> str:
    """``client_closed`` for the errors azure-core's transports raise once the app closed its client."""
    text = str(exc).lower()
    if "closed" in text and ("transport" in text or "session" in text or "client" in text):
        return "client_closed"
    return "error"


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_HOOKS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def hook_provider_flush(provider: Any, fetcher: Optional[Fetcher]) -> None:
    """Makes ``provider.force_flush()`` wait for ``fetcher``'s pending fetches (None: stop doing so). Only an
    SDK ``TracerProvider`` (one with ``add_span_processor``) can be hooked; others are left alone."""
    if not callable(getattr(provider, "add_span_processor", None)):
        return
    try:
        hook = _HOOKS.get(provider)
        if hook is None:
            if fetcher is None:
                return
            hook = _HOOKS[provider] = _flush_processor_class()(provider)
            provider.add_span_processor(hook)
        hook.fetcher = fetcher
    except Exception:  # noqa: BLE001 - no SDK, or a provider that refuses processors
        _log.debug("azure-ai-agents: cannot hook force_flush of %r", provider, exc_info=True)


def _flush_processor_class() -> type:
    from opentelemetry.sdk.trace import SpanProcessor  # the SDK is optional for this package

    class FlushOnProviderFlush(SpanProcessor):  # type: ignore[misc]
        """Makes ``TracerProvider.force_flush()`` wait for pending fetches, with public SDK APIs only.

        Why a span processor: ``force_flush`` is the SDK's one public hook that reaches every processor, and
        ``TracerProvider.add_span_processor`` the one public way in; there is no public way to put a processor first
        or to remove it. So this processor is added once per provider (re-pointed at the current fetcher when the
        instrumentation is installed again, inert after uninstrument), and its ``force_flush`` waits for the
        pending fetches; when some were pending (their runs then ended: new spans reached the other processors,
        possibly after those were flushed), it calls ``provider.force_flush()`` once more with the time left, so a
        ``BatchSpanProcessor`` added before it exports them too. A thread-local flag stops the recursion.
        Its ``on_start`` / ``on_end`` do nothing.
        """

        def __init__(self, provider: Any) -> None:
            self.fetcher: Optional[Fetcher] = None
            self._provider = weakref.ref(provider)  # the provider holds this processor: no cycle
            self._inside = threading.local()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            fetcher = self.fetcher
            if fetcher is None or getattr(self._inside, "flag", False):
                return True
            deadline = time.monotonic() + timeout_millis / 1000
            had_pending = fetcher.pending > 0
            done = fetcher.flush(max(0.0, deadline - time.monotonic()))
            if had_pending:
                self._inside.flag = True
                try:
                    remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
                    provider = self._provider()
                    if provider is not None:
                        done = bool(provider.force_flush(remaining_ms)) and done
                finally:
                    self._inside.flag = False
            return done

        def shutdown(self) -> None:
            self.fetcher = None

    return FlushOnProviderFlush
