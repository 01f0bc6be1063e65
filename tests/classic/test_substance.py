"""What the agent was asked and answered, on every surface: chat spans with their model and usage, the run's
settings from the run object, the agent named (looked up once when the app never fetched it), and, with content
capture on, instructions, input, answer and tool definitions; with capture off none of it, and no extra request."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind

from azure_ai_agents_emulator import agents_client, async_agents_client, async_project_client, project_client
from tests.helpers import INSTRUCTIONS, USER_MESSAGE, agents_run, get_weather, metadata, projects_run
from tests.helpers_async import agents_run_async

CONTENT = (
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)
AGENT = {"name": "substance-agent", "description": "Answers weather questions.", "instructions": INSTRUCTIONS}


def _agents_setup(client: Any) -> tuple[str, str]:
    """An agent the app never fetches through the instrumentation (made elsewhere), and a thread with the
    user's question posted with messages.create."""
    from azure.ai.agents.models import FunctionTool

    with suppress_instrumentation():
        agent = client.create_agent(
            model="gpt-4o", tools=FunctionTool({get_weather}).definitions, response_format={"type": "json_object"}, **AGENT
        )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content=USER_MESSAGE)
    return agent.id, thread.id


def sync_manual(emulator: Any) -> Any:
    client = agents_client(emulator)
    agent_id, thread_id = _agents_setup(client)
    return agents_run(client, agent_id, thread_id, "function_call")


def async_manual(emulator: Any) -> Any:
    from azure.ai.agents.models import FunctionTool

    async def main() -> Any:
        async with async_agents_client(emulator) as client:
            with suppress_instrumentation():
                agent = await client.create_agent(
                    model="gpt-4o",
                    tools=FunctionTool({get_weather}).definitions,
                    response_format={"type": "json_object"},
                    **AGENT,
                )
            thread = await client.threads.create()
            await client.messages.create(thread_id=thread.id, role="user", content=USER_MESSAGE)
            return await agents_run_async(client, agent.id, thread.id, "function_call")

    return asyncio.run(main())


def streamed(emulator: Any) -> Any:
    client = agents_client(emulator)
    agent_id, thread_id = _agents_setup(client)
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")) as stream:
        for _event in stream:
            pass
    [run] = list(client.runs.list(thread_id=thread_id))
    return run


def async_streamed(emulator: Any) -> Any:
    from azure.ai.agents.models import FunctionTool

    async def main() -> Any:
        async with async_agents_client(emulator) as client:
            with suppress_instrumentation():
                agent = await client.create_agent(
                    model="gpt-4o",
                    tools=FunctionTool({get_weather}).definitions,
                    response_format={"type": "json_object"},
                    **AGENT,
                )
            thread = await client.threads.create()
            await client.messages.create(thread_id=thread.id, role="user", content=USER_MESSAGE)
            stream = await client.runs.stream(thread_id=thread.id, agent_id=agent.id, metadata=metadata("message"))
            async with stream as events:
                async for _event in events:
                    pass
            return [run async for run in client.runs.list(thread_id=thread.id)][0]

    return asyncio.run(main())


def sdk_helper(emulator: Any) -> Any:
    client = agents_client(emulator)
    agent_id, thread_id = _agents_setup(client)
    return client.runs.create_and_process(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"), polling_interval=0
    )


def legacy(emulator: Any) -> Any:
    from azure.ai.projects.models import FunctionTool

    client = project_client(emulator)
    with suppress_instrumentation():
        agent = client.agents.create_agent(
            model="gpt-4o", tools=FunctionTool({get_weather}).definitions, response_format={"type": "json_object"}, **AGENT
        )
    thread = client.agents.create_thread()
    client.agents.create_message(thread_id=thread.id, role="user", content=USER_MESSAGE)
    run, _steps = projects_run(client, agent.id, thread.id, "function_call")
    return run


SURFACES: dict[str, Callable[[Any], Any]] = {
    "sync": sync_manual,
    "async": async_manual,
    "stream": streamed,
    "async-stream": async_streamed,
    "helper": sdk_helper,
    "legacy": legacy,
}


def _our_message_reads(emulator: Any) -> int:
    return sum(1 for method, path in emulator.requests if method == "GET" and path.endswith("/messages"))


@pytest.mark.parametrize("surface", sorted(SURFACES))
@pytest.mark.parametrize("capture", [True, False], ids=["content", "no-content"])
def test_substance_on_every_surface(emulator, instrument, surface, capture):
    telemetry = instrument(capture_content=capture)
    reads_before = _our_message_reads(emulator)
    run = SURFACES[surface](emulator)
    assert run.status == "completed"

    [run_span] = telemetry.run_spans()
    attributes = run_span.attributes
    # The agent, named although the app never fetched it: looked up once, by id.
    assert run_span.name == "invoke_agent substance-agent"
    assert attributes["gen_ai.agent.name"] == "substance-agent"
    assert attributes["gen_ai.agent.description"] == "Answers weather questions."
    # The run's settings, from the run object itself.
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.output.type"] == "json"
    assert "gen_ai.request.temperature" in attributes and "gen_ai.request.top_p" in attributes
    assert "gen_ai.response.id" not in attributes and "gen_ai.response.model" not in attributes
    # Steps are model calls: chat spans with their own usage, adding up to the run's total (counted once).
    chats = [s for s in telemetry.children(run_span) if s.attributes["gen_ai.operation.name"] == "chat"]
    assert chats and all(s.name == "chat gpt-4o" and s.kind is SpanKind.CLIENT for s in chats)
    assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in chats) == attributes["gen_ai.usage.input_tokens"]
    assert sum(s.attributes["gen_ai.usage.output_tokens"] for s in chats) == attributes["gen_ai.usage.output_tokens"]
    assert all(s.attributes["gen_ai.response.finish_reasons"] in (("stop",), ("tool_call",)) for s in chats)

    recorded = {k for s in telemetry.all_spans for k in s.attributes} | {
        k for s in telemetry.all_spans for e in s.events for k in (e.attributes or {})
    }
    if not capture:
        assert not recorded & set(CONTENT)
        assert USER_MESSAGE not in json.dumps([dict(s.attributes) for s in telemetry.all_spans])
        assert _our_message_reads(emulator) == reads_before  # no request of ours for content
        return

    system = json.loads(attributes["gen_ai.system_instructions"])
    assert system[0]["type"] == "text" and INSTRUCTIONS in system[0]["content"]
    inputs = json.loads(attributes["gen_ai.input.messages"])
    assert inputs[0] == {"role": "user", "parts": [{"type": "text", "content": USER_MESSAGE}]}  # messages.create
    [answer] = json.loads(attributes["gen_ai.output.messages"])
    assert answer["role"] == "assistant" and answer["parts"][0]["content"]
    [definition] = json.loads(attributes["gen_ai.tool.definitions"])
    assert definition["name"] == "get_weather" and definition["type"] == "function"
    # The chat that answered shows what the model saw and what it said.
    [last] = [s for s in chats if s.attributes["azure.ai.agents.run_step.type"] == "message_creation"]
    assert json.loads(last.attributes["gen_ai.output.messages"]) == [answer]
    assert json.loads(last.attributes["gen_ai.input.messages"])[0] == inputs[0]
    if surface in ("stream", "async-stream"):
        assert _our_message_reads(emulator) == reads_before  # the answer came with the stream's events


def test_agent_lifecycle_spans_and_one_lookup_per_agent(emulator, instrument):
    telemetry = instrument(capture_content=True)
    client = agents_client(emulator)
    agent = client.create_agent(model="gpt-4o", name="made-here", description="d1", instructions="Be brief.")
    client.update_agent(agent.id, description="d2")
    [created, updated] = sorted(
        (s for s in telemetry.all_spans if s.attributes["gen_ai.operation.name"] != "invoke_agent"),
        key=lambda s: s.start_time,
    )
    assert created.name == "create_agent made-here" and created.kind is SpanKind.CLIENT
    assert created.attributes["gen_ai.agent.id"] == agent.id and created.attributes["gen_ai.request.model"] == "gpt-4o"
    assert json.loads(created.attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    assert updated.name == "update_agent made-here" and updated.attributes["gen_ai.operation.name"] == "update_agent"
    assert updated.attributes["gen_ai.agent.description"] == "d2"

    with suppress_instrumentation():
        other = client.create_agent(model="gpt-4o", name="made-elsewhere")
    thread = client.threads.create()
    gets_before = sum(1 for m, p in emulator.requests if m == "GET" and p.endswith(f"/assistants/{other.id}"))
    for _ in range(2):
        client.runs.create_and_process(
            thread_id=thread.id, agent_id=other.id, metadata=metadata("message"), polling_interval=0
        )
    assert telemetry.tracer_provider.force_flush()  # the lookup runs off the app's path: wait for it
    gets = sum(1 for m, p in emulator.requests if m == "GET" and p.endswith(f"/assistants/{other.id}"))
    assert gets - gets_before == 1  # looked up once, then cached
    assert [s.name for s in telemetry.run_spans()] == ["invoke_agent made-elsewhere"] * 2


def test_allowed_metadata_keys_become_attributes(emulator, instrument, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_METADATA_KEYS", "tenant, release")
    telemetry = instrument()
    client = agents_client(emulator)
    agent = client.create_agent(model="gpt-4o", name="meta", metadata={"release": "2026.12.1"})
    thread = client.threads.create()
    client.runs.create_and_process(
        thread_id=thread.id,
        agent_id=agent.id,
        metadata={**metadata("message"), "tenant": "contoso", "user_email": "a@b.c"},
        polling_interval=0,
    )
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.metadata.tenant"] == "contoso"
    assert run_span.attributes["azure.ai.agents.run.metadata.release"] == "2026.12.1"  # the agent's
    assert not [k for k in run_span.attributes if k.endswith(("user_email", "scenario"))]  # not allowed: not kept


def test_no_metadata_by_default(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent = client.create_agent(model="gpt-4o", name="meta", metadata={"release": "1"})
    thread = client.threads.create()
    client.runs.create_and_process(
        thread_id=thread.id, agent_id=agent.id, metadata={**metadata("message"), "tenant": "t"}, polling_interval=0
    )
    [run_span] = telemetry.run_spans()
    assert not [k for k in run_span.attributes if k.startswith("azure.ai.agents.run.metadata.")]


def test_async_legacy_reads_the_agent_and_answer_too(emulator, instrument):
    from azure.ai.projects.models import FunctionTool

    telemetry = instrument(capture_content=True)

    async def main() -> Any:
        async with async_project_client(emulator) as client:
            with suppress_instrumentation():
                agent = await client.agents.create_agent(
                    model="gpt-4o", tools=FunctionTool({get_weather}).definitions, **AGENT
                )
            thread = await client.agents.create_thread()
            run = await client.agents.create_run(thread_id=thread.id, agent_id=agent.id, metadata=metadata("message"))
            while run.status in ("queued", "in_progress"):
                run = await client.agents.get_run(thread_id=thread.id, run_id=run.id)
            return run

    assert asyncio.run(main()).status == "completed"
    [run_span] = telemetry.run_spans()
    assert run_span.name == "invoke_agent substance-agent"
    assert json.loads(run_span.attributes["gen_ai.output.messages"])[0]["role"] == "assistant"


def test_connected_agent_call_links_a_sub_run_we_trace(emulator, instrument):
    """The connected agent's sub-run ids are on the tool span; when that sub-run is one we trace (here: a run the
    app drove itself), the tool span links to it."""
    from tests.helpers import agents_setup

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    sub_run = agents_run(client, agent_id, thread_id, "message")

    def point_at_sub_run(method: str, kind: str, payload: Any) -> Any:
        if kind == "step_list":
            for step in payload.get("data") or []:
                for call in (step.get("step_details") or {}).get("tool_calls") or []:
                    if call.get("type") == "connected_agent":
                        call["connected_agent"]["run_id"] = sub_run.id
        return payload

    emulator.service.response_hook = point_at_sub_run
    try:
        agents_run(client, agent_id, thread_id, "all_tools")
        telemetry.tracer_provider.force_flush()  # our step listing runs off the app's path: let it see the hook
    finally:
        emulator.service.response_hook = None
    [sub_span] = [s for s in telemetry.run_spans() if s.attributes["azure.ai.agents.run.id"] == sub_run.id]
    [connected] = [s for s in telemetry.named("execute_tool") if s.attributes["gen_ai.tool.name"] == "stock_price_bot"]
    assert connected.attributes["azure.ai.agents.connected_agent.run.id"] == sub_run.id
    assert [link.context.span_id for link in connected.links] == [sub_span.context.span_id]


def test_runs_ending_while_their_agents_lookup_is_in_flight_all_carry_its_name(instrument):
    """An agent made elsewhere is looked up once, off the app's path; a run of that agent ending while the lookup
    is still in flight joins it instead of ending unnamed (or asking again)."""
    from azure_ai_agents_emulator import AgentsEmulator
    from tests.fakes.gated_service import GatedService

    telemetry = instrument()
    service = GatedService()
    with AgentsEmulator(service=service) as emulator:
        client = agents_client(emulator)
        with suppress_instrumentation():
            other = client.create_agent(model="gpt-4o", name="made-elsewhere")
        service.hold_next_agent_lookup()
        for _ in range(2):
            thread = client.threads.create()
            client.runs.create_and_process(
                thread_id=thread.id, agent_id=other.id, metadata=metadata("message"), polling_interval=0
            )
            assert service.lookup_held.wait(10)  # the first run's lookup is in flight while the second ends
        service.release()
        assert telemetry.tracer_provider.force_flush()
        gets = [p for m, p in emulator.requests if m == "GET" and p.endswith(f"/assistants/{other.id}")]
    assert len(gets) == 1
    assert [s.name for s in telemetry.run_spans()] == ["invoke_agent made-elsewhere"] * 2
