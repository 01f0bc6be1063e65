"""Steps the app reads itself (``run_steps.get`` / ``run_steps.list`` and the legacy ``get_run_step`` /
``list_run_steps``), sync and async, join their run's trace once each; so do agent updates."""

from __future__ import annotations

import asyncio

from azure_ai_agents_emulator import async_agents_client, project_client
from tests.helpers import projects_run, projects_setup
from tests.helpers_async import agents_run_async, agents_setup_async

BOTH_STEPS = ["chat gpt-4o", "chat gpt-4o"]


def _steps_under_the_run(telemetry, run_id: str) -> list[str]:
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.id"] == run_id
    steps = telemetry.named("chat ")
    for step in steps:
        assert step.parent.span_id == run_span.context.span_id
        assert step.attributes["azure.ai.agents.run.id"] == run_id
    return sorted(s.name for s in steps)


def test_async_app_step_reads_join_the_finished_run_once(emulator, instrument):
    telemetry = instrument(list_steps_on_completion=False)

    async def main():
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            run = await agents_run_async(client, agent_id, thread_id, "function_call")
            first = emulator.service.get_steps(run.id)[0]
            step = await client.run_steps.get(thread_id=thread_id, run_id=run.id, step_id=first["id"])
            assert step.id == first["id"]
            after_get = _steps_under_the_run(telemetry, run.id)
            listed = [s async for s in client.run_steps.list(thread_id=thread_id, run_id=run.id)]
            pages = [p async for p in client.run_steps.list(thread_id=thread_id, run_id=run.id).by_page()]
            return run, after_get, listed, pages

    run, after_get, listed, pages = asyncio.run(main())
    assert after_get == ["chat gpt-4o"]
    assert {s.type for s in listed} == {"tool_calls", "message_creation"}
    assert pages  # by_page still works on the observed listing
    assert _steps_under_the_run(telemetry, run.id) == BOTH_STEPS
    assert len(telemetry.named("execute_tool")) == 1


def test_legacy_get_run_step_and_update_agent(emulator, instrument):
    telemetry = instrument(list_steps_on_completion=False)
    legacy = project_client(emulator)
    agent_id, thread_id = projects_setup(legacy, name="before")
    run, _ = projects_run(legacy, agent_id, thread_id, "function_call")
    for step in emulator.service.get_steps(run.id):
        fetched = legacy.agents.get_run_step(thread_id=thread_id, run_id=run.id, step_id=step["id"])
        assert fetched.id == step["id"]
    assert _steps_under_the_run(telemetry, run.id) == BOTH_STEPS
    legacy.agents.list_run_steps(thread_id=thread_id, run_id=run.id)  # listed again: nothing twice
    assert len(telemetry.named("chat ")) == 2 and len(telemetry.named("execute_tool")) == 1

    telemetry.exporter.clear()
    legacy.agents.update_agent(agent_id, name="after")
    projects_run(legacy, agent_id, thread_id, "message")
    [run_span] = telemetry.run_spans()
    assert run_span.name == "invoke_agent after"



def test_remaining_sync_and_async_reads_steps_and_agent_names(emulator, instrument):
    """``run_steps.get`` / ``get_agent`` / ``update_agent`` on the sync azure-ai-agents client, and
    ``get_run_step`` / ``get_agent`` / ``update_agent`` on the async legacy client. Agents are created with the
    instrumentation suppressed, so only the read (or update) can teach the run span its name."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    from azure_ai_agents_emulator import agents_client, async_project_client
    from tests.helpers import agents_run, agents_setup
    from tests.helpers_async import projects_run_async, projects_setup_async

    telemetry = instrument(list_steps_on_completion=False)
    client = agents_client(emulator)
    with suppress_instrumentation():
        agent_id, thread_id = agents_setup(client, name="read-by-get")
        other_id, _ = agents_setup(client, name="unnamed-yet")
    run = agents_run(client, agent_id, thread_id, "function_call")
    assert client.get_agent(agent_id).name == "read-by-get"  # after the run: renames nothing finished...
    for step in emulator.service.get_steps(run.id):
        assert client.run_steps.get(thread_id=thread_id, run_id=run.id, step_id=step["id"]).id == step["id"]
    assert _steps_under_the_run(telemetry, run.id) == BOTH_STEPS
    # The app had not fetched the agent while the run was open: we looked it up once, off the app's calls.
    assert telemetry.run_spans()[0].name == "invoke_agent read-by-get"
    telemetry.exporter.clear()
    agents_run(client, agent_id, thread_id, "message")  # ...but names the next run at once
    open_run = client.runs.create(thread_id=thread_id, agent_id=other_id, metadata={"scenario": "message"})
    client.update_agent(other_id, name="named-by-update")  # names a run that is still open
    while open_run.status in ("queued", "in_progress"):
        open_run = client.runs.get(thread_id=thread_id, run_id=open_run.id)
    assert sorted(s.name for s in telemetry.run_spans()) == ["invoke_agent named-by-update", "invoke_agent read-by-get"]
    telemetry.exporter.clear()

    async def main():
        async with async_project_client(emulator) as legacy:
            with suppress_instrumentation():
                agent_id, thread_id = await projects_setup_async(legacy, name="async-legacy")
            run = await legacy.agents.create_run(
                thread_id=thread_id, agent_id=agent_id, metadata={"scenario": "message"}
            )
            assert (await legacy.agents.get_agent(agent_id)).name == "async-legacy"
            while run.status in ("queued", "in_progress"):
                run = await legacy.agents.get_run(thread_id=thread_id, run_id=run.id)
            await legacy.agents.update_agent(agent_id, name="async-legacy-renamed")
            run = await projects_run_async(legacy, agent_id, thread_id, "function_call")
            for step in emulator.service.get_steps(run.id):
                fetched = await legacy.agents.get_run_step(thread_id=thread_id, run_id=run.id, step_id=step["id"])
                assert fetched.id == step["id"]
            return run

    run = asyncio.run(main())
    names = sorted(s.name for s in telemetry.run_spans())
    assert names == ["invoke_agent async-legacy", "invoke_agent async-legacy-renamed"]
    renamed = [s for s in telemetry.run_spans() if s.name.endswith("renamed")][0]
    steps = [s for s in telemetry.named("chat ") if s.parent.span_id == renamed.context.span_id]
    assert sorted(s.name for s in steps) == BOTH_STEPS
