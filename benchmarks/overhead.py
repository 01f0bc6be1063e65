"""Per-call overhead: uninstrumented vs ours vs Microsoft's AIAgentsInstrumentor, one process, no sockets.

Every configuration drives the REAL azure-ai-agents client over the emulator's in-process transport, so the
numbers contain the whole SDK pipeline (policies, serialization, deserialization) but no network. The
configurations alternate in rounds (rotated order) and every per-call sample is kept; the added cost of a
configuration is the median over rounds of (its round median - the uninstrumented round median), which cancels
slow drifts of a shared machine.

* ``none``: nothing instrumented.
* ``ours``: ``AzureAgentInstrumentor`` with an SDK ``TracerProvider`` (``SimpleSpanProcessor`` + a no-op
  exporter, so span processing is paid synchronously, on the measured call) and an SDK ``MeterProvider``.
* ``microsoft``: ``azure.ai.agents.telemetry.AIAgentsInstrumentor`` with azure-core tracing switched on
  (``settings.tracing_implementation = "opentelemetry"``, from azure-core-tracing-opentelemetry), exporting
  through the same provider: what users who follow Microsoft's docs run.

Workloads: ``runs.get`` on a tracked in-progress run (the polling hot path), ``runs.get`` on a run created
before instrumentation (untracked), and a full run (create, poll, submit tool outputs, poll to completion).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from common import NoopExporter, paired_added_us, summary_us

CONFIGS = ("none", "ours", "microsoft", "ours_no_listing")
WORKLOADS = ("get_tracked", "get_untracked", "full_run")
#: ``ours_no_listing`` (``list_steps_on_completion=False``) only matters when a run ends: full runs only.
MEASURED = {"get_tracked": CONFIGS[:3], "get_untracked": CONFIGS[:3], "full_run": CONFIGS}
_ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
_perf = time.perf_counter_ns


@dataclass
class Result:
    #: samples[workload][config] -> one list of per-call nanoseconds per round
    samples: dict[str, dict[str, list[list[int]]]] = field(
        default_factory=lambda: {w: {c: [] for c in MEASURED[w]} for w in WORKLOADS}
    )
    spans_exported: dict[str, int] = field(default_factory=dict)
    requests_per_full_run: dict[str, float] = field(default_factory=dict)
    hook_cost: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workloads": {}, "hook_cost": self.hook_cost, "notes": self.notes}
        for workload, by_config in self.samples.items():
            rows: dict[str, Any] = {}
            base = by_config["none"]
            base_median = summary_us([x for r in base for x in r])["median_us"]
            for config, rounds in by_config.items():
                row: dict[str, Any] = summary_us([x for r in rounds for x in r])
                if config != "none":
                    row.update(paired_added_us(base, rounds))
                    row["added_pct_of_uninstrumented"] = (
                        round(100 * row["added_us"] / base_median, 2) if base_median else None
                    )
                rows[config] = row
            ours, ms = rows["ours"].get("added_us"), rows["microsoft"].get("added_us")  # type: ignore[union-attr]
            rows["ours_vs_microsoft_added"] = round(ours / ms, 3) if ours is not None and ms else None
            out["workloads"][workload] = rows
        out["spans_exported"] = self.spans_exported
        out["requests_per_full_run"] = self.requests_per_full_run
        return out


class Bench:
    """The clients, providers and instrumentors shared by every round."""

    def __init__(self) -> None:
        from azure_ai_agents_emulator import AgentsService, agents_client
        from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

        self.exporter = NoopExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        # Microsoft's instrumentation (through azure-core) uses the global provider: the same pipeline.
        trace.set_tracer_provider(self.tracer_provider)
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        self.service = AgentsService(default_scenario="cancel", polls_per_state=1)
        self.client = agents_client(self.service, in_process=True)
        self.ours = AzureAgentInstrumentor()
        self.microsoft: Any = None
        self.agent_id = self.client.create_agent(model="gpt-4o", name="bench-agent", tools=_function_tools()).id
        self.thread_id = self.client.threads.create().id
        self.untracked_run = self._new_hanging_run()

    # -- configurations ----------------------------------------------------------------------------------
    def enter(self, config: str) -> None:
        if config in ("ours", "ours_no_listing"):
            self.ours.instrument(
                tracer_provider=self.tracer_provider,
                meter_provider=self.meter_provider,
                list_steps_on_completion=config == "ours",
            )
        elif config == "microsoft":
            from azure.ai.agents.telemetry import AIAgentsInstrumentor
            from azure.core.settings import settings

            settings.tracing_implementation = "opentelemetry"
            self.microsoft = AIAgentsInstrumentor()
            self.microsoft.instrument(enable_content_recording=False)

    def leave(self, config: str) -> None:
        if config in ("ours", "ours_no_listing"):
            self.ours.uninstrument()
        elif config == "microsoft":
            from azure.core.settings import settings

            self.microsoft.uninstrument()
            settings.tracing_implementation = None

    # -- workloads -----------------------------------------------------------------------------------------
    def _new_hanging_run(self) -> str:
        """A run that stays in_progress until cancelled (scenario ``cancel``), polled once past queued."""
        run = self.client.runs.create(thread_id=self.thread_id, agent_id=self.agent_id, metadata={"scenario": "cancel"})
        self.client.runs.get(thread_id=self.thread_id, run_id=run.id)
        return run.id

    def time_gets(self, run_id: str, calls: int, warmup: int = 10) -> list[int]:
        get, thread_id, out = self.client.runs.get, self.thread_id, []
        for _ in range(warmup):
            get(thread_id=thread_id, run_id=run_id)
        for _ in range(calls):
            start = _perf()
            get(thread_id=thread_id, run_id=run_id)
            out.append(_perf() - start)
        return out

    def full_run(self) -> int:
        from azure.ai.agents.models import ToolOutput

        runs, thread_id = self.client.runs, self.thread_id
        start = _perf()
        run = runs.create(thread_id=thread_id, agent_id=self.agent_id, metadata={"scenario": "function_call"})
        while run.status in _ACTIVE:
            if run.status == "requires_action":
                outputs = [
                    ToolOutput(tool_call_id=c.id, output='{"temperature_c": 21}')
                    for c in run.required_action.submit_tool_outputs.tool_calls
                ]
                run = runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
            else:
                run = runs.get(thread_id=thread_id, run_id=run.id)
        elapsed = _perf() - start
        assert run.status == "completed", run.status
        return elapsed

    def forget_requests(self) -> None:
        self.service.requests.clear()
        self.service.operations.clear()


def _function_tools() -> list[Any]:
    from azure.ai.agents.models import FunctionTool

    def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        return "sunny"

    return FunctionTool({get_weather}).definitions


def hook_cost(calls: int = 100_000) -> dict[str, Any]:
    """The instrumentation's own cost on ``runs.get``, without SDK noise: our wrapper around a stub that returns
    a real ``ThreadRun`` model instantly. Uses internal modules (``patch``, ``surfaces``): informational."""
    import timeit

    import wrapt

    from azure_ai_agents_emulator import AgentsService, agents_client
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
    from opentelemetry.instrumentation.azure_ai_agents.patch import sync_wrapper
    from opentelemetry.instrumentation.azure_ai_agents.surfaces import SURFACES

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NoopExporter()))
    instrumentor = AzureAgentInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        service = AgentsService(default_scenario="cancel")
        client = agents_client(service, in_process=True)
        agent = client.create_agent(model="gpt-4o", name="hook-bench")
        thread = client.threads.create()
        run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
        snapshot = client.runs.get(thread_id=thread.id, run_id=run.id)
        tracker = instrumentor._tracker  # noqa: SLF001 - benchmark of internals
        [operation] = [
            s.operation
            for s in SURFACES
            if (s.module, s.cls, s.method) == ("azure.ai.agents.operations", "RunsOperations", "get")
        ]

        class Stub:
            def get(self, thread_id: str, run_id: str, **kwargs: Any) -> Any:
                return snapshot

        wrapped = wrapt.FunctionWrapper(Stub.get, sync_wrapper(tracker, operation))
        stub, plain, tid, rid = Stub(), Stub.get, thread.id, run.id

        def per_call(fn: Callable[[], Any]) -> float:
            return min(timeit.repeat(fn, number=calls // 5, repeat=5)) / (calls // 5) * 1e6

        base = per_call(lambda: plain(stub, thread_id=tid, run_id=rid))
        tracked = per_call(lambda: wrapped(stub, thread_id=tid, run_id=rid))
        untracked = per_call(lambda: wrapped(stub, thread_id=tid, run_id="run_not_tracked"))
        return {
            "tracked_get_us": round(tracked - base, 2),
            "untracked_get_us": round(untracked - base, 2),
            "method": "best of 5 x %d calls through the real wrapper around a stub SDK method" % (calls // 5),
        }
    finally:
        instrumentor.uninstrument()


def run(rounds: int = 24, gets_per_round: int = 150, full_runs_per_round: int = 8, log: Callable[[str], None] = print) -> dict[str, Any]:
    bench = Bench()
    result = Result()
    # Warm every configuration once (imports, caches, first-call costs), untimed.
    for config in CONFIGS:
        bench.enter(config)
        try:
            tracked = bench._new_hanging_run()
            bench.time_gets(tracked, 50)
            bench.full_run()
        finally:
            bench.leave(config)
    started = time.monotonic()
    for index in range(rounds):
        order = CONFIGS[index % len(CONFIGS) :] + CONFIGS[: index % len(CONFIGS)]
        for config in order:
            gc.collect()
            bench.enter(config)
            try:
                exported_before = bench.exporter.count
                if config in MEASURED["get_tracked"]:
                    tracked = bench._new_hanging_run()  # tracked when ours is on: created under instrumentation
                    result.samples["get_tracked"][config].append(bench.time_gets(tracked, gets_per_round))
                    result.samples["get_untracked"][config].append(
                        bench.time_gets(bench.untracked_run, gets_per_round)
                    )
                requests_before = len(bench.service.requests)
                result.samples["full_run"][config].append([bench.full_run() for _ in range(full_runs_per_round)])
                result.requests_per_full_run[config] = (
                    len(bench.service.requests) - requests_before
                ) / full_runs_per_round
                result.spans_exported[config] = (
                    result.spans_exported.get(config, 0) + bench.exporter.count - exported_before
                )
            finally:
                bench.leave(config)
                bench.forget_requests()
        if index == 0:
            log(f"  overhead: round 1/{rounds} took {time.monotonic() - started:.1f}s")
    try:
        result.hook_cost = hook_cost()
    except Exception as error:  # internals moved: the end-to-end numbers above still stand
        result.hook_cost = {"error": f"{type(error).__name__}: {error}"}
    result.notes.append(
        f"{rounds} rounds x {gets_per_round} gets per workload and config, {full_runs_per_round} full runs per round"
    )
    return result.report()
