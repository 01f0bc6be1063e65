"""The full run at a realistic round trip: every request answered after 100 ms (the emulator's ``latency``).

What the app waits for, create to ``completed`` (a function-call run: create, polls, submit, polls), and how long
its terminal ``runs.get`` takes, with nothing instrumented, with ours, and with Microsoft's
``AIAgentsInstrumentor`` (azure-core tracing on), sync and async; plus, for ours, when the run's trace is complete
(its step spans made, off the app's path) after the terminal poll returned. The configurations alternate run by
run (rotated order) in one process; the real ``azure-ai-agents`` client talks to the emulator through its
in-process transport, which sleeps ``latency`` before each answer (concurrent requests sleep concurrently).

    python benchmarks/latency.py [--runs 8] [--latency 0.1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any, Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from common import NoopExporter, machine

CONFIGS = ("none", "ours", "microsoft")
_ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")


class Setup:
    def __init__(self, latency: float) -> None:
        from azure_ai_agents_emulator import AgentsService, agents_client, async_agents_client

        self.exporter = NoopExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        trace.set_tracer_provider(self.provider)  # Microsoft's spans go to the global provider: the same pipeline
        self.service = AgentsService(default_scenario="function_call")
        self.client = agents_client(self.service, in_process=True)
        self.async_client_factory = lambda: async_agents_client(self.service, in_process=True)
        self.agent_id = self.client.create_agent(model="gpt-4o", name="bench-agent", tools=_function_tools()).id
        self.thread_id = self.client.threads.create().id
        self.service.latency = latency
        self.microsoft: Any = None

    def enter(self, config: str) -> None:
        if config == "ours":
            from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

            AzureAgentInstrumentor().instrument(tracer_provider=self.provider)
        elif config == "microsoft":
            from azure.ai.agents.telemetry import AIAgentsInstrumentor
            from azure.core.settings import settings

            settings.tracing_implementation = "opentelemetry"
            self.microsoft = AIAgentsInstrumentor()
            self.microsoft.instrument(enable_content_recording=False)

    def leave(self, config: str) -> None:
        if config == "ours":
            from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

            AzureAgentInstrumentor().uninstrument()
        elif config == "microsoft":
            from azure.core.settings import settings

            self.microsoft.uninstrument()
            settings.tracing_implementation = None


def _outputs(run: Any) -> list[Any]:
    from azure.ai.agents.models import ToolOutput

    return [ToolOutput(tool_call_id=c.id, output="21") for c in run.required_action.submit_tool_outputs.tool_calls]


def full_run(setup: Setup) -> dict[str, float]:
    runs, thread_id = setup.client.runs, setup.thread_id
    start = time.perf_counter()
    run = runs.create(thread_id=thread_id, agent_id=setup.agent_id)
    last_poll = 0.0
    while run.status in _ACTIVE:
        if run.status == "requires_action":
            run = runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=_outputs(run))
        else:
            poll = time.perf_counter()
            run = runs.get(thread_id=thread_id, run_id=run.id)
            last_poll = time.perf_counter() - poll
    done = time.perf_counter()
    setup.provider.force_flush()
    return {"run_s": done - start, "terminal_get_s": last_poll, "trace_after_s": time.perf_counter() - done}


def full_run_async(setup: Setup) -> dict[str, float]:
    async def main() -> dict[str, float]:
        async with setup.async_client_factory() as client:
            runs, thread_id = client.runs, setup.thread_id
            start = time.perf_counter()
            run = await runs.create(thread_id=thread_id, agent_id=setup.agent_id)
            last_poll = 0.0
            while run.status in _ACTIVE:
                if run.status == "requires_action":
                    run = await runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=_outputs(run))
                else:
                    poll = time.perf_counter()
                    run = await runs.get(thread_id=thread_id, run_id=run.id)
                    last_poll = time.perf_counter() - poll
            done = time.perf_counter()
            await asyncio.to_thread(setup.provider.force_flush)  # the app goes on; the trace completes meanwhile
            return {"run_s": done - start, "terminal_get_s": last_poll, "trace_after_s": time.perf_counter() - done}

    return asyncio.run(main())


def run(runs: int = 8, latency: float = 0.1, log: Callable[[str], None] = print) -> dict[str, Any]:
    setup = Setup(latency)
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        mode: {c: [] for c in CONFIGS} for mode in ("sync", "async")
    }
    requests: dict[str, dict[str, float]] = {"sync": {}, "async": {}}
    for index in range(runs + 1):  # the first round warms up and is not kept
        order = CONFIGS[index % 3 :] + CONFIGS[: index % 3]
        for config in order:
            setup.enter(config)
            try:
                for mode, drive in (("sync", full_run), ("async", full_run_async)):
                    before = len(setup.service.requests)
                    sample = drive(setup)
                    if index:
                        samples[mode][config].append(sample)
                        requests[mode][config] = len(setup.service.requests) - before
            finally:
                setup.leave(config)
        if index:
            log(f"  round {index}/{runs} done")
    out: dict[str, Any] = {"latency_s": latency, "runs_per_config": runs, "modes": {}}
    for mode, by_config in samples.items():
        rows = {}
        for config, items in by_config.items():
            rows[config] = {
                key: round(statistics.median(s[key] for s in items) * 1000, 2)
                for key in ("run_s", "terminal_get_s", "trace_after_s")
            }
            rows[config]["requests"] = requests[mode][config]
        base = rows["none"]
        for config in ("ours", "microsoft"):
            rows[config]["run_added_ms"] = round(rows[config]["run_s"] - base["run_s"], 2)
            rows[config]["terminal_get_added_ms"] = round(rows[config]["terminal_get_s"] - base["terminal_get_s"], 2)
        out["modes"][mode] = rows
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Full function-call run, {result['latency_s'] * 1000:.0f} ms per request, medians of "
        f"{result['runs_per_config']} runs per configuration (ms)",
        f"{'mode':6} {'config':10} {'run':>9} {'added':>8} {'terminal get':>13} {'added':>8} {'requests':>9} "
        f"{'trace after':>12}",
    ]
    for mode, rows in result["modes"].items():
        for config, row in rows.items():
            lines.append(
                f"{mode:6} {config:10} {row['run_s']:9.1f} {row.get('run_added_ms', 0):8.1f} "
                f"{row['terminal_get_s']:13.1f} {row.get('terminal_get_added_ms', 0):8.1f} {row['requests']:9} "
                f"{row['trace_after_s']:12.1f}"
            )
    return "\n".join(lines)


def _function_tools() -> list[Any]:
    from azure.ai.agents.models import FunctionTool

    def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        return "sunny"

    return FunctionTool({get_weather}).definitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.runs, args.latency, log=lambda s: print(s, file=sys.stderr))
    result["machine"] = machine()
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
