"""Application Insights: agent runs arrive as GenAI dependencies with intact operation ids.

Real SDK -> emulator -> our instrumentation -> ``AzureMonitorTraceExporter`` -> a local ``/v2.1/track`` receiver;
``configure_azure_monitor()`` (which installs global providers) runs in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from azure_ai_agents_emulator import agents_client
from tests.fakes.appinsights_server import (
    AppInsightsReceiver,
    base_data,
    base_type_of,
)
from tests.helpers import RATE_LIMIT_MESSAGE, agents_run, agents_setup, rate_limited_scenario

pytest.importorskip("azure.monitor.opentelemetry.exporter")
from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter  # noqa: E402

APPS = Path(__file__).parents[1] / "apps"
QUIET_ENV = {
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}
GENAI = "GenAI | az.ai.agents"
RETRYABLE_ITEM = 503


@pytest.fixture(autouse=True)
def _no_microsoft_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in QUIET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)


@pytest.fixture
def receiver():
    with AppInsightsReceiver() as server:
        yield server


def _exporter(receiver: AppInsightsReceiver, tracer_provider: Any = None, **kwargs: Any) -> AzureMonitorTraceExporter:
    kwargs.setdefault("disable_offline_storage", True)
    return AzureMonitorTraceExporter(
        connection_string=receiver.connection_string, tracer_provider=tracer_provider, **kwargs
    )


def _run(emulator, instrument, receiver, scenario: str = "function_call", **exporter_kwargs: Any):
    telemetry = instrument()
    exporter = _exporter(receiver, telemetry.tracer_provider, **exporter_kwargs)
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = agents_run(client, agent_id, thread_id, scenario)
    telemetry.tracer_provider.force_flush()  # the run span ends once its steps are listed, off the app's path
    return telemetry, run, exporter


def _by_id(envelopes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {base_data(e)["id"]: e for e in envelopes if base_type_of(e) == "RemoteDependencyData"}


def _hex_ids(span: ReadableSpan) -> tuple[str, str]:
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def test_run_renders_as_genai_dependencies_with_one_operation_id(emulator, instrument, receiver):
    telemetry, run, _ = _run(emulator, instrument, receiver)
    [run_span] = telemetry.run_spans()
    ours = [s for s in telemetry.spans if s.context.trace_id == run_span.context.trace_id]
    assert len(ours) == 4  # invoke_agent, two run_step, one execute_tool
    assert receiver.wait_for(lambda r: {_hex_ids(s)[1] for s in ours} <= set(_by_id(r.envelopes))), receiver.requests

    trace_id, run_span_id = _hex_ids(run_span)
    dependencies = _by_id(receiver.envelopes)
    run_env = dependencies[run_span_id]
    assert run_env["name"] == "Microsoft.ApplicationInsights.RemoteDependency"
    assert run_env["iKey"] == receiver.instrumentation_key
    data = base_data(run_env)
    assert data["type"] == GENAI
    assert data["name"] == "invoke_agent weather-agent"
    assert data["success"] is True
    assert data["properties"]["azure.ai.agents.run.id"] == run.id
    assert data["properties"]["gen_ai.operation.name"] == "invoke_agent"
    assert data["properties"]["gen_ai.provider.name"] == "microsoft.foundry"
    assert run_env["tags"]["ai.operation.id"] == trace_id
    assert run_env["tags"]["ai.operation.name"] == "invoke_agent weather-agent"
    assert "ai.operation.parentId" not in run_env["tags"]  # the root of the operation

    by_span = {_hex_ids(s)[1]: s for s in ours}
    for span_id, span in by_span.items():
        envelope = dependencies[span_id]
        assert envelope["tags"]["ai.operation.id"] == trace_id, span.name
        assert base_data(envelope)["name"] == span.name
        if span.parent is not None:  # the tree survives: parentId is the parent span's id
            assert envelope["tags"]["ai.operation.parentId"] == format(span.parent.span_id, "016x"), span.name
        if span.name.startswith(("invoke_agent", "chat ", "execute_tool")):
            assert base_data(envelope)["type"] == GENAI, span.name
    [tool] = [dependencies[i] for i, s in by_span.items() if s.name.startswith("execute_tool")]
    assert base_data(tool)["properties"]["gen_ai.tool.name"] == "get_weather"
    # run status events become trace messages of the same operation, attached to the run
    messages = [e for e in receiver.envelopes if base_type_of(e) == "MessageData"]
    assert messages and all(m["tags"]["ai.operation.id"] == trace_id for m in messages)
    assert {m["tags"]["ai.operation.parentId"] for m in messages} == {run_span_id}


def test_failed_run_is_an_unsuccessful_dependency(emulator, instrument, receiver):
    telemetry, run, _ = _run(emulator, instrument, receiver, scenario="failed")
    assert run.status == "failed"
    [run_span] = telemetry.run_spans()
    trace_id, span_id = _hex_ids(run_span)
    assert receiver.wait_for(lambda r: span_id in _by_id(r.envelopes))
    data = base_data(_by_id(receiver.envelopes)[span_id])
    assert data["type"] == GENAI
    assert data["success"] is False
    assert data["properties"]["azure.ai.agents.run.status"] == "failed"  # (the exporter drops error.type)


def test_a_failed_run_reaches_failures_as_an_exception_with_the_services_reason(emulator, instrument, receiver):
    """The exporter drops ``error.type`` and the status description from dependencies (``resultCode`` 0): the
    reason reaches Application Insights as an exception (``ExceptionData``) of the run's operation, attached to
    the run, with the service's error code as its type; the failed tool call's reason likewise."""
    scenario = rate_limited_scenario()
    emulator.service.scenarios[scenario.name] = scenario
    telemetry = instrument()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(_exporter(receiver, telemetry.tracer_provider)))
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    try:
        run = agents_run(client, agent_id, thread_id, scenario.name)
        failed_tool_run = agents_run(client, agent_id, thread_id, "failed")
    finally:
        emulator.service.scenarios.pop(scenario.name, None)
    telemetry.tracer_provider.force_flush()
    assert run.status == failed_tool_run.status == "failed"
    [run_span] = [s for s in telemetry.run_spans() if s.attributes["azure.ai.agents.run.id"] == run.id]
    trace_id, span_id = _hex_ids(run_span)

    def exceptions(envelopes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        found = {}
        for envelope in envelopes:
            if base_type_of(envelope) == "ExceptionData":
                [details] = base_data(envelope)["exceptions"]
                found[details["typeName"]] = {**details, "tags": envelope["tags"], "name": envelope["name"]}
        return found

    expected = {"rate_limit_exceeded", "server_error"}
    assert receiver.wait_for(lambda r: expected <= set(exceptions(r.envelopes))), receiver.envelopes
    found = exceptions(receiver.envelopes)
    rate_limit = found["rate_limit_exceeded"]
    assert rate_limit["name"] == "Microsoft.ApplicationInsights.Exception"
    assert rate_limit["message"] == RATE_LIMIT_MESSAGE
    assert rate_limit["tags"]["ai.operation.id"] == trace_id
    assert rate_limit["tags"]["ai.operation.parentId"] == span_id  # listed with the failed run's dependency
    assert base_data(_by_id(receiver.envelopes)[span_id])["success"] is False
    # the failed run with a failed tool call: the run's reason and the tool call's, each on its own span
    messages = sorted(e["message"] for e in receiver.of_type("ExceptionData") for e in base_data(e)["exceptions"])
    assert messages == ["Code interpreter session crashed", RATE_LIMIT_MESSAGE, "Something went wrong"]


def test_gzip_and_ndjson_bodies_are_accepted(receiver):
    """The receiver takes what Breeze takes: a gzip'd JSON array, or newline-delimited JSON."""
    import gzip
    import urllib.request

    envelope = {"name": "Microsoft.ApplicationInsights.Event", "time": "2025-01-01T00:00:00Z",
                "iKey": receiver.instrumentation_key, "data": {"baseType": "EventData", "baseData": {"name": "e"}}}
    bodies = [
        (gzip.compress(json.dumps([envelope, envelope]).encode()), {"Content-Encoding": "gzip"}),
        (("\n".join([json.dumps(envelope)] * 3)).encode(), {"Content-Type": "application/x-json-stream"}),
    ]
    for body, headers in bodies:
        request = urllib.request.Request(receiver.url + "/v2.1/track", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.load(response)
        assert answer["errors"] == [] and answer["itemsAccepted"] == answer["itemsReceived"]
    assert len(receiver.envelopes) == 5
    assert [r.content_encoding for r in receiver.requests] == ["gzip", ""]


def test_server_errors_are_retried_a_bounded_number_of_times(emulator, instrument, receiver):
    telemetry, _, _ = _run(emulator, instrument, receiver)
    spans = telemetry.spans
    receiver.clear()

    exporter = _exporter(receiver, telemetry.tracer_provider, retry_total=2, retry_backoff_factor=0)
    receiver.fail_next(500, count=1000)
    assert exporter.export(spans) is SpanExportResult.FAILURE  # no exception, no crash
    assert len(receiver.requests) == 3  # one try + retry_total
    assert receiver.envelopes == []

    # The SDK defaults are bounded too (retry_status=3: four attempts); backoff disabled to keep the test fast.
    receiver.clear()
    receiver.fail_next(503, count=1000)
    default = _exporter(receiver, telemetry.tracer_provider, retry_backoff_factor=0)
    assert default.export(spans) is SpanExportResult.FAILURE
    assert len(receiver.requests) == 4

    receiver.clear()  # ingestion recovers: the same exporter delivers again
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert len(_by_id(receiver.envelopes)) == len(spans)


def test_dropped_connection_does_not_break_the_app(emulator, instrument, receiver):
    receiver.fail_next(0, count=1000)  # ingestion closes every connection without answering
    telemetry, run, exporter = _run(emulator, instrument, receiver, retry_total=0)
    assert run.status == "completed"  # the app finished; exports failed quietly in the processor
    assert receiver.requests and receiver.envelopes == []
    assert len(telemetry.run_spans()) == 1


def test_partial_success_keeps_accepted_items_and_drops_rejected_ones(emulator, instrument, receiver, caplog):
    telemetry, _, _ = _run(emulator, instrument, receiver)
    spans = [s for s in telemetry.spans if s.name.startswith(("invoke_agent", "chat ", "execute_tool"))]
    receiver.clear()
    exporter = _exporter(receiver, telemetry.tracer_provider, retry_total=0)
    run_name = "invoke_agent weather-agent"
    receiver.partial_success(lambda e: base_data(e).get("name") == run_name, status_code=400, message="bad item")
    with caplog.at_level(logging.ERROR, logger="azure.monitor.opentelemetry.exporter"):
        result = exporter.export(spans)
    assert result is SpanExportResult.FAILURE  # reported, not raised
    [request] = receiver.requests
    assert request.status == 206 and request.accepted == request.item_count - 1
    names = [base_data(e)["name"] for e in receiver.of_type("RemoteDependencyData")]
    assert run_name not in names and len(names) == len(spans) - 1
    assert "Data drop 400" in caplog.text


def test_partial_success_retryable_items_are_resent_from_offline_storage(emulator, instrument, receiver, tmp_path):
    telemetry, _, _ = _run(emulator, instrument, receiver)
    spans = [s for s in telemetry.spans if s.name.startswith(("invoke_agent", "chat ", "execute_tool"))]
    receiver.clear()
    exporter = _exporter(
        receiver,
        telemetry.tracer_provider,
        disable_offline_storage=False,
        storage_directory=str(tmp_path),
        storage_min_retry_interval=0,
        retry_total=0,
    )
    run_name = "invoke_agent weather-agent"
    receiver.partial_success(lambda e: base_data(e).get("name") == run_name, status_code=RETRYABLE_ITEM)
    exporter.export(spans)
    assert run_name not in {base_data(e).get("name") for e in receiver.envelopes}
    assert list(tmp_path.rglob("*.blob")), "the rejected item was not persisted for retry"

    # the next successful export drains the offline storage: the run dependency arrives after all
    assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
    assert receiver.wait_for(lambda r: run_name in {base_data(e).get("name") for e in r.envelopes})
    assert [r.status for r in receiver.requests] == [206, 200, 200]
    exporter.shutdown()


def _distro_env(emulator, receiver, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_", "NEXUS_"))}
    env.update(QUIET_ENV)
    env.update(
        AZURE_AI_AGENTS_ENDPOINT=emulator.endpoint,
        APPLICATIONINSIGHTS_CONNECTION_STRING=receiver.connection_string,
        OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="otel",  # no Azure VM/App Service detection (IMDS lives off-host)
        OTEL_SERVICE_NAME="distro-app",
        AGENT_NAME="distro-agent",
    )
    env.update(extra)
    return env


def _run_distro_app(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(APPS / "distro_app.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_tree(receiver: AppInsightsReceiver, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    deps = receiver.of_type("RemoteDependencyData")
    [run_env] = [e for e in deps if base_data(e)["properties"].get("azure.ai.agents.run.id") == run_id
                 and base_data(e)["name"].startswith("invoke_agent")]
    operation = run_env["tags"]["ai.operation.id"]
    return run_env, [e for e in deps if e["tags"].get("ai.operation.id") == operation]


@pytest.mark.parametrize("azure_sdk_tracing", ["on", "off"])
def test_configure_azure_monitor_in_a_subprocess(emulator, receiver, azure_sdk_tracing):
    """configure_azure_monitor() + AzureAgentInstrumentor().instrument(): one operation per run.

    The distro's default sampler is rate-limited (5 traces/s, re-deciding for children of an unsampled-rate
    parent), so a burst of short runs loses whole runs or some of their spans: sample everything here
    (``OTEL_TRACES_SAMPLER=always_on``). With the distro's ``azure_sdk`` instrumentation on, azure-core's
    and Microsoft's own agent spans nest inside our run, still one operation.
    """
    env = _distro_env(emulator, receiver, OTEL_TRACES_SAMPLER="always_on", AZURE_SDK_TRACING=azure_sdk_tracing)
    app = _run_distro_app(env)
    assert app["status"] == "RunStatus.COMPLETED"
    # the subprocess flushed at exit: everything is already here
    run_env, operation = _run_tree(receiver, app["run_id"])
    data = base_data(run_env)
    assert data["type"] == GENAI and data["name"] == "invoke_agent distro-agent"
    assert run_env["tags"]["ai.cloud.role"] == "distro-app"
    assert "ai.operation.parentId" not in run_env["tags"]
    names = {base_data(e)["name"] for e in operation}
    assert {"chat gpt-4o", "execute_tool get_weather"} <= names
    ids = {base_data(e)["id"] for e in operation}
    for envelope in operation:  # every parentId points inside the operation: the tree is intact
        if envelope is not run_env:
            assert envelope["tags"]["ai.operation.parentId"] in ids, base_data(envelope)["name"]
    assert sum(1 for e in operation if base_data(e)["name"].startswith("invoke_agent")) == 1
