"""Zero-code: ``opentelemetry-instrument python app.py`` with only environment variables produces run traces.

Each test starts local backends in the test process (Agents emulator, Nexus, OTLP, App Insights receivers) and
runs ``tests/apps/zero_code_app.py`` — an app with no telemetry code — under ``opentelemetry-instrument`` in a
subprocess. The vanilla ``opentelemetry-distro`` is selected explicitly because azure-monitor-opentelemetry,
also installed, registers a second distro and configurator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
from tests.fakes.appinsights_server import AppInsightsReceiver, base_data
from tests.fakes.nexus_server import NexusServer
from tests.fakes.otlp_server import OtlpGrpcReceiver, OtlpHttpReceiver

pytest.importorskip("opentelemetry.distro")

APPS = Path(__file__).parents[1] / "apps"
AGENT = "zero-code-agent"
OUR_SPANS = {"chat gpt-4o", "execute_tool get_weather"}
_DROPPED_PREFIXES = ("OTEL_", "NEXUS_", "APPLICATIONINSIGHTS_", "AZURE_")


def _instrument_command() -> list[str]:
    script = Path(sys.executable).parent / "opentelemetry-instrument"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from opentelemetry.instrumentation.auto_instrumentation import run; run()"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    env.update(
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="zero-code-app",
        AGENT_NAME=AGENT,
        TMPDIR=str(tmp_path),  # anything an exporter persists stays in the test's directory
    )
    env.update(extra)
    return env


def _run(env: dict[str, str], app: str = "zero_code_app.py", *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*_instrument_command(), sys.executable, str(APPS / app), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- entry points ----------------------------------------------------------------------------------------
def test_entry_points_load_and_dependencies_are_satisfied():
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    from opentelemetry.util._importlib_metadata import entry_points

    [instrumentor] = entry_points(group="opentelemetry_instrumentor", name="azure_ai_agents")
    assert instrumentor.load() is AzureAgentInstrumentor
    assert get_dist_dependency_conflicts(instrumentor.dist) is None  # instruments-any: one SDK is enough

    from opentelemetry.exporter.nexus import NexusSpanExporter
    from opentelemetry.instrumentation.azure_ai_agents.exporters import RunTreeSpanExporter

    exporters = {ep.name: ep for ep in entry_points(group="opentelemetry_traces_exporter")}
    assert exporters["nexus"].load() is NexusSpanExporter
    assert exporters["agent_tree"].load() is RunTreeSpanExporter
    assert "azure_monitor_opentelemetry_exporter" in exporters  # provided by azure-monitor-opentelemetry-exporter
    assert {"otlp_proto_http", "otlp_proto_grpc"} <= set(exporters)


# ---- one backend each ------------------------------------------------------------------------------------
def test_nexus(emulator, tmp_path):
    with NexusServer() as nexus:
        env = _env(
            tmp_path,
            OTEL_TRACES_EXPORTER="nexus",
            NEXUS_API_KEY=nexus.api_key,
            NEXUS_ENDPOINT=nexus.url,
            AZURE_AI_AGENTS_ENDPOINT=emulator.endpoint,
        )
        app = _run(env)
        assert app["status"] == "RunStatus.COMPLETED"
        # the app exited: its exporter flushed at shutdown, so everything has arrived
        traces = nexus.traces
        assert len(traces) == 1, [t["name"] for t in traces]  # only the run trace: HTTP-only traces are not sent
        [trace] = traces
        assert trace["agent_id"] == AGENT and trace["status"] == "success"
        assert trace["name"].startswith("invoke_agent")
        assert app["run_id"] in json.dumps(trace["metadata"])
        assert OUR_SPANS <= {s["name"] for s in trace["spans"]}
        assert nexus.rejected_count == 0


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otlp(emulator, tmp_path, protocol):
    receiver_cls = OtlpHttpReceiver if protocol == "http/protobuf" else OtlpGrpcReceiver
    if protocol == "grpc":
        pytest.importorskip("grpc")
    with receiver_cls() as receiver:
        env = _env(
            tmp_path,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            AZURE_AI_AGENTS_ENDPOINT=emulator.endpoint,
        )
        app = _run(env)
        [run_span] = receiver.run_spans()
        assert run_span.name == f"invoke_agent {AGENT}" and run_span.kind == "CLIENT"
        assert run_span.parent_span_id == ""
        assert run_span.attributes["azure.ai.agents.run.id"] == app["run_id"]
        assert run_span.attributes["gen_ai.agent.id"] == app["agent_id"]
        assert run_span.resource["service.name"] == "zero-code-app"
        run_trace = receiver.traces()[run_span.trace_id]
        assert OUR_SPANS <= {s.name for s in run_trace}
        ids = {s.span_id for s in run_trace}
        assert all(s.parent_span_id in ids for s in run_trace if s is not run_span)  # one connected tree
        assert {r.signal for r in receiver.requests} == {"traces"}  # OTEL_METRICS/LOGS_EXPORTER=none honoured


def test_azure_monitor(emulator, tmp_path):
    with AppInsightsReceiver() as receiver:
        env = _env(
            tmp_path,
            OTEL_TRACES_EXPORTER="azure_monitor_opentelemetry_exporter",
            APPLICATIONINSIGHTS_CONNECTION_STRING=receiver.connection_string,
            APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED="true",
            APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
            APPLICATIONINSIGHTS_SDKSTATS_DISABLED="true",
            AZURE_AI_AGENTS_ENDPOINT=emulator.endpoint,
        )
        app = _run(env)
        genai = receiver.genai_dependencies()
        [run_env] = [e for e in genai if base_data(e)["name"] == f"invoke_agent {AGENT}"]
        assert base_data(run_env)["properties"]["azure.ai.agents.run.id"] == app["run_id"]
        operation = run_env["tags"]["ai.operation.id"]
        assert len(operation) == 32 and int(operation, 16)
        dependencies = receiver.dependencies()
        same_operation = {base_data(e)["name"] for e in dependencies if e["tags"]["ai.operation.id"] == operation}
        assert OUR_SPANS <= same_operation
        [tool] = [e for e in genai if base_data(e)["name"] == "execute_tool get_weather"]
        assert tool["tags"]["ai.operation.id"] == operation
        assert run_env["tags"]["ai.cloud.role"] == "zero-code-app"


def test_disabled_by_entry_point_name(emulator, tmp_path):
    with OtlpHttpReceiver() as receiver:
        env = _env(
            tmp_path,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="azure_ai_agents",
            AZURE_AI_AGENTS_ENDPOINT=emulator.endpoint,
        )
        _run(env)
        assert receiver.spans, "the other instrumentations still export"
        assert receiver.run_spans() == []


# ---- no SDK ----------------------------------------------------------------------------------------------
def _no_sdk(tmp_path: Path, mode: str) -> tuple[dict[str, Any], str]:
    env = _env(tmp_path, OTEL_TRACES_EXPORTER="none")
    done = subprocess.run(
        [sys.executable, str(APPS / "no_sdk_runner.py"), mode], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _quiet(stderr: str, report: dict[str, Any]) -> None:
    assert report["problems"] == []  # nothing at WARNING or above about us
    assert "Traceback" not in stderr and "azure_ai_agents" not in stderr
    assert report["azure_modules"] == []


def test_skipped_quietly_when_no_sdk_is_installed(tmp_path):
    report, stderr = _no_sdk(tmp_path, "uninstalled")
    _quiet(stderr, report)
    assert report["instrumented"] is False  # the loader's any-of dependency check skipped us
    assert any("none are installed" in message for message in report["debug"]), report["debug"]


def test_harmless_when_the_sdk_is_installed_but_cannot_be_imported(tmp_path):
    report, stderr = _no_sdk(tmp_path, "unimportable")
    _quiet(stderr, report)
    assert any("no supported Azure AI Agents SDK" in message for message in report["debug"]), report["debug"]

