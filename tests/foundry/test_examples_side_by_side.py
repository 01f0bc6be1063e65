"""The quickstart and the zero-code sample app show a classic run and new-agent invocations side by side when
the new Foundry agents' SDK is installed next to azure-ai-agents (as in requirements-foundry.txt)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.setup.test_examples import EXAMPLES, _example, _run

from .helpers import require_new_foundry_sdk

require_new_foundry_sdk()
pytest.importorskip("azure.ai.agents")


def _traces(out: str) -> list[str]:
    return [block for block in out.split("▸ ")[1:]]


def test_quickstart_shows_classic_runs_and_new_invocations() -> None:
    out = _example("quickstart.py")
    traces = _traces(out)

    classic = [t for t in traces if "resp_" not in t]
    new = [t for t in traces if "resp_" in t]
    assert len(classic) == 3 and len(new) == 4, out[-4000:]  # the function round trip is two invocations
    assert sum("invoke_agent weather-agent" in t for t in new) == 2
    assert any("execute_tool code_interpre" in t for t in new)
    assert any("invoke_agent flaky-agent" in t and "✗ server_error" in t for t in new)


def test_zero_code_loading_instruments_the_new_agents() -> None:
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
    assert len([t for t in _traces(out) if "resp_" in t]) == 4, out[-4000:]
    assert out.count("response resp_") == 3, out[-4000:]  # the app's own output is unchanged
