"""Run the Azure SDK's own ``azure-ai-agents`` samples, unmodified, against the emulator with instrumentation on.

    python emulator/scripts/run_sdk_samples.py                      # basics, tools, streaming, async, files
    python emulator/scripts/run_sdk_samples.py --set basics --set streaming
    python emulator/scripts/run_sdk_samples.py --only sample_agents_basics.py,sample_agents_functions.py
    python emulator/scripts/run_sdk_samples.py --list

The samples ship in the sdist on PyPI: the first run downloads it with ``pip download azure-ai-agents==VERSION
--no-binary :all: --no-deps`` (VERSION: the installed azure-ai-agents, else 1.1.0) and keeps its ``samples/``
folder in the user's cache. Each sample runs in its own process, in a scratch working folder, under
``opentelemetry-instrument`` (traces to the ``agent_tree`` exporter, one tree per run), with the environment the
emulator prints (HTTPS endpoint, CA bundle, managed-identity variables for ``DefaultAzureCredential``) plus
placeholder connection ids. The sdist lacks some data files the samples open (a CSV, an image, OpenAPI specs):
small stand-ins are written next to the real ones, never over them.

A sample passes when it exits 0 and the instrumentation printed at least one agent run (``invoke_agent``).
Skipped, with the reason: samples that need a library that is not installed (pydantic, jsonref: the emulator's
``[samples]`` extra installs them) and the two that need more than an Agents service (:data:`NOT_EMULATED`).
Samples that exclude managed identity from ``DefaultAzureCredential`` get a stand-in ``az`` on ``PATH``.
Needs: the emulator with its ``[samples]`` extra and this repository's instrumentation.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from azure_ai_agents_emulator import AgentsEmulator
from azure_ai_agents_emulator.tls import default_directory
from azure_ai_agents_emulator.tool_plans import AUTO_SCENARIO

DEFAULT_VERSION = "1.1.0"
#: The sample sets: folders of the sdist's samples/ (the top level holds the basics).
SETS = {
    "basics": "",
    "tools": "agents_tools",
    "streaming": "agents_streaming",
    "async": "agents_async",
    "files": "agents_files_images_inputs",
    "telemetry": "agents_telemetry",
}
DEFAULT_SETS = ("basics", "tools", "streaming", "async", "files")
#: Samples that cannot run unattended anywhere (they read from the terminal).
INTERACTIVE = frozenset({"sample_agents_agent_team.py", "sample_agents_agent_team_custom_team_leader.py"})
#: Samples that need more than an Agents service: reported as skipped, with the reason.
NOT_EMULATED = {
    "sample_agents_logic_apps.py": "creates a Logic App through Azure Resource Manager (azure-mgmt-logic)",
}
#: Samples that build their client with azure-ai-projects >= 1.0 (``AIProjectClient(endpoint, credential)``).
NEED_PROJECTS_GA = frozenset({"sample_agents_auto_function_call.py", "sample_agents_auto_function_call_async.py"})
#: Connection ids and URIs the samples read: any non-empty value does for the emulator.
PLACEHOLDERS = {
    "AZURE_BING_CONNECTION_ID": "/subscriptions/0/resourceGroups/rg/providers/x/connections/bing",
    "AI_AZURE_AI_CONNECTION_ID": "/subscriptions/0/resourceGroups/rg/providers/x/connections/search",
    "OPENAPI_CONNECTION_ID": "/subscriptions/0/resourceGroups/rg/providers/x/connections/openapi",
    "AZURE_BLOB_URI": "azureml://datastores/workspaceblobstore/paths/product_info_1.md",
    "STORAGE_SERVICE_ENDPONT": "https://emulated.queue.core.windows.net",
    "SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
}
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
_OPENAPI = {
    "openapi": "3.0.0",
    "info": {"title": "Stand-in API", "version": "1.0"},
    "servers": [{"url": "https://example.com"}],
    "paths": {"/lookup": {"get": {"operationId": "Lookup", "responses": {"200": {"description": "OK"}}}}},
}
#: Stand-ins for data files the sdist does not ship (written only when missing).
ASSETS: dict[str, bytes] = {
    "synthetic_500_quarterly_results.csv": b"sector,quarter,operating_profit\nTRANSPORTATION,Q1,120\n",
    "image_file.png": _PNG,
    "countries.json": json.dumps(_OPENAPI).encode(),
    "weather_openapi.json": json.dumps(_OPENAPI).encode(),
    "tripadvisor_openapi.json": json.dumps(_OPENAPI).encode(),
    "product_info_1.md": b"# Contoso products\nSmart Eyewear: heads-up display, voice assistant.\n",
}


#: Refuse links and absolute paths in the archive where tarfile can (3.10.12+, 3.11.4+).
_SAFE: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


@dataclass
class Outcome:
    sample: str
    ok: bool
    seconds: float
    runs: int
    returncode: Optional[int]
    detail: str = ""
    skipped: str = ""  # why the sample could not run here (then ok is True)


def installed_version() -> str:
    try:
        from importlib.metadata import version

        return version("azure-ai-agents")
    except Exception:  # not installed: the version the emulator was checked with
        return DEFAULT_VERSION


def samples_folder(version: str, cache: Optional[Path] = None) -> Path:
    """The sdist's ``samples/`` folder, downloaded once into ``cache`` (raises RuntimeError if pip fails)."""
    cache = cache or default_directory().parent / "sdk-samples"
    target = cache / f"azure-ai-agents-{version}" / "samples"
    if target.is_dir():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            sys.executable, "-m", "pip", "download", f"azure-ai-agents=={version}",
            "--no-binary", ":all:", "--no-deps", "--quiet", "--dest", scratch, "--timeout", "15", "--retries", "1",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        archives = list(Path(scratch).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError(f"pip download failed: {done.stderr.strip()[-500:]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as unpacked:  # same file system as the target
            with tarfile.open(archives[0]) as archive:
                members = [m for m in archive.getmembers() if "/samples/" in m.name and m.isfile()]
                for member in members:
                    member.name = member.name.split("/samples/", 1)[1]
                    archive.extract(member, Path(unpacked) / "samples", **_SAFE)
            try:
                os.rename(Path(unpacked) / "samples", target)  # one rename: no half-extracted folder is seen
            except OSError:
                if not target.is_dir():  # not another process's copy arriving first: a real failure
                    raise
    return target


def provide_assets(samples: Path) -> None:
    assets = samples / "assets"
    assets.mkdir(exist_ok=True)
    for name, content in ASSETS.items():
        if not (assets / name).exists():
            (assets / name).write_bytes(content)


def select(samples: Path, sets: list[str], only: list[str]) -> list[Path]:
    chosen: list[Path] = []
    for name in sets:
        folder = samples / SETS[name]
        chosen += sorted(p for p in folder.glob("sample_*.py") if p.name not in INTERACTIVE)
    if only:
        everything = {p.name: p for p in samples.rglob("sample_*.py")}
        missing = [n for n in only if n not in everything]
        if missing:
            raise SystemExit(f"unknown samples: {', '.join(missing)}")
        chosen = [everything[n] for n in only]
    return chosen


def run_one(sample: Path, env: dict[str, str], timeout: float) -> Outcome:
    if sample.name in NOT_EMULATED:
        return Outcome(sample.name, True, 0.0, 0, None, skipped=NOT_EMULATED[sample.name])
    if sample.name in NEED_PROJECTS_GA and not _projects_ga():
        return Outcome(sample.name, True, 0.0, 0, None, skipped="needs azure-ai-projects >= 1.0 (GA client)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:  # samples save files into their working folder
        try:
            done = subprocess.run(
                [*_instrument_command(), sys.executable, str(sample)],
                cwd=workdir,
                env={**env, "OTEL_SERVICE_NAME": sample.stem},
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as expired:
            output = expired.stdout if isinstance(expired.stdout, str) else ""
            return Outcome(sample.name, False, time.monotonic() - started, 0, None, "timeout " + output[-300:])
    runs = len(re.findall(r"invoke_agent ", done.stdout))
    seconds = time.monotonic() - started
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", done.stderr)
    if done.returncode != 0 and missing:  # a library the sample itself uses (pydantic, jsonref...)
        return Outcome(sample.name, True, seconds, runs, done.returncode, skipped=f"needs {missing.group(1)}")
    ok = done.returncode == 0 and runs > 0
    detail = "" if ok else (done.stderr.strip() or done.stdout.strip())[-800:]
    return Outcome(sample.name, ok, seconds, runs, done.returncode, detail)


def _other_instrumentors() -> list[str]:
    """Installed instrumentations other than ours (off: the trees show the agent runs only)."""
    from importlib.metadata import entry_points

    return sorted({e.name for e in entry_points(group="opentelemetry_instrumentor")} - {"azure_ai_agents"})


def _projects_ga() -> bool:
    try:
        from importlib.metadata import version

        return not version("azure-ai-projects").startswith(("0.", "1.0.0b"))
    except Exception:  # not installed
        return False


def _instrument_command() -> list[str]:
    """``opentelemetry-instrument`` of this interpreter's environment."""
    script = Path(sys.executable).parent / "opentelemetry-instrument"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from opentelemetry.instrumentation.auto_instrumentation import run; run()"]


_AZ_CLI = """#!{python}
# A stand-in for `az account get-access-token`, for samples that exclude managed identity from
# DefaultAzureCredential: it answers with the token the emulator's client helpers use.
import json, time
print(json.dumps({{"accessToken": "{token}", "expires_on": int(time.time()) + 3600, "tokenType": "Bearer"}}))
"""


def stand_in_cli(folder: Path) -> Path:
    """A folder holding a stand-in ``az`` (put first on PATH)."""
    from azure_ai_agents_emulator.clients import TOKEN

    script = folder / "az"
    script.write_text(_AZ_CLI.format(python=sys.executable, token=TOKEN), encoding="utf-8")
    script.chmod(0o755)
    return folder


def sample_environment(emulator: AgentsEmulator, samples: Path, bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AZURE_CLIENT_", "AZURE_TENANT_"))}
    env.pop("AZURE_TOKEN_CREDENTIALS", None)
    env.update(PLACEHOLDERS)
    env.update(emulator.environment())
    # Some samples import `samples.utils...`: the sdist's root on the path, as in the SDK's repository.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(samples.parent), os.environ.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(bin_dir), os.environ.get("PATH", "")))
    env.update(
        {
            "OTEL_PYTHON_DISTRO": "distro",
            "OTEL_PYTHON_CONFIGURATOR": "configurator",
            "OTEL_TRACES_EXPORTER": "agent_tree",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(_other_instrumentors()),
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "NO_COLOR": "1",
            "COLUMNS": "120",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", choices=sorted(SETS), help="a sample set (repeatable)")
    parser.add_argument("--only", default="", help="comma-separated sample file names (overrides --set)")
    parser.add_argument("--version", default=None, help="azure-ai-agents version whose samples to run")
    parser.add_argument("--samples-dir", default=None, help="an extracted samples/ folder (no download)")
    parser.add_argument("--jobs", type=int, default=4, help="samples run at once (default 4)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per sample")
    parser.add_argument("--polls-per-state", type=int, default=0, help="emulator polls per run state (default 0)")
    parser.add_argument("--list", action="store_true", help="list the selected samples and exit")
    parser.add_argument("--json", action="store_true", help="print one JSON line per sample")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failing sample's output tail")
    args = parser.parse_args(argv)

    try:
        samples = Path(args.samples_dir) if args.samples_dir else samples_folder(args.version or installed_version())
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
        print(f"samples unavailable: {error}", file=sys.stderr)
        return 3
    provide_assets(samples)
    chosen = select(samples, args.set or list(DEFAULT_SETS), [n for n in args.only.split(",") if n])
    if args.list:
        print("\n".join(str(p.relative_to(samples)) for p in chosen))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        cert_dir, bin_dir = Path(scratch) / "tls", Path(scratch) / "bin"
        bin_dir.mkdir()
        emulator = AgentsEmulator(
            tls=True,
            cert_dir=cert_dir,
            require_auth=True,
            default_scenario=AUTO_SCENARIO,
            polls_per_state=args.polls_per_state,
        )
        with emulator:
            env = sample_environment(emulator, samples, stand_in_cli(bin_dir))
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                outcomes = list(pool.map(lambda s: run_one(s, env, args.timeout), chosen))
    for outcome in outcomes:
        if args.json:
            print(json.dumps(asdict(outcome)))
        else:
            if outcome.skipped:
                print(f"skip {outcome.sample:<70} {outcome.skipped}")
                continue
            mark = "ok  " if outcome.ok else "FAIL"
            print(f"{mark} {outcome.sample:<70} {outcome.seconds:5.1f} s  runs traced: {outcome.runs}")
            if args.verbose and not outcome.ok:
                print("     " + outcome.detail.replace("\n", "\n     "))
    ran = [o for o in outcomes if not o.skipped]
    passed = sum(o.ok for o in ran)
    if not args.json:
        print(f"{passed}/{len(ran)} samples passed ({len(outcomes) - len(ran)} skipped)")
    return 0 if passed == len(ran) else 1


if __name__ == "__main__":
    sys.exit(main())
