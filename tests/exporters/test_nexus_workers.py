"""NexusSpanExporter at a real round trip (the emulator answers every request in 100 ms): many runs and sibling
spans in flight at once, each run one whole Nexus trace whatever its parent, the SDK's flush waiting for
delivery, the shared Retry-After pause, TLS verification on the pooled connections."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanKind, Tracer, set_span_in_context

from opentelemetry.exporter.nexus import NexusSpanExporter
from opentelemetry.exporter.nexus.client import NexusClient
from tests.fakes.nexus_server import CREATE_SPAN, CREATE_TRACE, NexusServer

FAST = dict(backoff_base=0.05, backoff_max=0.2, export_timeout=10.0, shutdown_timeout=5.0)
AGENT = "bot"
ROUND_TRIP = 0.1  # seconds per Nexus request, as over a real network


@pytest.fixture
def server() -> Iterator[NexusServer]:
    with NexusServer(plan="pro") as nexus:
        nexus.delay = ROUND_TRIP
        yield nexus


def pipeline(server: NexusServer, **overrides: Any) -> tuple[NexusSpanExporter, TracerProvider, Tracer]:
    """The standard setup: the SDK's BatchSpanProcessor in front of the exporter."""
    options: dict[str, Any] = dict(FAST, api_key=server.api_key, endpoint=server.url)
    options.update(overrides)
    exporter = NexusSpanExporter(**options)
    provider = TracerProvider(resource=Resource.create({"service.name": "web"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    return exporter, provider, provider.get_tracer("workers")


def run(tracer: Tracer, index: Any, agent: str = AGENT, context: Any = None) -> None:
    """invoke_agent > run_step > execute_tool, plus a second run_step: 4 spans, 3 levels."""
    run_attributes = {gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent", gen_ai.GEN_AI_AGENT_NAME: agent}
    tool_attributes = {gen_ai.GEN_AI_OPERATION_NAME: "execute_tool"}
    with tracer.start_as_current_span(f"invoke_agent {index}", context=context, attributes=run_attributes):
        with tracer.start_as_current_span(f"run_step {index}.1", attributes={"azure.ai.agents.run_step.id": "s1"}):
            with tracer.start_as_current_span(f"execute_tool {index}", attributes=tool_attributes):
                pass
        with tracer.start_as_current_span(f"run_step {index}.2", attributes={"azure.ai.agents.run_step.id": "s2"}):
            pass


def assert_whole(trace: dict[str, Any]) -> None:
    """The trace of run(tracer, i): 4 spans, each under its own parent, all of them of this run."""
    index = trace["name"].split()[-1]
    by_name = {s["name"]: s for s in trace["spans"]}
    assert sorted(by_name) == sorted(
        [f"invoke_agent {index}", f"run_step {index}.1", f"execute_tool {index}", f"run_step {index}.2"]
    )
    assert by_name[f"invoke_agent {index}"]["parent_span_id"] is None
    root_id = by_name[f"invoke_agent {index}"]["id"]
    assert by_name[f"run_step {index}.1"]["parent_span_id"] == root_id
    assert by_name[f"run_step {index}.2"]["parent_span_id"] == root_id
    assert by_name[f"execute_tool {index}"]["parent_span_id"] == by_name[f"run_step {index}.1"]["id"]


def test_100_runs_from_4_app_threads_are_all_in_nexus_when_force_flush_returns(server: NexusServer) -> None:
    exporter, provider, tracer = pipeline(server)
    started = time.monotonic()

    def app(thread: int) -> None:
        for index in range(25):
            run(tracer, f"{thread}-{index}")

    threads = [threading.Thread(target=app, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started < 2.0  # the app never waited on Nexus (500 requests x 100 ms)
    assert provider.force_flush()
    elapsed = time.monotonic() - started
    # No waiting on the server: everything is there when the SDK's flush returns.
    traces = server.traces
    assert len(traces) == 100 and server.count(CREATE_SPAN) == 400 and server.rejected_count == 0
    assert len({t["metadata"]["otel_span_id"] for t in traces}) == 100
    for trace in traces:
        assert_whole(trace)
    assert elapsed < 15.0, elapsed
    provider.shutdown()


def test_sibling_spans_are_posted_together_once_their_parent_exists(server: NexusServer) -> None:
    exporter, provider, tracer = pipeline(server)
    attributes = {gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent", gen_ai.GEN_AI_AGENT_NAME: AGENT}
    with tracer.start_as_current_span("invoke_agent wide", attributes=attributes):
        for index in range(20):
            with tracer.start_as_current_span(f"execute_tool {index}"):
                pass
    started = time.monotonic()
    assert provider.force_flush()
    # 1 trace + 1 run span + 20 siblings in parallel: 3 round trips, not 22.
    assert time.monotonic() - started < 1.5
    (trace,) = server.traces
    assert len(trace["spans"]) == 21 and server.rejected_count == 0
    provider.shutdown()


def test_a_run_created_in_one_request_and_finished_in_another_arrives_whole(server: NexusServer) -> None:
    exporter, provider, tracer = pipeline(server)
    run_attributes = {gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent", gen_ai.GEN_AI_AGENT_NAME: AGENT}
    with tracer.start_as_current_span("POST /runs", kind=SpanKind.SERVER) as create_request:
        run_span = tracer.start_span("invoke_agent polled", attributes=run_attributes)
    assert provider.force_flush()  # the request that created the run is over (and not a run: not sent)
    assert server.traces == []
    with tracer.start_as_current_span("GET /runs/1", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("run_step polled.1", context=set_span_in_context(run_span)):
            pass
    with tracer.start_as_current_span("GET /runs/1", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("run_step polled.2", context=set_span_in_context(run_span)):
            pass
        run_span.end()
    assert provider.force_flush()
    (trace,) = server.traces
    assert trace["status"] == "success" and trace["agent_id"] == AGENT
    assert sorted(s["name"] for s in trace["spans"]) == [
        "invoke_agent polled",
        "run_step polled.1",
        "run_step polled.2",
    ]
    metadata = trace["metadata"]
    assert metadata["otel_parent_span_id"] == f"{create_request.get_span_context().span_id:016x}"
    assert metadata["otel_trace_id"] == f"{create_request.get_span_context().trace_id:032x}"
    assert exporter.stats["spans_filtered"] == 3  # the three request spans
    provider.shutdown()


def test_two_agents_in_one_request_give_two_traces_with_their_own_agent_names(server: NexusServer) -> None:
    exporter, provider, tracer = pipeline(server)
    with tracer.start_as_current_span("POST /plan", kind=SpanKind.SERVER) as request:
        run(tracer, "a", agent="researcher")
        run(tracer, "b", agent="writer")
    assert provider.force_flush()
    traces = sorted(server.traces, key=lambda t: t["name"])
    assert [(t["name"], t["agent_id"]) for t in traces] == [
        ("invoke_agent a", "researcher"),
        ("invoke_agent b", "writer"),
    ]
    parent = f"{request.get_span_context().span_id:016x}"
    assert {t["metadata"]["otel_parent_span_id"] for t in traces} == {parent}
    for trace in traces:
        assert_whole(trace)
    provider.shutdown()


def test_a_run_whose_parent_belongs_to_another_provider_is_sent_when_it_ends(server: NexusServer) -> None:
    exporter, provider, tracer = pipeline(server)
    other = TracerProvider()  # e.g. the web framework's own provider, never flushed here
    with other.get_tracer("web").start_as_current_span("GET /", kind=SpanKind.SERVER):
        run(tracer, 0)
        assert provider.force_flush()  # the foreign parent has not even ended
    (trace,) = server.traces
    assert_whole(trace)
    assert trace["status"] == "success" and "incomplete" not in trace["metadata"]
    provider.shutdown()


def test_429_retry_after_pauses_every_request(server: NexusServer) -> None:
    server.delay = 0.05
    server.fail_next(CREATE_TRACE, 429, count=1, headers={"Retry-After": "1"})
    exporter, provider, tracer = pipeline(server, max_concurrent_requests=4)
    for index in range(12):
        run(tracer, index)
    assert provider.force_flush()
    (limited,) = [r.received_at for r in server.requests if r.status == 429]
    # Requests already on their way when the 429 left may still arrive; after that, nobody asks for a second.
    assert not [r for r in server.requests if limited + 0.3 < r.received_at < limited + 0.95]
    assert len(server.traces) == 12 and server.rejected_count == 0
    provider.shutdown()


# -- TLS: verification stays on with the keep-alive transport --------------------------------------------------
def _self_signed(directory: Path) -> tuple[Path, Path]:
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nexus-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _serve_tls(server: NexusServer, cert: Path, key: Path) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = server._httpd
    assert httpd is not None
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    return f"https://127.0.0.1:{server.port}"


def test_https_with_an_untrusted_certificate_is_refused_not_retried(
    server: NexusServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    url = _serve_tls(server, *_self_signed(tmp_path))
    exporter, provider, tracer = pipeline(server, endpoint=url)
    run(tracer, 0)
    assert provider.force_flush()  # the SDK's flush says True whatever the export's outcome...
    assert exporter.force_flush(2000) is False  # ...the exporter knows: nothing could be delivered
    assert server.request_count == 0 and exporter.backlog_spans == 4
    assert "TLS error" in caplog.text and server.api_key not in caplog.text
    provider.shutdown()


def test_https_with_a_trusted_certificate_delivers(
    server: NexusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    url = _serve_tls(server, cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system trust store, as OpenSSL reads it
    exporter, provider, tracer = pipeline(server, endpoint=url, max_concurrent_requests=2)
    for index in range(4):
        run(tracer, index)
    assert provider.force_flush()
    assert len(server.traces) == 4 and server.rejected_count == 0
    for trace in server.traces:
        assert_whole(trace)
    provider.shutdown()


def test_client_refuses_a_bearer_key_over_plain_http_to_a_remote_host() -> None:
    with pytest.raises(ValueError):
        NexusClient("http://nexus.example.com", "nxs_" + "0" * 64)


def test_a_web_app_run_created_in_one_request_and_polled_in_others_arrives_whole(
    server: NexusServer, emulator: Any, instrument: Any
) -> None:
    """The real SDK and instrumentation: POST /runs creates the run, later GET requests poll it to its end."""
    from azure.ai.agents.models import ToolOutput

    from azure_ai_agents_emulator import agents_client
    from tests.helpers import ACTIVE, TOOL_OUTPUT, agents_setup, metadata

    telemetry = instrument()
    exporter = NexusSpanExporter(api_key=server.api_key, endpoint=server.url, **FAST)
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=200)
    telemetry.tracer_provider.add_span_processor(processor)
    tracer = telemetry.tracer
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client, name="web-agent")
    with tracer.start_as_current_span("POST /runs", kind=SpanKind.SERVER) as create_request:
        run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"))
    assert processor.force_flush() and server.traces == []  # the request ended; its run has not
    while run.status in ACTIVE:
        with tracer.start_as_current_span("GET /runs/{id}", kind=SpanKind.SERVER):
            if run.status == "requires_action":
                calls = run.required_action.submit_tool_outputs.tool_calls
                outputs = [ToolOutput(tool_call_id=c.id, output=TOOL_OUTPUT) for c in calls]
                run = client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
            else:
                run = client.runs.get(thread_id=thread_id, run_id=run.id)
    assert run.status == "completed"
    deadline = time.monotonic() + 10  # the finished run's steps are listed off the app's path
    while len(telemetry.named("chat")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processor.force_flush()
    (trace,) = server.traces
    assert trace["agent_id"] == "web-agent" and trace["status"] == "success"
    assert trace["metadata"]["run_id"] == run.id
    assert trace["metadata"]["otel_parent_span_id"] == f"{create_request.get_span_context().span_id:016x}"
    # The same tree as the app's, without its request spans.
    trace_id = create_request.get_span_context().trace_id
    ours = [s for s in telemetry.spans if s.context.trace_id == trace_id and s.kind is not SpanKind.SERVER]
    local_names = {s.context.span_id: s.name for s in ours}
    expected = sorted((s.name, local_names.get(s.parent.span_id, "-") if s.parent else "-") for s in ours)
    names = {s["id"]: s["name"] for s in trace["spans"]}
    assert sorted((s["name"], names.get(s["parent_span_id"], "-")) for s in trace["spans"]) == expected
    assert len(expected) >= 4 and ("execute_tool get_weather", "invoke_agent web-agent") in expected
    assert server.rejected_count == 0
    processor.shutdown()
