"""Bursts at a realistic round trip: how fast ended runs get their steps listed, and reach Nexus.

An app ends many runs in a short time (``--runs`` over ``--seconds``; defaults: 400 in 4 s, then 1,000 in 10 s).
Every request to the Agents service is answered after ``--latency`` (100 ms; the emulator's ``latency``, through
the SDK's in-process transport, so concurrent requests wait concurrently), and the local Nexus receiver (in a
child process) answers every request after the same latency. The app: 64 threads sharing one ``AgentsClient``
(as a web app shares one), each run on the thread's own agent thread (create, then polls until ``completed``: a
message run, one step). The instrumentation lists each ended run's steps off the app's path; the run span ends
when that listing is done. Spans go through the SDK's ``BatchSpanProcessor`` (its defaults, queue raised to
16,384 spans so that the SDK queue does not drop; ``--schedule-delay`` sets its export delay, 5 s by default) to
the Nexus exporter.

Measured, per run, from the moment the app's terminal ``runs.get`` returned: when its steps were listed (its run
span ended) and when its whole trace was stored by Nexus. Reported: step listings per second (runs listed / time
from the first run ending to the last listing), p50 / p95 / max of both delays, the runs whose steps were not
listed (``steps_unavailable``), the fetcher's peak workers, and the traces Nexus holds whole.

    python benchmarks/burst.py [--runs 1000 --seconds 10] [--latency 0.1] [--schedule-delay 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.fakes: the Nexus receiver

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

import common  # noqa: E402
import export  # noqa: E402

APP_THREADS = 64
QUEUE_SIZE = 16_384
_ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
LOADS = ((400, 4.0), (1000, 10.0))


class RunEnds(SpanProcessor):  # type: ignore[misc]
    """Notes when each run span ended (its steps listed) and its OTel trace id, by run id."""

    def __init__(self) -> None:
        self.ended: dict[str, float] = {}
        self.trace_of: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        if attributes.get("gen_ai.operation.name") != "invoke_agent":
            return
        run_id = attributes.get("azure.ai.agents.run.id")
        if isinstance(run_id, str):
            self.ended[run_id] = time.monotonic()
            self.trace_of[run_id] = f"{span.context.trace_id:032x}"
            reason = attributes.get("azure.ai.agents.run.steps_unavailable")
            if isinstance(reason, str):
                self.unavailable[run_id] = reason


def burst(
    runs: int, seconds: float, latency: float, schedule_delay_ms: float = 5000, log: Callable[[str], None] = print
) -> dict[str, Any]:
    from azure_ai_agents_emulator import AgentsService, agents_client
    from opentelemetry.exporter.nexus import NexusSpanExporter
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    host = export.ServerProcess(
        lambda: export._nexus_server(latency), lambda s: (s.url, s.api_key), export._nexus_report
    )
    with host as (url, key):  # forked before anything is instrumented
        service = AgentsService(default_scenario="message")
        client = agents_client(service, in_process=True)
        provider = TracerProvider()
        ends = RunEnds()
        provider.add_span_processor(ends)
        provider.add_span_processor(
            BatchSpanProcessor(
                NexusSpanExporter(api_key=key, endpoint=url, agent_id="burst"),
                max_queue_size=QUEUE_SIZE,
                schedule_delay_millis=schedule_delay_ms,
            )
        )
        instrumentor = AzureAgentInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            agent_id = client.create_agent(model="gpt-4o", name="burst-agent").id
            threads = [client.threads.create().id for _ in range(APP_THREADS)]
            service.latency = latency
            app_end: dict[str, float] = {}
            next_index = iter(range(runs))
            lock = threading.Lock()
            started = time.monotonic() + 0.5

            def app(thread_id: str) -> None:
                while True:
                    with lock:
                        index = next(next_index, None)
                    if index is None:
                        return
                    # run `index` should END at started + index * seconds / runs; a run takes ~3 round trips
                    due = started + index * seconds / runs - 3 * latency
                    time.sleep(max(0.0, due - time.monotonic()))
                    run = client.runs.create(thread_id=thread_id, agent_id=agent_id)
                    while run.status in _ACTIVE:
                        run = client.runs.get(thread_id=thread_id, run_id=run.id)
                    app_end[run.id] = time.monotonic()

            workers = [threading.Thread(target=app, args=(t,)) for t in threads]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            last_app_end = time.monotonic()
            log(f"  burst {runs} runs: the app ended them in {last_app_end - min(app_end.values()):.1f} s")
            deadline = time.monotonic() + 60
            while len(ends.ended) < runs and time.monotonic() < deadline:
                time.sleep(0.1)
            while time.monotonic() < deadline:
                report = host.report()
                if sum(1 for r in app_end if ends.trace_of.get(r) in report["visible"]) >= runs:
                    break
                time.sleep(0.25)
            fetcher = instrumentor._tracker.fetcher  # noqa: SLF001
            stats: dict[str, Any] = fetcher.stats() if hasattr(fetcher, "stats") else {}
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
        report = host.report()
    first_end = min(app_end.values())
    listed = sorted(ends.ended[r] - app_end[r] for r in app_end if r in ends.ended and r not in ends.unavailable)
    visible = sorted(
        report["visible"][ends.trace_of[r]] - app_end[r]
        for r in app_end
        if ends.trace_of.get(r) in report["visible"]
    )
    last_listed = max((ends.ended[r] for r in app_end if r in ends.ended), default=first_end)
    reasons: dict[str, int] = {}
    for reason in ends.unavailable.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    return {
        "runs": runs,
        "seconds": seconds,
        "latency_ms": round(latency * 1000),
        "bsp_schedule_delay_ms": schedule_delay_ms,
        "app_ended_runs_in_s": round(last_app_end - first_end, 2),
        "listed": len(listed),
        "steps_unavailable": reasons,
        "listings_per_second": round(len(listed) / (last_listed - first_end), 1) if listed else 0.0,
        "all_listed_within_s": round(last_listed - first_end, 2),
        "listed_p50_s": _q(listed, 0.5),
        "listed_p95_s": _q(listed, 0.95),
        "listed_max_s": round(listed[-1], 2) if listed else None,
        "in_nexus": len(visible),
        "nexus_p50_s": _q(visible, 0.5),
        "nexus_p95_s": _q(visible, 0.95),
        "nexus_max_s": round(visible[-1], 2) if visible else None,
        "peak_workers": stats.get("peak_workers"),
        "fetch_failures": stats.get("failures"),
    }


def _q(values: list[float], q: float) -> Optional[float]:
    return round(common.quantile(values, q), 2) if values else None


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'load':>16} {'BSP delay':>9} {'listed':>7} {'listings/s':>10} {'all listed':>10} {'listed p50/p95/max':>20} "
        f"{'in Nexus':>8} {'Nexus p50/p95/max':>20} {'workers':>7} {'unavailable':>12}"
    ]
    for r in results:
        lines.append(
            f"{r['runs']:>6} in {r['seconds']:>4.0f} s {r['bsp_schedule_delay_ms']:>7.0f}ms {r['listed']:>7} {r['listings_per_second']:>10.1f} "
            f"{r['all_listed_within_s']:>9.1f}s {r['listed_p50_s']:>6} {r['listed_p95_s']:>6} {r['listed_max_s']:>6} "
            f"{r['in_nexus']:>8} {r['nexus_p50_s']:>6} {r['nexus_p95_s']:>6} {r['nexus_max_s']:>6} "
            f"{str(r['peak_workers']):>7} {json.dumps(r['steps_unavailable']):>12}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="one load: this many runs (default: 400/4 s, 1000/10 s)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument(
        "--schedule-delay", type=float, default=5000, help="the BatchSpanProcessor's schedule delay, ms (SDK: 5000)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    loads = [(args.runs, args.seconds)] if args.runs else list(LOADS)
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)  # noqa: E731
    results = [burst(runs, seconds, args.latency, args.schedule_delay, log=log) for runs, seconds in loads]
    out = {"machine": common.machine(), "results": results}
    print(json.dumps(out, indent=2) if args.json else f"{args.latency * 1000:.0f} ms per request\n" + table(results))


if __name__ == "__main__":
    main()
