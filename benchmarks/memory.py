"""Memory held by the instrumentation, through the real SDK on the in-process transport.

Runs are *abandoned mid-way*: created, polled into ``requires_action`` (a pending function call is noted), then
never polled again, the worst case for a tracker that must keep open runs. The emulator forgets its own runs
every ``reset_every`` runs so that what stays allocated is the client side's: the SDK's and ours.

* ``per_open_run``: bytes held per abandoned run while it is open (tracemalloc), projected to N runs.
* ``abandoned_rss``: resident-memory peak above the baseline during N (10,000) abandoned runs, beside the
  same workload uninstrumented.
* ``after_uninstrument_bytes``: held memory (tracemalloc) once ``uninstrument()`` ended every open run.
* ``bounded``: the same runs with ``max_open_runs`` = runs/10: eviction keeps the registry (and memory) bounded.
* ``per_finished_run``: held memory after runs that complete (the tracker keeps the last ``finished_runs_kept``
  finished runs so that late step listings still find their parents).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any, Callable, Optional

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from common import NoopExporter

MIB = 1024 * 1024
_ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")


class Workload:
    def __init__(self, reset_every: int = 500) -> None:
        from azure_ai_agents_emulator import AgentsService, agents_client

        self.service = AgentsService(default_scenario="function_call", polls_per_state=1)
        self.client = agents_client(self.service, in_process=True)
        self.reset_every = reset_every
        self._since_reset = 0
        self._setup()

    def _setup(self) -> None:
        self.service.reset()
        self.agent_id = self.client.create_agent(model="gpt-4o", name="memory-bench").id
        self.thread_id = self.client.threads.create().id
        self._since_reset = 0

    def forget(self) -> None:
        """The emulator drops its runs (and request log): only client-side memory stays."""
        self._setup()

    def abandoned_run(self) -> str:
        if self._since_reset >= self.reset_every:
            self._setup()
        self._since_reset += 1
        runs = self.client.runs
        run = runs.create(thread_id=self.thread_id, agent_id=self.agent_id)
        run = runs.get(thread_id=self.thread_id, run_id=run.id)  # in_progress
        run = runs.get(thread_id=self.thread_id, run_id=run.id)  # requires_action: a pending function call
        assert run.status == "requires_action", run.status
        return run.id

    def completed_run(self) -> None:
        from azure.ai.agents.models import ToolOutput

        if self._since_reset >= self.reset_every:
            self._setup()
        self._since_reset += 1
        runs, thread_id = self.client.runs, self.thread_id
        run = runs.create(thread_id=thread_id, agent_id=self.agent_id)
        while run.status in _ACTIVE:
            if run.status == "requires_action":
                outputs = [ToolOutput(tool_call_id=c.id, output="21C") for c in run.required_action.submit_tool_outputs.tool_calls]
                run = runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
            else:
                run = runs.get(thread_id=thread_id, run_id=run.id)


def _held() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _phase(
    workload: Workload, action: Callable[[], Any], n: int, before: Optional[Callable[[], None]] = None
) -> dict[str, Any]:
    """Run ``action`` n times under tracemalloc; held and peak memory above the baseline taken just before."""
    if before is not None:
        before()
    workload.forget()
    baseline = _held()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    for _ in range(n):
        action()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    workload.forget()
    held = _held()
    return {
        "runs": n,
        "baseline": baseline,
        "held_bytes": held - baseline,
        "peak_bytes": peak - baseline,
        "seconds": round(elapsed, 1),
    }


def _mib(value: float) -> float:
    return round(value / MIB, 2)


def _rss() -> int:
    """Resident set size of this process (bytes)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            import os

            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_phase(workload: Workload, n: int, sample_every: int = 250) -> dict[str, Any]:
    """n abandoned runs without tracemalloc (fast): RSS peak and held above the baseline, sampled."""
    workload.forget()
    gc.collect()
    baseline = peak = _rss()
    started = time.perf_counter()
    for index in range(n):
        workload.abandoned_run()
        if index % sample_every == 0:
            peak = max(peak, _rss())
    elapsed = time.perf_counter() - started
    workload.forget()
    gc.collect()
    held = _rss()
    return {
        "baseline": baseline,
        "peak_bytes": max(peak, held) - baseline,
        "held_bytes": held - baseline,
        "seconds": round(elapsed, 1),
    }


def run(
    n: int = 10_000,
    traced: int = 800,
    completed: int = 200,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``n`` (10,000) abandoned runs measured by resident memory (tracemalloc would slow every allocation ~6x;
    RSS is an upper bound of what Python needs), then exact per-run figures for ``traced`` runs under tracemalloc."""
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NoopExporter()))
    instrumentor = AzureAgentInstrumentor()
    workload = Workload()
    out: dict[str, Any] = {}

    # Warm up both paths (imports, SDK caches, our first-call allocations) before any baseline.
    instrumentor.instrument(tracer_provider=provider)
    for _ in range(50):
        workload.abandoned_run()
        workload.completed_run()
    instrumentor.uninstrument()
    for _ in range(50):
        workload.abandoned_run()

    # 1. n abandoned runs with the default bounds (max_open_runs=5,000: half are evicted). On a fresh heap first.
    plain_runs = max(1, n // 10)
    plain = _rss_phase(workload, plain_runs)
    instrumentor.instrument(tracer_provider=provider)
    ours = _rss_phase(workload, n)
    tracker = instrumentor._tracker  # noqa: SLF001 - benchmark of internals
    open_runs = tracker.open_runs if tracker is not None else None
    instrumentor.uninstrument()
    out["abandoned_rss"] = {
        "runs": n,
        "open_runs_at_end": open_runs,
        "peak_mib": _mib(ours["peak_bytes"]),
        "uninstrumented_runs": plain_runs,
        "uninstrumented_peak_mib": _mib(plain["peak_bytes"]),
        "seconds": ours["seconds"],
    }
    log(f"  memory: {n} abandoned runs (resident memory) in {ours['seconds']}s")

    # 2. Exact figures under tracemalloc.
    tracemalloc.start()
    try:
        base = _phase(workload, workload.abandoned_run, traced // 2)
        instrumentor.instrument(tracer_provider=provider)
        traced_open = _phase(workload, workload.abandoned_run, traced)
        tracker = instrumentor._tracker  # noqa: SLF001
        still_open = tracker.open_runs if tracker is not None else None
        instrumentor.uninstrument()
        after = _held() - traced_open["baseline"]
        per_run = traced_open["held_bytes"] / traced
        out["per_open_run"] = {
            "runs": traced,
            "open_runs_at_end": still_open,
            "bytes": round(per_run),
            "uninstrumented_bytes": round(base["held_bytes"] / max(1, traced // 2)),
            "projected_mib_at_n": _mib(per_run * n),
            "after_uninstrument_bytes": after,
        }
        log(f"  memory: {traced} abandoned runs under tracemalloc in {traced_open['seconds']}s")

        cap = max(1, traced // 10)
        instrumentor.instrument(tracer_provider=provider, max_open_runs=cap)
        bounded = _phase(workload, workload.abandoned_run, traced)
        tracker = instrumentor._tracker  # noqa: SLF001
        out["bounded"] = {
            "runs": traced,
            "max_open_runs": cap,
            "open_runs_at_end": tracker.open_runs if tracker is not None else None,
            "held_bytes": bounded["held_bytes"],
            "held_bytes_unbounded": traced_open["held_bytes"],
        }
        instrumentor.uninstrument()
        log(f"  memory: {traced} runs with max_open_runs={cap} under tracemalloc in {bounded['seconds']}s")

        instrumentor.instrument(tracer_provider=provider)
        done = _phase(workload, workload.completed_run, completed)
        tracker = instrumentor._tracker  # noqa: SLF001
        kept = tracker.config.finished_runs_kept if tracker is not None else completed
        instrumentor.uninstrument()
        per_kept = done["held_bytes"] / min(completed, kept)
        out["per_finished_run"] = {
            "runs": completed,
            "bytes": round(per_kept),
            "finished_runs_kept": kept,
            "projected_plateau_mib": _mib(per_kept * kept),
        }
        log(f"  memory: {completed} completed runs under tracemalloc in {done['seconds']}s")
    finally:
        tracemalloc.stop()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    return out
