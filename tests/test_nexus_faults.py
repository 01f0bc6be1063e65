"""NexusSpanExporter under faults (5xx, 429, 401/403, lost responses, slow or closed endpoints) and the Nexus
emulator's own validation. Waits are on server/exporter conditions, never on bare sleeps."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any, Iterator, Optional

import pytest
import urllib3
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import Tracer

from opentelemetry.exporter.nexus import NexusSpanExporter
from tests.fakes.nexus_server import (
    CREATE_SPAN,
    CREATE_TRACE,
    LIST_TRACES,
    NexusServer,
)

FAST = dict(backoff_base=0.05, backoff_max=0.2, export_timeout=5.0, shutdown_timeout=5.0, idle_interval=0.05)


@pytest.fixture
def server() -> Iterator[NexusServer]:
    with NexusServer() as nexus:
        yield nexus


def pipeline(
    server: Optional[NexusServer] = None, **overrides: Any
) -> tuple[NexusSpanExporter, TracerProvider, Tracer]:
    options: dict[str, Any] = dict(FAST)
    if server is not None:
        options.update(api_key=server.api_key, endpoint=server.url)
    options.update(overrides)
    exporter = NexusSpanExporter(**options)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider, provider.get_tracer("faults")


def run(tracer: Tracer, agent: str = "bot") -> None:
    """A small run: invoke_agent root with one execute_tool child."""
    with tracer.start_as_current_span(
        f"invoke_agent {agent}",
        attributes={gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent", gen_ai.GEN_AI_AGENT_NAME: agent},
    ):
        with tracer.start_as_current_span("execute_tool t", attributes={gen_ai.GEN_AI_OPERATION_NAME: "execute_tool"}):
            pass


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_503_twice_then_success_gives_exactly_one_trace(server: NexusServer) -> None:
    server.fail_next(CREATE_TRACE, 503, count=2)
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)
    assert server.count(CREATE_TRACE) == 3 and server.count(CREATE_TRACE, 503) == 2
    assert len(server.traces) == 1 and len(server.traces[0]["spans"]) == 2
    assert server.rejected_count == 0
    provider.shutdown()


def test_503_on_a_span_is_retried_without_duplicates(server: NexusServer) -> None:
    server.fail_next(CREATE_SPAN, 502, count=1)
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)
    (trace,) = server.traces
    assert sorted(s["name"] for s in trace["spans"]) == ["execute_tool t", "invoke_agent bot"]
    provider.shutdown()


def test_429_retry_after_is_honoured(server: NexusServer) -> None:
    server.fail_next(CREATE_TRACE, 429, count=1, headers={"Retry-After": "1"})
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)
    first, second = [r.received_at for r in server.requests if r.route == CREATE_TRACE]
    assert second - first >= 0.95
    assert len(server.traces) == 1
    provider.shutdown()


def test_401_is_final_logged_once_and_never_raises(server: NexusServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    exporter, provider, tracer = pipeline(server, api_key="nxs_" + "f" * 64)
    run(tracer)
    assert exporter.force_flush(5000)
    assert server.request_count == 1 and server.count(status=401) == 1
    run(tracer)  # a second failure is not logged again at WARNING or above
    assert exporter.force_flush(5000)
    messages = [r.getMessage() for r in caplog.records if "Invalid API key" in r.getMessage()]
    assert len(messages) == 1 and "HTTP 401" in messages[0]
    assert exporter.stats["traces_failed"] == 2
    provider.shutdown()


def test_free_plan_second_agent_is_refused_once(server: NexusServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    exporter, provider, tracer = pipeline(server)
    run(tracer, agent="first")
    assert exporter.force_flush(5000)  # traces go out concurrently: make "first" the plan's one agent
    run(tracer, agent="second")
    assert exporter.force_flush(5000)
    assert [t["agent_id"] for t in server.traces] == ["first"]
    assert server.count(CREATE_TRACE, 403) == 1  # not retried
    assert "Free plan limited to 1 agent" in caplog.text
    provider.shutdown()


def test_monthly_quota_429_is_not_retried() -> None:
    with NexusServer(monthly_limit=1) as server:
        exporter, provider, tracer = pipeline(server)
        run(tracer)
        run(tracer)
        assert exporter.force_flush(5000)
        assert server.count(CREATE_TRACE) == 2 and server.count(CREATE_TRACE, 429) == 1
        assert len(server.traces) == 1
        provider.shutdown()


def test_lost_response_after_trace_creation_does_not_duplicate(server: NexusServer) -> None:
    server.fail_next(CREATE_TRACE, 0, after_processing=True)  # trace created, connection dropped
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)
    assert server.count(CREATE_TRACE) == 1 and server.count(LIST_TRACES) == 1
    (trace,) = server.traces
    assert len(trace["spans"]) == 2 and exporter.stats["reconciled"] == 1
    provider.shutdown()


def test_lost_request_before_creation_is_posted_again(server: NexusServer) -> None:
    server.fail_next(CREATE_TRACE, 0)  # connection dropped, nothing created: the lookup finds nothing
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)
    assert server.count(CREATE_TRACE) == 2 and len(server.traces) == 1
    provider.shutdown()


def test_lost_response_after_span_creation_does_not_duplicate(server: NexusServer) -> None:
    server.fail_next(CREATE_SPAN, 0, after_processing=True)
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)
    (trace,) = server.traces
    assert len(trace["spans"]) == 2 and exporter.stats["reconciled"] == 1
    ids = {s["id"] for s in trace["spans"]}
    assert all(s["parent_span_id"] in ids for s in trace["spans"] if s["parent_span_id"])
    provider.shutdown()


def test_slow_server_never_blocks_export(server: NexusServer) -> None:
    server.delay = 0.1
    exporter, provider, tracer = pipeline(server)
    started = time.monotonic()
    run(tracer)
    run(tracer)
    assert time.monotonic() - started < 0.4  # blocking would take >= 6 requests x 0.1 s
    assert server.wait_for_traces(2, timeout=10, with_spans=4)
    provider.shutdown()


def test_unreachable_endpoint_does_not_block_and_shutdown_honours_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = "nxs_" + "1" * 64
    exporter, provider, tracer = pipeline(
        api_key=key, endpoint=f"http://127.0.0.1:{closed_port()}", export_timeout=30.0, shutdown_timeout=0.5
    )
    started = time.monotonic()
    for _ in range(5):
        run(tracer)
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    provider.shutdown()
    assert time.monotonic() - started < 1.5
    assert key not in caplog.text


def test_full_queue_drops_are_counted_and_logged_at_most_once(
    server: NexusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.delay = 0.2
    exporter, provider, tracer = pipeline(server, max_queue_size=1, drop_log_interval=3600)
    started = time.monotonic()
    for _ in range(20):
        run(tracer)
    assert time.monotonic() - started < 0.5
    stats = exporter.stats
    assert stats["spans_dropped_queue_full"] >= 30
    assert len([r for r in caplog.records if "lost data" in r.getMessage()]) <= 1
    server.delay = 0
    provider.shutdown()


def test_max_age_sends_a_stuck_trace_as_timeout(server: NexusServer) -> None:
    exporter, provider, tracer = pipeline(server, max_trace_age=0.1)
    root = tracer.start_span("invoke_agent stuck", attributes={gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent"})
    from opentelemetry.trace import set_span_in_context

    with tracer.start_as_current_span(
        "run_step x", context=set_span_in_context(root), attributes={"azure.ai.agents.run_step.id": "s"}
    ):
        pass
    assert server.wait_for(lambda s: [t["status"] for t in s.traces] == ["timeout"], timeout=5)
    root.end()  # completes the same trace
    assert server.wait_for(lambda s: [t["status"] for t in s.traces] == ["success"], timeout=5)
    assert len(server.traces[0]["spans"]) == 2
    provider.shutdown()


# -- the emulator validates like Nexus ------------------------------------------------------------------------
def call(
    server: NexusServer,
    method: str,
    path: str,
    body: Any = None,
    key: Optional[str] = None,
    raw: Optional[bytes] = None,
):
    headers = {"Authorization": f"Bearer {key or server.api_key}", "Content-Type": "application/json"}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    response = urllib3.request(method, server.url + path, body=data, headers=headers, retries=False)
    return response.status, json.loads(response.data) if response.data else None, response.headers


TRACE = {"agent_id": "a", "name": "n", "status": "success", "started_at": "2026-04-05T12:00:00Z"}


def test_emulator_auth_and_trace_validation(server: NexusServer) -> None:
    assert call(server, "POST", "/api/v1/traces", TRACE, key="nxs_" + "0" * 64)[:2] == (
        401,
        {"error": "Invalid API key"},
    )
    assert call(server, "POST", "/api/v1/traces", TRACE, key="sk-123")[0] == 401
    assert call(server, "POST", "/api/v1/traces", raw=b"{oops")[:2] == (400, {"error": "Invalid JSON body"})
    status, body, _ = call(
        server, "POST", "/api/v1/traces", {"name": "n", "status": "done", "started_at": "2026-04-05 12:00"}
    )
    assert status == 400 and body["error"] == "Validation failed"
    assert set(body["fields"]) == {"agent_id", "status", "started_at"}
    status, body, _ = call(server, "POST", "/api/v1/traces", TRACE)
    assert status == 201 and len(body["trace_id"]) == 36
    assert server.rejected_count == 4


def test_emulator_span_patch_and_reads(server: NexusServer) -> None:
    trace_id = call(server, "POST", "/api/v1/traces", {**TRACE, "metadata": {"k": 1}})[1]["trace_id"]
    span = {"name": "s", "status": "ok", "started_at": "2026-04-05T12:00:00.5+02:00"}
    assert call(server, "POST", "/api/v1/traces/nope/spans", span)[:2] == (404, {"error": "Trace not found"})
    status, body, _ = call(server, "POST", f"/api/v1/traces/{trace_id}/spans", {**span, "parent_span_id": "ghost"})
    assert status == 400 and "parent_span_id" in body["fields"]
    assert call(server, "POST", f"/api/v1/traces/{trace_id}/spans", {**span, "status": "success"})[0] == 400
    parent = call(server, "POST", f"/api/v1/traces/{trace_id}/spans", span)[1]["span_id"]
    assert (
        call(server, "POST", f"/api/v1/traces/{trace_id}/spans", {**span, "parent_span_id": parent, "input": {"x": 1}})[
            0
        ]
        == 201
    )
    assert call(server, "PATCH", f"/api/v1/traces/{trace_id}", {})[:2] == (400, {"error": "No fields to update"})
    assert (
        call(server, "PATCH", f"/api/v1/traces/{trace_id}", {"status": "timeout", "ended_at": "2026-04-05T12:00:02Z"})[
            0
        ]
        == 200
    )
    status, listed, headers = call(server, "GET", "/api/v1/traces?agent_id=a&status=error&limit=10")
    assert status == 200 and headers["X-Total-Count"] == "1" and listed[0]["duration_ms"] == 2000
    assert listed[0]["metadata"] == {"k": 1} and listed[0]["span_count"] == 2
    assert call(server, "GET", "/api/v1/traces?limit=500")[0] == 400
    status, full, _ = call(server, "GET", f"/api/v1/traces/{trace_id}")
    assert status == 200 and [s["input"] for s in full["spans"]] == [None, {"x": 1}]
