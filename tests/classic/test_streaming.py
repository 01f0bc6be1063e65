"""Streamed runs give the same one-trace picture as polled runs: ``runs.stream`` / ``create_stream`` and
``submit_tool_outputs_stream`` / ``submit_tool_outputs_to_stream``, with and without an event handler, sync and
async, both SDK generations; and the stream's end in every way a stream can end."""

from __future__ import annotations

import asyncio
import gc
import re
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from azure_ai_agents_emulator import (
    InProcessTransport,
    agents_client,
    async_agents_client,
    async_project_client,
    project_client,
)
from tests.helpers import TOOL_OUTPUT, agents_run, agents_setup, metadata, projects_setup
from tests.helpers_async import agents_setup_async, projects_setup_async

FUNCTION_STATUSES = ["queued", "in_progress", "requires_action", "in_progress", "completed"]


def get_weather(city: str) -> str:
    """Gets the weather.

    :param city: The city.
    """
    return TOOL_OUTPUT


async def get_weather_async(city: str) -> str:
    """Gets the weather.

    :param city: The city.
    """
    return TOOL_OUTPUT


get_weather_async.__name__ = "get_weather"


def _run_span(telemetry):
    [run_span] = telemetry.run_spans()
    return run_span


def _statuses(span) -> list[str]:
    return [e.attributes["azure.ai.agents.run.status"] for e in span.events if e.name.endswith("status_changed")]


def _check_streamed_run(telemetry, run_id: str, statuses: list[str]) -> Any:
    """One completed run span: status events, time to first chunk inside the run, one span per step/tool."""
    spans = telemetry.spans
    run_span = _run_span(telemetry)
    assert run_span.attributes["azure.ai.agents.run.id"] == run_id
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert run_span.status.status_code is StatusCode.UNSET
    assert _statuses(run_span) == statuses
    first_chunk = run_span.attributes["gen_ai.response.time_to_first_chunk"]
    assert 0 < first_chunk <= (run_span.end_time - run_span.start_time) / 1e9
    ids = [s.attributes.get("gen_ai.tool.call.id") or s.attributes.get("azure.ai.agents.run_step.id") for s in spans]
    ids = [i for i in ids if i]
    assert len(ids) == len(set(ids))  # no step or tool call twice
    for span in telemetry.spans:
        assert span.context.trace_id == run_span.context.trace_id
    return run_span


class Recorder:
    """Mixin for the app's handlers: records what each ``on_*`` callback received."""

    def record(self, kind: str, data: Any) -> None:
        self.__dict__.setdefault("seen", []).append((kind, data))


def _recording_handler_class():
    from azure.ai.agents.models import AgentEventHandler

    class Handler(AgentEventHandler, Recorder):
        def on_thread_run(self, run):
            self.record("run", run.status)

        def on_run_step(self, step):
            self.record("step", step.status)

        def on_message_delta(self, delta):
            self.record("delta", delta.text)

    return Handler


def test_stream_without_handler_is_one_run_like_polling(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "message")
    polled = telemetry.shape()
    telemetry.exporter.clear()

    steps_before = [p for _m, p in emulator.requests if p.endswith("/steps")]
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")) as stream:
        events = [event_type for event_type, _data, _ in stream]
    assert events[0] == "thread.run.created" and events[-2:] == ["thread.run.completed", "done"]
    run_span = _check_streamed_run(telemetry, _run_id(client, thread_id), ["queued", "in_progress", "completed"])
    assert telemetry.shape() == polled
    assert run_span.attributes["gen_ai.conversation.id"] == thread_id
    assert run_span.attributes["gen_ai.usage.output_tokens"] == 45
    assert [p for _m, p in emulator.requests if p.endswith("/steps")] == steps_before  # steps came as events


def test_stream_with_auto_functions_continues_on_the_same_run(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    client.enable_auto_function_calls({get_weather})
    client.runs.create_and_process(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0
    )
    polled = telemetry.shape()
    telemetry.exporter.clear()

    handler = _recording_handler_class()()
    with client.runs.stream(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), event_handler=handler
    ) as stream:
        assert stream is handler
        stream.until_done()
    run_span = _check_streamed_run(telemetry, _run_id(client, thread_id), FUNCTION_STATUSES)
    assert telemetry.shape() == polled  # live tool span under the run, both steps, nothing twice
    [tool] = telemetry.named("execute_tool")
    assert tool.parent.span_id == run_span.context.span_id
    runs = [d for k, d in handler.seen if k == "run"]
    assert runs == ["queued", "queued", "in_progress", "requires_action", "in_progress", "completed"]
    assert "".join(d for k, d in handler.seen if k == "delta").startswith("Here is what I found")


def test_the_app_handler_receives_every_event_unchanged(emulator, instrument):
    from azure.ai.agents.models import BaseAgentEventHandler

    class RawHandler(BaseAgentEventHandler):
        """A handler overriding ``_process_event`` (the SDK's documented way): gets the raw frames."""

        def _process_event(self, event_data_str: str) -> str:
            return event_data_str

    def frames() -> list[str]:
        client = agents_client(emulator)
        agent_id, thread_id = agents_setup(client)
        with client.runs.stream(
            thread_id=thread_id, agent_id=agent_id, metadata=metadata("code_interpreter"), event_handler=RawHandler()
        ) as stream:
            raw = list(stream)
        ids = re.compile(r"\"(asst|thread|run|step|msg|call)_[0-9A-Za-z]+\"")
        return [re.sub(r"\d{10}(\.\d+)?", "<t>", ids.sub(r'"\1_<id>"', frame)) for frame in raw]

    plain = frames()
    telemetry = instrument()
    assert frames() == plain
    assert len(plain) > 15
    assert _run_span(telemetry).attributes["azure.ai.agents.run.status"] == "completed"
    assert [s.name for s in telemetry.named("execute_tool")] == ["execute_tool code_interpreter"]


def test_manual_continuation_with_a_new_handler_lands_on_the_same_run(emulator, instrument):
    from azure.ai.agents.models import AgentEventHandler, ToolOutput

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call")) as stream:
        required = [data for event_type, data, _ in stream if event_type == "thread.run.requires_action"]
    [run] = required
    assert telemetry.run_spans() == []  # the run waits for the app's outputs: still open
    calls = run.required_action.submit_tool_outputs.tool_calls
    handler = AgentEventHandler()
    client.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[ToolOutput(tool_call_id=c.id, output=TOOL_OUTPUT) for c in calls],
        event_handler=handler,
    )
    handler.until_done()
    run_span = _check_streamed_run(telemetry, run.id, FUNCTION_STATUSES)
    [tool] = telemetry.named("execute_tool")
    assert tool.attributes["gen_ai.tool.call.id"] == calls[0].id
    [tool_step] = [s for s in telemetry.named("chat ") if s.attributes["azure.ai.agents.run_step.type"] == "tool_calls"]
    assert tool.parent.span_id == run_span.context.span_id  # the step's sibling, as when polling
    assert tool.attributes["azure.ai.agents.run_step.id"] == tool_step.attributes["azure.ai.agents.run_step.id"]
    assert tool_step.parent.span_id == run_span.context.span_id
    assert sorted(s.name for s in telemetry.named("chat ")) == ["chat gpt-4o", "chat gpt-4o"]


def test_the_first_stream_going_away_after_a_continuation_changes_nothing(emulator, instrument):
    from azure.ai.agents.models import AgentEventHandler, ToolOutput

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    stream = client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"))
    with stream as first:
        [run] = [data for event_type, data, _ in first if event_type == "thread.run.requires_action"]
    second = AgentEventHandler()
    client.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[ToolOutput(tool_call_id=run.required_action.submit_tool_outputs.tool_calls[0].id, output="x")],
        event_handler=second,
    )
    assert next(second)[0] == "thread.run.step.completed"
    del stream, first  # the first handler is collected while the run goes on in the second
    gc.collect()
    assert telemetry.run_spans() == []
    second.until_done()
    run_span = _check_streamed_run(telemetry, run.id, FUNCTION_STATUSES)
    assert "azure.ai.agents.run.unfinished" not in run_span.attributes


def test_breaking_out_early_ends_the_run_span(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")) as stream:
        for event_type, _data, _ in stream:
            if event_type == "thread.run.step.created":
                break
        assert telemetry.run_spans() == []
    run_span = _run_span(telemetry)
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "stream_closed"
    assert run_span.attributes["azure.ai.agents.run.status"] == "in_progress"
    assert run_span.status.status_code is StatusCode.UNSET
    [step] = telemetry.children(run_span)
    assert step.name == "chat gpt-4o"


def test_a_dropped_stream_ends_the_run_span(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    stream = client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
    handler = stream.event_handler
    assert next(handler)[0] == "thread.run.created"
    assert telemetry.run_spans() == []
    del stream, handler
    gc.collect()
    run_span = _run_span(telemetry)
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "stream_abandoned"
    assert run_span.attributes["azure.ai.agents.run.status"] == "queued"


class Boom(Exception):
    pass


def test_an_exception_leaving_the_stream_is_recorded_and_passes_through(emulator, instrument):
    from azure.ai.agents.models import BaseAgentEventHandler

    class FailingHandler(BaseAgentEventHandler):
        def _process_event(self, event_data_str: str) -> str:
            if "thread.run.step.created" in event_data_str:
                raise Boom("handler failed")
            return event_data_str

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    with pytest.raises(Boom):
        with client.runs.stream(
            thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"), event_handler=FailingHandler()
        ) as stream:
            stream.until_done()
    run_span = _run_span(telemetry)
    assert run_span.status.status_code is StatusCode.ERROR
    assert run_span.attributes["error.type"] == "Boom"
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "stream_closed"
    assert [e.name for e in run_span.events][-1] == "exception"


class CutStreams:
    """A service in front of the emulator's whose streams stop after ``after`` frames: with ``frame`` (e.g. an
    ``error`` event) or by raising like a dropped connection."""

    def __init__(self, service: Any, after: int, frame: bytes = b"") -> None:
        self.service, self.after, self.frame = service, after, frame

    def handle(self, *args: Any) -> Any:
        response = self.service.handle(*args)
        if response.is_stream:
            response.body = self._cut(response.body)
        return response

    def _cut(self, frames):
        for index, frame in enumerate(frames):
            if index == self.after:
                if not self.frame:
                    raise ConnectionResetError("connection dropped")
                yield self.frame
                return
            yield frame


def test_a_dropped_connection_is_a_run_error(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator, transport=InProcessTransport(CutStreams(emulator.service, after=4)))
    agent_id, thread_id = agents_setup(client)
    with pytest.raises(ConnectionResetError):
        with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")) as stream:
            stream.until_done()
    run_span = _run_span(telemetry)
    assert run_span.attributes["error.type"] == "ConnectionResetError"
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "stream_error"
    assert run_span.status.status_code is StatusCode.ERROR


def test_a_service_error_event_is_a_run_error(emulator, instrument):
    telemetry = instrument()
    error = b'event: error\ndata: {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}\n\n'
    client = agents_client(emulator, transport=InProcessTransport(CutStreams(emulator.service, after=4, frame=error)))
    agent_id, thread_id = agents_setup(client)
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")) as stream:
        events = [event_type for event_type, _data, _ in stream]
    assert events[-1] == "error"
    run_span = _run_span(telemetry)
    assert run_span.attributes["error.type"] == "rate_limit_exceeded"
    assert run_span.status.description == "slow down"
    [exception] = [e for e in run_span.events if e.name == "exception"]  # listed under Failures with its reason
    assert dict(exception.attributes) == {"exception.type": "rate_limit_exceeded", "exception.message": "slow down"}


def test_auto_functions_giving_up_cancel_the_run_without_error(emulator, instrument):
    """Past ``max_retry`` failing calls the SDK cancels the run and injects its own ``thread.run.cancelled``."""

    def get_weather(city: str) -> str:  # noqa: F811 - the agent's function, here failing
        """Gets the weather.

        :param city: The city.
        """
        raise TimeoutError("weather service down")

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    client.enable_auto_function_calls({get_weather}, max_retry=0)
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call")) as stream:
        stream.until_done()
    run_span = _run_span(telemetry)
    assert run_span.attributes["azure.ai.agents.run.status"] == "cancelled"
    assert run_span.status.status_code is StatusCode.UNSET
    assert _statuses(run_span)[-2:] == ["cancelling", "cancelled"]
    [tool] = telemetry.named("execute_tool")
    assert tool.attributes["error.type"] == "TimeoutError"
    assert tool.parent.span_id == run_span.context.span_id


def test_async_stream_with_handler_and_auto_functions(emulator, instrument):
    from azure.ai.agents.models import AsyncAgentEventHandler

    class Handler(AsyncAgentEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.runs: list = []

        async def on_thread_run(self, run):
            self.runs.append(run.status)

    telemetry = instrument()
    handler = Handler()

    async def main():
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            client.enable_auto_function_calls({get_weather_async})
            async with await client.runs.stream(
                thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), event_handler=handler
            ) as stream:
                await stream.until_done()
            async for run in client.runs.list(thread_id=thread_id):
                return run.id

    run_id = asyncio.run(main())
    run_span = _check_streamed_run(telemetry, run_id, FUNCTION_STATUSES)
    [tool] = telemetry.named("execute_tool")
    assert tool.parent.span_id == run_span.context.span_id
    assert handler.runs[-1] == "completed"


def test_async_stream_without_handler_and_early_exit(emulator, instrument):
    telemetry = instrument()

    async def main():
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            async with await client.runs.stream(
                thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")
            ) as stream:
                events = [event async for event, _data, _ in stream]
            # Flushing from the loop's own thread cannot wait for the run's reads running on this loop.
            await asyncio.to_thread(telemetry.tracer_provider.force_flush)
            completed = _run_span(telemetry)
            telemetry.exporter.clear()
            async with await client.runs.stream(
                thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")
            ) as stream:
                async for event, _data, _ in stream:
                    if event == "thread.run.in_progress":
                        break
            return events, completed

    events, completed = asyncio.run(main())
    assert events[-1] == "done"
    assert completed.attributes["azure.ai.agents.run.status"] == "completed"
    assert completed.attributes["gen_ai.response.time_to_first_chunk"] > 0
    closed = _run_span(telemetry)
    assert closed.attributes["azure.ai.agents.run.unfinished"] == "stream_closed"


def test_legacy_create_stream_with_auto_functions_and_manual_continuation(emulator, instrument):
    from azure.ai.projects.models import AgentEventHandler, ToolOutput

    telemetry = instrument()
    legacy = project_client(emulator)
    agent_id, thread_id = projects_setup(legacy)
    legacy.agents.enable_auto_function_calls(functions={get_weather})
    with legacy.agents.create_stream(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call")
    ) as stream:
        stream.until_done()
    runs = legacy.agents.list_runs(thread_id=thread_id).data
    _check_streamed_run(telemetry, runs[0].id, FUNCTION_STATUSES)
    telemetry.exporter.clear()

    manual = project_client(emulator)  # no auto function calls: the app answers
    with manual.agents.create_stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call")) as s:
        [run] = [data for event_type, data, _ in s if event_type == "thread.run.requires_action"]
    handler = AgentEventHandler()
    manual.agents.submit_tool_outputs_to_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[
            ToolOutput(tool_call_id=call.id, output=TOOL_OUTPUT)
            for call in run.required_action.submit_tool_outputs.tool_calls
        ],
        event_handler=handler,
    )
    handler.until_done()
    _check_streamed_run(telemetry, run.id, FUNCTION_STATUSES)


def test_legacy_async_create_stream_with_and_without_handler(emulator, instrument):
    from azure.ai.projects.models import AsyncAgentEventHandler

    class Handler(AsyncAgentEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.steps: list = []

        async def on_run_step(self, step):
            self.steps.append((step.type, step.status))

    telemetry = instrument()
    handler = Handler()

    async def main():
        async with async_project_client(emulator) as legacy:
            agent_id, thread_id = await projects_setup_async(legacy)
            async with await legacy.agents.create_stream(
                thread_id=thread_id, agent_id=agent_id, metadata=metadata("code_interpreter")
            ) as stream:
                await stream.until_done()
            first = (await legacy.agents.list_runs(thread_id=thread_id)).data[0].id
            spans = telemetry.spans
            telemetry.exporter.clear()
            legacy.agents.enable_auto_function_calls(functions={get_weather_async})
            async with await legacy.agents.create_stream(
                thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), event_handler=handler
            ) as stream:
                await stream.until_done()
            return first, spans, (await legacy.agents.list_runs(thread_id=thread_id)).data[0].id

    first, first_spans, second = asyncio.run(main())
    run_span = _check_streamed_run(telemetry, second, FUNCTION_STATUSES)
    [tool] = telemetry.named("execute_tool")
    assert tool.parent.span_id == run_span.context.span_id  # executed live by the SDK, awaited
    assert handler.steps[-1] == ("message_creation", "completed")
    [first_span] = [s for s in first_spans if s.name.startswith("invoke_agent")]
    assert first_span.attributes["azure.ai.agents.run.id"] == first
    assert first_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert [s.name for s in first_spans if s.name.startswith("execute_tool")] == ["execute_tool code_interpreter"]


def test_a_stream_whose_create_fails_is_one_error_span(emulator, instrument):
    from azure.core.exceptions import HttpResponseError

    telemetry = instrument()
    client = agents_client(emulator, retry_total=0)
    agent_id, thread_id = agents_setup(client)
    emulator.service.fail_next("create_run", 500)
    with pytest.raises(HttpResponseError):
        client.runs.stream(thread_id=thread_id, agent_id=agent_id)
    run_span = _run_span(telemetry)
    assert run_span.attributes["error.type"] == "HttpResponseError"
    assert run_span.status.status_code is StatusCode.ERROR


def test_a_polled_run_continued_by_a_stream_stays_one_run(emulator, instrument):
    from azure.ai.agents.models import AgentEventHandler, ToolOutput

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"))
    while run.status != "requires_action":
        run = client.runs.get(thread_id=thread_id, run_id=run.id)
    handler = AgentEventHandler()
    client.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[ToolOutput(tool_call_id=run.required_action.submit_tool_outputs.tool_calls[0].id, output="x")],
        event_handler=handler,
    )
    handler.until_done()
    run_span = _run_span(telemetry)
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert _statuses(run_span) == FUNCTION_STATUSES
    assert "gen_ai.response.time_to_first_chunk" not in run_span.attributes  # the run was not created by a stream
    assert len(telemetry.named("execute_tool")) == 1


def _run_id(client: Any, thread_id: str) -> str:
    """The newest run of a thread (the service lists newest first)."""
    return next(iter(client.runs.list(thread_id=thread_id))).id


def test_a_stream_never_read_is_ended_at_shutdown(emulator, instrument):
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    stream = client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
    assert telemetry.run_spans() == []
    AzureAgentInstrumentor().uninstrument()
    run_span = _run_span(telemetry)
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "shutdown"
    assert "azure.ai.agents.run.id" not in run_span.attributes  # no event was read: the id was never known
    del stream
    gc.collect()
    assert len(telemetry.run_spans()) == 1  # the dropped stream does not end it twice
