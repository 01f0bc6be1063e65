"""Never break the host app: bad service data, a broken tracer, SDK errors, uninstrument, bounded registry."""

from __future__ import annotations

from typing import Any

import pytest
import wrapt
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from opentelemetry.trace import StatusCode

from azure_ai_agents_emulator import agents_client, project_client
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
from opentelemetry.instrumentation.azure_ai_agents.surfaces import SURFACES
from tests.helpers import agents_run, agents_setup, projects_run, projects_setup


def _originals() -> dict[tuple[str, str, str], Any]:
    import importlib

    found = {}
    for s in SURFACES:
        try:
            owner = getattr(importlib.import_module(s.module), s.cls)
        except (ImportError, AttributeError):
            continue
        found[(s.module, s.cls, s.method)] = owner.__dict__.get(s.method, "<inherited>")
    return found


def test_uninstrument_restores_the_sdk_classes_and_stops_spans(emulator):
    from azure.ai.agents.operations import RunsOperations
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    before = _originals()
    assert len(before) >= 30  # both SDK generations, sync and async, are installed in the test environment
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = AzureAgentInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    instrumentor.instrument(tracer_provider=provider)  # twice is harmless
    assert _originals() != before
    assert isinstance(RunsOperations.__dict__["get"], wrapt.FunctionWrapper)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "message")
    provider.force_flush()  # the run span ends once its steps are listed, off the app's path
    names = sorted(s.name for s in exporter.get_finished_spans())  # instrumentation was live
    assert names == ["chat gpt-4o", "create_agent weather-agent", "invoke_agent weather-agent"]

    instrumentor.uninstrument()
    assert _originals() == before
    assert "get" not in RunsOperations.__dict__  # inherited methods are inherited again, not copied down
    exporter.clear()
    agents_run(client, agent_id, thread_id, "function_call")
    assert exporter.get_finished_spans() == ()


def test_sdk_exceptions_pass_through_unchanged_and_land_on_the_run_span(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, _ = agents_setup(client)
    with pytest.raises(ResourceNotFoundError) as instrumented_error:
        client.runs.create(thread_id="thread_does_not_exist", agent_id=agent_id)
    [run_span] = telemetry.run_spans()
    assert run_span.status.status_code is StatusCode.ERROR
    assert run_span.attributes["error.type"] == "ResourceNotFoundError"
    assert [e.name for e in run_span.events] == ["exception"]

    with pytest.raises(ResourceNotFoundError):  # polling an unknown run is not ours to touch
        client.runs.get(thread_id="thread_x", run_id="run_does_not_exist")
    assert len(telemetry.spans) == 1
    assert instrumented_error.value.status_code == 404


def test_service_errors_mid_run_reach_the_app_and_the_run_goes_on(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata={"scenario": "message"})
    emulator.service.fail_next("run", 500, count=1)
    with pytest.raises(HttpResponseError) as err:
        client.runs.get(thread_id=thread_id, run_id=run.id, retry_total=0)
    assert err.value.status_code == 500
    while run.status in ("queued", "in_progress"):
        run = client.runs.get(thread_id=thread_id, run_id=run.id)
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"


def _mangle(method: str, kind: str, payload: dict) -> dict:
    """Wrong types everywhere the instrumentation looks; the SDK models still load (they are lazy)."""
    if kind == "run":
        payload = dict(payload)
        payload["usage"] = {"prompt_tokens": "many", "completion_tokens": None}
        payload["last_error"] = "not an object"
        payload["created_at"] = "yesterday"
        payload["model"] = 42
        payload["incomplete_details"] = ["wrong"]
    if kind == "step_list":
        payload = dict(payload)
        payload["data"] = [{"id": None}, 17, {"id": "step_x", "created_at": -5, "step_details": {"tool_calls": "no"}}] + list(
            payload.get("data") or []
        )
    return payload


def test_malformed_service_payloads_never_break_the_app(emulator, instrument):
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    emulator.service.response_hook = _mangle
    try:
        plain = agents_run(client, agent_id, thread_id, "function_call")
        telemetry = instrument()
        run = agents_run(client, agent_id, thread_id, "function_call")
        listed = list(client.run_steps.list(thread_id=thread_id, run_id=run.id))
    finally:
        emulator.service.response_hook = None
    assert run.status == plain.status == "completed"
    assert run.usage["prompt_tokens"] == "many"  # the app sees exactly what the service sent
    assert listed[1] == 17
    [run_span] = telemetry.run_spans()
    assert "gen_ai.usage.input_tokens" not in run_span.attributes
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    for span in telemetry.spans:
        for value in span.attributes.values():
            assert isinstance(value, (str, bool, int, float, tuple))


class _ExplodingTracer:
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer is broken")

    start_as_current_span = start_span


class _ExplodingProvider:
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return _ExplodingTracer()


def test_a_failing_tracer_never_reaches_the_app(emulator):
    instrumentor = AzureAgentInstrumentor()
    instrumentor.instrument(tracer_provider=_ExplodingProvider())
    try:
        client = agents_client(emulator)
        agent_id, thread_id = agents_setup(client)
        assert agents_run(client, agent_id, thread_id, "function_call").status == "completed"
        legacy = project_client(emulator)
        agent_id, thread_id = projects_setup(legacy)
        run, steps = projects_run(legacy, agent_id, thread_id, "failed", list_steps=True)
        assert run.status == "failed" and steps.data
    finally:
        instrumentor.uninstrument()


def test_runs_never_polled_to_the_end_are_bounded(emulator, instrument):
    telemetry = instrument(max_open_runs=2)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    runs = [
        client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata={"scenario": "cancel"}) for _ in range(3)
    ]
    [evicted] = telemetry.run_spans()
    assert evicted.attributes["azure.ai.agents.run.id"] == runs[0].id
    assert evicted.attributes["azure.ai.agents.run.unfinished"] == "evicted"

    AzureAgentInstrumentor().uninstrument()  # ends what is still open, marked unfinished
    ended = {s.attributes["azure.ai.agents.run.id"]: s for s in telemetry.run_spans()}
    assert set(ended) == {r.id for r in runs}
    assert {ended[r.id].attributes["azure.ai.agents.run.unfinished"] for r in runs[1:]} == {"shutdown"}


def test_idle_runs_are_ended_when_the_next_run_starts(emulator, instrument):
    telemetry = instrument(run_idle_timeout=0)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    first = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata={"scenario": "cancel"})
    client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata={"scenario": "cancel"})
    [idle] = telemetry.run_spans()
    assert idle.attributes["azure.ai.agents.run.id"] == first.id
    assert idle.attributes["azure.ai.agents.run.unfinished"] == "idle_timeout"


def _auto_function() -> set:
    def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        return "sunny"

    return {get_weather}


def test_a_failing_tracer_never_reaches_streams_helpers_or_functions(emulator):
    """Streams, polling helpers and SDK-executed functions with a tracer that raises everywhere."""
    import asyncio

    from azure_ai_agents_emulator import async_agents_client
    from tests.helpers import metadata

    instrumentor = AzureAgentInstrumentor()
    instrumentor.instrument(tracer_provider=_ExplodingProvider())
    try:
        client = agents_client(emulator)
        agent_id, thread_id = agents_setup(client)
        client.enable_auto_function_calls(_auto_function())
        with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call")) as stream:
            events = [event for event, _data, _ in stream]
        assert events[-2:] == ["thread.run.completed", "done"]
        run = client.runs.create_and_process(
            thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0
        )
        assert run.status == "completed"

        async def main():
            async with async_agents_client(emulator) as aclient:
                async with await aclient.runs.stream(
                    thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")
                ) as astream:
                    return [event async for event, _data, _ in astream]

        assert asyncio.run(main())[-1] == "done"
    finally:
        instrumentor.uninstrument()


def _mangle_stream(method: str, kind: str, payload: Any) -> Any:
    """Streamed events with wrong types wherever the instrumentation looks."""
    if not kind.startswith("stream:") or not isinstance(payload, dict):
        return payload
    payload = dict(payload)
    if kind.startswith("stream:thread.run.step."):
        payload.update(step_details={"tool_calls": "not a list"}, created_at="soon", run_id=7)
    elif kind.startswith("stream:thread.run."):
        payload.update(usage=["nope"], required_action={"type": 5}, model={"a": 1})
    return payload


def test_malformed_stream_events_never_break_the_app(emulator, instrument):
    from tests.helpers import metadata

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    emulator.service.response_hook = _mangle_stream
    try:
        with client.runs.stream(
            thread_id=thread_id, agent_id=agent_id, metadata=metadata("code_interpreter")
        ) as stream:
            events = [event for event, _data, _ in stream]
    finally:
        emulator.service.response_hook = None
    assert events[-1] == "done"
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    for span in telemetry.spans:
        for value in span.attributes.values():
            assert isinstance(value, (str, bool, int, float, tuple))


@pytest.mark.parametrize("hidden, agent", [("azure.ai.agents", "legacy-agent"), ("azure.ai.projects", "current-agent")])
def test_instrument_works_with_only_one_sdk_generation_installed(hidden, agent):
    import json
    import subprocess
    import sys
    from pathlib import Path

    app = Path(__file__).parents[1] / "apps" / "one_sdk_app.py"
    done = subprocess.run([sys.executable, str(app), hidden], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert hidden not in report["loaded"]
    assert report["status"].endswith("COMPLETED")
    assert f"invoke_agent {agent}" in report["spans"]
    assert any(name.startswith("execute_tool") for name in report["spans"])


def test_a_reused_run_id_ends_the_older_span_instead_of_orphaning_it(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    first = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata={"scenario": "cancel"})
    emulator.service.response_hook = lambda method, kind, payload: {**payload, "id": first.id} if kind == "run" else None
    try:
        second = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata={"scenario": "cancel"})
    finally:
        emulator.service.response_hook = None
    assert second.id == first.id  # the (malformed) service answer the app got
    [replaced] = telemetry.run_spans()
    assert replaced.attributes["azure.ai.agents.run.unfinished"] == "replaced"
    AzureAgentInstrumentor().uninstrument()
    assert sorted(s.attributes["azure.ai.agents.run.unfinished"] for s in telemetry.run_spans()) == [
        "replaced",
        "shutdown",
    ]
