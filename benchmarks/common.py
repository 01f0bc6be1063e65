"""Shared pieces of the benchmarks: the machine description, a no-op exporter, robust statistics."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from importlib import metadata
from typing import Any, Iterable, Optional, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

PACKAGES = (
    "opentelemetry-instrumentation-azure-ai-agents",
    "azure-ai-agents",
    "azure-ai-projects",
    "azure-core",
    "azure-core-tracing-opentelemetry",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "azure-monitor-opentelemetry-exporter",
    "wrapt",
    "urllib3",
)


class NoopExporter(SpanExporter):
    """Counts spans and drops them: the cost of a real backend is not the instrumentation's."""

    def __init__(self) -> None:
        self.count = 0
        self.last: Sequence[ReadableSpan] = ()  #: the last batch (a benchmark may copy a span's attributes)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        self.last = spans
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on. Load average matters: other processes share the cores."""
    try:
        usable = len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "load_average_at_start": load_average(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def load_average() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else float("nan")


def quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def summary_us(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median and inter-quartile range of per-call samples, in microseconds."""
    data = sorted(samples_ns)
    return {
        "median_us": round(quantile(data, 0.5) / 1000, 2),
        "p25_us": round(quantile(data, 0.25) / 1000, 2),
        "p75_us": round(quantile(data, 0.75) / 1000, 2),
        "samples": len(data),
    }


def paired_added_us(base_rounds: Sequence[Sequence[int]], other_rounds: Sequence[Sequence[int]]) -> dict[str, float]:
    """Added cost per call, paired by round: median over rounds of (round median - baseline round median).

    Pairing by round cancels slow drifts of the machine (other processes, frequency changes), which a
    single pooled comparison would mistake for instrumentation cost. The spread is the inter-quartile range
    of the per-round differences.
    """
    diffs = sorted(
        (median(o) - median(b)) / 1000 for b, o in zip(base_rounds, other_rounds, strict=False) if len(b) and len(o)
    )
    return {
        "added_us": round(quantile(diffs, 0.5), 2),
        "added_p25_us": round(quantile(diffs, 0.25), 2),
        "added_p75_us": round(quantile(diffs, 0.75), 2),
        "rounds": len(diffs),
    }


def python_flags() -> str:
    return " ".join(f for f in ("-X dev" if sys.flags.dev_mode else "", "-O" if sys.flags.optimize else "") if f)
