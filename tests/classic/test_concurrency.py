"""Many runs at once, through asyncio and through threads, give one correct trace each: no cross-talk, even
between two runs of the same conversation running side by side."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import trace

from azure_ai_agents_emulator import agents_client, async_agents_client
from tests.helpers import TOOL_OUTPUT, agents_setup, metadata
from tests.helpers_async import agents_setup_async

RUNS = 50


class Calls:
    """The app's function: remembers, per call, the run span it ran under (its tool span's parent)."""

    def __init__(self) -> None:
        self.under: list[int] = []

    def record(self) -> str:
        self.under.append(trace.get_current_span().get_span_context().span_id)
        return TOOL_OUTPUT


def _check(telemetry, emulator, results: list[tuple[Any, Any]], threads: list[str], calls: Calls) -> None:
    """``results``: (the app span around run i, run i). Everything about run i is in the trace of app span i."""
    run_spans = {s.attributes["azure.ai.agents.run.id"]: s for s in telemetry.run_spans()}
    assert len(run_spans) == RUNS == len(telemetry.run_spans())
    by_parent: dict[int, list] = {}
    for span in telemetry.spans:
        if span.parent is not None:
            by_parent.setdefault(span.parent.span_id, []).append(span)
    tool_spans = set()
    for index, (app_span, run) in enumerate(results):
        run_span = run_spans[run.id]
        assert run.status == "completed"
        assert run_span.parent.span_id == app_span.context.span_id
        assert run_span.context.trace_id == app_span.context.trace_id
        assert run_span.attributes["gen_ai.conversation.id"] == threads[index // 2] == run.thread_id
        assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
        assert run_span.attributes["gen_ai.usage.input_tokens"] == run.usage.prompt_tokens
        statuses = [e.attributes["azure.ai.agents.run.status"] for e in run_span.events]
        assert statuses == ["queued", "in_progress", "requires_action", "in_progress", "completed"]
        service_calls = {
            c["id"] for step in emulator.service.get_steps(run.id) for c in step["step_details"].get("tool_calls", [])
        }
        children = by_parent.get(run_span.context.span_id, [])
        steps = [s for s in children if s.name.startswith("chat ")]
        tools = [s for s in children if s.name.startswith("execute_tool")]
        assert sorted(s.name for s in steps) == ["chat gpt-4o", "chat gpt-4o"]
        assert {s.attributes["azure.ai.agents.run.id"] for s in steps} == {run.id}
        assert {t.attributes["gen_ai.tool.call.id"] for t in tools} == service_calls
        assert len(tools) == 1
        for span in steps + tools:
            assert span.context.trace_id == run_span.context.trace_id
            assert run_span.start_time <= span.start_time <= span.end_time <= run_span.end_time
        tool_spans.update(t.context.span_id for t in tools)
    assert sorted(calls.under) == sorted(tool_spans)  # each function ran inside its own tool span
    assert len(telemetry.named("execute_tool")) == RUNS


def test_fifty_async_runs_through_gather(emulator, instrument):
    """Even runs poll with ``create_and_process``, odd runs stream; runs 2k and 2k+1 share a conversation."""
    telemetry = instrument()
    calls = Calls()

    async def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        await asyncio.sleep(0)  # let the other runs interleave inside the tool span
        return calls.record()

    async def main():
        async with async_agents_client(emulator) as client:
            agent_id, _ = await agents_setup_async(client)
            client.enable_auto_function_calls({get_weather})
            threads = [(await client.threads.create()).id for _ in range(RUNS // 2)]

            async def one(index: int):
                thread_id = threads[index // 2]
                with telemetry.tracer.start_as_current_span(f"request {index}") as app_span:
                    if index % 2 == 0:
                        run = await client.runs.create_and_process(
                            thread_id=thread_id,
                            agent_id=agent_id,
                            metadata=metadata("function_call"),
                            polling_interval=0,
                        )
                    else:
                        async with await client.runs.stream(
                            thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call")
                        ) as stream:
                            async for event, data, _ in stream:
                                if event == "thread.run.completed":
                                    run = data
                return app_span, run

            return await asyncio.gather(*(one(i) for i in range(RUNS))), threads

    results, threads = asyncio.run(main())
    _check(telemetry, emulator, results, threads, calls)


def test_fifty_runs_on_threads(emulator, instrument):
    telemetry = instrument()
    calls = Calls()

    def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        return calls.record()

    client = agents_client(emulator)
    agent_id, _ = agents_setup(client)
    client.enable_auto_function_calls({get_weather})
    threads = [client.threads.create().id for _ in range(RUNS // 2)]

    def one(index: int):
        with telemetry.tracer.start_as_current_span(f"request {index}") as app_span:
            run = client.runs.create_and_process(
                thread_id=threads[index // 2], agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0
            )
        return app_span, run

    with ThreadPoolExecutor(max_workers=RUNS) as pool:
        results = list(pool.map(one, range(RUNS)))
    _check(telemetry, emulator, results, threads, calls)
