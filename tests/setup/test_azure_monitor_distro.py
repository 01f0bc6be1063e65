"""``configure_azure_monitor()`` next to this instrumentation: the options that keep one whole trace per run.

Two settings matter (docs/operate.md, "configure_azure_monitor() next to us"):

* Microsoft's agents instrumentor off. The distro's ``azure_sdk`` instrumentation turns on azure-core tracing and
  calls ``AIAgentsInstrumentor().instrument()`` (and ``AIProjectInstrumentor``): one more GenAI dependency per
  SDK call (``start_thread_run``, every ``get_thread_run`` poll, ``submit_tool_outputs``...) inside our run.
  ``instrumentation_options={"azure_sdk": {"enabled": False}}`` or
  ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=azure_sdk`` turns it off; ``AIAgentsInstrumentor().uninstrument()``
  after ``configure_azure_monitor()`` removes only Microsoft's agent spans (azure-core's stay).
* A sampler that keeps whole runs. The distro's default is rate-limited (5 traces/s, adapting within 0.1 s and
  re-deciding children of a parent sampled at 100%): a burst of short runs loses whole runs (3 of 3 and 30 of 30
  back-to-back runs in one measurement) and parts of runs. ``OTEL_TRACES_SAMPLER=always_on`` /
  ``parentbased_always_on`` keep every run.

Real SDK -> emulator -> our instrumentation -> the distro's exporter -> a local ``/v2.1/track`` receiver, in a
subprocess (the distro installs global providers). The app flushes at exit, so every envelope is in when it ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.appinsights_server import AppInsightsReceiver, base_data, base_type_of

pytest.importorskip("azure.monitor.opentelemetry")

APPS = Path(__file__).parents[1] / "apps"
AGENT = "distro-agent"
QUIET = {
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}
RUNS = 5
OURS = ("invoke_agent ", "chat ", "execute_tool ", "create_agent ")
#: Microsoft's AIAgentsInstrumentor span names for the calls the app makes.
MICROSOFT = {"start_thread_run", "get_thread_run", "submit_tool_outputs", "create_thread", "create_message"}
NO_MICROSOFT_IN_CODE = {"instrumentation_options": {"azure_sdk": {"enabled": False}}}


def _run_app(emulator, tmp_path: Path, options: dict[str, Any], **env_extra: str) -> tuple[list[str], list[dict]]:
    """Runs RUNS agent runs under configure_azure_monitor(**options); returns (run ids, envelopes)."""
    with AppInsightsReceiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_", "AZURE_"))}
        env.update(QUIET)
        env.update(
            APPLICATIONINSIGHTS_CONNECTION_STRING=receiver.connection_string,
            AZURE_AI_AGENTS_ENDPOINT=emulator.endpoint,
            OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="otel",  # no Azure VM / App Service detection (IMDS is off-host)
            OTEL_SERVICE_NAME="distro-app",
            AGENT_NAME=AGENT,
            RUNS=str(RUNS),
            DISTRO_OPTIONS=json.dumps(options),
            TMPDIR=str(tmp_path),
        )
        env.update(env_extra)
        done = subprocess.run(
            [sys.executable, str(APPS / "distro_runs_app.py")], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert [r["status"] for r in runs] == ["RunStatus.COMPLETED"] * RUNS
        return [r["run_id"] for r in runs], receiver.envelopes


def _operations(envelopes: list[dict]) -> dict[str, list[dict]]:
    """Dependencies grouped by operation (= trace) id."""
    grouped: dict[str, list[dict]] = {}
    for envelope in envelopes:
        if base_type_of(envelope) == "RemoteDependencyData":
            grouped.setdefault(envelope["tags"]["ai.operation.id"], []).append(envelope)
    return grouped


def _run_operation(envelopes: list[dict], run_id: str) -> tuple[dict, list[dict]]:
    """The run's invoke_agent dependency (exactly one) and every dependency of its operation."""
    roots = [
        e for e in envelopes
        if base_type_of(e) == "RemoteDependencyData"
        and base_data(e)["name"].startswith("invoke_agent")
        and base_data(e)["properties"].get("azure.ai.agents.run.id") == run_id
    ]
    assert len(roots) == 1, f"run {run_id}: {len(roots)} invoke_agent dependencies"
    return roots[0], _operations(envelopes)[roots[0]["tags"]["ai.operation.id"]]


@pytest.mark.parametrize(
    ("options", "env"),
    [
        pytest.param(NO_MICROSOFT_IN_CODE, {"OTEL_TRACES_SAMPLER": "always_on"}, id="in-code"),
        pytest.param(
            {},
            {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "azure_sdk", "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
            id="environment",
        ),
        pytest.param(NO_MICROSOFT_IN_CODE | {"sampling_ratio": 1.0}, {}, id="sampling-ratio"),
        # azure-core tracing stays on (InProc dependencies per SDK call); only Microsoft's GenAI spans go.
        pytest.param({}, {"MICROSOFT_AGENTS_TRACING": "off", "OTEL_TRACES_SAMPLER": "always_on"}, id="uninstrument"),
    ],
)
def test_one_whole_trace_per_run(emulator, tmp_path, options, env):
    run_ids, envelopes = _run_app(emulator, tmp_path, options, **env)
    genai = [e for e in envelopes if str(base_data(e).get("type", "")).startswith("GenAI | ")]
    for run_id in run_ids:
        root, operation = _run_operation(envelopes, run_id)
        assert "ai.operation.parentId" not in root["tags"]  # the run is its trace's root
        assert base_data(root)["name"] == f"invoke_agent {AGENT}" and base_data(root)["type"] == "GenAI | az.ai.agents"
        # Nothing sampled away: the run's model steps and its tool call are all there, at 100%.
        names = Counter(base_data(e)["name"] for e in operation if base_data(e)["type"].startswith("GenAI | "))
        assert names == {f"invoke_agent {AGENT}": 1, "chat gpt-4o": 2, "execute_tool get_weather": 1}, run_id
        assert all(e.get("sampleRate", 100.0) == 100.0 for e in operation)
        ids = {base_data(e)["id"] for e in operation}
        assert all(e["tags"]["ai.operation.parentId"] in ids for e in operation if e is not root)
    # No duplicate GenAI dependencies from Microsoft's instrumentor, anywhere.
    assert not {base_data(e)["name"] for e in genai} & MICROSOFT
    assert Counter(base_data(e)["name"].split(" ")[0] for e in genai) == {
        "invoke_agent": RUNS, "chat": 2 * RUNS, "execute_tool": RUNS, "create_agent": RUNS,
    }


def test_microsoft_instrumentor_duplicates_genai_dependencies_by_default(emulator, tmp_path):
    """What the options above prevent (so the assertions above can fail): with the distro's defaults plus a
    sampler that keeps everything, Microsoft's instrumentor adds a GenAI dependency per SDK call to every run."""
    run_ids, envelopes = _run_app(emulator, tmp_path, {}, OTEL_TRACES_SAMPLER="always_on")
    for run_id in run_ids:
        _, operation = _run_operation(envelopes, run_id)
        names = Counter(base_data(e)["name"] for e in operation if base_data(e)["type"].startswith("GenAI | "))
        assert names["get_thread_run"] >= 1 and names["start_thread_run"] == 1 and names["submit_tool_outputs"] == 1
        assert sum(names.values()) > 4  # more GenAI dependencies than the run's own four
