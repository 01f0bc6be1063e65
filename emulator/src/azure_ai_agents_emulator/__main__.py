"""``python -m azure_ai_agents_emulator --port 8089``: serve in the foreground."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from .scenarios import DEFAULT_SCENARIO, SCENARIO_NAMES
from .server import AgentsEmulator


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse arguments, start the emulator and block until Ctrl+C."""
    parser = argparse.ArgumentParser(description="Local emulator of the Azure AI Agents service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port (default 8089)")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, choices=SCENARIO_NAMES, help="default scenario")
    parser.add_argument("--polls-per-state", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None, help="deterministic ids")
    args = parser.parse_args(argv)
    emulator = AgentsEmulator(
        host=args.host,
        port=args.port,
        default_scenario=args.scenario,
        polls_per_state=args.polls_per_state,
        seed=args.seed,
    )
    emulator.start()
    print(f"Azure AI Agents emulator listening on {emulator.base_url}", flush=True)
    print(f"  azure-ai-agents endpoint: {emulator.endpoint}", flush=True)
    print(f"  legacy AIProjectClient kwargs: {emulator.legacy_kwargs}", flush=True)
    print(f"  scenarios: {', '.join(SCENARIO_NAMES)} (default {args.scenario})", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
