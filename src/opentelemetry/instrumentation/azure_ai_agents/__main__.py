"""``python -m opentelemetry.instrumentation.azure_ai_agents doctor [...]``: the package's command line.

One command so far: ``doctor`` (see :mod:`.doctor`; also installed as the ``azure-ai-agents-otel-doctor`` script).
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

PROG = "python -m opentelemetry.instrumentation.azure_ai_agents"


def main(argv: Optional[Sequence[str]] = None) -> int:
    from . import doctor

    parser = argparse.ArgumentParser(prog=PROG, description="Azure AI Agents OpenTelemetry instrumentation tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor_parser = commands.add_parser(
        "doctor",
        help="check that agent-run traces reach their destinations",
        description="Reads the app's telemetry configuration, sends one synthetic agent run through each "
        "destination, and reports what arrived (exit 1 on a failure).",
    )
    doctor.add_arguments(doctor_parser)
    args = parser.parse_args(argv)
    return doctor.run_cli(args)


if __name__ == "__main__":  # pragma: no cover
    from .doctor import exit_now

    exit_now(main())
