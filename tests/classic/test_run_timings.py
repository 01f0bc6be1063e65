"""Where a run's time went, on every classic run span and in two histograms:

* ``azure.ai.agents.run.queue_time``: the service's own stamps, ``created_at`` -> ``started_at``. The emulator's
  ``response_hook`` gives every run payload (polled, created, submitted, streamed) known stamps, so the
  expected value is exact;
* ``azure.ai.agents.run.tool_wait_time``: client-observed, from the first poll response or stream event that shows
  a ``requires_action`` round to the ``submit_tool_outputs`` that answered it, summed over rounds. The client's
  own record of those moments is the window of each function call's ``execute_tool`` span (same clock, same
  instants), so the expected value is exact too.

Polled (sync and async), streamed (sync and async) and helper-driven (``create_and_process``) runs.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator, Optional

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint

from azure_ai_agents_emulator import agents_client, async_agents_client
from opentelemetry.instrumentation.azure_ai_agents.classic.attributes import run_queue_time
from opentelemetry.instrumentation.azure_ai_agents.classic.run_state import RunState
from opentelemetry.instrumentation.azure_ai_agents.core.conventions import DURATION_BUCKETS
from tests.helpers import TOOL_OUTPUT, agents_run, agents_setup, metadata
from tests.helpers_async import agents_run_async, agents_setup_async

QUEUE_TIME = "azure.ai.agents.run.queue_time"
TOOL_WAIT = "azure.ai.agents.run.tool_wait_time"
#: The stamps every run payload carries in these tests: created at CREATED_AT, started QUEUED_S later.
CREATED_AT = 1_750_000_000.0
QUEUED_S = 2.5


def _stamp(method: str, kind: str, payload: Any) -> Optional[Any]:
    """The emulator's response hook: known service stamps on every run object (not on its steps)."""
    is_run = kind == "run" or (kind.startswith("stream:thread.run.") and not kind.startswith("stream:thread.run.step"))
    if not is_run or not isinstance(payload, dict) or payload.get("object") != "thread.run":
        return None
    payload = dict(payload, created_at=CREATED_AT)
    if payload.get("started_at") is not None:
        payload["started_at"] = CREATED_AT + QUEUED_S
    return payload


@pytest.fixture
def stamped(emulator) -> Iterator[Any]:
    emulator.service.response_hook = _stamp
    try:
        yield emulator
    finally:
        emulator.service.response_hook = None


def _run_span(telemetry: Any, run_id: str) -> Any:
    [span] = [s for s in telemetry.run_spans() if s.attributes["azure.ai.agents.run.id"] == run_id]
    return span


def _client_wait_s(telemetry: Any, run_span: Any) -> float:
    """The client-observed waits of a run: one window per requires_action round (the execute_tool spans of a
    round's parallel calls share it), first seen -> submitted."""
    windows = {
        (s.start_time, s.end_time)
        for s in telemetry.named("execute_tool")
        if s.parent is not None and s.parent.span_id == run_span.context.span_id
    }
    return sum(end - start for start, end in windows) / 1e9


def _duration_s(span: Any) -> float:
    return (span.end_time - span.start_time) / 1e9


def _check(telemetry: Any, run_id: str, rounds: int) -> Any:
    run_span = _run_span(telemetry, run_id)
    assert run_span.attributes[QUEUE_TIME] == QUEUED_S
    waited = run_span.attributes[TOOL_WAIT]
    assert isinstance(waited, float)
    if rounds == 0:
        assert waited == 0.0
    else:
        assert len({s.start_time for s in telemetry.named("execute_tool")}) == rounds
        assert waited == pytest.approx(_client_wait_s(telemetry, run_span), abs=1e-9)
        assert 0 < waited < _duration_s(run_span)
    return run_span


def _histograms(telemetry: Any) -> dict[str, list[HistogramDataPoint]]:
    telemetry.tracer_provider.force_flush()
    found: dict[str, list[HistogramDataPoint]] = {}
    for resource_metrics in telemetry.metric_reader.get_metrics_data().resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name in (QUEUE_TIME, TOOL_WAIT):
                    assert metric.unit == "s"
                    found[metric.name] = list(metric.data.data_points)
    return found


@pytest.mark.parametrize(("scenario", "rounds"), [("message", 0), ("function_call", 1), ("multi_function", 2)])
def test_polled_runs_carry_queue_and_tool_wait_times_and_their_histograms(stamped, instrument, scenario, rounds):
    telemetry = instrument()
    client = agents_client(stamped)
    agent_id, thread_id = agents_setup(client)
    run = agents_run(client, agent_id, thread_id, scenario, polls=2)
    telemetry.tracer_provider.force_flush()
    run_span = _check(telemetry, run.id, rounds)

    histograms = _histograms(telemetry)
    model = {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "microsoft.foundry"}
    for name in (QUEUE_TIME, TOOL_WAIT):
        [point] = histograms[name]
        assert dict(point.attributes) == {**model, "gen_ai.request.model": "gpt-4o"}
        assert point.count == 1 and point.sum == pytest.approx(run_span.attributes[name], abs=1e-9)
        assert tuple(point.explicit_bounds) == DURATION_BUCKETS


def test_async_polled_run_sums_its_rounds(stamped, instrument):
    telemetry = instrument()

    async def main() -> str:
        async with async_agents_client(stamped) as client:
            agent_id, thread_id = await agents_setup_async(client)
            return (await agents_run_async(client, agent_id, thread_id, "multi_function")).id

    run_id = asyncio.run(main())
    telemetry.tracer_provider.force_flush()
    _check(telemetry, run_id, rounds=2)
    assert [p.count for p in _histograms(telemetry)[TOOL_WAIT]] == [1]


def test_streamed_run_answered_with_submit_tool_outputs_stream(stamped, instrument):
    from azure.ai.agents.models import AgentEventHandler, ToolOutput

    telemetry = instrument()
    client = agents_client(stamped)
    agent_id, thread_id = agents_setup(client)
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call")) as stream:
        [run] = [data for event_type, data, _ in stream if event_type == "thread.run.requires_action"]
    handler = AgentEventHandler()
    calls = run.required_action.submit_tool_outputs.tool_calls
    client.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[ToolOutput(tool_call_id=c.id, output=TOOL_OUTPUT) for c in calls],
        event_handler=handler,
    )
    handler.until_done()
    telemetry.tracer_provider.force_flush()
    _check(telemetry, run.id, rounds=1)


def test_async_streamed_run_with_auto_function_calls(stamped, instrument):
    from azure.ai.agents.models import AsyncAgentEventHandler

    executed: list[str] = []

    async def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        executed.append(city)
        return TOOL_OUTPUT

    telemetry = instrument()

    async def main() -> str:
        async with async_agents_client(stamped) as client:
            agent_id, thread_id = await agents_setup_async(client)
            client.enable_auto_function_calls({get_weather})
            async with await client.runs.stream(
                thread_id=thread_id,
                agent_id=agent_id,
                metadata=metadata("multi_function"),
                event_handler=AsyncAgentEventHandler(),
            ) as stream:
                await stream.until_done()
            async for run in client.runs.list(thread_id=thread_id):
                return run.id
        raise AssertionError("no run")

    run_id = asyncio.run(main())
    assert len(executed) == 3
    telemetry.tracer_provider.force_flush()
    run_span = _run_span(telemetry, run_id)
    assert run_span.attributes[QUEUE_TIME] == QUEUED_S
    _check_live_waits(telemetry, run_span, calls=3)


def _check_live_waits(telemetry: Any, run_span: Any, calls: int) -> None:
    """Functions the SDK ran for the app: each live execute_tool span lies inside a wait (the SDK sees
    requires_action, runs the functions, submits), so the wait holds them all and stays inside the run."""
    tools = [s for s in telemetry.named("execute_tool") if s.parent.span_id == run_span.context.span_id]
    assert len(tools) == calls
    waited = run_span.attributes[TOOL_WAIT]
    assert sum(_duration_s(t) for t in tools) <= waited < _duration_s(run_span)


def test_create_and_process_with_auto_function_calls(stamped, instrument):
    telemetry = instrument()
    client = agents_client(stamped)
    agent_id, thread_id = agents_setup(client)
    ran: list[str] = []

    def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        ran.append(city)
        return TOOL_OUTPUT

    client.enable_auto_function_calls({get_weather})
    run = client.runs.create_and_process(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("multi_function", polls=2), polling_interval=0
    )
    assert run.status == "completed" and len(ran) == 3
    telemetry.tracer_provider.force_flush()
    run_span = _run_span(telemetry, run.id)
    assert run_span.attributes[QUEUE_TIME] == QUEUED_S
    _check_live_waits(telemetry, run_span, calls=3)


# ---- the rules, with explicit clocks -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"status": "in_progress", "created_at": 100, "started_at": 103}, 3.0),
        ({"status": "completed", "created_at": 100.25, "started_at": 100.75, "completed_at": 109}, 0.5),
        ({"status": "queued", "created_at": 100, "started_at": None}, None),  # still queued: not known yet
        ({"status": "failed", "created_at": 100, "started_at": None, "failed_at": 130}, 30.0),  # never started
        ({"status": "cancelled", "created_at": 100, "cancelled_at": 104}, 4.0),
        ({"status": "expired", "created_at": 100, "expires_at": 700}, 600.0),  # expired in the queue
        ({"status": "in_progress", "created_at": 100, "started_at": 99}, None),  # inconsistent stamps
        ({"status": "in_progress", "created_at": None, "started_at": 103}, None),
        ({"status": "in_progress", "created_at": "100", "started_at": True}, None),  # malformed: skipped
    ],
)
def test_queue_time_reads_the_services_stamps(run, expected):
    assert run_queue_time(run) == expected


def _requires_action(*call_ids: str) -> dict[str, Any]:
    calls = [{"id": c, "type": "function", "function": {"name": "f", "arguments": "{}"}} for c in call_ids]
    return {
        "id": "run_1",
        "status": "requires_action",
        "created_at": 100,
        "started_at": 101,
        "required_action": {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}},
    }


def _in_progress() -> dict[str, Any]:
    return {"id": "run_1", "status": "in_progress", "created_at": 100, "started_at": 101}


def _observe(state: RunState, run: dict[str, Any], now_ns: int) -> None:
    state.observe(run, now_ns, 0.0, capture_arguments=False)


def test_tool_wait_sums_each_round_from_first_seen_to_submitted_on_the_client_clock():
    state = RunState(start_ns=0, run_id="run_1")
    _observe(state, _in_progress(), 5)
    _observe(state, _requires_action("call_1", "call_2"), 10)  # round 1 first seen
    _observe(state, _requires_action("call_1", "call_2"), 18)  # seen again: the wait began at 10
    state.outputs_submitted([{"tool_call_id": "call_1"}, {"tool_call_id": "call_2"}], 25, 0.0, capture=False)
    _observe(state, _requires_action("call_1", "call_2"), 26)  # the same round again (a late poll): no new wait
    _observe(state, _in_progress(), 30)
    _observe(state, _requires_action("call_3"), 40)  # round 2
    state.outputs_submitted([{"tool_call_id": "call_3"}], 50, 0.0, capture=False)
    _observe(state, {**_in_progress(), "status": "completed", "completed_at": 110}, 60)
    assert state.timings(60) == (1.0, (15 + 10) / 1e9)


def test_a_round_never_answered_counts_until_the_run_left_it_or_ended():
    expired = RunState(start_ns=0, run_id="run_1")
    _observe(expired, _requires_action("call_1"), 10)
    _observe(expired, {**_in_progress(), "status": "expired", "expires_at": 700}, 35)  # the app never answered
    assert expired.timings(90) == (1.0, 25 / 1e9)

    still_waiting = RunState(start_ns=0, run_id="run_1")  # ended while waiting (shutdown, idle timeout)
    _observe(still_waiting, _requires_action("call_1"), 10)
    assert still_waiting.timings(50) == (1.0, 40 / 1e9)

    never_created = RunState(start_ns=0)  # the create call failed: no run, nothing waited or queued
    assert never_created.timings(50) == (None, None)
