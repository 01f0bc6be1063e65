"""The SDKs' polling helpers give one run span with the polls folded in, and the functions they execute for the
app get live ``execute_tool`` spans: ``runs.create_and_process``, ``create_thread_and_process_run`` and the
legacy ``create_and_process_run``, sync and async."""

from __future__ import annotations

import asyncio
import json
from typing import Optional

import pytest
from azure.core.exceptions import HttpResponseError
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from azure_ai_agents_emulator import (
    agents_client,
    async_agents_client,
    async_project_client,
    project_client,
)
from tests.helpers import TOOL_OUTPUT, agents_setup, metadata, projects_setup
from tests.helpers_async import agents_setup_async, projects_setup_async


class FunctionProbe:
    """The app's ``get_weather``: remembers the span current while it runs and makes one span of its own."""

    def __init__(self, tracer, fail: bool = False) -> None:
        self.tracer, self.fail, self.current = tracer, fail, []

    def functions(self, is_async: bool = False) -> set:
        probe = self

        def get_weather(city: str) -> str:
            """Gets the weather.

            :param city: The city.
            """
            probe.current.append(trace.get_current_span().get_span_context().span_id)
            with probe.tracer.start_as_current_span("weather lookup"):
                if probe.fail:
                    raise LookupError(f"no weather for {city}")
                return TOOL_OUTPUT

        async def get_weather_async(city: str) -> str:
            return get_weather(city)

        if is_async:
            get_weather_async.__name__ = "get_weather"
            get_weather_async.__doc__ = get_weather.__doc__
            return {get_weather_async}
        return {get_weather}


def _named(spans, prefix: str) -> list:
    return [s for s in spans if s.name.startswith(prefix)]


def _one_trace_with_live_tool(telemetry, run, probe: FunctionProbe, thread_id: Optional[str] = None, spans=None):
    """One run span, one live tool span per executed call (child of the run, around the app's function),
    step spans from the run's listing, and no second span for the same tool call. ``spans``: only these
    (one run's trace among several)."""
    spans = telemetry.spans if spans is None else spans
    [run_span] = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
    assert run_span.attributes["azure.ai.agents.run.id"] == run.id
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert run_span.attributes["gen_ai.conversation.id"] == (thread_id or run.thread_id)
    statuses = [e.attributes["azure.ai.agents.run.status"] for e in run_span.events]
    assert statuses == ["queued", "in_progress", "requires_action", "in_progress", "completed"]
    [tool] = _named(spans, "execute_tool")
    assert tool.parent.span_id == run_span.context.span_id
    assert tool.kind is SpanKind.INTERNAL
    assert tool.attributes["gen_ai.tool.name"] == "get_weather"
    assert tool.attributes["gen_ai.tool.type"] == "function"
    assert tool.attributes["gen_ai.tool.call.id"].startswith("call_")
    assert tool.context.span_id in probe.current  # the live span was current inside the app's function
    [lookup] = _named(spans, "weather lookup")
    assert lookup.parent.span_id == tool.context.span_id
    assert tool.start_time <= lookup.start_time <= lookup.end_time <= tool.end_time
    assert run_span.start_time <= tool.start_time <= tool.end_time <= run_span.end_time
    assert sorted(s.name for s in _named(spans, "chat ")) == ["chat gpt-4o", "chat gpt-4o"]
    return run_span, tool


def test_create_and_process_is_one_run_with_a_live_tool_span(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    probe = FunctionProbe(telemetry.tracer)
    client.enable_auto_function_calls(probe.functions())
    before = len(emulator.requests)
    run = client.runs.create_and_process(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call", polls=3), polling_interval=0
    )
    assert len(emulator.requests) - before >= 8  # the helper really polled several times
    _one_trace_with_live_tool(telemetry, run, probe, thread_id)
    assert telemetry.run_spans()[0].name == "invoke_agent weather-agent"


def test_create_thread_and_process_run_takes_the_new_thread_as_conversation(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, _ = agents_setup(client)
    probe = FunctionProbe(telemetry.tracer)
    client.enable_auto_function_calls(probe.functions())
    run = client.create_thread_and_process_run(
        agent_id=agent_id,
        thread={"messages": [{"role": "user", "content": "weather?"}]},
        metadata=metadata("function_call"),
        polling_interval=0,
    )
    run_span, _ = _one_trace_with_live_tool(telemetry, run, probe)
    assert run_span.attributes["gen_ai.conversation.id"] == run.thread_id


def test_async_helpers_are_one_run_with_a_live_async_tool_span(emulator, instrument):
    telemetry = instrument()
    probe = FunctionProbe(telemetry.tracer)

    async def main():
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            client.enable_auto_function_calls(probe.functions(is_async=True))
            first = await client.runs.create_and_process(
                thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0
            )
            second = await client.create_thread_and_process_run(
                agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0
            )
            return first, second

    first, second = asyncio.run(main())
    assert len(probe.current) == 2
    for run in (first, second):
        [run_span] = [s for s in telemetry.run_spans() if s.attributes["azure.ai.agents.run.id"] == run.id]
        spans = [s for s in telemetry.spans if s.context.trace_id == run_span.context.trace_id]
        _one_trace_with_live_tool(telemetry, run, probe, spans=spans)


def test_legacy_create_and_process_run_sync_and_async(emulator, instrument):
    telemetry = instrument()
    legacy = project_client(emulator)
    agent_id, thread_id = projects_setup(legacy)
    probe = FunctionProbe(telemetry.tracer)
    legacy.agents.enable_auto_function_calls(functions=probe.functions())
    run = legacy.agents.create_and_process_run(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), sleep_interval=0
    )
    _one_trace_with_live_tool(telemetry, run, probe, thread_id)
    telemetry.exporter.clear()

    async def main():
        async with async_project_client(emulator) as client:
            agent_id, thread_id = await projects_setup_async(client)
            return await client.agents.create_and_process_run(
                thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"), sleep_interval=0
            )

    run = asyncio.run(main())
    [run_span] = telemetry.run_spans()
    assert run_span.name == "invoke_agent weather-agent"
    assert run_span.attributes["azure.ai.agents.run.id"] == run.id
    assert [s.name for s in telemetry.children(run_span)] == ["chat gpt-4o"]


def test_a_failing_function_is_an_error_tool_span_and_the_run_goes_on(emulator, instrument):
    telemetry = instrument(capture_content=True)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    probe = FunctionProbe(telemetry.tracer, fail=True)
    client.enable_auto_function_calls(probe.functions())
    run = client.runs.create_and_process(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0
    )
    assert run.status == "completed"  # the SDK sent the error to the agent as the output
    [run_span] = telemetry.run_spans()
    assert run_span.status.status_code is StatusCode.UNSET
    [tool] = telemetry.named("execute_tool")
    assert tool.parent.span_id == run_span.context.span_id
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.attributes["error.type"] == "LookupError"
    [event] = [e for e in tool.events if e.name == "exception"]
    assert event.attributes["exception.message"] == "no weather for Seattle"
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"city": "Seattle"}
    assert "gen_ai.tool.call.result" not in tool.attributes


def test_an_unresolvable_function_call_is_a_failed_tool_span(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)

    def something_else() -> str:
        """Not the function the agent calls."""
        return "x"

    client.enable_auto_function_calls({something_else})
    run = client.runs.create_and_process(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0
    )
    assert run.status == "completed"
    [run_span] = telemetry.run_spans()
    [tool] = telemetry.named("execute_tool")
    assert tool.parent.span_id == run_span.context.span_id
    assert tool.name == "execute_tool get_weather"
    assert tool.attributes["error.type"] == "ValueError"
    assert tool.status.status_code is StatusCode.ERROR


def test_a_helper_failing_mid_run_ends_its_run_span_with_the_error(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator, retry_total=0)
    agent_id, thread_id = agents_setup(client)
    emulator.service.fail_next("get_run", 503, count=1)
    with pytest.raises(HttpResponseError) as raised:
        client.runs.create_and_process(
            thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"), polling_interval=0
        )
    assert raised.value.status_code == 503  # the SDK's exception, unchanged
    [run_span] = telemetry.run_spans()
    assert run_span.status.status_code is StatusCode.ERROR
    assert run_span.attributes["error.type"] == "HttpResponseError"
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "error"
    assert run_span.attributes["azure.ai.agents.run.id"]


def test_manual_execute_in_a_polling_loop_is_live_too(emulator, instrument):
    """Apps that call ``FunctionTool.execute`` themselves in their loop get the same live span."""
    from azure.ai.agents.models import FunctionTool, ToolOutput

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    probe = FunctionProbe(telemetry.tracer)
    functions = FunctionTool(probe.functions())
    run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"))
    while run.status in ("queued", "in_progress", "requires_action"):
        if run.status == "requires_action":
            calls = run.required_action.submit_tool_outputs.tool_calls
            outputs = [ToolOutput(tool_call_id=c.id, output=functions.execute(c)) for c in calls]
            run = client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
        else:
            run = client.runs.get(thread_id=thread_id, run_id=run.id)
    _one_trace_with_live_tool(telemetry, run, probe, thread_id)



def test_legacy_create_thread_and_run_takes_the_new_thread_as_conversation(emulator, instrument):
    telemetry = instrument()
    legacy = project_client(emulator)
    agent_id, _ = projects_setup(legacy)
    run = legacy.agents.create_thread_and_run(agent_id=agent_id, metadata=metadata("message"))
    while run.status in ("queued", "in_progress"):
        run = legacy.agents.get_run(thread_id=run.thread_id, run_id=run.id)

    async def main():
        async with async_project_client(emulator) as client:
            arun = await client.agents.create_thread_and_run(agent_id=agent_id, metadata=metadata("message"))
            while arun.status in ("queued", "in_progress"):
                arun = await client.agents.get_run(thread_id=arun.thread_id, run_id=arun.id)
            return arun

    async_run = asyncio.run(main())
    spans = {s.attributes["azure.ai.agents.run.id"]: s for s in telemetry.run_spans()}
    assert set(spans) == {run.id, async_run.id}
    for finished in (run, async_run):
        span = spans[finished.id]
        assert span.name == "invoke_agent weather-agent"
        assert span.attributes["gen_ai.conversation.id"] == finished.thread_id
        assert span.attributes["azure.ai.agents.run.status"] == "completed"
        assert [s.name for s in telemetry.children(span)] == ["chat gpt-4o"]
