"""The doctor's report: how to find the synthetic run in each destination, the verdict, text and JSON forms."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from typing import Any, Optional

from .config import Configuration
from .delivery import Outcome
from .synthetic import SYNTHETIC, SyntheticRun

#: Bumped when a key of the JSON report changes meaning or disappears.
SCHEMA_VERSION = 1
_WIDTH = 110


@dataclass
class Report:
    version: str
    configuration: Configuration
    run: Optional[SyntheticRun]
    outcomes: list[Outcome]
    strict: bool
    timeout_s: float
    elapsed_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "tool": "azure-ai-agents-otel-doctor",
            "version": self.version,
            "ok": not self.failures,
            "exit_code": self.exit_code,
            "strict": self.strict,
            "failures": self.failures,
            "timeout_s": self.timeout_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "configuration": self.configuration.to_dict(),
            "synthetic_run": self.run.to_dict() if self.run is not None else None,
            "delivery": [o.to_dict() for o in self.outcomes],
        }


def verdict(report: Report) -> None:
    """Fills ``report.failures``: what makes the doctor exit non-zero."""
    config = report.configuration
    failures = [f"configuration: {p}" for p in config.problems]
    failures += [f"{o.destination}: {o.status}: {o.reason}" for o in report.outcomes if not o.ok]
    if report.strict:
        if not config.destinations:
            local = ", ".join(d.name for d in config.local_outputs) or "none"
            failures.append(f"no destination is configured (local output only: {local})")
        if config.sampler.get("keeps") == "no runs":
            failures.append(f"the sampler ({config.sampler.get('sampler')}) records no runs")
    report.failures = failures


def find_hints(outcome: Outcome, run: SyntheticRun) -> list[str]:
    """Where an operator finds the run in that destination."""
    entry_point = outcome.entry_point
    if entry_point == "azure_monitor_opentelemetry_exporter":
        return [
            f"Application Insights > Transaction search: {run.trace_id} (ingestion takes a few minutes)",
            f'Logs (KQL): dependencies | where operation_Id == "{run.trace_id}"',
            f'Logs (KQL): dependencies | where tostring(customDimensions["azure.ai.agents.run.id"]) == "{run.run_id}"',
        ]
    if entry_point == "nexus":
        endpoint = (outcome.endpoint or "").rstrip("/")
        return [
            f"Nexus: agent {run.agent_name!r} (or NEXUS_AGENT_ID), trace {'invoke_agent ' + run.agent_name!r}, "
            f"metadata run_id={run.run_id}, otel_trace_id={run.trace_id}",
            f"API: GET {endpoint}/api/v1/traces?since={run.started_at}",
        ]
    return [
        f"trace id {run.trace_id} in the backend behind {outcome.endpoint or outcome.destination}",
        f"or the span attribute azure.ai.agents.run.id = {run.run_id} (gen_ai.conversation.id = {run.conversation_id})",
    ]


# ---- text ------------------------------------------------------------------------------------------------
def render_text(report: Report) -> str:
    config, lines = report.configuration, []
    lines.append(f"Azure AI Agents telemetry doctor ({report.version})")
    lines.append("")
    lines.append(f"Configuration, as {config.reader} reads it")
    _row(lines, "exporters", ", ".join(d.name for d in config.exporters) or "none", f"({config.exporters_from})")
    for destination in config.destinations:
        settings = ", ".join(f"{k}: {_plain(v)}" for k, v in destination.settings.items() if v not in (None, []))
        name = (
            destination.name
            if destination.name == destination.entry_point
            else (f"{destination.name} ({destination.entry_point})")
        )
        _row(lines, "destination", f"{name} -> {destination.endpoint or 'endpoint unknown'}")
        if settings:
            _row(lines, "", settings)
        if destination.problem:
            _row(lines, "", f"PROBLEM: {destination.problem}")
    for local in config.local_outputs:
        _row(lines, "local output", f"{local.name} (prints in the app's terminal; not a destination)")
    _row(lines, "service.name", config.service_name)
    sampler = config.sampler
    _row(lines, "sampler", f"{_sampler_text(str(sampler.get('sampler')))}: keeps {sampler.get('keeps')}")
    capture = config.content_capture
    if capture.get("enabled"):
        where = " and ".join(capture.get("recorded_as") or [])
        _row(lines, "content capture", f"ON ({where}; set by {_plain(capture.get('set_by'))})")
    else:
        _row(lines, "content capture", capture.get("note") or "off")
    _row(lines, "metadata keys", ", ".join(config.metadata_keys) or "none (run metadata is not recorded)")
    for key, value in config.instrumentation_settings.items():
        if not key.endswith("METADATA_KEYS"):
            _row(lines, "setting", f"{key}={value}")
    _row(lines, "metrics", config.metrics)
    _row(lines, "agent SDKs", ", ".join(_sdk_text(k, v) for k, v in config.agent_sdks.items()))
    installed = [f"{k} {v}" for k, v in config.packages.items() if v]
    _row(lines, "packages", ", ".join(installed))
    for text in config.problems:
        _row(lines, "PROBLEM", text)
    for text in config.warnings:
        _row(lines, "warning", text)
    for text in config.notes:
        _row(lines, "note", text)

    run = report.run
    if run is not None:
        lines.append("")
        lines.append(f"Synthetic agent run (every span has {SYNTHETIC}=true)")
        _row(lines, "trace id", run.trace_id)
        _row(lines, "run id", run.run_id)
        _row(lines, "conversation id", run.conversation_id)
        _row(lines, "agent", f"{run.agent_name} ({run.agent_id})")
        _row(lines, "spans", " > ".join(run.span_names[:1]) + " > " + ", ".join(run.span_names[1:]))
        _row(lines, "tokens", f"{run.input_tokens} in, {run.output_tokens} out (fixed values)")
        _row(lines, "latency", f"{run.duration_s:.3f} s (fixed value), started {run.started_at}")

    if report.outcomes:
        lines.append("")
        lines.append(f"Delivery (limit {report.timeout_s:g} s)")
        for outcome in report.outcomes:
            mark = "ok  " if outcome.ok else "FAIL"
            where = f" to {outcome.endpoint}" if outcome.ok and outcome.endpoint else ""
            _item(lines, f"[{mark}] {outcome.destination}: {outcome.reason}{where}", 2)
            for line in outcome.find if outcome.ok else []:
                _item(lines, f"find it: {line}", 9)
            for line in [] if outcome.ok else outcome.details:
                _item(lines, f"said: {line}", 9)
    elif run is None and config.destinations:
        lines.append("")
        lines.append("Delivery: not attempted (--no-send)")

    lines.append("")
    if report.failures:
        lines.append(f"Result: FAIL ({len(report.failures)}) in {report.elapsed_s:.2f} s")
        for text in report.failures:
            _item(lines, f"- {text}", 2)
    else:
        delivered = sum(1 for o in report.outcomes if o.ok)
        total = len(report.configuration.destinations)
        what = f"{delivered} of {total} destinations delivered" if report.outcomes else f"{total} destinations"
        lines.append(f"Result: OK ({what}) in {report.elapsed_s:.2f} s")
        if not report.configuration.destinations:
            lines.append("  no destination is configured: runs are not kept anywhere (--strict fails on this)")
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"


def _row(lines: list[str], label: str, value: str, extra: str = "") -> None:
    text = f"{value} {extra}".strip()
    wrapped = textwrap.wrap(text, _WIDTH - 19, break_long_words=False, break_on_hyphens=False) or [""]
    lines.append(f"  {label:<16} {wrapped[0]}".rstrip())
    lines.extend(f"{'':<19}{more}" for more in wrapped[1:])


def _sdk_text(name: str, version: Optional[str]) -> str:
    if not version:
        return f"{name} not installed"
    kind = {"azure-ai-agents": "classic agents", "openai": "client of the new Foundry agents"}.get(name, "")
    if name == "azure-ai-projects":
        kind = "new Foundry agents" if _major(version) >= 2 else "classic agents, legacy API"
    return f"{name} {version} ({kind})" if kind else f"{name} {version}"


def _major(version: str) -> int:
    digits = version.split(".", 1)[0]
    return int(digits) if digits.isdigit() else 0


def _item(lines: list[str], text: str, indent: int) -> None:
    wrapped = textwrap.wrap(text, _WIDTH - indent, break_long_words=False, break_on_hyphens=False) or [""]
    lines.append(" " * indent + wrapped[0])
    lines.extend(" " * (indent + 2) + more for more in wrapped[1:])


def _sampler_text(description: str) -> str:
    """``ParentBased{root:AlwaysOnSampler,remoteParentSampled:...}`` -> ``ParentBased(root=AlwaysOnSampler)``."""
    head = "ParentBased{root:"
    if description.startswith(head):
        return f"ParentBased(root={description[len(head) :].split(',', 1)[0]})"
    return description


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)
