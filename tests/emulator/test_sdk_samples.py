"""The Azure SDK's own azure-ai-agents samples run unmodified against the emulator, with instrumentation on.

Runs ``emulator/scripts/run_sdk_samples.py`` on a few samples (basics and streaming, tools, async, files). The
samples come from the azure-ai-agents sdist on PyPI (downloaded once into the user's cache); without the
registry the test is skipped. The whole set: ``python emulator/scripts/run_sdk_samples.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "emulator" / "scripts" / "run_sdk_samples.py"
SAMPLES = (
    "sample_agents_stream_eventhandler_with_functions.py",  # streaming, function tools and their outputs
    "sample_agents_basics_async.py",  # basics: the async client and async DefaultAzureCredential
    "sample_agents_vector_store_file_search.py",  # files, vector stores, file search
)


def test_sdk_samples_run_unmodified_with_instrumentation():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", "--jobs", str(len(SAMPLES)), "--only", ",".join(SAMPLES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode == 3:
        pytest.skip(f"the azure-ai-agents samples could not be downloaded: {done.stderr.strip()[-300:]}")
    outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [o["sample"] for o in outcomes] == list(SAMPLES), done.stderr[-2000:]
    for outcome in outcomes:
        assert outcome["ok"] and not outcome["skipped"], f"{outcome['sample']}: {outcome['detail']}"
        assert outcome["runs"] >= 1  # the instrumentation traced the sample's agent run
    assert done.returncode == 0
