"""Delivery at real round trips: the Nexus exporter beside the OTLP/HTTP exporter, on the same load.

The spans are REAL run traces: a few function-call runs are driven through the instrumented SDK (in-process
transport) and captured once; they are cloned under fresh trace and span ids (run span, two step spans, one
tool span each, in the order a span processor receives them: children first).

The pipeline is the standard one: four app threads hand the spans to the SDK's ``BatchSpanProcessor`` (SDK
defaults: 5 s schedule delay, batches of 512 spans; queue raised to 16,384 spans so that bursts measure the
exporter, not the SDK queue), which calls the exporter's ``export()`` on its own thread. The receivers
(``tests.fakes``) run in a child process and answer every request after ``latency`` seconds, like a backend
across a network: Nexus (one POST per trace and per span: a run costs 5 requests, 4 of them in sequence) and
OTLP/HTTP (one POST per batch).

Loads: *steady* (``rate`` traces/s for ``seconds``) and *bursty* (``burst`` traces at once). Per run: traces
delivered whole, traces/s (delivered / time from the first span handed over to the last trace visible), and
time-to-visible per trace (from its run span's end in the app to its last span stored by the receiver).
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from typing import Any, Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

import common

_ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
APP_THREADS = 4
QUEUE_SIZE = 16_384


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
    # Agent runs only: the agent's creation is a trace of its own (one create_agent span), which Nexus is not sent.
    return [spans for spans in by_trace.values() if any(s.name.startswith("invoke_agent") for s in spans)]


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


def _nexus_server(latency: float) -> Any:
    """A Nexus emulator that also notes when each Nexus trace got its last span."""
    from tests.fakes.nexus_server import CREATE_SPAN, NexusServer

    server = NexusServer(plan="pro", monthly_limit=10**9)
    server.delay = latency
    server.last_span_at = {}
    record = server._record

    def timed(entry: Any) -> None:
        record(entry)
        if entry.route == CREATE_SPAN and entry.status == 201:
            server.last_span_at[entry.path.split("/")[4]] = time.monotonic()

    server._record = timed
    return server


def _nexus_report(server: Any) -> dict[str, Any]:
    """OTel trace id -> when the trace was whole in Nexus (its last span stored)."""
    visible = {}
    for trace in server.traces:
        at = server.last_span_at.get(trace["id"])
        if at is not None and trace["metadata"].get("span_count") == len(trace["spans"]):
            visible[trace["metadata"]["otel_trace_id"]] = at
    return {"visible": visible, "requests": server.request_count, "rejected": server.rejected_count}


def _otlp_server(latency: float) -> Any:
    from tests.fakes.otlp_server import OtlpHttpReceiver

    server = OtlpHttpReceiver()
    server.delay = latency
    server.spans_at = {}
    store = server._store

    def timed(record: Any, signal: str = "", message: Any = None) -> None:
        store(record, signal, message)
        if message is not None and signal == "traces":
            now = time.monotonic()
            for resource in message.resource_spans:
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        key = span.trace_id.hex()
                        count, _ = server.spans_at.get(key, (0, 0.0))
                        server.spans_at[key] = (count + 1, now)

    server._store = timed
    return server


def _otlp_report(server: Any) -> dict[str, Any]:
    return {"spans_at": dict(server.spans_at), "requests": len(server.requests), "rejected": 0}


def _exporter(name: str, address: Any) -> Any:
    if name == "nexus":
        from opentelemetry.exporter.nexus import NexusSpanExporter

        url, key = address
        return NexusSpanExporter(api_key=key, endpoint=url)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=address)


def deliver(name: str, traces: list[list[ReadableSpan]], latency: float, rate: float = 0.0) -> dict[str, Any]:
    """Hand ``traces`` to a BatchSpanProcessor from 4 app threads (at ``rate`` traces/s in all, or at once),
    wait until the receiver holds them all (or the SDK's flush is done), and measure."""
    if name == "nexus":
        host = ServerProcess(lambda: _nexus_server(latency), lambda s: (s.url, s.api_key), _nexus_report)
    else:
        host = ServerProcess(lambda: _otlp_server(latency), lambda s: s.traces_endpoint, _otlp_report)
    ended: dict[str, float] = {}
    with host as address:
        exporter = _exporter(name, address)
        processor = BatchSpanProcessor(exporter, max_queue_size=QUEUE_SIZE)
        started = time.monotonic()

        def app(share: list[list[ReadableSpan]], offset: int) -> None:
            for index, spans in enumerate(share):
                if rate:
                    due = started + (offset + index * APP_THREADS) / rate
                    time.sleep(max(0.0, due - time.monotonic()))
                for span in spans:
                    processor.on_end(span)
                ended[f"{spans[-1].context.trace_id:032x}"] = time.monotonic()

        threads = [
            threading.Thread(target=app, args=(traces[n::APP_THREADS], n)) for n in range(APP_THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # The SDK exports on its schedule; wait for everything (no flush: that would hide the schedule delay).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _visible(name, host.report(), traces) < len(traces):
            time.sleep(0.25)
        processor.shutdown()
        report = host.report()
    visible = _visible_at(name, report, traces)
    ttv = sorted(visible[t] - ended[t] for t in visible if t in ended)
    last = max(visible.values(), default=started)
    stats = getattr(exporter, "stats", {})
    return {
        "exporter": name,
        "latency_ms": round(latency * 1000),
        "load": f"steady {rate:g}/s" if rate else f"burst {len(traces)}",
        "traces": len(traces),
        "delivered": len(visible),
        "dropped": len(traces) - len(visible),
        "traces_per_second": round(len(visible) / (last - started), 1) if visible else 0.0,
        "ttv_p50_s": round(common.quantile(ttv, 0.5), 2) if ttv else None,
        "ttv_p95_s": round(common.quantile(ttv, 0.95), 2) if ttv else None,
        "requests": report["requests"],
        "rejected": report["rejected"],
        "exporter_drops": {k: v for k, v in stats.items() if k.startswith("spans_dropped")},
    }


def _visible_at(name: str, report: dict[str, Any], traces: list[list[ReadableSpan]]) -> dict[str, float]:
    if name == "nexus":
        return dict(report["visible"])
    sizes = {f"{t[-1].context.trace_id:032x}": len(t) for t in traces}
    return {k: at for k, (count, at) in report["spans_at"].items() if count >= sizes.get(k, 1)}


def _visible(name: str, report: dict[str, Any], traces: list[list[ReadableSpan]]) -> int:
    return len(_visible_at(name, report, traces))


def run(
    latencies: Sequence[float] = (0.05, 0.1),
    rate: float = 20.0,
    seconds: float = 10.0,
    burst: int = 1000,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Each exporter, each latency, steady then bursty load."""
    templates = template_traces()
    out: dict[str, Any] = {"spans_per_trace": 4, "app_threads": APP_THREADS, "results": []}
    seed = 1
    for latency in latencies:
        for load in ("steady", "burst"):
            for name in ("nexus", "otlp_http"):
                seed += 1
                n = int(rate * seconds) if load == "steady" else burst
                traces = clone_traces(templates, n, seed=seed)
                try:
                    result = deliver(name, traces, latency, rate if load == "steady" else 0.0)
                except Exception as error:  # one exporter broken must not hide the others
                    result = {"exporter": name, "latency_ms": round(latency * 1000), "error": repr(error)}
                out["results"].append(result)
                log(f"  export: {name} {load} at {latency * 1000:.0f} ms done")
    return out
