"""Runs agent runs with our instrumentation next to Microsoft's (``AIAgentsInstrumentor``, legacy
``project_client.telemetry.enable()``) and azure-core's own tracing, in both installation orders, sync, async
and streamed; prints one JSON summary per case. A separate process: these set the global tracer provider and
azure-core's global settings."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from azure.core.settings import settings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from azure_ai_agents_emulator import (
    AgentsEmulator,
    agents_client,
    async_agents_client,
    project_client,
)
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)  # Microsoft's and azure-core's spans go to the global provider
ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
META = {"scenario": "code_interpreter"}


def poll_sync(emulator: AgentsEmulator) -> None:
    client = agents_client(emulator)
    agent = client.create_agent(model="gpt-4o", name="neighbour")
    thread = client.threads.create()
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id, metadata=META)
    while run.status in ACTIVE:
        run = client.runs.get(thread_id=thread.id, run_id=run.id)


def poll_async(emulator: AgentsEmulator) -> None:
    async def main() -> None:
        async with async_agents_client(emulator) as client:
            agent = await client.create_agent(model="gpt-4o", name="neighbour")
            thread = await client.threads.create()
            run = await client.runs.create(thread_id=thread.id, agent_id=agent.id, metadata=META)
            while run.status in ACTIVE:
                run = await client.runs.get(thread_id=thread.id, run_id=run.id)

    asyncio.run(main())


def stream_sync(emulator: AgentsEmulator) -> None:
    from azure.ai.agents.models import AgentEventHandler

    client = agents_client(emulator)
    agent = client.create_agent(model="gpt-4o", name="neighbour")
    thread = client.threads.create()
    with client.runs.stream(
        thread_id=thread.id, agent_id=agent.id, metadata=META, event_handler=AgentEventHandler()
    ) as stream:
        stream.until_done()


def stream_async(emulator: AgentsEmulator) -> None:
    from azure.ai.agents.models import AsyncAgentEventHandler

    async def main() -> None:
        async with async_agents_client(emulator) as client:
            agent = await client.create_agent(model="gpt-4o", name="neighbour")
            thread = await client.threads.create()
            async with await client.runs.stream(
                thread_id=thread.id, agent_id=agent.id, metadata=META, event_handler=AsyncAgentEventHandler()
            ) as stream:
                await stream.until_done()

    asyncio.run(main())


def legacy_stream(emulator: AgentsEmulator) -> None:
    from azure.ai.projects.models import AgentEventHandler

    client = project_client(emulator)
    agent = client.agents.create_agent(model="gpt-4o", name="neighbour")
    thread = client.agents.create_thread()
    with client.agents.create_stream(
        thread_id=thread.id, agent_id=agent.id, metadata=META, event_handler=AgentEventHandler()
    ) as stream:
        stream.until_done()


def legacy_poll(emulator: AgentsEmulator) -> None:
    client = project_client(emulator)
    agent = client.agents.create_agent(model="gpt-4o", name="neighbour")
    thread = client.agents.create_thread()
    run = client.agents.create_run(thread_id=thread.id, agent_id=agent.id, metadata=META)
    while run.status in ACTIVE:
        run = client.agents.get_run(thread_id=thread.id, run_id=run.id)


class Microsoft:
    def __init__(self, legacy: bool = False) -> None:
        self.legacy = legacy
        self.instrumentor: Any = None

    def on(self, emulator: AgentsEmulator) -> None:
        settings.tracing_implementation = "opentelemetry"
        if self.legacy:
            project_client(emulator).telemetry.enable()  # what Microsoft's legacy samples call
            from azure.ai.projects.telemetry.agents import AIAgentsInstrumentor as Legacy

            self.instrumentor = Legacy()
        else:
            from azure.ai.agents.telemetry import AIAgentsInstrumentor

            self.instrumentor = AIAgentsInstrumentor()
            self.instrumentor.instrument(enable_content_recording=False)

    def off(self) -> None:
        self.instrumentor.uninstrument()
        settings.tracing_implementation = None


def summary() -> dict[str, Any]:
    spans = EXPORTER.get_finished_spans()
    ours = [s for s in spans if s.instrumentation_scope.name.startswith("opentelemetry.instrumentation.azure_ai_agents")]
    runs = [s for s in ours if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
    others = [s for s in spans if s not in ours]
    return {
        "runs": [
            {
                "status": r.attributes.get("azure.ai.agents.run.status"),
                "run_id": bool(r.attributes.get("azure.ai.agents.run.id")),
                "unfinished": r.attributes.get("azure.ai.agents.run.unfinished"),
                "unavailable": r.attributes.get("azure.ai.agents.run.steps_unavailable"),
                "steps": len(
                    [s for s in ours if s.name.startswith("chat") and s.parent and s.parent.span_id == r.context.span_id]
                ),
            }
            for r in runs
        ],
        "microsoft_spans": len(others),
        # spans about a steps request: none, since the app never lists steps (only we do)
        "step_request_spans": sorted(
            s.name
            for s in others
            if "steps" in s.name.lower() or any("/steps" in str(v) for v in (s.attributes or {}).values())
        ),
    }


def case(name: str, emulator: AgentsEmulator, app: Callable[[AgentsEmulator], None], order: str, legacy: bool = False) -> dict[str, Any]:
    EXPORTER.clear()
    ours, microsoft = AzureAgentInstrumentor(), Microsoft(legacy)
    if order == "microsoft_first":
        microsoft.on(emulator)
        ours.instrument(tracer_provider=PROVIDER)
    elif order == "ours_first":
        ours.instrument(tracer_provider=PROVIDER)
        microsoft.on(emulator)
    else:  # azure-core tracing only
        settings.tracing_implementation = "opentelemetry"
        ours.instrument(tracer_provider=PROVIDER)
    try:
        app(emulator)
        PROVIDER.force_flush()
        result = summary()
    finally:
        ours.uninstrument()
        if order != "core_only":
            # Uninstalling ours left Microsoft's wrappers in place: its spans still come.
            EXPORTER.clear()
            app(emulator)
            result["microsoft_after_our_uninstall"] = len(EXPORTER.get_finished_spans())
            microsoft.off()
        settings.tracing_implementation = None
    return {"case": name, **result}


def main() -> None:
    results = []
    with AgentsEmulator() as emulator:
        for order in ("microsoft_first", "ours_first"):
            for app in (poll_sync, poll_async, stream_sync, stream_async):
                results.append(case(f"{order}:{app.__name__}", emulator, app, order))
            for app in (legacy_poll, legacy_stream):
                results.append(case(f"{order}:legacy_enable:{app.__name__}", emulator, app, order, legacy=True))
        for app in (poll_sync, poll_async):
            results.append(case(f"core_only:{app.__name__}", emulator, app, "core_only"))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
