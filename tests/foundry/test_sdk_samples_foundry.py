"""azure-ai-projects 2.x's own agent samples run unmodified against the emulator, with the instrumentation on.

Runs ``emulator/scripts/run_sdk_samples.py --generation foundry`` on two samples: the basic one (an agent
endpoint client, the question posted as conversation items, ``responses.create(conversation=...)`` without
input) and the workflow one (agents invoked by a workflow agent named with ``agent_reference``, streamed). The
samples come from the azure-ai-projects sdist on PyPI (downloaded once into the user's cache); without the
registry the test is skipped. All of them: ``python emulator/scripts/run_sdk_samples.py --generation foundry``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import require_new_foundry_sdk

require_new_foundry_sdk()

SCRIPT = Path(__file__).resolve().parents[2] / "emulator" / "scripts" / "run_sdk_samples.py"
SAMPLES = {"sample_agent_basic.py": 2, "sample_workflow_multi_agent_with_mcp_approval.py": 2}  # responses made


def test_foundry_samples_run_unmodified_with_instrumentation() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--generation", "foundry", "--json", "--jobs", "2", "--only", ",".join(SAMPLES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode == 3:
        pytest.skip(f"the azure-ai-projects samples could not be downloaded: {done.stderr.strip()[-300:]}")
    outcomes = {
        o["sample"]: o for o in map(json.loads, filter(lambda line: line.startswith("{"), done.stdout.splitlines()))
    }
    assert list(outcomes) == list(SAMPLES), done.stderr[-2000:]
    for sample, responses in SAMPLES.items():
        outcome = outcomes[sample]
        assert outcome["ok"] and not outcome["skipped"], f"{sample}: {outcome['detail']}"
        assert outcome["responses"] == responses  # the sample's agent calls reached its own emulator
    # The workflow names its agent in the body: one invoke_agent span per response.
    assert outcomes["sample_workflow_multi_agent_with_mcp_approval.py"]["runs"] == 2
    assert done.returncode == 0
