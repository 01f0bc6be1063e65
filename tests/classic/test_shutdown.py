"""Flush and shutdown tell the truth and deliver (issue 18).

* ``TracerProvider.shutdown()`` right after a run ended (a short script, a batch job): the run and its steps are
  exported by a ``BatchSpanProcessor``, at 0 ms and at 100 ms per request; a listing that cannot finish within
  the bound (the fetch timeout) ends its run without steps, saying ``shutdown``, counted;
* ``force_flush()`` called on the event loop's own thread while our reads are pending on that loop says False
  (they cannot finish while the thread waits); from another thread it waits and says True;
* a step listing that times out is labelled ``timeout`` on both paths (sync and async);
* a plain interpreter exit right after a run still exports it with its steps (the instrumentation's exit handler
  runs before the provider's).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from azure_ai_agents_emulator import AgentsEmulator, AgentsService, agents_client, async_agents_client
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
from tests.helpers import ACTIVE, agents_run, agents_setup, metadata
from tests.helpers_async import agents_setup_async

UNAVAILABLE = "azure.ai.agents.run.steps_unavailable"


@pytest.fixture
def batch() -> Iterator[tuple[TracerProvider, InMemorySpanExporter, AzureAgentInstrumentor]]:
    """An app's usual pipeline: an SDK provider with a BatchSpanProcessor (5 s schedule: nothing is exported
    before shutdown unless shutdown exports it), instrumented; uninstrumented after the test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrumentor = AzureAgentInstrumentor()
    yield provider, exporter, instrumentor
    instrumentor.uninstrument()


def _runs(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]


def _children(exporter: InMemorySpanExporter, parent: Any) -> list[str]:
    return sorted(
        s.name
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    )


@pytest.mark.parametrize("latency", [0.0, 0.1])
def test_provider_shutdown_right_after_a_run_exports_the_run_with_its_steps(batch, latency):
    provider, exporter, instrumentor = batch
    instrumentor.instrument(tracer_provider=provider)
    service = AgentsService()
    client = agents_client(service, in_process=True)
    agent_id, thread_id = agents_setup(client)
    service.latency = latency  # every request, ours included, answered after `latency`
    run = agents_run(client, agent_id, thread_id, "code_interpreter")
    assert run.status == "completed"
    provider.shutdown()  # at once: the step listing is still pending
    [run_span] = _runs(exporter)
    assert run_span.attributes["azure.ai.agents.run.id"] == run.id
    assert UNAVAILABLE not in run_span.attributes
    assert _children(exporter, run_span) == ["chat gpt-4o", "chat gpt-4o", "execute_tool code_interpreter"]


def test_a_listing_that_cannot_finish_within_the_bound_ends_its_run_at_shutdown_saying_so(batch):
    provider, exporter, instrumentor = batch
    instrumentor.instrument(tracer_provider=provider, fetch_timeout=0.3)
    service = AgentsService()
    client = agents_client(service, in_process=True)
    agent_id, thread_id = agents_setup(client)
    service.delays = {"list_run_steps": 3.0}  # the in-process transport ignores timeouts: the listing takes 3 s
    run = agents_run(client, agent_id, thread_id, "message")
    started = time.monotonic()
    provider.shutdown()
    waited = time.monotonic() - started
    assert 0.25 <= waited < 2.0  # the bound (the fetch timeout), not the listing's 3 s
    [run_span] = _runs(exporter)
    assert run_span.attributes["azure.ai.agents.run.id"] == run.id
    assert run_span.attributes[UNAVAILABLE] == "shutdown"
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert instrumentor._tracker.fetcher.failures[("steps", "shutdown")] == 1  # noqa: SLF001 - counted


def test_force_flush_on_the_loops_own_thread_says_false_while_reads_are_pending_there(instrument):
    telemetry = instrument()
    with AgentsEmulator() as emulator:
        emulator.service.delays = {"list_run_steps": 0.3}

        async def main() -> tuple[bool, bool]:
            async with async_agents_client(emulator) as client:
                agent_id, thread_id = await agents_setup_async(client)
                run = await client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
                while run.status in ACTIVE:
                    run = await client.runs.get(thread_id=thread_id, run_id=run.id)
                on_loop = telemetry.tracer_provider.force_flush(5_000)  # our listing is a task on this very loop
                off_loop = await asyncio.to_thread(telemetry.tracer_provider.force_flush, 10_000)
                return on_loop, off_loop

        on_loop, off_loop = asyncio.run(main())
    assert on_loop is False
    assert off_loop is True
    [run_span] = telemetry.run_spans()
    assert UNAVAILABLE not in run_span.attributes
    assert len(telemetry.named("chat")) == 1


def test_a_sync_listing_timeout_is_labelled_timeout(emulator, instrument):
    telemetry = instrument(fetch_timeout=0.2)
    emulator.service.delays = {"list_run_steps": 1.0}
    try:
        client = agents_client(emulator)
        agents_run(client, *agents_setup(client), "message")
        assert telemetry.tracer_provider.force_flush(10_000)
    finally:
        emulator.service.delays = {}
    [run_span] = telemetry.run_spans()
    assert run_span.attributes[UNAVAILABLE] == "timeout"


def test_an_async_listing_timeout_is_labelled_timeout(emulator, instrument):
    telemetry = instrument(fetch_timeout=0.2)
    emulator.service.delays = {"list_run_steps": 1.0}

    async def main() -> None:
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            run = await client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
            while run.status in ACTIVE:
                run = await client.runs.get(thread_id=thread_id, run_id=run.id)
            assert await asyncio.to_thread(telemetry.tracer_provider.force_flush, 10_000)

    try:
        asyncio.run(main())
    finally:
        emulator.service.delays = {}
    [run_span] = telemetry.run_spans()
    assert run_span.attributes[UNAVAILABLE] == "timeout"


EXIT_APP = """
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from azure_ai_agents_emulator import AgentsService, agents_client
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

def line(span):
    return json.dumps({"name": span.name, "attributes": dict(span.attributes or {})}) + "\\n"

provider = TracerProvider()  # shuts down at exit (its own exit handler)
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stdout, formatter=line)))
AzureAgentInstrumentor().instrument(tracer_provider=provider)
service = AgentsService(default_scenario="code_interpreter")
client = agents_client(service, in_process=True)
agent = client.create_agent(model="gpt-4o", name="exit-agent")
thread = client.threads.create()
service.latency = float(sys.argv[1])
run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
while run.status in ("queued", "in_progress"):
    run = client.runs.get(thread_id=thread.id, run_id=run.id)
print(json.dumps({"run_id": run.id, "status": run.status}), flush=True)
"""  # then the interpreter exits at once: the step listing is still pending


@pytest.mark.parametrize("latency", ["0", "0.1"])
def test_interpreter_exit_right_after_a_run_exports_the_run_with_its_steps(latency):
    done = subprocess.run(
        [sys.executable, "-c", EXIT_APP, latency], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    [app] = [x for x in lines if "run_id" in x]
    spans = [x for x in lines if "name" in x]
    runs = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "invoke_agent"]
    assert [r["attributes"]["azure.ai.agents.run.id"] for r in runs] == [app["run_id"]]
    assert UNAVAILABLE not in runs[0]["attributes"]
    assert sorted(s["name"] for s in spans if s is not runs[0]) == [
        "chat gpt-4o",
        "chat gpt-4o",
        "create_agent exit-agent",
        "execute_tool code_interpreter",
    ]
