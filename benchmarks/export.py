"""Export throughput to local servers: the Nexus exporter beside OTLP/HTTP (and Application Insights).

The spans are REAL run traces: a few function-call runs are driven through the instrumented SDK (in-process
transport) and captured once; they are then cloned under fresh trace and span ids, so every exporter sends the
same N traces (run span + 2 step spans + 1 tool span each, children before their root as a span processor
delivers them).

* Nexus: ``NexusSpanExporter`` -> ``emulator.nexus_server.NexusServer`` (validating like the real Worker).
  Its ``export()`` only buffers and queues; background workers (4 by default, one trace each at a time) post
  one trace then each span (the Nexus API has no batch route), so throughput is bounded by round trips, four
  at a time. Time: from the first ``export()`` to ``force_flush()`` returning with every trace delivered.
* OTLP/HTTP: ``OTLPSpanExporter`` -> ``emulator.otlp_server.OtlpHttpReceiver`` in batches of 512 spans (what
  ``BatchSpanProcessor`` sends).
* Application Insights: ``AzureMonitorTraceExporter`` -> ``emulator.appinsights_server.AppInsightsReceiver``,
  batches of 512 (optional: skipped when azure-monitor-opentelemetry-exporter is missing).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from typing import Any, Callable, Optional, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

BATCH = 512
_ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")


def template_traces(count: int = 8) -> list[list[ReadableSpan]]:
    """Real run traces from the instrumented SDK, each ordered as exported (root last)."""
    from azure.ai.agents.models import FunctionTool, ToolOutput

    from azure_ai_agents_emulator import AgentsService, agents_client
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        return "sunny"

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = AzureAgentInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = agents_client(AgentsService(default_scenario="function_call"), in_process=True)
        agent = client.create_agent(model="gpt-4o", name="export-bench", tools=FunctionTool({get_weather}).definitions)
        thread = client.threads.create()
        for _ in range(count):
            run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
            while run.status in _ACTIVE:
                if run.status == "requires_action":
                    outputs = [
                        ToolOutput(tool_call_id=c.id, output='{"temperature_c": 21}')
                        for c in run.required_action.submit_tool_outputs.tool_calls
                    ]
                    run = client.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)
                else:
                    run = client.runs.get(thread_id=thread.id, run_id=run.id)
    finally:
        instrumentor.uninstrument()
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in memory.get_finished_spans():  # finishing order: children before the run span
        by_trace.setdefault(span.context.trace_id, []).append(span)
    return list(by_trace.values())


def clone_traces(templates: Sequence[Sequence[ReadableSpan]], n: int, seed: int = 1) -> list[list[ReadableSpan]]:
    """n traces cloned from the templates with fresh trace/span ids, the same tree and attributes."""
    rng = random.Random(seed)
    out = []
    for index in range(n):
        template = templates[index % len(templates)]
        trace_id = rng.getrandbits(128) or 1
        ids = {s.context.span_id: rng.getrandbits(64) or 1 for s in template}
        clones = []
        for span in template:
            parent = None
            if span.parent is not None:
                parent = SpanContext(trace_id, ids.get(span.parent.span_id, span.parent.span_id), False, TraceFlags(1))
            clones.append(
                ReadableSpan(
                    name=span.name,
                    context=SpanContext(trace_id, ids[span.context.span_id], False, TraceFlags(1)),
                    parent=parent,
                    resource=span.resource,
                    attributes=span.attributes,
                    events=span.events,
                    links=span.links,
                    kind=span.kind,
                    status=span.status,
                    start_time=span.start_time,
                    end_time=span.end_time,
                    instrumentation_scope=span.instrumentation_scope,
                )
            )
        out.append(clones)
    return out


def _result(name: str, traces: int, spans: int, delivered: int, requests: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "exporter": name,
        "traces": traces,
        "spans": spans,
        "spans_delivered": delivered,
        "requests": requests,
        "requests_per_trace": round(requests / traces, 3) if traces else None,
        "seconds": round(seconds, 3),
        "spans_per_second": round(delivered / seconds) if seconds > 0 else None,
        **extra,
    }


class ServerProcess:
    """Runs a local server in a child process, so that it does not share this process's GIL and core with the
    exporter under test (a real backend is another machine). ``describe(server)`` and ``report(server)`` run in
    the child and must return picklable values."""

    def __init__(self, factory: Callable[[], Any], describe: Callable[[Any], Any], report: Callable[[Any], Any]) -> None:
        self._factory, self._describe, self._report = factory, describe, report
        self._conn: Any = None
        self._process: Any = None

    def _serve(self, conn: Any) -> None:
        with self._factory() as server:
            conn.send(self._describe(server))
            while True:
                command = conn.recv()
                if command == "report":
                    conn.send(self._report(server))
                else:
                    break

    def __enter__(self) -> Any:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=self._serve, args=(child,), daemon=True)
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("local server did not start")
        return self._conn.recv()

    def report(self) -> Any:
        self._conn.send("report")
        return self._conn.recv()

    def __exit__(self, *exc: Any) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


class _InProcess:
    """The same interface as :class:`ServerProcess`, serving from a thread of this process (for comparison:
    the server then competes with the exporter for the GIL)."""

    def __init__(self, factory: Callable[[], Any], describe: Callable[[Any], Any], report: Callable[[Any], Any]) -> None:
        self._server = factory()
        self._describe, self._report = describe, report

    def __enter__(self) -> Any:
        self._server.__enter__()
        return self._describe(self._server)

    def report(self) -> Any:
        return self._report(self._server)

    def __exit__(self, *exc: Any) -> None:
        self._server.__exit__(*exc)


def _with_delay(server: Any, delay: float) -> Any:
    server.delay = delay
    return server


def _nexus_server(delay: float = 0.0) -> Any:
    from tests.fakes.nexus_server import NexusServer

    return _with_delay(NexusServer(plan="pro"), delay)


def _nexus_report(server: Any) -> dict[str, int]:
    stored = server.traces
    return {
        "requests": server.request_count,
        "traces": len(stored),
        "spans": sum(len(t.get("spans") or ()) for t in stored),
        "rejected": server.rejected_count,
    }


def _otlp_server(delay: float = 0.0) -> Any:
    from tests.fakes.otlp_server import OtlpHttpReceiver

    return _with_delay(OtlpHttpReceiver(), delay)


def _otlp_report(server: Any) -> dict[str, int]:
    return {"requests": len(server.requests), "spans": len(server.spans)}


def _appinsights_server(delay: float = 0.0) -> Any:
    from tests.fakes.appinsights_server import AppInsightsReceiver

    return _with_delay(AppInsightsReceiver(), delay)


def _appinsights_report(server: Any) -> dict[str, int]:
    return {"requests": len(server.requests), "spans": len(server.dependencies())}


def _host(separate_process: bool) -> type:
    return ServerProcess if separate_process else _InProcess


def nexus(traces: list[list[ReadableSpan]], delay: float = 0.0, separate_process: bool = True) -> dict[str, Any]:
    from opentelemetry.exporter.nexus import NexusSpanExporter

    total = sum(len(t) for t in traces)
    host = _host(separate_process)(lambda: _nexus_server(delay), lambda s: (s.url, s.api_key), _nexus_report)
    with host as (url, api_key):
        exporter = NexusSpanExporter(
            api_key=api_key,
            endpoint=url,
            max_queue_size=len(traces) + 16,  # the benchmark produces faster than any backend absorbs
            export_timeout=120.0,
        )
        try:
            app_thread_ns = 0
            started = time.perf_counter()
            for spans in traces:
                t0 = time.perf_counter_ns()
                exporter.export(spans)
                app_thread_ns += time.perf_counter_ns() - t0
            flushed = exporter.force_flush(timeout_millis=300_000)
            seconds = time.perf_counter() - started
            stats = exporter.stats
        finally:
            exporter.shutdown()
        server = host.report()
    return _result(
        "nexus",
        len(traces),
        total,
        server["spans"],
        server["requests"],
        seconds,
        server_latency_ms=delay * 1000,
        flushed=flushed,
        nexus_traces=server["traces"],
        rejected=server["rejected"],
        export_call_us_per_span=round(app_thread_ns / total / 1000, 2),
        dropped=sum(v for k, v in stats.items() if "dropped" in k or "failed" in k),
    )


def _batches(traces: list[list[ReadableSpan]]) -> list[list[ReadableSpan]]:
    flat = [s for t in traces for s in t]
    return [flat[i : i + BATCH] for i in range(0, len(flat), BATCH)]


def _batch_export(name: str, exporter_factory: Callable[[str], Any], host: Any, traces: list[list[ReadableSpan]], delay: float) -> dict[str, Any]:
    from opentelemetry.sdk.trace.export import SpanExportResult

    total = sum(len(t) for t in traces)
    with host as address:
        exporter = exporter_factory(address)
        try:
            started = time.perf_counter()
            results = [exporter.export(batch) for batch in _batches(traces)]
            seconds = time.perf_counter() - started
        finally:
            exporter.shutdown()
        server = host.report()
    ok = all(r is SpanExportResult.SUCCESS for r in results)
    return _result(name, len(traces), total, server["spans"], server["requests"], seconds, server_latency_ms=delay * 1000, ok=ok)


def otlp_http(traces: list[list[ReadableSpan]], delay: float = 0.0, separate_process: bool = True) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    host = _host(separate_process)(lambda: _otlp_server(delay), lambda s: s.traces_endpoint, _otlp_report)
    return _batch_export("otlp_http", lambda endpoint: OTLPSpanExporter(endpoint=endpoint), host, traces, delay)


def appinsights(traces: list[list[ReadableSpan]], delay: float = 0.0, separate_process: bool = True) -> Optional[dict[str, Any]]:
    for name in (
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
        "APPLICATIONINSIGHTS_SDKSTATS_DISABLED",
    ):
        os.environ.setdefault(name, "true")
    try:
        from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
    except ImportError:
        return None

    def factory(connection_string: str) -> Any:
        return AzureMonitorTraceExporter(
            connection_string=connection_string, disable_offline_storage=True, tracer_provider=TracerProvider()
        )

    host = _host(separate_process)(lambda: _appinsights_server(delay), lambda s: s.connection_string, _appinsights_report)
    return _batch_export("appinsights", factory, host, traces, delay)


def run(n_traces: int = 600, latency_traces: int = 30, latency: float = 0.010, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every exporter on localhost (servers in a child process), then with ``latency`` added by the server to
    every response (a remote backend), where the number of sequential requests per trace dominates."""
    templates = template_traces()
    traces = clone_traces(templates, n_traces)
    slow_traces = clone_traces(templates, latency_traces, seed=2)
    out: dict[str, Any] = {
        "traces": n_traces,
        "spans_per_trace": sum(len(t) for t in traces) / len(traces),
        "results": [],
    }
    plan = [
        ("nexus", nexus, traces, 0.0),
        ("otlp_http", otlp_http, traces, 0.0),
        ("appinsights", appinsights, traces, 0.0),
        ("nexus", nexus, slow_traces, latency),
        ("otlp_http", otlp_http, slow_traces, latency),
    ]
    for name, bench, batch, delay in plan:
        try:
            result = bench(batch, delay)
        except Exception as error:  # one exporter missing or broken must not hide the others
            result = {"exporter": name, "server_latency_ms": delay * 1000, "error": f"{type(error).__name__}: {error}"}
        if result is not None:
            out["results"].append(result)
            log(f"  export: {name} (+{delay * 1000:.0f} ms) done")
    return out
