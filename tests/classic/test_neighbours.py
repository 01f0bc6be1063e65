"""Good neighbour: next to Microsoft's ``AIAgentsInstrumentor`` (or legacy ``project_client.telemetry.enable()``)
in either installation order, sync, async and streamed, and with azure-core's own tracing on, our run spans keep
their run id, status and steps; our own step listing produces no span in any layer; uninstalling ours leaves
Microsoft's wrappers working. Runs in a child process (it sets the global tracer provider and azure-core's
global tracing settings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).parents[1] / "apps" / "neighbours_app.py"


def test_with_microsofts_instrumentation_and_azure_core_tracing_on():
    done = subprocess.run([sys.executable, str(APP)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert len(results) == 14
    for result in results:
        name = result["case"]
        assert result["runs"] == [
            {"status": "completed", "run_id": True, "unfinished": None, "unavailable": None, "steps": 2}
        ], name
        assert result["microsoft_spans"] > 0, name  # their spans (or azure-core's) are still made
        assert result["step_request_spans"] == [], name  # our listing is invisible to every tracing layer
        if not name.startswith("core_only"):
            assert result["microsoft_after_our_uninstall"] > 0, name  # our uninstall left theirs in place
