"""Every example runs, against the bundled emulator and local receivers, so none can rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_BACKEND_ENV = (
    "PROJECT_ENDPOINT",
    "NEXUS_API_KEY",
    "NEXUS_ENDPOINT",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
)


def _run(*command: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in _BACKEND_ENV}
    clean.update(
        NO_COLOR="1",
        COLUMNS="100",
        APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED="true",
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        APPLICATIONINSIGHTS_SDKSTATS_DISABLED="true",
        **env,
    )
    done = subprocess.run(command, cwd=EXAMPLES, env=clean, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _example(name: str, **env: str) -> str:
    return _run(sys.executable, str(EXAMPLES / name), **env)


def test_quickstart_prints_three_run_trees():
    out = _example("quickstart.py")
    assert out.count("▸ ") == 3
    for expected in ("invoke_agent weather-agent", "execute_tool get_weather", "execute_tool code_inter"):
        assert expected in out
    assert "✗ server_error" in out  # the failing run
    assert "\x1b[" not in out  # not a TTY: plain text


def test_manual_instrumentation_nests_runs_under_the_app_span_and_prints_metrics():
    out = _example("manual_instrumentation.py")
    assert out.count("▸ ") == 1  # one trace: the batch span with three runs inside
    assert out.count("invoke_agent ") >= 3
    assert "gen_ai.client.operation.duration [s]" in out and "gen_ai.client.token.usage" in out


def test_nexus_example_delivers_one_trace_per_run():
    out = _example("nexus_example.py")
    assert "rejected 0" in out
    assert out.count("trace 'invoke_agent weather-agent'") == 2
    assert "status=success" in out and "status=error" in out


def test_appinsights_example_shows_genai_dependencies():
    out = _example("appinsights_example.py")
    assert "GenAI | az.ai.agents   invoke_agent weather-agent" in out


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otlp_example_delivers_the_run_tree(protocol):
    out = _example("otlp_example.py", OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    assert "invoke_agent weather-agent" in out and "execute_tool get_weather" in out


def test_async_example_gives_five_separate_traces():
    out = _example("async_example.py")
    assert out.count("▸ math-agent") == 5
    assert out.count("completed") >= 5


def test_streaming_example_traces_the_streamed_run():
    out = _example("streaming_example.py")
    assert "run RunStatus.REQUIRES_ACTION" in out  # the user's handler saw every event
    assert out.count("▸ weather-agent") == 1
    assert "execute_tool get_weather" in out


def test_zero_code_example_needs_no_code_change():
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    out = _run(
        str(instrument),
        sys.executable,
        str(EXAMPLES / "agent_app.py"),
        OTEL_TRACES_EXPORTER="agent_tree",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
    )
    assert out.count("▸ ") == 3
    assert "invoke_agent flaky-agent" in out
