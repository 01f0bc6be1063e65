"""The async clients of both SDK generations give the same trace as the sync ones: shape, attributes, status
events, cancel, agent names."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import StatusCode

from azure_ai_agents_emulator import (
    agents_client,
    async_agents_client,
    async_project_client,
    project_client,
)
from tests.helpers import agents_run, agents_setup, projects_run, projects_setup
from tests.helpers_async import agents_run_async, agents_setup_async, projects_run_async, projects_setup_async

#: What must be identical between a sync and an async run of the same scenario.
COMPARED = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.agent.name",
    "azure.ai.agents.run.status",
    "gen_ai.response.model",
    "gen_ai.request.temperature",
    "gen_ai.request.top_p",
    "gen_ai.request.max_tokens",
    "azure.ai.agents.request.max_prompt_tokens",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "error.type",
)


def _picture(telemetry) -> tuple:
    [run_span] = telemetry.run_spans()
    statuses = [(e.name, e.attributes.get("azure.ai.agents.run.status")) for e in run_span.events]
    compared = {k: run_span.attributes.get(k) for k in COMPARED}
    tools = sorted(
        (s.attributes["gen_ai.tool.name"], s.attributes["gen_ai.tool.type"]) for s in telemetry.named("execute_tool")
    )
    return telemetry.shape(), statuses, compared, run_span.status.status_code, tools


def _check_ids(telemetry, run, agent_id: str, thread_id: str) -> None:
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.id"] == run.id
    assert run_span.attributes["gen_ai.agent.id"] == agent_id
    assert run_span.attributes["gen_ai.conversation.id"] == thread_id
    for span in telemetry.spans:
        assert span.context.trace_id == run_span.context.trace_id


@pytest.mark.parametrize("scenario", ["function_call", "multi_function", "failed", "code_interpreter"])
def test_async_agents_client_gives_the_sync_trace(emulator, instrument, scenario):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, scenario)
    expected = _picture(telemetry)
    telemetry.exporter.clear()

    async def main():
        async with async_agents_client(emulator) as aclient:
            ids = await agents_setup_async(aclient)
            return ids, await agents_run_async(aclient, *ids, scenario)

    (agent_id, thread_id), run = asyncio.run(main())
    assert _picture(telemetry) == expected
    _check_ids(telemetry, run, agent_id, thread_id)


@pytest.mark.parametrize("scenario", ["function_call", "failed"])
def test_async_legacy_projects_client_gives_the_sync_trace(emulator, instrument, scenario):
    telemetry = instrument()
    client = project_client(emulator)
    agent_id, thread_id = projects_setup(client)
    projects_run(client, agent_id, thread_id, scenario)
    expected = _picture(telemetry)
    telemetry.exporter.clear()

    async def main():
        async with async_project_client(emulator) as aclient:
            ids = await projects_setup_async(aclient)
            return ids, await projects_run_async(aclient, *ids, scenario)

    (agent_id, thread_id), run = asyncio.run(main())
    assert _picture(telemetry) == expected
    _check_ids(telemetry, run, agent_id, thread_id)


def _assert_cancelled(telemetry) -> None:
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "cancelled"
    assert run_span.status.status_code is StatusCode.UNSET
    assert "error.type" not in run_span.attributes
    assert [e.attributes["azure.ai.agents.run.status"] for e in run_span.events][-2:] == ["cancelling", "cancelled"]


def test_cancel_is_not_an_error_async_and_legacy(emulator, instrument):
    telemetry = instrument()

    async def agents_main():
        async with async_agents_client(emulator) as aclient:
            ids = await agents_setup_async(aclient)
            return await agents_run_async(aclient, *ids, "cancel", cancel=True)

    assert asyncio.run(agents_main()).status == "cancelled"
    _assert_cancelled(telemetry)
    telemetry.exporter.clear()

    legacy = project_client(emulator)
    agent_id, thread_id = projects_setup(legacy)
    run = legacy.agents.create_run(thread_id=thread_id, agent_id=agent_id, metadata={"scenario": "cancel"})
    run = legacy.agents.get_run(thread_id=thread_id, run_id=run.id)
    run = legacy.agents.cancel_run(thread_id=thread_id, run_id=run.id)
    while run.status == "cancelling":
        run = legacy.agents.get_run(thread_id=thread_id, run_id=run.id)
    assert run.status == "cancelled"
    _assert_cancelled(telemetry)
    telemetry.exporter.clear()

    async def legacy_main():
        async with async_project_client(emulator) as aclient:
            ids = await projects_setup_async(aclient)
            return await projects_run_async(aclient, *ids, "cancel", cancel=True)

    assert asyncio.run(legacy_main()).status == "cancelled"
    _assert_cancelled(telemetry)


def test_agent_names_come_from_async_and_legacy_agent_calls(emulator, instrument):
    telemetry = instrument()

    async def main():
        async with async_agents_client(emulator) as aclient:
            agent_id, thread_id = await agents_setup_async(aclient, name="async-agent")
            await agents_run_async(aclient, agent_id, thread_id, "message")
            # An agent created elsewhere: its name is learned when the app reads it, even mid-run.
            other = await aclient.create_agent(model="gpt-4o")
            run = await aclient.runs.create(thread_id=thread_id, agent_id=other.id, metadata={"scenario": "message"})
            await aclient.update_agent(other.id, name="renamed-agent")
            while run.status in ("queued", "in_progress"):
                run = await aclient.runs.get(thread_id=thread_id, run_id=run.id)
        async with async_project_client(emulator) as legacy:
            agent_id, thread_id = await projects_setup_async(legacy, name="legacy-async-agent")
            await projects_run_async(legacy, agent_id, thread_id, "message")

    asyncio.run(main())
    legacy = project_client(emulator)
    agent = legacy.agents.create_agent(model="gpt-4o", name="legacy-sync-agent")
    thread = legacy.agents.create_thread()
    run = legacy.agents.create_run(thread_id=thread.id, agent_id=agent.id, metadata={"scenario": "message"})
    fetched = legacy.agents.get_agent(agent.id)
    assert fetched.name == "legacy-sync-agent"
    while run.status in ("queued", "in_progress"):
        run = legacy.agents.get_run(thread_id=thread.id, run_id=run.id)

    names = sorted(s.name for s in telemetry.run_spans())
    assert names == [
        "invoke_agent async-agent",
        "invoke_agent legacy-async-agent",
        "invoke_agent legacy-sync-agent",
        "invoke_agent renamed-agent",
    ]
    for span in telemetry.run_spans():
        assert span.name == f"invoke_agent {span.attributes['gen_ai.agent.name']}"
