"""One trace per run, for both SDK generations, over real HTTP against the emulator."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from azure_ai_agents_emulator import agents_client, project_client
from tests.helpers import agents_run, agents_setup, projects_run, projects_setup

RUN_ATTRIBUTES = {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.provider.name": "microsoft.foundry",
    "gen_ai.system": "az.ai.agents",
    "gen_ai.agent.name": "weather-agent",
    "azure.ai.agents.run.status": "completed",
    "gen_ai.request.model": "gpt-4o",  # not passed on create: the run object reports the agent's model
    "gen_ai.response.model": None,  # on the chat spans; the conventions' invoke_agent has none
    "gen_ai.response.id": None,  # the run id is azure.ai.agents.run.id
    "gen_ai.request.temperature": 0.3,
    "gen_ai.request.top_p": 0.9,
    "gen_ai.request.max_tokens": 500,
    "azure.ai.agents.request.max_prompt_tokens": 4000,
    "server.address": "127.0.0.1",
}


def _check_within(child, parent) -> None:
    assert parent.start_time <= child.start_time <= child.end_time <= parent.end_time, (child.name, parent.name)


def test_manual_polling_loop_is_one_trace(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = agents_run(client, agent_id, thread_id, "function_call")
    assert run.status == "completed"

    [run_span] = telemetry.run_spans()
    assert run_span.name == "invoke_agent weather-agent"
    assert run_span.kind is SpanKind.CLIENT
    assert run_span.parent is None
    attributes = dict(run_span.attributes)
    for key, value in RUN_ATTRIBUTES.items():
        assert attributes.get(key) == value, key
    assert attributes["gen_ai.agent.id"] == agent_id
    assert attributes["gen_ai.conversation.id"] == thread_id
    assert "gen_ai.thread.id" not in attributes
    assert attributes["azure.ai.agents.run.id"] == run.id
    assert attributes["gen_ai.usage.input_tokens"] == run.usage.prompt_tokens > 0
    assert attributes["gen_ai.usage.output_tokens"] == run.usage.completion_tokens > 0
    assert attributes["server.port"] == emulator.port
    assert run_span.status.status_code is StatusCode.UNSET
    statuses = [e.attributes["azure.ai.agents.run.status"] for e in run_span.events]
    assert statuses[0] == "queued" and statuses[-1] == "completed" and "requires_action" in statuses
    assert all(a != b for a, b in zip(statuses, statuses[1:], strict=False))  # one event per change, none per poll

    children = telemetry.children(run_span)
    steps = [s for s in children if s.name.startswith("chat ")]
    assert sorted(s.attributes["azure.ai.agents.run_step.type"] for s in steps) == ["message_creation", "tool_calls"]
    for step in steps:
        _check_within(step, run_span)
        assert step.name == "chat gpt-4o" and step.kind is SpanKind.CLIENT
        assert step.attributes["gen_ai.operation.name"] == "chat"
        assert step.attributes["gen_ai.request.model"] == "gpt-4o"
        assert step.attributes["azure.ai.agents.run.id"] == run.id
        assert step.attributes["azure.ai.agents.run_step.status"] == "completed"
        assert step.attributes["gen_ai.usage.input_tokens"] > 0
    # The run carries the run's total, the steps their own parts of it: counted once, it adds up.
    assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in steps) == run.usage.prompt_tokens
    assert sum(s.attributes["gen_ai.usage.output_tokens"] for s in steps) == run.usage.completion_tokens
    [tool_step] = [s for s in steps if s.attributes["azure.ai.agents.run_step.type"] == "tool_calls"]
    assert tool_step.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    [tool] = [s for s in children if s.name.startswith("execute_tool")]  # the step's sibling, after it
    assert tool.name == "execute_tool get_weather"
    assert tool.kind is SpanKind.INTERNAL
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "get_weather"
    assert tool.attributes["gen_ai.tool.type"] == "function"
    assert tool.attributes["gen_ai.tool.call.id"].startswith("call_")
    assert tool.attributes["azure.ai.agents.run_step.id"] == tool_step.attributes["azure.ai.agents.run_step.id"]
    assert tool_step.end_time <= tool.start_time
    _check_within(tool, run_span)
    assert len(telemetry.spans) == 4  # run, 2 steps, 1 tool: nothing per poll


def _shape_and_events(telemetry):
    [run_span] = telemetry.run_spans()
    return telemetry.shape(), [e.attributes["azure.ai.agents.run.status"] for e in run_span.events]


def test_polling_1x_or_20x_per_state_gives_the_same_spans(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "function_call", polls=1)
    once = _shape_and_events(telemetry)
    telemetry.exporter.clear()
    before = len(emulator.requests)
    agents_run(client, agent_id, thread_id, "function_call", polls=20)
    assert len(emulator.requests) - before > 40  # the app really polled many times
    assert _shape_and_events(telemetry) == once


def test_legacy_projects_seed_path_gives_the_same_shape(emulator, instrument):
    telemetry = instrument()
    agents = agents_client(emulator)
    agent_id, thread_id = agents_setup(agents)
    agents_run(agents, agent_id, thread_id, "function_call")
    expected = telemetry.shape()
    telemetry.exporter.clear()

    legacy = project_client(emulator)
    agent_id, thread_id = projects_setup(legacy)
    run, steps = projects_run(legacy, agent_id, thread_id, "function_call", list_steps=True)
    assert run.status == "completed"
    assert len(steps.data) == 2  # the app's own listing is returned untouched
    assert telemetry.shape() == expected
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.id"] == run.id
    assert run_span.attributes["gen_ai.agent.id"] == agent_id
    assert run_span.attributes["gen_ai.usage.input_tokens"] == run.usage.prompt_tokens


@pytest.mark.parametrize(
    "scenario, error_type",
    [("failed", "server_error"), ("failed_no_error", "failed"), ("expired", "expired"), ("incomplete", "max_completion_tokens")],
)
def test_runs_that_end_badly_are_errors(emulator, instrument, scenario, error_type):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = agents_run(client, agent_id, thread_id, scenario)
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == run.status
    assert run_span.status.status_code is StatusCode.ERROR
    assert run_span.attributes["error.type"] == error_type


def test_failed_step_is_an_error_too(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "failed")
    failed_steps = [s for s in telemetry.named("chat ") if s.status.status_code is StatusCode.ERROR]
    assert failed_steps and all("error.type" in s.attributes for s in failed_steps)


def test_cancelled_run_is_not_an_error(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = agents_run(client, agent_id, thread_id, "cancel", cancel=True)
    assert run.status == "cancelled"
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "cancelled"
    assert run_span.status.status_code is StatusCode.UNSET
    assert "error.type" not in run_span.attributes
    statuses = [e.attributes["azure.ai.agents.run.status"] for e in run_span.events]
    assert statuses[-2:] == ["cancelling", "cancelled"]


def test_code_interpreter_and_unknown_tools_get_spans(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "code_interpreter")
    agents_run(client, agent_id, thread_id, "unknown_tool")
    tools = {s.attributes["azure.ai.agents.tool.type"]: s for s in telemetry.named("execute_tool")}
    assert tools["code_interpreter"].name == "execute_tool code_interpreter"
    assert tools["code_interpreter"].attributes["gen_ai.tool.type"] == "extension"
    assert tools["quantum_entangler"].name == "execute_tool quantum_entangler"
    for tool in tools.values():
        assert tool.parent is not None and tool.attributes["gen_ai.tool.call.id"]


def test_create_thread_and_run_takes_the_new_thread_as_conversation(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, _ = agents_setup(client)
    run = client.create_thread_and_run(agent_id=agent_id, metadata={"scenario": "message"})
    while run.status in ("queued", "in_progress"):
        run = client.runs.get(thread_id=run.thread_id, run_id=run.id)
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["gen_ai.conversation.id"] == run.thread_id
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert [s.name for s in telemetry.children(run_span)] == ["chat gpt-4o"]


def test_app_listing_steps_itself_creates_no_duplicates(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = agents_run(client, agent_id, thread_id, "function_call")
    listed = list(client.run_steps.list(thread_id=thread_id, run_id=run.id))
    assert {s.type for s in listed} == {"tool_calls", "message_creation"}
    assert listed[0].id.startswith("step_")
    assert len(telemetry.named("chat ")) == 2
    assert len(telemetry.named("execute_tool")) == 1


def test_listing_off_puts_function_calls_under_the_run(emulator, instrument):
    telemetry = instrument(list_steps_on_completion=False)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    before = [p for _m, p in emulator.requests if p.endswith("/steps")]
    run = agents_run(client, agent_id, thread_id, "function_call")
    assert [p for _m, p in emulator.requests if p.endswith("/steps")] == before  # we made no step listing
    [run_span] = telemetry.run_spans()
    assert telemetry.named("chat ") == []
    [tool] = telemetry.children(run_span)
    assert tool.name == "execute_tool get_weather"
    _check_within(tool, run_span)

    # A late listing by the app still adds the steps to the finished run's trace.
    list(client.run_steps.list(thread_id=thread_id, run_id=run.id))
    assert sorted(s.name for s in telemetry.named("chat ")) == ["chat gpt-4o", "chat gpt-4o"]
    assert len(telemetry.named("execute_tool")) == 1
    for step in telemetry.named("chat "):
        assert step.parent.span_id == run_span.context.span_id
        _check_within(step, run_span)


def test_run_span_parent_is_the_callers_span(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    with telemetry.tracer.start_as_current_span("handle request") as app_span:
        agents_run(client, agent_id, thread_id, "message")
    [run_span] = telemetry.run_spans()
    assert run_span.parent.span_id == app_span.get_span_context().span_id
    assert run_span.context.trace_id == app_span.get_span_context().trace_id
