"""NexusSpanExporter under faults (5xx, 429, 401/403, lost responses, slow or closed endpoints) and the Nexus
emulator's own validation. Waits are on server/exporter conditions, never on bare sleeps."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from typing import Any, Iterator, Optional

import pytest
import urllib3
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import Tracer, set_span_in_context

from opentelemetry.exporter.nexus import NexusSpanExporter
from tests.fakes.nexus_server import (
    CREATE_SPAN,
    CREATE_TRACE,
    LIST_TRACES,
    NexusServer,
)

FAST = dict(backoff_base=0.05, backoff_max=0.2, export_timeout=5.0, shutdown_timeout=5.0)


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


def finished_run(agent: str = "bot") -> list[ReadableSpan]:
    """The two finished spans of run(), to hand to export() directly."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    run(provider.get_tracer("spans"), agent)
    return list(memory.get_finished_spans())


def nexus_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("opentelemetry.exporter.nexus") and r.levelno >= logging.WARNING
    ]


def test_401_gives_failure_and_one_clear_log_line(server: NexusServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    exporter = NexusSpanExporter(api_key="nxs_" + "f" * 64, endpoint=server.url, **FAST)
    assert exporter.export(finished_run()) is SpanExportResult.FAILURE
    assert server.request_count == 1 and server.count(status=401) == 1  # final: not retried
    assert exporter.export(finished_run()) is SpanExportResult.FAILURE
    (message,) = nexus_warnings(caplog)  # the second refusal is not logged again
    assert "HTTP 401 Invalid API key" in message and "NEXUS_API_KEY" in message
    assert exporter.stats["spans_rejected_http_401"] == 4 and exporter.backlog_spans == 0
    exporter.shutdown()


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


def test_slow_server_never_blocks_the_app(server: NexusServer) -> None:
    server.delay = 0.1
    exporter = NexusSpanExporter(api_key=server.api_key, endpoint=server.url, **FAST)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))  # the SDK keeps export() off the app's threads
    started = time.monotonic()
    run(provider.get_tracer("slow"))
    run(provider.get_tracer("slow"))
    assert time.monotonic() - started < 0.4  # blocking would take >= 6 requests x 0.1 s
    assert provider.force_flush()
    assert len(server.traces) == 2 and sum(len(t["spans"]) for t in server.traces) == 4
    provider.shutdown()


def test_outage_503_keeps_a_bounded_backlog_delivered_after_recovery_without_duplicates(
    server: NexusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.fail_next("*", 503, count=10**6)
    # The backlog's retry timer waits 1-2 s: long enough that it cannot take the round lock (and the network)
    # while the next four exports run, however slow the machine.
    slow_retry = {**FAST, "export_timeout": 0.5, "backoff_base": 2.0, "backoff_max": 2.0}
    exporter = NexusSpanExporter(api_key=server.api_key, endpoint=server.url, **slow_retry, max_backlog_spans=6)
    assert exporter.export(finished_run()) is SpanExportResult.FAILURE  # tried until its timeout
    for _ in range(4):
        started = time.monotonic()
        assert exporter.export(finished_run()) is SpanExportResult.FAILURE
        # Nexus is known to be down: export() returns without trying the network, which would have taken it
        # to its export_timeout (0.5 s) of retries like the first call. (Per call: a loaded machine is slow.)
        assert time.monotonic() - started < 0.5
    assert exporter.backlog_spans == 6 and exporter.stats["spans_dropped_backlog_full"] == 4
    (warning,) = nexus_warnings(caplog)[-1:]  # told at once, and not once per span
    assert "backlog_full=" in warning and len([m for m in nexus_warnings(caplog) if "dropped" in m]) == 1
    server.heal()  # no export() call follows: the exporter's own retry delivers the backlog
    assert server.wait_for_traces(3, with_spans=6, timeout=10)
    assert exporter.force_flush(5000) and exporter.backlog_spans == 0
    assert server.count(CREATE_TRACE, 201) == 3 and server.count(CREATE_SPAN, 201) == 6
    exporter.shutdown()


def test_refused_connections_then_nexus_comes_up(caplog: pytest.LogCaptureFixture) -> None:
    key = "nxs_" + "1" * 64
    port = closed_port()
    exporter = NexusSpanExporter(api_key=key, endpoint=f"http://127.0.0.1:{port}", **{**FAST, "export_timeout": 0.5})
    assert exporter.export(finished_run()) is SpanExportResult.FAILURE
    assert exporter.backlog_spans == 2
    with NexusServer(api_key=key, port=port) as server:
        assert server.wait_for_traces(1, with_spans=2, timeout=10)
        assert exporter.force_flush(5000) and server.count(CREATE_TRACE) == 1
    exporter.shutdown()
    assert key not in caplog.text


def test_a_server_hanging_for_60_s_costs_export_its_timeout_only_and_duplicates_nothing(server: NexusServer) -> None:
    server.fail_next("*", 504, count=10**6, hang=60.0)  # held without an answer, never applied
    exporter = NexusSpanExporter(api_key=server.api_key, endpoint=server.url, **{**FAST, "export_timeout": 1.0})
    started = time.monotonic()
    assert exporter.export(finished_run()) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 3.0
    server.heal()
    assert exporter.force_flush(5000)  # the unanswered POST is looked up first, then posted once
    assert server.count(CREATE_TRACE, 201) == 1 and len(server.traces) == 1 and len(server.traces[0]["spans"]) == 2
    exporter.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_sends_the_parents_spans(server: NexusServer) -> None:
    exporter = NexusSpanExporter(
        api_key=server.api_key, endpoint=server.url, agent_id="bot", **{**FAST, "export_timeout": 0.5}
    )
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("fork")
    server.fail_next("*", 503, count=10**6)
    assert exporter.export(finished_run("parent")) is SpanExportResult.FAILURE  # in the parent's backlog
    open_run = tracer.start_span("invoke_agent open", attributes={gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent"})
    with tracer.start_as_current_span("run_step waiting", context=set_span_in_context(open_run)):
        pass
    exporter.export(memory.get_finished_spans())  # waits for its run
    server.heal()
    pid = os.fork()
    if pid == 0:  # the child: its own run only; shutdown would send anything still held
        code = 1
        try:
            ok = exporter.backlog_spans == 0 and exporter.export(finished_run("child")) is SpanExportResult.SUCCESS
            exporter.shutdown()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    open_run.end()
    memory.clear()
    assert exporter.export([*memory.get_finished_spans(), open_run]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    names = sorted(t["name"] for t in server.traces)
    assert names == ["invoke_agent child", "invoke_agent open", "invoke_agent parent"]
    (opened,) = [t for t in server.traces if t["name"] == "invoke_agent open"]
    assert sorted(s["name"] for s in opened["spans"]) == ["invoke_agent open", "run_step waiting"]


EXIT_APP = """
import time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.nexus import NexusSpanExporter

provider = TracerProvider()  # shuts down at exit, like every app
provider.add_span_processor(BatchSpanProcessor(NexusSpanExporter()))
tracer = provider.get_tracer("exit")
with tracer.start_as_current_span("invoke_agent exit", attributes={"gen_ai.operation.name": "invoke_agent"}):
    pass
print(time.monotonic(), flush=True)
"""


def test_exit_with_nexus_hanging_is_bounded_by_the_export_timeout(server: NexusServer) -> None:
    server.fail_next("*", 504, count=10**6, hang=60.0)
    env = {**os.environ, "NEXUS_API_KEY": server.api_key, "NEXUS_ENDPOINT": server.url, "NEXUS_EXPORT_TIMEOUT": "1"}
    done = subprocess.run([sys.executable, "-c", EXIT_APP], env=env, capture_output=True, text=True, timeout=30)
    exit_took = time.monotonic() - float(done.stdout.split()[0])
    assert done.returncode == 0, done.stderr
    assert exit_took < 3.0, exit_took  # NEXUS_EXPORT_TIMEOUT (1 s) and a margin, not 60 s
    assert "dropped spans: shutdown=1" in done.stderr and server.api_key not in done.stderr


def test_max_age_sends_spans_whose_run_never_ends_as_timeout(server: NexusServer) -> None:
    exporter = NexusSpanExporter(api_key=server.api_key, endpoint=server.url, **FAST, max_trace_age=0.05)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("age")
    root = tracer.start_span("invoke_agent stuck", attributes={gen_ai.GEN_AI_OPERATION_NAME: "invoke_agent"})
    with tracer.start_as_current_span(
        "run_step x", context=set_span_in_context(root), attributes={"azure.ai.agents.run_step.id": "s"}
    ):
        pass
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    assert server.traces == []
    time.sleep(0.1)  # older than max_trace_age now
    assert exporter.export([]) is SpanExportResult.SUCCESS
    (trace,) = server.traces
    assert trace["status"] == "timeout" and [s["name"] for s in trace["spans"]] == ["run_step x"]
    exporter.shutdown()


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
