"""Run the Azure SDK's own agent samples, unmodified, against the emulator with the instrumentation on.

    python emulator/scripts/run_sdk_samples.py                      # classic: azure-ai-agents' samples
    python emulator/scripts/run_sdk_samples.py --set basics --set streaming
    python emulator/scripts/run_sdk_samples.py --only sample_agents_basics.py,sample_agents_functions.py
    python emulator/scripts/run_sdk_samples.py --generation foundry # azure-ai-projects 2.x: samples/agents/
    python emulator/scripts/run_sdk_samples.py --generation foundry --only sample_agent_basic.py -v
    python emulator/scripts/run_sdk_samples.py --list

Two generations (:mod:`sample_generations`): ``classic`` runs the ``azure-ai-agents`` sdist's samples (threads,
runs, steps); ``foundry`` runs the ``azure-ai-projects`` >= 2 sdist's ``samples/agents/`` (agent versions, agent
endpoints, conversations, the Responses API; run it with azure-ai-projects >= 2 and openai installed).

The samples ship in the sdist on PyPI: the first run downloads it with ``pip download PACKAGE==VERSION
--no-binary :all: --no-deps`` (VERSION: the installed one, else the generation's default) and keeps its samples in
the user's cache. Each sample runs in its own process, in a scratch working folder, with no terminal input, under
``opentelemetry-instrument`` (traces to the ``agent_tree`` exporter, one tree per run), with the environment the
emulator prints (HTTPS endpoint, CA bundle, managed-identity variables for ``DefaultAzureCredential``) plus
placeholder connection ids and user inputs. Missing data files get small stand-ins, never written over real ones.
The foundry samples call ``load_dotenv()``: without python-dotenv installed they get a stand-in that loads nothing
(the environment is already set).

A sample passes when it exits 0; classic samples must also print at least one agent run (``invoke_agent``). The
number of ``invoke_agent`` spans each printed is reported (``spans``), and for the foundry generation, where each
sample has an emulator of its own, the number of responses the sample asked for (``responses``). Skipped, with
the reason: samples that need a library that is not installed (the emulator's ``[samples]`` extra installs them)
and those needing more than the emulator serves (the generation's ``not_emulated``). Samples that exclude managed
identity from ``DefaultAzureCredential`` get a stand-in ``az`` on ``PATH``. Needs: the emulator with its
``[samples]`` extra and this repository's instrumentation.
"""

from __future__ import annotations

import argparse
import importlib.util
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
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_generations import GENERATIONS, Generation  # noqa: E402

from azure_ai_agents_emulator import AgentsEmulator  # noqa: E402
from azure_ai_agents_emulator.tls import default_directory  # noqa: E402
from azure_ai_agents_emulator.tool_plans import AUTO_SCENARIO  # noqa: E402

#: Refuse links and absolute paths in the archive where tarfile can (3.10.12+, 3.11.4+).
_SAFE: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


@dataclass
class Outcome:
    sample: str
    ok: bool
    seconds: float
    runs: int  # invoke_agent spans the instrumentation printed
    returncode: Optional[int]
    detail: str = ""
    skipped: str = ""  # why the sample could not run here (then ok is True)
    responses: Optional[int] = None  # responses the sample asked for (foundry: its own emulator counts them)


def installed_version(package: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:  # not installed
        return None


def samples_folder(generation: Generation, version: str, cache: Optional[Path] = None) -> Path:
    """The sdist's ``samples/`` folder, downloaded once into ``cache`` (raises RuntimeError if pip fails)."""
    cache = cache or default_directory().parent / "sdk-samples"
    target = cache / f"{generation.package}-{version}" / "samples"
    if target.is_dir():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"{generation.package}=={version}",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--quiet",
            "--dest",
            scratch,
            "--timeout",
            "15",
            "--retries",
            "1",
        ]
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
                    if generation.keep(member.name):
                        archive.extract(member, Path(unpacked) / "samples", **_SAFE)
            try:
                os.rename(Path(unpacked) / "samples", target)  # one rename: no half-extracted folder is seen
            except OSError:
                if not target.is_dir():  # not another process's copy arriving first: a real failure
                    raise
    return target


def provide_assets(generation: Generation, samples: Path) -> None:
    assets = samples / generation.assets_folder
    assets.mkdir(parents=True, exist_ok=True)
    for name, content in generation.assets.items():
        if not (assets / name).exists():
            (assets / name).write_bytes(content)


def select(generation: Generation, samples: Path, sets: list[str], only: list[str]) -> list[Path]:
    chosen: list[Path] = []
    for name in sets:
        folder = samples / generation.sets[name]
        chosen += sorted(p for p in folder.glob("sample_*.py") if p.name not in generation.interactive)
    if only:
        everything = {p.name: p for p in samples.rglob("sample_*.py")}
        missing = [n for n in only if n not in everything]
        if missing:
            raise SystemExit(f"unknown samples: {', '.join(missing)}")
        chosen = [everything[n] for n in only]
    return chosen


def run_one(
    generation: Generation, sample: Path, env: dict[str, str], timeout: float, ready: Optional[str] = None
) -> Outcome:
    """Runs ``sample`` with ``env`` (``ready``: why it cannot run here at all)."""
    if sample.name in generation.not_emulated:
        return Outcome(sample.name, True, 0.0, 0, None, skipped=generation.not_emulated[sample.name])
    if ready is not None:
        return Outcome(sample.name, True, 0.0, 0, None, skipped=ready)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:  # samples save files into their working folder
        try:
            done = subprocess.run(
                [*_instrument_command(), sys.executable, str(sample)],
                cwd=workdir,
                env={**env, "OTEL_SERVICE_NAME": sample.stem},
                stdin=subprocess.DEVNULL,  # a sample asking for input gets EOF instead of waiting forever
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
    ok = done.returncode == 0 and (runs > 0 or generation.isolated)
    detail = "" if ok else (done.stderr.strip() or done.stdout.strip())[-800:]
    return Outcome(sample.name, ok, seconds, runs, done.returncode, detail)


def _other_instrumentors() -> list[str]:
    """Installed instrumentations other than ours (off: the trees show the agent runs only)."""
    from importlib.metadata import entry_points

    return sorted({e.name for e in entry_points(group="opentelemetry_instrumentor")} - {"azure_ai_agents"})


def _classic_ready(sample: Path) -> Optional[str]:
    """Why a classic sample cannot run with what is installed (the GA azure-ai-projects client), or None."""
    if sample.name not in ("sample_agents_auto_function_call.py", "sample_agents_auto_function_call_async.py"):
        return None
    projects = installed_version("azure-ai-projects")
    if projects is None or projects.startswith(("0.", "1.0.0b")):
        return "needs azure-ai-projects >= 1.0 (GA client)"
    return None


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
_DOTENV = '''"""A stand-in for python-dotenv (not installed): the sample's environment is already set."""


def load_dotenv(*args, **kwargs):
    return False


def find_dotenv(*args, **kwargs):
    return ""
'''


def stand_ins(folder: Path) -> tuple[Path, Optional[Path]]:
    """A folder holding a stand-in ``az`` (put first on PATH), and one holding a stand-in ``dotenv`` when
    python-dotenv is not installed (put on PYTHONPATH)."""
    from azure_ai_agents_emulator.clients import TOKEN

    bin_dir = folder / "bin"
    bin_dir.mkdir()
    script = bin_dir / "az"
    script.write_text(_AZ_CLI.format(python=sys.executable, token=TOKEN), encoding="utf-8")
    script.chmod(0o755)
    if importlib.util.find_spec("dotenv") is not None:
        return bin_dir, None
    modules = folder / "modules"
    (modules / "dotenv").mkdir(parents=True)
    (modules / "dotenv" / "__init__.py").write_text(_DOTENV, encoding="utf-8")
    return bin_dir, modules


def sample_environment(
    generation: Generation, emulator: AgentsEmulator, samples: Path, bin_dir: Path, modules: Optional[Path]
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AZURE_CLIENT_", "AZURE_TENANT_"))}
    env.pop("AZURE_TOKEN_CREDENTIALS", None)
    env.update(generation.placeholders)
    env.update(emulator.environment())
    env["FOUNDRY_PROJECT_ENDPOINT"] = emulator.endpoint
    # Some samples import `samples.util...`: the sdist's root on the path, as in the SDK's repository.
    paths = (str(samples.parent), str(modules or ""), os.environ.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
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


def _print(outcomes: list[Outcome], as_json: bool, verbose: bool, generation: Generation) -> None:
    for outcome in outcomes:
        if as_json:
            print(json.dumps(asdict(outcome)))
            continue
        if outcome.skipped:
            print(f"skip {outcome.sample:<62} {outcome.skipped}")
            continue
        mark = "ok  " if outcome.ok else "FAIL"
        asked = f"  responses: {outcome.responses:2d}" if outcome.responses is not None else ""
        print(f"{mark} {outcome.sample:<62} {outcome.seconds:5.1f} s{asked}  invoke_agent spans: {outcome.runs}")
        if verbose and not outcome.ok:
            print("     " + outcome.detail.replace("\n", "\n     "))
    if as_json:
        return
    ran = [o for o in outcomes if not o.skipped]
    traced = sum(o.runs > 0 for o in ran)
    print(
        f"{sum(o.ok for o in ran)}/{len(ran)} {generation.name} samples passed, {traced} printed an invoke_agent span"
        f" ({len(outcomes) - len(ran)} skipped)"
    )


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generation", choices=sorted(GENERATIONS), default="classic", help="which SDK's samples")
    names = sorted({name for generation in GENERATIONS.values() for name in generation.sets})
    parser.add_argument("--set", action="append", choices=names, help="a sample set of the generation (repeatable)")
    parser.add_argument("--only", default="", help="comma-separated sample file names (overrides --set)")
    parser.add_argument("--version", default=None, help="version of the package whose samples to run")
    parser.add_argument("--samples-dir", default=None, help="an extracted samples/ folder (no download)")
    parser.add_argument("--jobs", type=int, default=4, help="samples run at once (default 4)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per sample")
    parser.add_argument("--polls-per-state", type=int, default=0, help="emulator polls per run state (default 0)")
    parser.add_argument("--list", action="store_true", help="list the selected samples and exit")
    parser.add_argument("--json", action="store_true", help="print one JSON line per sample")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failing sample's output tail")
    args = parser.parse_args(argv)
    generation = GENERATIONS[args.generation]
    unknown = [name for name in args.set or [] if name not in generation.sets]
    if unknown:
        parser.error(
            f"the {generation.name} generation has no set {', '.join(unknown)}; sets: {sorted(generation.sets)}"
        )

    installed = installed_version(generation.package)
    try:
        version = args.version or installed or generation.default_version
        samples = Path(args.samples_dir) if args.samples_dir else samples_folder(generation, version)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
        print(f"samples unavailable: {error}", file=sys.stderr)
        return 3
    provide_assets(generation, samples)
    chosen = select(
        generation, samples, args.set or list(generation.default_sets), [n for n in args.only.split(",") if n]
    )
    if args.list:
        print("\n".join(str(p.relative_to(samples)) for p in chosen))
        return 0
    missing = f"needs {generation.package}" if installed is None and generation.requires else None
    ready = missing or (generation.requires(installed) if generation.requires and installed else None)
    with tempfile.TemporaryDirectory() as scratch:
        cert_dir = Path(scratch) / "tls"
        bin_dir, modules = stand_ins(Path(scratch))

        def emulator() -> AgentsEmulator:
            return AgentsEmulator(
                tls=True,
                cert_dir=cert_dir,
                require_auth=True,
                default_scenario=AUTO_SCENARIO,
                polls_per_state=args.polls_per_state,
            )

        def environment(running: AgentsEmulator) -> dict[str, str]:
            return sample_environment(generation, running, samples, bin_dir, modules)

        run: Callable[[Path], Outcome]
        if generation.isolated:
            emulator().start().stop()  # makes the local CA once, before samples run at once

            def run(sample: Path) -> Outcome:
                with emulator() as own:
                    outcome = run_one(generation, sample, environment(own), args.timeout, ready)
                    if not outcome.skipped:
                        outcome.responses = own.service.operations.count("create_response")
                return outcome

            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                outcomes = list(pool.map(run, chosen))
        else:
            with emulator() as shared:
                env = environment(shared)
                with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                    outcomes = list(
                        pool.map(lambda s: run_one(generation, s, env, args.timeout, _classic_ready(s)), chosen)
                    )
    _print(outcomes, args.json, args.verbose, generation)
    ran = [o for o in outcomes if not o.skipped]
    return 0 if all(o.ok for o in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
