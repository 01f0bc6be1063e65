"""NexusSpanExporter's sender workers: several traces in flight, each whole, in order and never duplicated; the
shared Retry-After pause; shutdown with every worker stuck on a slow server; the keep-alive transport over TLS."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import Tracer, set_span_in_context

from opentelemetry.exporter.nexus import NexusSpanExporter
from opentelemetry.exporter.nexus.client import NexusClient
from opentelemetry.exporter.nexus.http import Transport
from opentelemetry.exporter.nexus.sender import LogOnce, NexusSender, Stats, TraceBatch
from tests.fakes.nexus_server import CREATE_SPAN, CREATE_TRACE, NexusServer

FAST = dict(backoff_base=0.05, backoff_max=0.2, export_timeout=5.0, shutdown_timeout=5.0, idle_interval=0.05)
AGENT = "bot"


@pytest.fixture
def server() -> Iterator[NexusServer]:
    with NexusServer() as nexus:
        yield nexus


def pipeline(server: NexusServer, **overrides: Any) -> tuple[NexusSpanExporter, TracerProvider, Tracer]:
    options: dict[str, Any] = dict(FAST, api_key=server.api_key, endpoint=server.url)
    options.update(overrides)
    exporter = NexusSpanExporter(**options)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider, provider.get_tracer("workers")


def run(tracer: Tracer, index: int) -> None:
    """invoke_agent root > run_step > execute_tool, plus a second run_step: 4 spans, 3 levels."""
    run_attributes = {gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent", gen_ai.GEN_AI_AGENT_NAME: AGENT}
    tool_attributes = {gen_ai.GEN_AI_OPERATION_NAME: "execute_tool"}
    with tracer.start_as_current_span(f"invoke_agent {index}", attributes=run_attributes):
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


def test_several_traces_in_flight_each_whole_in_order_and_once(server: NexusServer) -> None:
    server.delay = 0.1  # every answer takes 100 ms: one worker would need 8 x 5 x 0.1 = 4 s
    exporter, provider, tracer = pipeline(server, max_concurrent_traces=4)
    started = time.monotonic()
    for index in range(8):
        run(tracer, index)
    assert exporter.force_flush(10_000)
    elapsed = time.monotonic() - started
    # Four traces were started before any of them got an answer...
    assert [r.route for r in server.requests[:4]] == [CREATE_TRACE] * 4
    assert elapsed < 3.0
    # ...yet each is one complete, correctly parented Nexus trace. The emulator refuses a span whose parent
    # was not posted before it, so no rejection also means parents went first within every trace.
    assert server.rejected_count == 0 and server.count(CREATE_TRACE) == 8 and server.count(CREATE_SPAN) == 32
    traces = server.traces
    assert sorted(t["name"] for t in traces) == sorted(f"invoke_agent {i}" for i in range(8))
    assert len({t["metadata"]["otel_trace_id"] for t in traces}) == 8
    for trace in traces:
        assert_whole(trace)
    provider.shutdown()


def test_429_retry_after_pauses_every_worker(server: NexusServer) -> None:
    server.delay = 0.05  # 12 traces x 5 requests x 50 ms over 4 workers: ~0.75 s of work for the others
    server.fail_next(CREATE_TRACE, 429, count=1, headers={"Retry-After": "1"})
    exporter, provider, tracer = pipeline(server, max_concurrent_traces=4)
    for index in range(12):
        run(tracer, index)
    assert exporter.force_flush(10_000)
    (limited,) = [r.received_at for r in server.requests if r.status == 429]
    # Requests already on their way when the 429 left may still arrive; after that, nobody asks for a second.
    assert not [r for r in server.requests if limited + 0.3 < r.received_at < limited + 0.95]
    assert len(server.traces) == 12 and server.rejected_count == 0
    provider.shutdown()


def test_shutdown_with_every_worker_stuck_on_a_slow_server_keeps_its_timeout(
    server: NexusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.delay = 30.0  # far beyond the read timeout: the workers are blocked reading an answer
    exporter, provider, tracer = pipeline(server, max_concurrent_traces=3, read_timeout=20.0, export_timeout=60.0)
    for index in range(6):
        run(tracer, index)
    sender = exporter._sender
    assert sender is not None
    assert _wait(lambda: len(sender._owned) == 3)  # every worker is on a trace, waiting for an answer
    started = time.monotonic()
    exporter.shutdown(timeout_millis=500)
    assert time.monotonic() - started < 1.0
    assert not [t for t in sender._threads if t.is_alive()]  # the stuck requests were cut, not left
    assert exporter.stats["traces_failed"] >= 3
    assert server.api_key not in caplog.text
    provider.shutdown()


class _BlockingClient:
    """Stands in for NexusClient: ids in call order; create_trace waits for ``release``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def _record(self, call: str, payload: Any) -> str:
        with self._lock:
            self.calls.append((call, payload))
            return f"id{len(self.calls)}"

    def create_trace(self, payload: Any, deadline: float) -> str:
        assert self.release.wait(5)
        return self._record("trace", payload)

    def create_span(self, trace_id: str, payload: Any, deadline: float) -> str:
        return self._record("span", payload["name"])

    def update_trace(self, trace_id: str, payload: Any, deadline: float) -> None:
        self._record("update", payload["status"])

    def interrupt(self, deadline: float) -> None:
        pass

    def close_thread(self) -> None:
        pass

    def close(self, after_fork: bool = False) -> None:
        pass


def _two_batches() -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    """A trace in two batches: a step span while its root is still open, then the root."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("batches")
    root = tracer.start_span("invoke_agent x", attributes={gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent"})
    with tracer.start_as_current_span("run_step x", context=set_span_in_context(root)):
        pass
    root.end()
    step, root_span = memory.get_finished_spans()
    return [step], [root_span]


def test_a_later_batch_of_a_trace_in_flight_waits_for_its_owner() -> None:
    client = _BlockingClient()
    sender = NexusSender(
        client,  # type: ignore[arg-type]
        agent_id=AGENT,
        export_all=True,
        export_timeout=5.0,
        max_payload_bytes=16384,
        queue_size=16,
        stats=Stats(),
        log_once=LogOnce(),
        on_idle=lambda: None,
        idle_interval=0.05,
        workers=4,
    )
    first, second = _two_batches()
    trace_id = first[0].context.trace_id
    assert sender.submit(TraceBatch(trace_id, first, root_ended=False))
    assert _wait(lambda: sender._queue.empty())  # a worker took it and is blocked creating the trace
    assert sender.submit(TraceBatch(trace_id, second, root_ended=True))
    assert _wait(lambda: sender._queue.empty())  # another worker took the root batch: handed to the owner
    assert len(sender._owned[trace_id]) == 1
    client.release.set()
    assert sender.flush(time.monotonic() + 5)
    assert client.calls == [
        ("trace", client.calls[0][1]),
        ("span", "run_step x"),
        ("span", "invoke_agent x"),
        ("update", "success"),
    ]
    assert client.calls[0][1]["status"] == "timeout" and trace_id not in sender._owned
    assert sender.stop(time.monotonic() + 2)


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


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
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
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
    assert exporter.force_flush(5000)
    assert server.request_count == 0 and exporter.stats["traces_failed"] == 1
    assert "TLS error" in caplog.text and server.api_key not in caplog.text
    provider.shutdown()


def test_https_with_a_trusted_certificate_delivers(
    server: NexusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    url = _serve_tls(server, cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system trust store, as OpenSSL reads it
    exporter, provider, tracer = pipeline(server, endpoint=url, max_concurrent_traces=2)
    for index in range(4):
        run(tracer, index)
    assert exporter.force_flush(5000)
    assert len(server.traces) == 4 and server.rejected_count == 0
    for trace in server.traces:
        assert_whole(trace)
    provider.shutdown()


# -- keep-alive connections closed by the server --------------------------------------------------------------
def test_connection_close_answer_is_followed_by_a_fresh_connection(server: NexusServer) -> None:
    server.fail_next(CREATE_SPAN, 503, count=1, headers={"Connection": "close"})  # then the server hangs up
    exporter, provider, tracer = pipeline(server, max_concurrent_traces=1)
    run(tracer, 0)
    run(tracer, 1)
    assert exporter.force_flush(5000)
    assert len(server.traces) == 2 and exporter.stats.get("reconciled", 0) == 0
    for trace in server.traces:
        assert_whole(trace)
    provider.shutdown()


def test_idle_connection_dropped_by_the_server_is_reopened_without_ambiguity() -> None:
    """The server answers, then silently closes the connection (an idle timeout): the next request must go
    out on a new connection, not fail as "maybe applied" on the dead one."""
    listener = socket.create_server(("127.0.0.1", 0))
    closed = threading.Event()
    accepted: list[int] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            accepted.append(1)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')
            closed.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    transport = Transport(f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1", {"Authorization": "Bearer x"})
    try:
        assert transport.exchange("GET", "/traces", None, 1.0, 1.0).status == 201
        assert closed.wait(5)
        assert transport.exchange("GET", "/traces", None, 1.0, 1.0).status == 201
        assert len(accepted) == 2
    finally:
        transport.close()
        listener.close()


def test_client_refuses_a_bearer_key_over_plain_http_to_a_remote_host() -> None:
    with pytest.raises(ValueError):
        NexusClient("http://nexus.example.com", "nxs_" + "0" * 64)
