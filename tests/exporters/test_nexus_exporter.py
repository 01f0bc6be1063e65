"""NexusSpanExporter against the local Nexus emulator over real HTTP: mapping, runs, config, secrecy."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from opentelemetry.exporter.nexus import NexusSpanExporter
from tests.fakes.nexus_server import CREATE_TRACE, NexusServer

AGENT = "weather-bot"
STEP = {"azure.ai.agents.run_step.id": "step_1"}  # step spans carry no gen_ai.operation.name
FAST = dict(backoff_base=0.05, backoff_max=0.2, export_timeout=5.0, shutdown_timeout=5.0)
RUN = {gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent", gen_ai.GEN_AI_AGENT_NAME: AGENT}


@pytest.fixture
def server() -> Iterator[NexusServer]:
    with NexusServer() as nexus:
        yield nexus


def make_exporter(server: NexusServer, **overrides: Any) -> NexusSpanExporter:
    options: dict[str, Any] = dict(api_key=server.api_key, endpoint=server.url, **FAST)
    options.update(overrides)
    return NexusSpanExporter(**options)


def make_provider(exporter: NexusSpanExporter, batch: bool = True) -> tuple[TracerProvider, Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    processor = (
        BatchSpanProcessor(exporter, max_export_batch_size=2, schedule_delay_millis=50)
        if batch
        else SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    return provider, provider.get_tracer("test")


def run_agent(tracer: Tracer, *, fail: bool = False, content: bool = False) -> None:
    """A run-shaped trace: invoke_agent root, 2 run_step spans, 2 execute_tool spans."""
    attributes = {
        gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent",
        gen_ai.GEN_AI_PROVIDER_NAME: "microsoft.foundry",
        gen_ai.GEN_AI_SYSTEM: "az.ai.agents",
        gen_ai.GEN_AI_AGENT_ID: "asst_123",
        gen_ai.GEN_AI_AGENT_NAME: AGENT,
        gen_ai.GEN_AI_CONVERSATION_ID: "thread_1",
        "gen_ai.thread.id": "thread_1",
        gen_ai.GEN_AI_REQUEST_MODEL: "gpt-4o",
    }
    if content:
        attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}]
        )
        attributes[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps([{"type": "text", "content": "Be brief."}])
    with tracer.start_as_current_span(f"invoke_agent {AGENT}", kind=SpanKind.CLIENT, attributes=attributes) as run:
        run.set_attribute("azure.ai.agents.run.id", "run_1")
        with tracer.start_as_current_span("run_step tool_calls", attributes={"azure.ai.agents.run_step.id": "step_1"}):
            for index, tool in enumerate(("get_weather", "get_time")):
                tool_attributes = {
                    gen_ai.GEN_AI_OPERATION_NAME: "execute_tool",
                    gen_ai.GEN_AI_TOOL_NAME: tool,
                    gen_ai.GEN_AI_TOOL_CALL_ID: f"call_{index}",
                    gen_ai.GEN_AI_TOOL_TYPE: "function",
                }
                if content:
                    tool_attributes[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS] = json.dumps({"city": "Paris"})
                    tool_attributes[gen_ai.GEN_AI_TOOL_CALL_RESULT] = json.dumps({"value": index})
                with tracer.start_as_current_span(f"execute_tool {tool}", attributes=tool_attributes):
                    pass
        with tracer.start_as_current_span(
            "run_step message_creation", attributes={"azure.ai.agents.run_step.id": "step_2"}
        ):
            pass
        run.set_attribute(gen_ai.GEN_AI_RESPONSE_MODEL, "gpt-4o-2024-08-06")
        run.set_attribute(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, 120)
        run.set_attribute(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, 30)
        if content:
            run.set_attribute(
                gen_ai.GEN_AI_OUTPUT_MESSAGES,
                json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Sunny"}]}]),
            )
        if fail:
            run.set_attribute("azure.ai.agents.run.status", "failed")
            run.set_attribute("error.type", "server_error")
            run.set_status(Status(StatusCode.ERROR, "server_error: the run failed"))
        else:
            run.set_attribute("azure.ai.agents.run.status", "completed")


def assert_tree(trace: dict[str, Any], expected_spans: int) -> dict[str, dict[str, Any]]:
    """Exactly one top-level span, every other span's parent is a span of the same trace. Returns by name."""
    spans = trace["spans"]
    assert len(spans) == expected_spans
    ids = {s["id"] for s in spans}
    assert [s for s in spans if s["parent_span_id"] is None] == [s for s in spans if s["name"] == trace["name"]]
    assert all(s["parent_span_id"] in ids for s in spans if s["parent_span_id"] is not None)
    return {s["name"]: s for s in spans}


def test_run_trace_becomes_exactly_one_nexus_trace(server: NexusServer) -> None:
    exporter = make_exporter(server)
    provider, tracer = make_provider(exporter)
    run_agent(tracer)
    assert provider.force_flush(5000)  # the SDK's flush: delivered when it returns
    traces = server.traces
    assert len(traces) == 1 and server.rejected_count == 0
    trace = traces[0]
    assert trace["agent_id"] == AGENT and trace["name"] == f"invoke_agent {AGENT}" and trace["status"] == "success"
    assert trace["started_at"].endswith("Z") and trace["ended_at"] >= trace["started_at"]
    metadata = trace["metadata"]
    assert metadata["run_id"] == "run_1" and metadata["thread_id"] == "thread_1" and metadata["agent_id"] == "asst_123"
    assert metadata["input_tokens"] == 120 and metadata["output_tokens"] == 30 and metadata["run_status"] == "completed"
    assert metadata["model"] == "gpt-4o-2024-08-06" and len(metadata["otel_trace_id"]) == 32
    assert "otel_parent_span_id" not in metadata and len(metadata["otel_span_id"]) == 16
    by_name = assert_tree(trace, 5)
    root = by_name[f"invoke_agent {AGENT}"]
    assert by_name["run_step tool_calls"]["parent_span_id"] == root["id"]
    assert by_name["run_step message_creation"]["parent_span_id"] == root["id"]
    assert by_name["execute_tool get_weather"]["parent_span_id"] == by_name["run_step tool_calls"]["id"]
    assert by_name["execute_tool get_time"]["parent_span_id"] == by_name["run_step tool_calls"]["id"]
    tool_input = by_name["execute_tool get_weather"]["input"]["attributes"]
    assert tool_input[gen_ai.GEN_AI_TOOL_CALL_ID] == "call_0" and gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS not in tool_input
    assert all(s["status"] == "ok" for s in trace["spans"])
    provider.shutdown()
    assert len(server.traces) == 1


def test_batch_processor_split_batches_still_one_trace(server: NexusServer) -> None:
    exporter = make_exporter(server)
    provider, tracer = make_provider(exporter)
    for _ in range(2):
        run_agent(tracer)
    assert provider.force_flush()
    assert len(server.traces) == 2 and server.rejected_count == 0
    for trace in server.traces:
        assert_tree(trace, 5)
    provider.shutdown()


def test_failed_run_is_an_error_trace(server: NexusServer) -> None:
    exporter = make_exporter(server)
    provider, tracer = make_provider(exporter)
    run_agent(tracer, fail=True)
    assert provider.force_flush(5000)
    (trace,) = server.traces
    assert trace["status"] == "error" and trace["metadata"]["error_type"] == "server_error"
    root = assert_tree(trace, 5)[f"invoke_agent {AGENT}"]
    assert root["status"] == "error" and root["error"] == "server_error: the run failed"
    provider.shutdown()


def test_captured_content_becomes_input_and_output(server: NexusServer) -> None:
    exporter = make_exporter(server)
    provider, tracer = make_provider(exporter)
    run_agent(tracer, content=True)
    assert provider.force_flush(5000)
    by_name = assert_tree(server.traces[0], 5)
    assert by_name["execute_tool get_time"]["input"] == {"city": "Paris"}
    assert by_name["execute_tool get_time"]["output"] == {"value": 1}
    root = by_name[f"invoke_agent {AGENT}"]
    assert root["input"]["messages"][0]["role"] == "user"
    assert root["input"]["system_instructions"][0]["content"] == "Be brief."
    assert root["output"][0]["parts"][0]["content"] == "Sunny"
    provider.shutdown()


def test_large_payloads_are_truncated(server: NexusServer) -> None:
    exporter = make_exporter(server, max_payload_bytes=1024)
    provider, tracer = make_provider(exporter)
    with tracer.start_as_current_span("invoke_agent big", attributes=RUN):
        with tracer.start_as_current_span(
            "execute_tool big",
            attributes={
                gen_ai.GEN_AI_OPERATION_NAME: "execute_tool",
                gen_ai.GEN_AI_TOOL_CALL_RESULT: "é" * 50_000,
            },
        ):
            pass
    assert provider.force_flush(5000)
    output = next(s for s in server.traces[0]["spans"] if s["name"] == "execute_tool big")["output"]
    assert output["truncated"] is True and output["original_bytes"] > 100_000
    assert len(json.dumps(output, ensure_ascii=False, separators=(",", ":")).encode()) <= 1024
    assert output["preview"].startswith("éé")
    provider.shutdown()


def test_plain_http_trace_is_skipped_unless_export_all(server: NexusServer) -> None:
    for export_all, expected in ((False, 0), (True, 1)):
        exporter = make_exporter(server, export_all=export_all)
        provider, tracer = make_provider(exporter)
        with tracer.start_as_current_span(
            "GET /health", kind=SpanKind.SERVER, attributes={"http.request.method": "GET"}
        ):
            with tracer.start_as_current_span("SELECT 1"):
                pass
        assert provider.force_flush(5000)
        assert len(server.traces) == expected
        provider.shutdown()
    assert_tree(server.traces[0], 2)
    assert server.traces[0]["agent_id"] == "svc"  # no agent name on a non-GenAI trace: service.name


def test_steps_wait_for_their_run_and_are_sent_as_timeout_at_shutdown(server: NexusServer) -> None:
    exporter = make_exporter(server)
    provider, tracer = make_provider(exporter)
    root = tracer.start_span(f"invoke_agent {AGENT}", attributes=RUN)
    with tracer.start_as_current_span("run_step tool_calls", context=_context_of(root), attributes=STEP):
        pass
    assert provider.force_flush(5000)
    assert server.traces == []  # an open run is not a complete trace: it waits
    started = time.monotonic()
    provider.shutdown()
    assert time.monotonic() - started < 5
    (trace,) = server.traces
    assert trace["status"] == "timeout" and [s["name"] for s in trace["spans"]] == ["run_step tool_calls"]
    assert trace["metadata"]["incomplete"] is True


def test_run_ended_by_shutdown_is_not_a_success(server: NexusServer) -> None:
    exporter = make_exporter(server)
    provider, tracer = make_provider(exporter)
    with tracer.start_as_current_span(f"invoke_agent {AGENT}", attributes=RUN) as run:
        run.set_attribute("azure.ai.agents.run.unfinished", "shutdown")
    provider.shutdown()
    (trace,) = server.traces
    assert trace["status"] == "timeout" and trace["metadata"]["unfinished"] == "shutdown"


def test_span_ending_after_its_run_was_sent_joins_the_same_trace(server: NexusServer) -> None:
    exporter = make_exporter(server)
    provider, tracer = make_provider(exporter)
    with tracer.start_as_current_span(f"invoke_agent {AGENT}", attributes=RUN):
        straggler = tracer.start_span("execute_tool slow")
        with tracer.start_as_current_span("run_step s", context=_context_of(straggler), attributes=STEP) as early:
            pass
    assert provider.force_flush(5000)
    assert len(server.traces) == 1 and len(server.traces[0]["spans"]) == 1
    straggler.end()  # ends after its run was sent; its child "run_step s" waited for it
    assert provider.force_flush(5000)
    (trace,) = server.traces
    by_name = assert_tree(trace, 3)
    assert by_name["run_step s"]["parent_span_id"] == by_name["execute_tool slow"]["id"]
    assert exporter.stats["spans_late"] == 2 and early.name == "run_step s"
    provider.shutdown()
    assert server.count(CREATE_TRACE) == 1


def test_api_key_never_logged_or_in_repr(server: NexusServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "nxs_" + "ab" * 32
    exporter = make_exporter(server, api_key=wrong_key)
    provider, tracer = make_provider(exporter)
    run_agent(tracer)
    assert provider.force_flush(5000)
    assert server.count(status=401) == 1
    assert "Invalid API key" in caplog.text  # the server's message is logged...
    assert wrong_key not in caplog.text and wrong_key not in repr(exporter) and wrong_key not in str(exporter.stats)
    provider.shutdown()
    assert wrong_key not in caplog.text
    assert server.api_key not in repr(make_exporter(server))


def test_without_api_key_warns_once_and_drops(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("NEXUS_API_KEY", raising=False)
    caplog.set_level(logging.WARNING)
    exporter = NexusSpanExporter()  # zero-code mode instantiates it without arguments
    assert not exporter.enabled and "api_key=<missing>" in repr(exporter)
    provider, tracer = make_provider(exporter)
    run_agent(tracer)
    run_agent(tracer)
    assert exporter.force_flush(1000)
    provider.shutdown()
    assert len([r for r in caplog.records if "NEXUS_API_KEY" in r.getMessage()]) == 1


def test_environment_configuration(server: NexusServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_API_KEY", server.api_key)
    monkeypatch.setenv("NEXUS_ENDPOINT", server.url)
    monkeypatch.setenv("NEXUS_AGENT_ID", "fixed-agent")
    monkeypatch.setenv("NEXUS_EXPORT_ALL", "true")
    exporter = NexusSpanExporter()
    assert exporter.enabled and exporter.export_all and exporter.endpoint == server.url
    provider, tracer = make_provider(exporter)
    with tracer.start_as_current_span("plain"):
        pass
    assert provider.force_flush(5000)
    assert [t["agent_id"] for t in server.traces] == ["fixed-agent"]
    provider.shutdown()


@pytest.mark.parametrize("endpoint", ["http://nexus.example.com", "http://10.1.2.3:8080", "ftp://localhost"])
def test_key_is_never_sent_over_plain_http_to_a_remote_host(endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    exporter = NexusSpanExporter(api_key="nxs_" + "0" * 64, endpoint=endpoint)
    assert not exporter.enabled
    assert len(caplog.records) == 1 and "nxs_" not in caplog.text
    provider, tracer = make_provider(exporter)
    run_agent(tracer)
    provider.shutdown()  # nothing was queued: no thread, no connection
    assert exporter.stats == {}


def test_loopback_http_and_https_are_accepted() -> None:
    for endpoint in ("http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1", "https://nexus.keylightdigital.dev"):
        exporter = NexusSpanExporter(api_key="nxs_" + "0" * 64, endpoint=endpoint)
        assert exporter.enabled
        exporter.shutdown(timeout_millis=100)  # never started: no traffic


def test_instrumentation_exporters_package_is_lazy_and_never_loads_nexus() -> None:
    code = (
        "import sys; import opentelemetry.instrumentation.azure_ai_agents.exporters as e; "
        "assert 'urllib3' not in sys.modules; "
        "assert 'opentelemetry.exporter.nexus' not in sys.modules; "
        "e.RunTreeSpanExporter; assert 'opentelemetry.exporter.nexus' not in sys.modules; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "ok", result.stderr


def test_export_after_shutdown_fails_fast(server: NexusServer) -> None:
    exporter = make_exporter(server)
    exporter.shutdown()
    provider, tracer = make_provider(exporter)
    with tracer.start_as_current_span("invoke_agent x", attributes={gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent"}):
        pass
    assert server.count(CREATE_TRACE) == 0


def _context_of(span: Any) -> Any:
    from opentelemetry.trace import set_span_in_context

    return set_span_in_context(span)


def test_zero_code_configuration_uses_the_entry_point(server: NexusServer) -> None:
    from importlib.metadata import entry_points

    if not any(e.name == "nexus" for e in entry_points(group="opentelemetry_traces_exporter")):
        pytest.skip("project not installed: the 'nexus' entry point is not registered")
    code = (
        "from opentelemetry import trace; "
        "from opentelemetry.sdk._configuration import _OTelSDKConfigurator; "
        "_OTelSDKConfigurator().configure(); "
        "tracer = trace.get_tracer('zero-code'); "
        "span = tracer.start_span('invoke_agent z', attributes={'gen_ai.operation.name': 'invoke_agent'}); "
        "span.end(); trace.get_tracer_provider().shutdown()"
    )
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "exporters", "nexus", "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OTEL_TRACES_EXPORTER": "nexus",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "zero-code-svc",
        "NEXUS_API_KEY": server.api_key,
        "NEXUS_ENDPOINT": server.url,
    }
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert [t["name"] for t in server.traces] == ["invoke_agent z"]
    assert server.traces[0]["metadata"]["service_name"] == "zero-code-svc"
    assert server.api_key not in result.stderr + result.stdout
