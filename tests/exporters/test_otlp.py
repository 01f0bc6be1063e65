"""OTLP: the run trace reaches a collector over http/protobuf and gRPC, configured only by OTEL_EXPORTER_OTLP_*.

Real SDK -> emulator -> our instrumentation -> the standard OTLP exporters -> local receivers that decode
``ExportTraceServiceRequest`` with opentelemetry-proto (``emulator/otlp_server.py``).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from azure_ai_agents_emulator import agents_client
from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry
from tests.fakes.otlp_server import (
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    ReceivedSpan,
)
from tests.helpers import agents_run, agents_setup

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

OTLP_ENV_PREFIX = "OTEL_EXPORTER_OTLP_"


@pytest.fixture(autouse=True)
def _clean_otlp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(OTLP_ENV_PREFIX) or name in ("OTEL_TRACES_EXPORTER", "OTEL_BSP_SCHEDULE_DELAY"):
            monkeypatch.delenv(name)


def _dead_endpoint() -> str:
    """An http://127.0.0.1 URL nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _run_app(emulator) -> Any:
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    return agents_run(client, agent_id, thread_id, "function_call")


def _check_same_trace(received: list[ReceivedSpan], local: list[ReadableSpan]) -> ReceivedSpan:
    """Every local span arrived with its ids, parent, kind, name and attributes; returns the run span."""
    by_id = {s.span_id: s for s in received}
    for span in local:
        got = by_id[format(span.context.span_id, "016x")]
        assert got.trace_id == format(span.context.trace_id, "032x")
        assert got.parent_span_id == (format(span.parent.span_id, "016x") if span.parent else "")
        assert got.name == span.name
        assert got.kind == span.kind.name
        assert got.attributes == dict(span.attributes), span.name
        assert [name for name, _ in got.events] == [e.name for e in span.events]
    [run] = [s for s in received if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
    return run


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_run_trace_over_http_protobuf_from_environment(monkeypatch, emulator, instrument, compression):
    with OtlpHttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=agents")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        telemetry = instrument()
        telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        run = _run_app(emulator)
        assert telemetry.tracer_provider.force_flush()
        assert receiver.wait_for_spans(lambda spans: len(spans) >= len(telemetry.all_spans))

        run_span = _check_same_trace([s for s in receiver.spans if not s.name.startswith("create_agent")], telemetry.spans)
        assert run_span.name == "invoke_agent weather-agent" and run_span.kind == "CLIENT"
        assert run_span.parent_span_id == ""
        assert run_span.attributes["azure.ai.agents.run.id"] == run.id
        assert run_span.attributes["gen_ai.provider.name"] == "microsoft.foundry"
        assert run_span.scope_name == "opentelemetry.instrumentation.azure_ai_agents"
        assert len(receiver.traces()) == 2  # the agent's creation (create_agent), and the run
        request = receiver.requests[0]
        assert request.signal == "traces" and request.headers["x-team"] == "agents"
        assert request.headers["content-type"] == "application/x-protobuf"
        assert request.content_encoding == ("gzip" if compression == "gzip" else "")


def test_traces_endpoint_variable_wins_and_is_used_as_is(monkeypatch, emulator, instrument):
    with OtlpHttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", _dead_endpoint())
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.traces_endpoint)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        telemetry = instrument()
        telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _run_app(emulator)
        telemetry.tracer_provider.force_flush()
        assert receiver.wait_for_spans(lambda spans: len(spans) >= len(telemetry.spans))
        assert {r.signal for r in receiver.requests} == {"traces"}


def test_run_trace_over_grpc_from_environment(monkeypatch, emulator, instrument):
    pytest.importorskip("grpc")
    with OtlpGrpcReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)  # http:// scheme: insecure channel
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=agents")
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        telemetry = instrument()
        exporter = OTLPSpanExporter()
        telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        run = _run_app(emulator)
        assert telemetry.tracer_provider.force_flush()
        assert receiver.wait_for_spans(lambda spans: len(spans) >= len(telemetry.spans))
        run_span = _check_same_trace(receiver.spans, telemetry.spans)
        assert run_span.attributes["azure.ai.agents.run.id"] == run.id
        assert run_span.transport == "grpc"
        assert receiver.requests[0].headers["x-team"] == "agents"
        exporter.shutdown()


def test_transient_collector_error_is_retried(monkeypatch, emulator, instrument):
    """A 503 from the collector is retried by the exporter; the batch arrives once."""
    with OtlpHttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        telemetry = instrument()
        _run_app(emulator)
        receiver.fail_next(503)
        assert OTLPSpanExporter().export(telemetry.spans).name == "SUCCESS"
        assert [r.status for r in receiver.requests] == [503, 200]
        assert len(receiver.spans) == len(telemetry.spans)


def _batch_workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("OtelBatchSpan")}


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_collector_down_does_not_block_the_app_and_shutdown_is_bounded(monkeypatch, emulator, protocol):
    if protocol == "grpc":
        pytest.importorskip("grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", _dead_endpoint())
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "30")  # the exporter would retry for 30 s
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")  # export attempts start while the app runs
    before = _batch_workers()

    handle = configure_telemetry("otlp", set_global=False)
    try:
        started = time.monotonic()
        for _ in range(3):
            assert _run_app(emulator).status == "completed"
        app_time = time.monotonic() - started
        assert app_time < 5.0  # the app never waits on the collector (each run takes ~0.1 s here)
        [worker] = _batch_workers() - before
    finally:
        started = time.monotonic()
        finished = handle.shutdown(timeout_s=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    assert finished is False  # nothing could be delivered in time, and it says so
    worker.join(5.0)  # the exporter was told to stop: its retry loop ends instead of running for 30 s
    assert not worker.is_alive()
