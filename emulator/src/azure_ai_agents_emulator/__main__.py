"""``python -m azure_ai_agents_emulator``: serve the emulator in the foreground and print the app's environment.

By default it serves HTTPS on 127.0.0.1:8089 with a certificate of its local CA and requires bearer tokens
issued by its managed-identity endpoint: an unmodified app using ``DefaultAzureCredential`` works once the
printed variables are set (``--env-file`` also writes them as a dotenv file).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from .scenarios import SCENARIO_NAMES
from .server import AgentsEmulator
from .tool_plans import AUTO_SCENARIO


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m azure_ai_agents_emulator",
        description="A local emulator of Azure AI Agent Service, to test agent apps and their telemetry offline.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port (default 8089)")
    parser.add_argument("--http", action="store_true", help="plain HTTP, no certificate and no token check")
    parser.add_argument("--cert-dir", default=None, help="certificate folder (default: the user's cache)")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a token from the emulator")
    parser.add_argument(
        "--scenario",
        default=AUTO_SCENARIO,
        choices=(AUTO_SCENARIO, *SCENARIO_NAMES),
        help="what runs do when nothing names a scenario (default: auto, follow the agent's tools)",
    )
    parser.add_argument(
        "--polls-per-state", type=int, default=1, help="polls a run spends in each state (0: run to the next wait)"
    )
    parser.add_argument("--run-expiry", type=float, default=600, help="seconds until an unfinished run expires")
    parser.add_argument("--seed", type=int, default=None, help="deterministic ids")
    parser.add_argument("--model", default="gpt-4o", help="MODEL_DEPLOYMENT_NAME to print")
    parser.add_argument(
        "--env-file", default=None, help="also write the environment as KEY=VALUE lines (shell-quoted, for . or dotenv)"
    )
    parser.add_argument("--json", action="store_true", help="print the environment as one JSON line")
    return parser


def env_file_text(environment: dict[str, str]) -> str:
    """``KEY=VALUE`` lines, each value quoted for a POSIX shell when it needs it (the legacy connection string
    holds ``;``), so that both ``set -a; . ./.env.emulator; set +a`` and dotenv loaders read the same values."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in environment.items())


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse arguments, start the emulator, print the environment and block until Ctrl+C."""
    args = _parser().parse_args(argv)
    emulator = AgentsEmulator(
        host=args.host,
        port=args.port,
        tls=not args.http,
        cert_dir=args.cert_dir,
        default_scenario=args.scenario,
        polls_per_state=args.polls_per_state,
        seed=args.seed,
        run_expiry_seconds=args.run_expiry,
        require_auth=not (args.http or args.no_auth),
    )
    emulator.start()
    environment = emulator.environment(model=args.model)
    if args.env_file:
        Path(args.env_file).write_text(env_file_text(environment), encoding="utf-8")
    if args.json:
        print(json.dumps(environment), flush=True)
    else:
        print(f"# Azure AI Agents emulator on {emulator.base_url} (Ctrl+C stops it)", flush=True)
        print("# Point an app at it from another shell with:", flush=True)
        for name, value in environment.items():
            print(f"export {name}={shlex.quote(value)}", flush=True)
        print(f"# legacy AIProjectClient kwargs: {emulator.legacy_kwargs}", flush=True)
        print(f"# scenarios (run metadata {{'scenario': name}}): {AUTO_SCENARIO}, {', '.join(SCENARIO_NAMES)}")
        print(f"# scripted failures: POST {emulator.base_url}/emulator/faults {{'match': 'get_run', 'status': 503}}")
        sys.stdout.flush()
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
