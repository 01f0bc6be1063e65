"""Per-call overhead on the new Foundry agents' calls: uninstrumented vs ours vs Microsoft's AIProjectInstrumentor.

Runs in the second environment (azure-ai-projects >= 2 and openai; see requirements-foundry.txt)::

    pip install -r requirements-foundry.txt azure-core-tracing-opentelemetry   # Microsoft's needs azure-core tracing
    python benchmarks/foundry_overhead.py            # a table on stdout (~1 minute on 2 cores)
    python benchmarks/foundry_overhead.py --quick    # a smoke run
    python benchmarks/foundry_overhead.py --json out.json --check   # exit status 1 when a target is missed

The REAL ``openai`` client that ``project.get_openai_client()`` returns drives the emulated service in-process
(an httpx ``MockTransport`` calling the emulator's request handler; no sockets), so the numbers hold the whole
client pipeline (request building, JSON, pydantic models) but no network. Method as in ``overhead.py``:
configurations alternate in rotated order over rounds; the added cost is the median over rounds of (round median -
uninstrumented round median).

* ``none``: nothing instrumented.
* ``ours``: ``AzureAgentInstrumentor`` with an SDK ``TracerProvider`` (``SimpleSpanProcessor`` + a no-op exporter:
  span processing is paid on the measured call) and an SDK ``MeterProvider``.
* ``microsoft``: ``azure.ai.projects.telemetry.AIProjectInstrumentor`` (``AZURE_EXPERIMENTAL_ENABLE_GENAI_TRACING
  =true``, azure-core tracing through ``azure-core-tracing-opentelemetry``), exporting through the same provider.

Workloads: ``responses.create`` through an agent's endpoint client (``get_openai_client(agent_name=...)``, how
most of azure-ai-projects 2.x's samples invoke agents), ``responses.create`` with an agent reference (one message),
``responses.create`` whose response holds a server-side tool item (code interpreter), ``responses.retrieve`` of an
open background invocation (the polling hot path), and a plain ``responses.create`` without an agent reference
(which we leave alone).

**The floor.** What recording one invocation costs at the least with the OpenTelemetry SDK: ONE span carrying
the attributes our ``invoke_agent`` span ends with plus the invocation's metric records (the duration and the two
token counts), with prepared attribute dictionaries: as a minimal wrapper around the same stub, the span current
while the call runs and the metrics are recorded (``floor_us``, the target's denominator), and as a bare loop with
no wrapper and no current span (``floor_bare_us``, a lower bound). Targets (issue 17): per agent call, ours at most half of Microsoft's added cost and at most
twice the floor; a poll within 5 % of the plain call.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402

from common import NoopExporter, machine, paired_added_us, summary_us  # noqa: E402

CONFIGS = ("none", "ours", "microsoft")
WORKLOADS = ("create_endpoint", "create", "create_with_tool", "retrieve_polling", "create_plain")
#: Targets (issue 17): per agent call, our added cost at most half of Microsoft's and at most twice the floor (one
#: recording span plus its metric records); a poll within 5 % of the plain call.
MAX_RATIO_TO_MICROSOFT = 0.5
MAX_RATIO_TO_FLOOR = 2.0
MAX_POLL_FRACTION = 0.05
#: The agent workloads the targets apply to.
AGENT_CALLS = ("create_endpoint", "create", "create_with_tool")
_perf = time.perf_counter_ns


class Bench:
    """One in-process emulated service, one real openai client, the providers and both instrumentors."""

    def __init__(self) -> None:
        import httpx2

        from azure_ai_agents_emulator import AgentsService, foundry_project_client
        from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

        self.exporter = NoopExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        trace.set_tracer_provider(self.tracer_provider)  # Microsoft's instrumentation uses the global provider
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        self.service = service = AgentsService()

        def handle(request: Any) -> Any:
            answer = service.handle(request.method, request.url.path, dict(request.url.params), request.content)
            body = answer.body if isinstance(answer.body, bytes) else b"".join(answer.body)
            return httpx2.Response(answer.status, headers=answer.headers, content=body)

        class _Emulator:  # what foundry_project_client reads: an endpoint (never dialled: the transport answers)
            endpoint = "http://emulator.invalid/api/projects/emulated"

        from azure_ai_agents_emulator import InProcessTransport

        self.project = foundry_project_client(_Emulator(), transport=InProcessTransport(service))  # type: ignore[arg-type]
        from azure.ai.projects.models import PromptAgentDefinition

        for name in ("message", "code_interpreter"):
            self.project.agents.create_version(agent_name=name, definition=PromptAgentDefinition(model="gpt-4o"))
        self._transport = httpx2.MockTransport(handle)
        self.client = self._new_client()
        self.endpoint_client = self._new_client(agent_name="message")
        self.ours = AzureAgentInstrumentor()
        self.microsoft: Any = None

    def _new_client(self, agent_name: Any = None) -> Any:
        import httpx2

        http_client = httpx2.Client(transport=self._transport)
        return self.project.get_openai_client(agent_name=agent_name, http_client=http_client)

    def enter(self, config: str) -> None:
        if config == "ours":
            self.ours.instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)
        elif config == "microsoft":
            from azure.ai.projects.telemetry import AIProjectInstrumentor
            from azure.core.settings import settings

            os.environ["AZURE_EXPERIMENTAL_ENABLE_GENAI_TRACING"] = "true"
            settings.tracing_implementation = "opentelemetry"
            self.microsoft = AIProjectInstrumentor()
            self.microsoft.instrument(enable_content_recording=False)
        # Apps instrument at start-up, then get their client (Microsoft's instrumentor hooks clients it sees made).
        self.client.close()
        self.endpoint_client.close()
        self.client = self._new_client()
        self.endpoint_client = self._new_client(agent_name="message")

    def leave(self, config: str) -> None:
        if config == "ours":
            self.ours.uninstrument()
        elif config == "microsoft":
            from azure.core.settings import settings

            self.microsoft.uninstrument()
            settings.tracing_implementation = None

    def calls(self, workload: str) -> Callable[[], Any]:
        """A zero-argument callable doing one call of ``workload`` (set up under the current configuration)."""
        create, retrieve = self.client.responses.create, self.client.responses.retrieve
        if workload == "create_endpoint":
            return lambda: self.endpoint_client.responses.create(input="hi")
        if workload == "create":
            return lambda: create(input="hi", extra_body={"agent_reference": {"name": "message"}})
        if workload == "create_with_tool":
            return lambda: create(input="compute", extra_body={"agent_reference": {"name": "code_interpreter"}})
        if workload == "create_plain":
            return lambda: create(model="gpt-4o", input="hi")
        background = create(  # stays queued: every retrieve is a poll of an open invocation
            input="long job", background=True, metadata={"polls_per_state": str(10**9)},
            extra_body={"agent_reference": {"name": "message"}},
        )
        return lambda: retrieve(background.id)


def run(rounds: int = 16, calls_per_round: int = 60, log: Callable[[str], None] = print) -> dict[str, Any]:
    bench = Bench()
    samples: dict[str, dict[str, list[list[int]]]] = {w: {c: [] for c in CONFIGS} for w in WORKLOADS}
    spans: dict[str, int] = {c: 0 for c in CONFIGS}
    for config in CONFIGS:  # warm every configuration once (imports, caches, first calls), untimed
        bench.enter(config)
        try:
            for workload in WORKLOADS:
                call = bench.calls(workload)
                for _ in range(20):
                    call()
        finally:
            bench.leave(config)
    started = time.monotonic()
    for index in range(rounds):
        order = CONFIGS[index % len(CONFIGS) :] + CONFIGS[: index % len(CONFIGS)]
        for config in order:
            gc.collect()
            bench.enter(config)
            exported = bench.exporter.count
            try:
                for workload in WORKLOADS:
                    call, timings = bench.calls(workload), []
                    for _ in range(calls_per_round):
                        start = _perf()
                        call()
                        timings.append(_perf() - start)
                    samples[workload][config].append(timings)
            finally:
                bench.leave(config)
                spans[config] += bench.exporter.count - exported
        if index == 0:
            log(f"  foundry overhead: round 1/{rounds} took {time.monotonic() - started:.1f}s")
    report: dict[str, Any] = {"machine": machine(), "workloads": {}, "spans_exported": spans}
    report["machine"]["packages"].update(_versions("openai", "azure-ai-projects", "httpx2"))
    for workload, by_config in samples.items():
        base = by_config["none"]
        rows: dict[str, Any] = {"none": summary_us([x for r in base for x in r])}
        for config in CONFIGS[1:]:
            rows[config] = {**summary_us([x for r in by_config[config] for x in r]), **paired_added_us(base, by_config[config])}
        ours, ms = rows["ours"]["added_us"], rows["microsoft"]["added_us"]
        rows["ours_vs_microsoft_added"] = round(ours / ms, 3) if ms and ms > 0 else None
        report["workloads"][workload] = rows
    report["notes"] = f"{rounds} rounds x {calls_per_round} calls per workload and configuration"
    report["own_cost"] = own_cost(bench)
    return report


def own_cost(bench: Bench, calls: int = 2000) -> dict[str, Any]:
    """Each instrumentation's own cost on ``responses.create``, without client noise: the real wrappers around a
    stub method that returns a real ``Response`` instantly; and the floor (see the module docstring), timed the
    same way. Uses internals of both (``patch``, Microsoft's ``_inject_sync``): informational."""
    import timeit

    import wrapt

    from opentelemetry.instrumentation.azure_ai_agents.foundry.operations import CreateResponse
    from opentelemetry.instrumentation.azure_ai_agents.patch import sync_wrapper

    reference = {"agent_reference": {"name": "message"}}
    answers = {
        "message": bench.client.responses.create(input="hi", extra_body=reference),
        "with_tool": bench.client.responses.create(
            input="hi", extra_body={"agent_reference": {"name": "code_interpreter"}}
        ),
        "endpoint": bench.endpoint_client.responses.create(input="hi"),
    }

    class Stub:
        _client = bench.client
        answer: Any = None

        def create(self, **kwargs: Any) -> Any:
            return self.answer

    class EndpointStub(Stub):
        _client = bench.endpoint_client

    def per_call(fn: Callable[[], Any]) -> float:
        return min(timeit.repeat(fn, number=calls // 5, repeat=5)) / (calls // 5) * 1e6

    stub, endpoint_stub, plain = Stub(), EndpointStub(), Stub.create
    requests: dict[str, tuple[Any, dict[str, Any]]] = {
        "message": (stub, {"input": "hi", "extra_body": reference}),
        "with_tool": (stub, {"input": "hi", "extra_body": reference}),
        "endpoint": (endpoint_stub, {"input": "hi"}),
    }
    out: dict[str, Any] = {"method": f"best of 5 x {calls // 5} calls through each wrapper around a stub"}
    bench.enter("ours")
    try:
        ours = wrapt.FunctionWrapper(Stub.create, sync_wrapper(bench.ours._invocations, CreateResponse()))
        for name, answer in answers.items():
            Stub.answer = answer
            target, kwargs = requests[name]
            bound = ours.__get__(target, type(target))  # as ``client.responses.create``: the instance is known
            base = per_call(lambda t=target, k=kwargs: plain(t, **k))
            out[f"ours_{name}_us"] = round(per_call(lambda b=bound, k=kwargs: b(**k)) - base, 1)
        bound = ours.__get__(stub, Stub)
        out["ours_plain_call_us"] = round(per_call(lambda: bound(model="gpt-4o", input="hi")) - base, 1)
        out.update(floor(bench, per_call))
    finally:
        bench.leave("ours")
    bench.enter("microsoft")
    try:
        from azure.ai.projects.telemetry._responses_instrumentor import TraceType

        theirs = bench.microsoft._responses_impl._inject_sync(Stub.create, TraceType.RESPONSES, "create")
        for name, answer in answers.items():
            Stub.answer = answer
            target, kwargs = requests[name]
            base = per_call(lambda t=target, k=kwargs: plain(t, **k))
            out[f"microsoft_{name}_us"] = round(per_call(lambda t=target, k=kwargs: theirs(t, **k)) - base, 1)
    except Exception as error:  # their internals moved: the end-to-end numbers still stand
        out["microsoft_error"] = f"{type(error).__name__}: {error}"
    finally:
        bench.leave("microsoft")
    for name in answers:
        ms = out.get(f"microsoft_{name}_us")
        out[f"ratio_{name}"] = round(out[f"ours_{name}_us"] / ms, 3) if ms else None
        out[f"floor_ratio_{name}"] = round(out[f"ours_{name}_us"] / out["floor_us"], 2) if out["floor_us"] else None
        bare = out["floor_bare_us"]
        out[f"bare_floor_ratio_{name}"] = round(out[f"ours_{name}_us"] / bare, 2) if bare else None
    return out


def floor(bench: Bench, per_call: Callable[[Callable[[], Any]], float]) -> dict[str, Any]:
    """The floor: the least an instrumentation recording this invocation pays. ``floor_us``: a minimal wrapper
    (wrapt, like ours) around the same stub that starts ONE span with the attributes our ``invoke_agent`` span ends
    with, makes it current during the call (as ``start_as_current_span`` instrumentations do), records the
    invocation's three metric records (prepared attribute dictionaries) and ends the span. ``floor_bare_us``: the
    same span and records in a bare loop, no wrapper, no current span (no exemplars): a lower bound."""
    import wrapt
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import SpanKind

    bench.endpoint_client.responses.create(input="hi")  # one real invocation, to copy its span's attributes
    invocation = bench.exporter.last[-1]  # the invoke_agent span ends last (after its chat span)
    assert invocation.name.startswith("invoke_agent"), invocation.name
    attributes = dict(invocation.attributes or {})
    tracer = bench.tracer_provider.get_tracer("floor")
    meter = bench.meter_provider.get_meter("floor")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    base = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "microsoft.foundry",
        "gen_ai.request.model": "gpt-4o",
    }
    given, made = {**base, "gen_ai.token.type": "input"}, {**base, "gen_ai.token.type": "output"}

    def span() -> None:
        tracer.start_span(invocation.name, kind=SpanKind.CLIENT, attributes=attributes).end()

    def records() -> None:
        duration.record(0.5, base)
        tokens.record(120, given)
        tokens.record(30, made)

    def bare() -> None:
        span()
        records()

    def minimal(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        current = tracer.start_span(invocation.name, kind=SpanKind.CLIENT, attributes=attributes)
        token = otel_context.attach(otel_trace.set_span_in_context(current))
        try:
            return wrapped(*args, **kwargs)
        finally:
            records()
            otel_context.detach(token)
            current.end()

    class Stub:
        answer = bench.endpoint_client.responses.create(input="hi")

        def create(self, **kwargs: Any) -> Any:
            return self.answer

    stub = Stub()
    wrapper = wrapt.FunctionWrapper(Stub.create, minimal).__get__(stub, Stub)
    plain = per_call(lambda: stub.create(input="hi"))
    return {
        "floor_us": round(per_call(lambda: wrapper(input="hi")) - plain, 1),
        "floor_bare_us": round(per_call(bare), 1),
        "floor_span_us": round(per_call(span), 1),
        "floor_metrics_us": round(per_call(records), 1),
        "floor_span_attributes": len(attributes),
    }


def _versions(*names: str) -> dict[str, Any]:
    from importlib import metadata

    out: dict[str, Any] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def table(report: dict[str, Any]) -> str:
    lines = [
        "| Per call (in-process, medians) | uninstrumented | ours added | Microsoft added | ours / Microsoft |",
        "|---|---:|---:|---:|---:|",
    ]
    for workload, rows in report["workloads"].items():
        base = rows["none"]["median_us"]
        added = {}
        for config in ("ours", "microsoft"):
            value = rows[config]["added_us"]
            added[config] = f"{value:.1f} µs ({100 * value / base:.1f} %)" if base else f"{value:.1f} µs"
        ratio = rows["ours_vs_microsoft_added"]
        lines.append(
            f"| `{workload}` | {base:.0f} µs | {added['ours']} | {added['microsoft']} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}'} |"
        )
    return "\n".join(lines)


def floor_table(own: dict[str, Any]) -> str:
    """Own cost (wrappers around a stub) against Microsoft's and against the floor."""
    lines = [
        f"| Own cost per agent call (stub) | ours | Microsoft's | ours / Microsoft | ours / floor ({own['floor_us']:.1f}"
        f" µs) | ours / bare floor ({own['floor_bare_us']:.1f} µs: span {own['floor_span_us']:.1f} + metrics"
        f" {own['floor_metrics_us']:.1f}) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("endpoint", "message", "with_tool"):
        ms = own.get(f"microsoft_{name}_us")
        lines.append(
            f"| `{name}` | {own[f'ours_{name}_us']:.1f} µs | {'n/a' if ms is None else f'{ms:.1f} µs'} | "
            f"{own.get(f'ratio_{name}')} | {own.get(f'floor_ratio_{name}')} | {own.get(f'bare_floor_ratio_{name}')} |"
        )
    return "\n".join(lines)


def check(report: dict[str, Any]) -> list[str]:
    """Missed targets (see the module docstring): end to end and own cost against Microsoft's, own cost against
    the floor, polls against the plain call."""
    missed = []
    workloads, own = report["workloads"], report["own_cost"]
    for workload in AGENT_CALLS:
        ratio = workloads[workload]["ours_vs_microsoft_added"]
        if ratio is None or ratio > MAX_RATIO_TO_MICROSOFT:
            missed.append(f"{workload}: ours / Microsoft = {ratio} (target <= {MAX_RATIO_TO_MICROSOFT})")
    for name in ("endpoint", "message", "with_tool"):
        ratio = own.get(f"floor_ratio_{name}")
        if ratio is None or ratio > MAX_RATIO_TO_FLOOR:
            missed.append(f"own cost {name}: ours / floor = {ratio} (target <= {MAX_RATIO_TO_FLOOR})")
        ratio = own.get(f"ratio_{name}")
        if ratio is None or ratio > MAX_RATIO_TO_MICROSOFT:
            missed.append(f"own cost {name}: ours / Microsoft = {ratio} (target <= {MAX_RATIO_TO_MICROSOFT})")
    poll = workloads["retrieve_polling"]
    fraction = poll["ours"]["added_us"] / poll["none"]["median_us"] if poll["none"]["median_us"] else None
    if fraction is None or fraction > MAX_POLL_FRACTION:
        missed.append(f"retrieve_polling: ours adds {fraction} of the call (target <= {MAX_POLL_FRACTION})")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (4 rounds x 20 calls)")
    parser.add_argument("--json", metavar="FILE", help="also write the full report as JSON")
    parser.add_argument("--check", action="store_true", help="exit status 1 when a target is missed")
    options = parser.parse_args()
    kwargs = {"rounds": 4, "calls_per_round": 20} if options.quick else {}
    report = run(log=lambda line: print(line, file=sys.stderr), **kwargs)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)
    info = report["machine"]
    print(f"{info['cpu']}, {info['usable_cpus']} usable CPUs, load {info['load_average_at_start']}, {info['python']}")
    print(", ".join(f"{k} {v}" for k, v in info["packages"].items() if v))
    print(table(report))
    print(f"spans exported per configuration: {report['spans_exported']}")
    print(floor_table(report["own_cost"]))
    print("own cost per create (wrappers around a stub):", json.dumps(report["own_cost"]))
    missed = check(report)
    for line in missed:
        print("MISSED:", line)
    return 1 if (options.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
