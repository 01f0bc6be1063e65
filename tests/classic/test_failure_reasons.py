"""Failure reasons where operators look: a run that ended badly (failed, expired, incomplete) and a tool call that
failed carry an ``exception`` span event whose ``exception.type`` is the service's error code and whose
``exception.message`` is the service's error message (else the code): backends that list exceptions
(Application Insights' Failures view) then show the reason. Nothing else goes into it, never content."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest
from opentelemetry.trace import StatusCode

from azure_ai_agents_emulator import agents_client, async_agents_client
from tests.helpers import RATE_LIMIT_MESSAGE, agents_run, agents_setup, metadata, rate_limited_scenario
from tests.helpers_async import agents_run_async, agents_setup_async

RATE_LIMITED = rate_limited_scenario()


@pytest.fixture
def rate_limited(emulator) -> Iterator[Any]:
    emulator.service.scenarios[RATE_LIMITED.name] = RATE_LIMITED
    try:
        yield emulator
    finally:
        emulator.service.scenarios.pop(RATE_LIMITED.name, None)


def _exceptions(span: Any) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == "exception"]


def _only_run(telemetry: Any) -> Any:
    telemetry.tracer_provider.force_flush()
    [run_span] = telemetry.run_spans()
    return run_span


@pytest.mark.parametrize(
    ("scenario", "status", "code", "message"),
    [
        ("failed", "failed", "server_error", "Something went wrong"),
        ("rate_limited", "failed", "rate_limit_exceeded", RATE_LIMIT_MESSAGE),
        ("failed_no_error", "failed", "failed", "failed"),
        ("expired", "expired", "expired", "expired"),
        ("incomplete", "incomplete", "max_completion_tokens", "run incomplete: max_completion_tokens"),
    ],
)
def test_a_run_that_ended_badly_carries_the_services_reason_as_an_exception(
    rate_limited, instrument, scenario, status, code, message
):
    telemetry = instrument()
    client = agents_client(rate_limited)
    agent_id, thread_id = agents_setup(client)
    assert agents_run(client, agent_id, thread_id, scenario).status == status
    run_span = _only_run(telemetry)
    assert _exceptions(run_span) == [{"exception.type": code, "exception.message": message}]
    assert run_span.attributes["error.type"] == code
    assert run_span.status.status_code is StatusCode.ERROR and run_span.status.description == message
    # after the status events, stamped when the end was seen (the span's end)
    assert run_span.events[-1].name == "exception"
    assert run_span.events[-2].attributes["azure.ai.agents.run.status"] == status
    assert run_span.events[-1].timestamp == run_span.end_time


@pytest.mark.parametrize("scenario", ["function_call", "code_interpreter", "cancel"])
def test_runs_that_did_not_fail_carry_no_exception(emulator, instrument, scenario):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, scenario, cancel=scenario == "cancel")
    telemetry.tracer_provider.force_flush()
    assert telemetry.run_spans()
    assert [s.name for s in telemetry.spans if _exceptions(s)] == []


def test_a_failed_tool_call_carries_its_steps_error_as_an_exception(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "failed")
    run_span = _only_run(telemetry)
    [tool] = telemetry.named("execute_tool")
    assert tool.name == "execute_tool code_interpreter"
    crashed = {"exception.type": "server_error", "exception.message": "Code interpreter session crashed"}
    assert _exceptions(tool) == [crashed]
    assert tool.events[-1].timestamp == tool.end_time
    assert tool.status.status_code is StatusCode.ERROR and tool.attributes["error.type"] == "server_error"
    # The run says why the run failed; the step (a model call) keeps error.type without a second exception.
    assert _exceptions(run_span)[0]["exception.message"] == "Something went wrong"
    [step] = [s for s in telemetry.named("chat ") if s.attributes.get("error.type")]
    assert _exceptions(step) == []


def test_async_and_streamed_failed_runs_carry_the_same_exception(rate_limited, instrument):
    telemetry = instrument()
    expected = [{"exception.type": "rate_limit_exceeded", "exception.message": RATE_LIMIT_MESSAGE}]

    async def main() -> None:
        async with async_agents_client(rate_limited) as client:
            agent_id, thread_id = await agents_setup_async(client)
            await agents_run_async(client, agent_id, thread_id, "rate_limited")

    asyncio.run(main())
    assert _exceptions(_only_run(telemetry)) == expected
    telemetry.exporter.clear()

    client = agents_client(rate_limited)
    agent_id, thread_id = agents_setup(client)
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("rate_limited")) as stream:
        assert [event_type for event_type, _data, _ in stream][-2] == "thread.run.failed"
    assert _exceptions(_only_run(telemetry)) == expected


def test_the_exception_holds_the_code_and_message_only_even_with_content_capture(emulator, instrument, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "failed")
    telemetry.tracer_provider.force_flush()
    assert "gen_ai.input.messages" in _only_run(telemetry).attributes  # content is captured elsewhere
    events = [e for s in telemetry.spans for e in s.events if e.name == "exception"]
    assert len(events) == 2  # the run's and the tool call's
    for event in events:
        assert set(event.attributes) == {"exception.type", "exception.message"}
        assert "secret" not in repr(dict(event.attributes))
