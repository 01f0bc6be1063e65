"""Steps the app reads itself (``run_steps.get`` / ``run_steps.list`` and the legacy ``get_run_step`` /
``list_run_steps``), sync and async, join their run's trace once each; so do agent updates."""

from __future__ import annotations

import asyncio

from opentelemetry.instrumentation.azure_ai_agents.emulator import async_agents_client, project_client

from .helpers import projects_run, projects_setup
from .helpers_async import agents_run_async, agents_setup_async

BOTH_STEPS = ["run_step message_creation", "run_step tool_calls"]


def _steps_under_the_run(telemetry, run_id: str) -> list[str]:
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["gen_ai.thread.run.id"] == run_id
    steps = telemetry.named("run_step")
    for step in steps:
        assert step.parent.span_id == run_span.context.span_id
        assert step.attributes["gen_ai.thread.run.id"] == run_id
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
    assert after_get == ["run_step tool_calls"]
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
    assert len(telemetry.named("run_step")) == 2 and len(telemetry.named("execute_tool")) == 1

    telemetry.exporter.clear()
    legacy.agents.update_agent(agent_id, name="after")
    projects_run(legacy, agent_id, thread_id, "message")
    [run_span] = telemetry.run_spans()
    assert run_span.name == "invoke_agent after"
