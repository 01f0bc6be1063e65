"""Faults on the way to the Agents service and on the way to the backends, not covered elsewhere.

Agents service (our instrumentation's responsibility): a read timeout, SDK-retried 5xx, a failed submit, a
refused connection on create (sync and async), an outage mid-run, a failing step listing when a run ends. The
app must see exactly the SDK's exception (the same object, checked by a policy at the front of the pipeline)
and the run must still end as one correct trace.
Backends (end to end, the instrumented app feeding the exporter): Nexus answering 503 intermittently while
runs are exported (nothing duplicated, nothing lost), Application Insights ingestion hanging (the app never
waits, shutdown bounded). The exporters' own fault suites are tests/exporters/test_nexus_faults.py, test_otlp.py and
test_appinsights.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import AsyncHTTPPolicy, HTTPPolicy
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import StatusCode

from azure_ai_agents_emulator import (
    AgentsEmulator,
    agents_client,
    async_agents_client,
    project_client,
)
from azure_ai_agents_emulator.clients import AsyncFakeCredential, FakeCredential, auth_policy
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
from tests.helpers import ACTIVE, TOOL_OUTPUT, agents_run, agents_setup, metadata, projects_setup
from tests.helpers_async import agents_setup_async


# ---- helpers ----------------------------------------------------------------------------------------------
class Spy(HTTPPolicy):
    """First policy of the pipeline: remembers every exception leaving the SDK's pipeline, so a test can check
    that the app caught that very object (the instrumentation neither wrapped nor replaced it)."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []

    def send(self, request: Any) -> Any:
        try:
            return self.next.send(request)
        except BaseException as error:
            self.errors.append(error)
            raise


class AsyncSpy(AsyncHTTPPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []

    async def send(self, request: Any) -> Any:
        try:
            return await self.next.send(request)
        except BaseException as error:
            self.errors.append(error)
            raise


@pytest.fixture
def own_emulator() -> Iterator[AgentsEmulator]:
    """An emulator for one test (these tests block, stop or break it)."""
    with AgentsEmulator() as emu:
        yield emu


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tracker_open_runs() -> int:
    tracker = AzureAgentInstrumentor()._tracker  # BaseInstrumentor is a singleton: the instrumented one  # noqa: SLF001
    return tracker.open_runs if tracker is not None else 0


def finish(client: Any, thread_id: str, run: Any) -> Any:
    """The rest of the app's polling loop, from wherever the run is."""
    from azure.ai.agents.models import ToolOutput

    while run.status in ACTIVE:
        if run.status == "requires_action":
            outputs = [ToolOutput(tool_call_id=c.id, output=TOOL_OUTPUT) for c in run.required_action.submit_tool_outputs.tool_calls]
            run = client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
        else:
            run = client.runs.get(thread_id=thread_id, run_id=run.id)
    return run


def check_function_call_trace(telemetry: Any, service: Any, run: Any) -> Any:
    """One run span, completed, not an error, not cut short; its two steps and its one tool span (their sibling) under it."""
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.id"] == run.id
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed" == run.status
    assert run_span.status.status_code is StatusCode.UNSET
    assert "azure.ai.agents.run.unfinished" not in run_span.attributes
    children = sorted(s.name for s in telemetry.children(run_span))
    assert children == ["chat gpt-4o", "chat gpt-4o", "execute_tool get_weather"]
    [tool] = telemetry.named("execute_tool")
    calls = {c["id"] for s in service.get_steps(run.id) for c in s["step_details"].get("tool_calls", [])}
    assert {tool.attributes["gen_ai.tool.call.id"]} == calls
    return run_span


# ---- the Agents service -----------------------------------------------------------------------------------
def test_read_timeout_mid_run_reaches_the_app_unchanged_and_the_run_ends_later(own_emulator, instrument):
    telemetry = instrument()
    spy = Spy()
    client = agents_client(own_emulator, per_call_policies=[spy], retry_total=0)
    agent_id, thread_id = agents_setup(client)
    run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"))
    release, held = threading.Event(), threading.Event()

    def hold_one_poll(method: str, kind: str, payload: Any) -> Any:
        if kind == "run" and method == "GET" and not release.is_set():
            held.set()
            release.wait(30)  # the service answers only after the client gave up
        return None

    own_emulator.service.response_hook = hold_one_poll
    try:
        with pytest.raises(ServiceResponseError) as timed_out:
            client.runs.get(thread_id=thread_id, run_id=run.id, read_timeout=0.3)
    finally:
        release.set()
        own_emulator.service.response_hook = None
    assert held.is_set()
    assert timed_out.value is spy.errors[-1]  # the SDK's own exception object, untouched
    assert telemetry.run_spans() == []  # a failed poll ends nothing
    assert tracker_open_runs() == 1

    run = finish(client, thread_id, client.runs.get(thread_id=thread_id, run_id=run.id))
    check_function_call_trace(telemetry, own_emulator.service, run)
    assert tracker_open_runs() == 0


def test_5xx_retried_inside_the_sdk_leaves_the_trace_as_if_nothing_happened(own_emulator, instrument):
    telemetry = instrument()
    client = agents_client(own_emulator, retry_backoff_factor=0)  # the SDK's retry policy, without the waits
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "function_call")
    clean_shape = telemetry.shape()
    clean_events = [e.attributes["azure.ai.agents.run.status"] for e in telemetry.run_spans()[0].events]
    telemetry.exporter.clear()

    own_emulator.service.fail_next("get_run", 503, count=2)
    own_emulator.service.fail_next("submit_tool_outputs", 500, count=1)
    own_emulator.service.fail_next("create_run", 429, count=1, headers={"Retry-After": "0"})
    before = len(own_emulator.requests)
    run = agents_run(client, agent_id, thread_id, "function_call")
    assert run.status == "completed"
    assert len(own_emulator.requests) - before >= 4 + 5  # the faults were really hit and retried
    assert telemetry.shape() == clean_shape
    [run_span] = telemetry.run_spans()
    assert [e.attributes["azure.ai.agents.run.status"] for e in run_span.events] == clean_events
    assert run_span.status.status_code is StatusCode.UNSET


def test_a_failed_submit_reaches_the_app_and_the_resubmitted_call_is_one_tool_span(own_emulator, instrument):
    from azure.ai.agents.models import ToolOutput

    def attempt(client: Any, agent_id: str, thread_id: str) -> tuple[Any, tuple]:
        run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"))
        while run.status != "requires_action":
            run = client.runs.get(thread_id=thread_id, run_id=run.id)
        outputs = [ToolOutput(tool_call_id=c.id, output=TOOL_OUTPUT) for c in run.required_action.submit_tool_outputs.tool_calls]
        own_emulator.service.fail_next("submit_tool_outputs", 503, count=1)
        with pytest.raises(HttpResponseError) as failed:
            client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
        seen = (type(failed.value), failed.value.status_code, failed.value.message, failed.value.error.code)
        run = client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)  # again
        return finish(client, thread_id, run), seen

    client = agents_client(own_emulator, retry_total=0)
    agent_id, thread_id = agents_setup(client)
    _, uninstrumented = attempt(client, agent_id, thread_id)

    telemetry = instrument()
    run, instrumented = attempt(client, agent_id, thread_id)
    assert instrumented == uninstrumented  # the same error, status, message and service code
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    [tool] = telemetry.named("execute_tool")
    call_ids = {c["id"] for s in own_emulator.service.get_steps(run.id) for c in s["step_details"].get("tool_calls", [])}
    assert {tool.attributes["gen_ai.tool.call.id"]} == call_ids


@pytest.mark.parametrize("retries", ["none", "sdk default"])
def test_connection_refused_on_create_is_the_sdk_error_and_an_ended_error_span(instrument, retries):
    from azure.ai.agents import AgentsClient

    telemetry = instrument()
    spy = Spy()
    retry = {"retry_total": 0} if retries == "none" else {"retry_backoff_factor": 0}
    client = AgentsClient(
        endpoint=f"http://127.0.0.1:{closed_port()}/api/projects/p",
        credential=FakeCredential(),
        authentication_policy=auth_policy(),
        per_call_policies=[spy],
        **retry,
    )
    with pytest.raises(ServiceRequestError) as refused:
        client.runs.create(thread_id="thread_1", agent_id="asst_1")
    assert refused.value is spy.errors[-1]
    [run_span] = telemetry.run_spans()
    assert run_span.status.status_code is StatusCode.ERROR
    assert run_span.attributes["error.type"] == "ServiceRequestError"
    [event] = [e for e in run_span.events if e.name == "exception"]
    assert event.attributes["exception.type"].endswith("ServiceRequestError")
    assert run_span.end_time is not None and tracker_open_runs() == 0


def test_connection_refused_on_async_create_too(instrument):
    from azure.ai.agents.aio import AgentsClient

    telemetry = instrument()
    spy = AsyncSpy()

    async def main() -> BaseException:
        async with AgentsClient(
            endpoint=f"http://127.0.0.1:{closed_port()}/api/projects/p",
            credential=AsyncFakeCredential(),
            authentication_policy=auth_policy(),
            per_call_policies=[spy],
            retry_total=0,
        ) as client:
            try:
                await client.runs.create(thread_id="thread_1", agent_id="asst_1")
            except ServiceRequestError as error:
                return error
        raise AssertionError("no error")

    error = asyncio.run(main())
    assert error is spy.errors[-1]
    [run_span] = telemetry.run_spans()
    assert run_span.status.status_code is StatusCode.ERROR
    assert run_span.attributes["error.type"] == "ServiceRequestError"
    assert tracker_open_runs() == 0


def test_an_outage_mid_run_then_recovery_gives_one_complete_trace(instrument):
    telemetry = instrument()
    first = AgentsEmulator().start()
    port, service = first.port, first.service
    spy = Spy()
    client = agents_client(first, per_call_policies=[spy], retry_total=0)
    agent_id, thread_id = agents_setup(client)
    run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"))
    first.stop()  # the service goes away mid-run
    with pytest.raises(ServiceRequestError) as down:
        client.runs.get(thread_id=thread_id, run_id=run.id)
    assert down.value is spy.errors[-1]
    assert telemetry.run_spans() == [] and tracker_open_runs() == 1

    with AgentsEmulator(service, port=port):  # back, same state, same address
        run = finish(client, thread_id, client.runs.get(thread_id=thread_id, run_id=run.id))
        # The step listing runs off the app's path: keep the service up until the flush has waited for it.
        assert telemetry.tracer_provider.force_flush()
    check_function_call_trace(telemetry, service, run)


@pytest.mark.parametrize("surface", ["agents", "agents async", "projects"])
def test_a_failing_step_listing_when_the_run_ends_costs_the_app_at_most_one_retry(own_emulator, instrument, surface):
    """The steps endpoint answers 503 when the run completes: the app's poll still returns the completed run,
    the run span ends, and the instrumentation's own listing (the app never asked for it) does not retry."""
    telemetry = instrument()
    service = own_emulator.service
    fast = {"retry_backoff_factor": 0}  # the app's retry policy (immediate retries keep the test fast)

    def steps_requests() -> int:
        return sum(1 for _m, path in own_emulator.requests if path.endswith("/steps"))

    if surface == "agents":
        client = agents_client(own_emulator, **fast)
        agent_id, thread_id = agents_setup(client)
        run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
        service.fail_next("list_run_steps", 503, count=1000)
        before = steps_requests()
        run = finish(client, thread_id, run)
    elif surface == "projects":
        legacy = project_client(own_emulator, **fast).agents
        agent_id, thread_id = projects_setup(project_client(own_emulator, **fast))
        run = legacy.create_run(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
        service.fail_next("list_run_steps", 503, count=1000)
        before = steps_requests()
        while run.status in ACTIVE:
            run = legacy.get_run(thread_id=thread_id, run_id=run.id)
    else:

        async def main() -> Any:
            async with async_agents_client(own_emulator, **fast) as client:
                agent_id, thread_id = await agents_setup_async(client)
                run = await client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
                service.fail_next("list_run_steps", 503, count=1000)
                nonlocal before
                before = steps_requests()
                while run.status in ACTIVE:
                    run = await client.runs.get(thread_id=thread_id, run_id=run.id)
                return run

        before = 0
        run = asyncio.run(main())
    assert run.status == "completed"
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert steps_requests() - before <= 2, steps_requests() - before


# ---- backends, fed by the instrumented app ------------------------------------------------------------------
def test_nexus_answering_503_intermittently_loses_and_duplicates_nothing(emulator, instrument):
    from opentelemetry.exporter.nexus import NexusSpanExporter
    from tests.fakes.nexus_server import CREATE_SPAN, CREATE_TRACE, NexusServer

    runs = 6
    with NexusServer() as nexus:
        exporter = NexusSpanExporter(
            api_key=nexus.api_key, endpoint=nexus.url, backoff_base=0.01, backoff_max=0.05
        )
        telemetry = instrument()
        processor = BatchSpanProcessor(exporter, schedule_delay_millis=20)
        telemetry.tracer_provider.add_span_processor(processor)
        nexus.fail_next(CREATE_TRACE, 503, count=2)
        nexus.fail_next(CREATE_SPAN, 502, count=3)
        nexus.fail_next("*", 429, count=2, headers={"Retry-After": "0"})
        client = agents_client(emulator)
        agent_id, thread_id = agents_setup(client, name="nexus-agent")
        run_ids = [agents_run(client, agent_id, thread_id, "function_call").id for _ in range(runs)]
        assert processor.force_flush(10_000) and exporter.force_flush(10_000)
        assert nexus.wait_for_traces(runs, with_spans=4 * runs)
        traces = nexus.traces
        processor.shutdown()

    assert len(traces) == runs  # one Nexus trace per run: none lost, none duplicated
    local = {s.attributes["azure.ai.agents.run.id"]: s for s in telemetry.run_spans()}
    assert set(local) == set(run_ids)
    for trace in traces:
        assert sorted(s["name"] for s in trace["spans"]) == sorted(
            ["execute_tool get_weather", "chat gpt-4o", "chat gpt-4o", trace["name"]]
        )
    assert nexus.injected_count == 7  # every injected fault was hit once and retried past
    assert not [k for k in exporter.stats if k.startswith(("spans_dropped", "spans_rejected"))]


def test_hanging_application_insights_ingestion_never_blocks_the_app_and_shutdown_is_bounded(emulator, monkeypatch):
    pytest.importorskip("azure.monitor.opentelemetry.exporter")
    from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry
    from tests.fakes.appinsights_server import AppInsightsReceiver

    for name in ("APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED", "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
                 "APPLICATIONINSIGHTS_SDKSTATS_DISABLED"):
        monkeypatch.setenv(name, "true")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")  # export attempts start while the app runs
    hang = 60.0
    with AppInsightsReceiver() as receiver:
        receiver.delay = hang  # every track request is held (until the receiver stops)
        monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", receiver.connection_string)
        handle = configure_telemetry(
            "azure_monitor", set_global=False, exporter_options={"azure_monitor": {"disable_offline_storage": True}}
        )
        try:
            client = agents_client(emulator)
            agent_id, thread_id = agents_setup(client, name="ai-agent")
            started = time.monotonic()
            for _ in range(3):
                assert agents_run(client, agent_id, thread_id, "function_call").status == "completed"
            assert time.monotonic() - started < hang / 4  # the runs never waited on the held exports
        finally:
            started = time.monotonic()
            finished = handle.shutdown(timeout_s=1.0)
            elapsed = time.monotonic() - started
    assert finished is False  # nothing could be delivered in time, and it says so
    assert elapsed < 3.0, elapsed

