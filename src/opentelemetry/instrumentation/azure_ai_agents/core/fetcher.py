"""Everything the instrumentation reads for itself (a finished run's steps; an agent, messages), off the app's
call path, bounded, with its own timeout and no retries, producing no spans.

API: ``fetcher.submit(kind, key, fetch, done, owner=...)``. ``fetch(timeout_s)`` is a plain function (run on a
pool of daemon worker threads: sync clients) or a coroutine function (run as a task on the app's running event
loop: async clients, whose transports belong to that loop). ``done(result, None)`` or ``done(None, reason)`` is
called exactly once, from the worker thread, the loop, or the thread that gave up waiting; ``reason`` says why
there is no result: ``queue_full``, ``timeout``, ``client_closed``, ``loop_closed``, ``cancelled``,
``shutdown``, ``error``. Each failure is counted (:attr:`Fetcher.failures`) and logged once per kind and reason.
A second submit of a pending ``(kind, key)`` joins it: one request, both callbacks.

**Scaling.** Reads wait on the network (a round trip of 50-200 ms each), so throughput comes from concurrency.
The worker pool grows with the backlog: a worker is started whenever a read is ready to run and no worker is idle,
up to ``max_workers`` (32); a worker idle for ``idle_s`` ends, so the pool shrinks back to nothing when the app is
quiet. At most ``per_owner`` (8) reads run at once through one client: a sync client keeps a pool of 10 connections
per host (requests' default), and more concurrent requests than that would each open and throw away a connection
(a new TLS handshake, and a urllib3 warning in the app's log). The backlog itself is bounded (``max_pending``:
1,024 reads); a read refused because it is full is a ``queue_full`` failure (counted, logged once, and said on the
run span). Async reads are tasks on the app's loop, which already multiplexes them.

While a fetch runs, OpenTelemetry instrumentation is suppressed (``suppress_instrumentation``: no spans from
our wrappers or other instrumentations such as requests/aiohttp); callers also pass azure-core's per-request
``tracing_options={"enabled": False}`` and call the SDK's undecorated method, so azure-core's own tracing and
other SDK-level wrappers record nothing either.

**Waiting.** ``flush(timeout)`` waits for pending fetches and says whether all of them finished; ``drain(timeout,
reason)`` waits, then fails what is left with ``reason`` (its runs then end without those reads); ``shutdown``
drains and refuses new fetches. ``flush(owners=...)`` / ``drain_async(owners)`` wait for the fetches of one client
(called when the app closes it: a closed client cannot finish them). ``provider_hook`` makes the SDK's
``TracerProvider.force_flush()`` and ``shutdown()`` use them.

**Forks.** A forked child starts with a fresh fetcher (no queue, no workers, no counts): the parent's pending
reads are the parent's, and the child never completes them (``forking``).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from opentelemetry.instrumentation.utils import suppress_instrumentation

from .forking import at_fork_in_child

_log = logging.getLogger(__name__)

Done = Callable[[Any, Optional[str]], None]

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_PENDING = 1024
DEFAULT_MAX_WORKERS = 32
#: reads running at once through one client (below requests' 10 pooled connections per host)
DEFAULT_PER_OWNER = 8
#: a worker with nothing to do for this long ends
DEFAULT_IDLE_S = 10.0


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
    completing: bool = False  #: its callbacks are being called (once)

    @property
    def slot(self) -> int:
        """Which per-client concurrency budget the job uses (reads without an owner share one)."""
        return id(self.owner) if self.owner is not None else 0


class Fetcher:
    """A bounded off-path executor for the instrumentation's own requests (see the module docstring)."""

    def __init__(
        self,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_workers: int = DEFAULT_MAX_WORKERS,
        per_owner: int = DEFAULT_PER_OWNER,
        idle_s: float = DEFAULT_IDLE_S,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self.max_workers = max(1, max_workers)
        self.per_owner = max(1, per_owner)
        self.idle_s = idle_s
        self._closed = False
        #: called first by :meth:`flush` (the tracker runs the work finalizers queued)
        self.on_flush: Optional[Callable[[], None]] = None
        self._reset()
        at_fork_in_child(self._reset)

    def _reset(self) -> None:
        """A fresh state: at construction, and in a forked child (whose threads are gone, whose locks may be held
        by them, and whose pending reads are its parent's: dropped, their callbacks never called)."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        #: sync jobs waiting for a worker, one queue per owner (served round robin)
        self._queues: "collections.OrderedDict[int, collections.deque[_Job]]" = collections.OrderedDict()
        self._running: "collections.Counter[int]" = collections.Counter()  # sync jobs running, per owner slot
        self._pending: dict[tuple[str, str], _Job] = {}  # queued or running, by (kind, key)
        self._workers = 0  # live worker threads
        self._idle = 0  # workers waiting for a job
        self.peak_workers = 0
        self.completed = 0  #: fetches that returned a result
        self.failures: "collections.Counter[tuple[str, str]]" = collections.Counter()
        self._logged: set[tuple[str, str]] = set()

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
                    self._queues.setdefault(job.slot, collections.deque()).append(job)
                    self._grow()
                    self._changed.notify()
        if reason is not None:
            self._complete_one(kind, done, None, reason)
            return
        if is_async and new is not None and loop is not None:
            try:
                new.task = loop.create_task(self._run_async(new))
            except Exception:  # noqa: BLE001 - a closing loop refuses new tasks
                self._finish(new, None, "loop_closed")

    def _grow(self) -> None:
        """Starts a worker when more jobs are ready to run than workers are idle (caller holds the lock)."""
        if self._workers >= self.max_workers or self._idle >= self._ready():
            return
        thread = threading.Thread(target=self._work, name="azure-ai-agents-fetcher", daemon=True)
        self._workers += 1
        try:
            thread.start()
        except RuntimeError:  # no new threads (interpreter shutting down): the jobs fail at shutdown
            self._workers -= 1
            return
        self.peak_workers = max(self.peak_workers, self._workers)

    def _ready(self) -> int:
        """Queued jobs that could start now (their owner is below ``per_owner``); caller holds the lock."""
        return sum(
            min(len(queue), self.per_owner - self._running[slot])
            for slot, queue in self._queues.items()
            if self._running[slot] < self.per_owner
        )

    # ---- running ---------------------------------------------------------------------------------------
    def _work(self) -> None:
        job: Optional[_Job] = None
        while True:
            with self._lock:
                if job is not None:
                    self._running[job.slot] -= 1
                    if self._running[job.slot] <= 0:
                        del self._running[job.slot]
                job = self._take()
                if job is None:
                    self._workers -= 1
                    return
                self._running[job.slot] += 1
            result, reason = None, None
            try:
                with suppress_instrumentation():
                    result = job.fetch(self.timeout_s)  # bounded by its per-request timeouts
            except Exception as exc:  # noqa: BLE001 - a failed fetch only means no data
                reason = _reason_of(exc)
                _log.debug("could not %s", _describe(job), exc_info=True)
            self._finish(job, result, reason)

    def _take(self) -> Optional[_Job]:
        """The next job whose owner has a free slot (owners served in turn), waiting up to ``idle_s`` for one;
        None: the worker ends (idle, or shut down). Caller holds the lock."""
        deadline: Optional[float] = None
        while True:
            for slot in list(self._queues):
                if self._running[slot] >= self.per_owner:
                    continue
                queue = self._queues[slot]
                job = queue.popleft()
                if queue:
                    self._queues.move_to_end(slot)
                else:
                    del self._queues[slot]
                if not job.finished.is_set():
                    return job
            if self._closed:
                return None
            now = time.monotonic()
            deadline = now + self.idle_s if deadline is None else deadline
            if now >= deadline:
                return None
            self._idle += 1
            try:
                self._changed.wait(deadline - now)
            finally:
                self._idle -= 1

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
        """Completes ``job`` once: its callbacks, then wakes flush()/drain() waiters. A job this fetcher no
        longer holds (already failed by a drain, or its parent's after a fork) is ignored."""
        with self._lock:
            if job.finished.is_set() or job.completing or self._pending.get((job.kind, job.key)) is not job:
                return
            job.completing = True
            if reason is None:
                self.completed += 1
        called = 0
        while True:
            # A submit joining the job while its callbacks run appends one more: it is called too, before the
            # job leaves the pending map (after that, a submit of the same key starts a new job).
            with self._lock:
                callbacks = job.callbacks[called:]
                if not callbacks:
                    if self._pending.get((job.kind, job.key)) is job:
                        del self._pending[(job.kind, job.key)]
                    job.finished.set()
                    self._changed.notify_all()
                    return
            called += len(callbacks)
            for done in callbacks:
                self._complete_one(job.kind, done, result, reason)

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

    @property
    def workers(self) -> int:
        """Live worker threads (grows with the backlog, shrinks when idle)."""
        return self._workers

    def stats(self) -> dict[str, Any]:
        """A snapshot for diagnostics: pending reads, workers (now and at most), results, failures by reason."""
        with self._lock:
            return {
                "pending": len(self._pending),
                "workers": self._workers,
                "peak_workers": self.peak_workers,
                "completed": self.completed,
                "failures": {f"{kind}:{reason}": n for (kind, reason), n in self.failures.items()},
            }

    def flush(self, timeout_s: Optional[float] = None, owners: Optional[list[Any]] = None) -> bool:
        """Waits until no fetch (through one of ``owners``, if given) is pending. True when all finished; False
        on timeout, and when fetches are pending on the event loop this thread is running: they cannot finish
        while it waits, so they are not waited for, and they are not done. Fetches running on an event loop
        that is closed are failed (``loop_closed``)."""
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
            live = [j for j in jobs if j not in stale]
            waited = [j for j in live if j.loop is None or j.loop is not running_loop]
            if not waited:
                return not live  # False when reads on this thread's own loop remain
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.05))

    def drain(self, timeout_s: Optional[float] = None, reason: str = "shutdown") -> bool:
        """Waits up to ``timeout_s`` (default: the fetch timeout) for pending fetches, then fails the rest with
        ``reason``: their runs end now, without those reads. True when nothing had to be failed."""
        finished = self.flush(self.timeout_s if timeout_s is None else timeout_s)
        with self._lock:
            jobs = list(self._pending.values())
            self._queues.clear()  # running ones finish unheard: their job is failed below
        running_loop = _running_loop()
        for job in jobs:
            if job.task is not None and job.loop is not None and not job.loop.is_closed():
                try:
                    if job.loop is running_loop:
                        job.task.cancel()
                    else:
                        job.loop.call_soon_threadsafe(job.task.cancel)
                except RuntimeError:
                    pass
            self._finish(job, None, reason)
        return finished and not jobs

    async def drain_async(self, owners: list[Any], timeout_s: Optional[float] = None) -> None:
        """Awaits the fetches through ``owners`` running on this loop (an async client about to close)."""
        loop = _running_loop()
        with self._lock:
            tasks = [j.task for j in self._pending.values() if _owned(j, owners) and j.loop is loop and j.task]
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout_s if timeout_s is None else timeout_s)  # type: ignore[arg-type]

    def shutdown(self, timeout_s: Optional[float] = None) -> None:
        """Waits up to ``timeout_s`` (default: the fetch timeout) for pending fetches, then fails the rest
        (``shutdown``); no new ones; idle workers end."""
        self.flush(self.timeout_s if timeout_s is None else timeout_s)
        with self._lock:
            self._closed = True
            self._changed.notify_all()
        self.drain(0)


def _describe(job: _Job) -> str:
    return f"list the steps of run {job.key}" if job.kind == "steps" else f"fetch {job.kind} {job.key}"


def _owned(job: _Job, owners: list[Any]) -> bool:
    return job.owner is not None and any(job.owner is owner for owner in owners)


def _reason_of(exc: BaseException) -> str:
    """``timeout`` for any timeout in the exception's chain (azure-core's ``Service*TimeoutError``, requests'
    and aiohttp's timeouts, ``TimeoutError``), as for an async read cut by ``asyncio.wait_for``;
    ``client_closed`` for the errors azure-core's transports raise once the app closed its client."""
    seen: list[BaseException] = []
    current: Optional[BaseException] = exc
    while current is not None and len(seen) < 8 and all(current is not e for e in seen):
        seen.append(current)
        if isinstance(current, TimeoutError) or any("Timeout" in c.__name__ for c in type(current).__mro__):
            return "timeout"
        inner = getattr(current, "inner_exception", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    text = str(exc).lower()
    if "closed" in text and ("transport" in text or "session" in text or "client" in text):
        return "client_closed"
    return "error"


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
