"""Benchmarks of opentelemetry-instrumentation-azure-ai-agents: overhead, memory, export throughput.

    python benchmarks/run.py                 # everything, a table on stdout (< 2 minutes on 2 cores)
    python benchmarks/run.py --json          # the same as JSON on stdout (progress on stderr)
    python benchmarks/run.py --json out.json # table on stdout, JSON written to out.json
    python benchmarks/run.py --only overhead,export --quick
    python benchmarks/run.py --check         # exit status 1 when a target is missed

Everything runs on this machine against local emulators (no network): the Agents service through the SDK's
in-process transport, Nexus / OTLP / Application Insights receivers on 127.0.0.1 in a child process.
See overhead.py, memory.py and export.py for what exactly is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.fakes: local receivers

import common  # noqa: E402

SECTIONS = ("overhead", "memory", "export")

# Targets (issue 6).
MAX_ADDED_PCT_OF_GET = 5.0  # our added cost <= 5% of an uninstrumented in-process runs.get
MAX_RATIO_TO_MICROSOFT = 0.10  # ... and <= 1/10 of Microsoft's added cost
MAX_PEAK_MIB_10K_ABANDONED = 50.0
MIN_NEXUS_TRACES_PER_SECOND_AT_100MS = 50  # issue 10
STEADY_RATE = 20.0  # traces/s that must arrive without a drop


def _run_section(name: str, quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    if name == "overhead":
        import overhead

        kwargs = dict(rounds=6, gets_per_round=60, full_runs_per_round=3) if quick else {}
        result = overhead.run(log=log, **kwargs)
    elif name == "memory":
        import memory

        kwargs = dict(n=2_000, traced=200, completed=60) if quick else {}
        result = memory.run(log=log, **kwargs)
    else:
        import export

        kwargs: dict[str, Any] = dict(seconds=3.0, burst=300) if quick else {}
        result = export.run(rate=STEADY_RATE, log=log, **kwargs)
    result["section_seconds"] = round(time.monotonic() - started, 1)
    return result


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it is met (None: not measured)."""
    rows: list[dict[str, Any]] = []
    overhead = results.get("overhead")
    if overhead:
        get = overhead["workloads"]["get_tracked"]
        pct = get["ours"]["added_pct_of_uninstrumented"]
        rows.append(_target("runs.get (tracked run) added cost, % of uninstrumented", pct, MAX_ADDED_PCT_OF_GET, "<="))
        ratio = get["ours_vs_microsoft_added"]
        rows.append(_target("runs.get (tracked run) added cost, ours / Microsoft's", ratio, MAX_RATIO_TO_MICROSOFT, "<="))
    memory = results.get("memory")
    if memory:
        peak = memory["abandoned_rss"]["peak_mib"]
        rows.append(
            _target(f"peak memory, {memory['abandoned_rss']['runs']:,} runs abandoned mid-way (MiB)", peak, MAX_PEAK_MIB_10K_ABANDONED, "<=")
        )
    export = results.get("export")
    if export:
        for row in export["results"]:
            if row.get("exporter") != "nexus" or row.get("latency_ms") != 100:
                continue
            if row.get("load", "").startswith("burst"):
                rows.append(
                    _target(
                        f"Nexus delivery at 100 ms per request, {row['load']} (traces/s)",
                        row.get("traces_per_second"),
                        MIN_NEXUS_TRACES_PER_SECOND_AT_100MS,
                        ">=",
                    )
                )
            else:
                rows.append(_target(f"Nexus traces dropped at 100 ms, {row['load']}", row.get("dropped"), 0, "<="))
    return rows


def _target(name: str, value: Optional[float], limit: float, op: str) -> dict[str, Any]:
    met = None if value is None else (value <= limit if op == "<=" else value >= limit)
    return {"target": name, "value": value, "limit": f"{op} {limit:g}", "met": met}


# ---- the table ------------------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


_NUMERIC = re.compile(r"^[-+]?[\d.,/]+(%| us| B| MiB|\.\.[-+]?[\d.,]+)?$")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip(), line]
    for row in cells:
        out.append(
            "  ".join(c.rjust(w) if _NUMERIC.match(c) else c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        )
    return "\n".join(out)


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    parts = [
        "Machine",
        f"  CPU: {m['cpu']} ({m['logical_cpus']} logical CPUs, {m['usable_cpus']} usable)",
        f"  OS: {m['os']}; {m['python']}; load average at start {m['load_average_at_start']}",
        "  Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v),
        "",
    ]
    overhead = results.get("overhead")
    if overhead:
        rows = []
        labels = {
            "get_tracked": "runs.get, tracked in-progress run",
            "get_untracked": "runs.get, untracked run",
            "full_run": "full run (create..completed)",
        }
        for workload, by in overhead["workloads"].items():
            base = by["none"]["median_us"]
            for config in ("ours", "microsoft", "ours_no_listing"):
                if config not in by:
                    continue
                row = by[config]
                rows.append(
                    [
                        labels[workload],
                        config,
                        base,
                        row["median_us"],
                        row["added_us"],
                        f"{row['added_p25_us']:.1f}..{row['added_p75_us']:.1f}",
                        f"{row['added_pct_of_uninstrumented']:.1f}%",
                    ]
                )
            if by.get("ours_vs_microsoft_added") is not None:
                rows.append([labels[workload], "ours / microsoft (added)", "", "", "", "", f"{by['ours_vs_microsoft_added']:.3f}"])
        parts.append("Per-call overhead (in-process transport, no sockets; medians in microseconds)")
        parts.append(
            _table(["workload", "config", "uninstr. us", "config us", "added us", "added IQR", "added %"], rows)
        )
        hook = overhead.get("hook_cost") or {}
        if "tracked_get_us" in hook:
            parts.append(
                f"  Instrumentation's own cost per runs.get (wrapper around a stub SDK call): tracked run "
                f"{hook['tracked_get_us']:.2f} us, untracked run {hook['untracked_get_us']:.2f} us"
            )
        requests = overhead.get("requests_per_full_run") or {}
        if requests:
            parts.append("  HTTP requests per full run: " + ", ".join(f"{k} {v:g}" for k, v in requests.items()))
        parts.append(f"  ({'; '.join(overhead.get('notes', []))}; {overhead['section_seconds']} s)")
        parts.append("")
    memory = results.get("memory")
    if memory:
        a, p, b, f = memory["abandoned_rss"], memory["per_open_run"], memory["bounded"], memory["per_finished_run"]
        rows = [
            [f"{a['runs']:,} runs abandoned mid-way: resident-memory peak", f"{a['peak_mib']:.1f} MiB", f"uninstrumented ({a['uninstrumented_runs']:,} runs): {a['uninstrumented_peak_mib']:.1f} MiB"],
            ["held per open run (tracemalloc)", f"{p['bytes']:,} B", f"uninstrumented: {p['uninstrumented_bytes']:,} B; projected at {a['runs']:,}: {p['projected_mib_at_n']:.1f} MiB"],
            ["held after uninstrument() (tracemalloc)", f"{p['after_uninstrument_bytes']:,} B", f"after {p['runs']:,} open runs were ended"],
            [f"bounded: max_open_runs={b['max_open_runs']}", f"{b['held_bytes'] / 1048576:.2f} MiB", f"{b['runs']:,} abandoned runs, {b['open_runs_at_end']} open at end (unbounded: {b['held_bytes_unbounded'] / 1048576:.2f} MiB)"],
            ["held per finished run kept (tracemalloc)", f"{f['bytes']:,} B", f"{f['finished_runs_kept']:,} kept -> plateau {f['projected_plateau_mib']:.1f} MiB"],
        ]
        parts.append("Memory (real SDK, in-process transport; the emulator forgets its runs so only client memory counts)")
        parts.append(_table(["measure", "value", "detail"], rows))
        parts.append(f"  ({memory['section_seconds']} s)")
        parts.append("")
    export = results.get("export")
    if export:
        rows = []
        for r in export["results"]:
            if "error" in r:
                rows.append([r["exporter"], _fmt(r.get("latency_ms"), 0), "error: " + r["error"], "", "", "", ""])
                continue
            rows.append(
                [
                    r["exporter"],
                    _fmt(r["latency_ms"], 0),
                    r["load"],
                    f"{r['delivered']:,}/{r['traces']:,}",
                    r["traces_per_second"],
                    r["ttv_p50_s"],
                    r["ttv_p95_s"],
                ]
            )
        parts.append(
            f"Delivery (real run traces, {export['spans_per_trace']:g} spans each, {export['app_threads']} app threads, "
            "SDK BatchSpanProcessor; receiver in a child process answering after the latency)"
        )
        headers = ["exporter", "ms/request", "load", "traces whole", "traces/s", "visible p50 s", "p95 s"]
        parts.append(_table(headers, rows))
        parts.append(f"  ({export['section_seconds']} s)")
        parts.append("")
    rows = [[t["target"], _fmt(t["value"], 2), t["limit"], {True: "met", False: "MISSED", None: "n/a"}[t["met"]]] for t in results["targets"]]
    parts.append("Targets")
    parts.append(_table(["target", "measured", "limit", ""], rows))
    parts.append(f"\nTotal {results['total_seconds']} s; load average at end {results['load_average_at_end']}")
    return "\n".join(parts)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", nargs="?", const="-", metavar="PATH", help="JSON to stdout (no PATH) or to PATH")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="smaller samples (a smoke test, not for publishing)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    to_stdout = args.json == "-"
    progress = sys.stderr if to_stdout else sys.stdout

    def log(message: str) -> None:
        print(message, file=progress, flush=True)

    started = time.monotonic()
    results: dict[str, Any] = {"machine": common.machine(), "quick": args.quick}
    log(f"Benchmarking on {results['machine']['cpu']} ({results['machine']['usable_cpus']} CPUs) ...")
    for name in SECTIONS:
        if name in sections:
            log(f"- {name}")
            results[name] = _run_section(name, args.quick, log)
    results["targets"] = targets(results)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    results["load_average_at_end"] = common.load_average()

    if to_stdout:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print()
        print(render(results))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)
    missed = [t for t in results["targets"] if t["met"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
