"""``azure-ai-agents-otel-doctor``: is agent-run tracing healthy here, and where does a run go?

    python -m opentelemetry.instrumentation.azure_ai_agents doctor [--strict] [--json] [--timeout 10]
    azure-ai-agents-otel-doctor [...]

It reads the configuration the app would use (``config``), reports it, sends one synthetic agent run
(``synthetic``) through each configured destination's standard exporter (``delivery``) and reports, per
destination, delivered or why not, with the evidence to find the run there (``report``). Everything happens
within ``--timeout`` seconds. Exit status: 0 when every destination delivered; 1 when the configuration is
invalid or a destination failed, and with ``--strict`` also when no destination is configured (the terminal
tree and the console print locally: they are not destinations) or the sampler records no runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .report import Report

__all__ = ["main", "run", "add_arguments", "run_cli", "console_main"]

DEFAULT_TIMEOUT_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also fail when no destination is configured or the sampler records no runs (for deployment pipelines)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"the most the whole check may take (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--zero-code",
        action="store_true",
        help="read the configuration as opentelemetry-instrument does (default: as configure_telemetry() does)",
    )
    parser.add_argument(
        "--agent-name",
        default=None,
        metavar="NAME",
        help="the synthetic run's agent name (default azure-ai-agents-doctor; Nexus files traces by agent)",
    )
    parser.add_argument("--no-send", action="store_true", help="report the configuration only; send nothing")


def run(
    *,
    strict: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    zero_code: bool = False,
    agent_name: Optional[str] = None,
    send: bool = True,
) -> "Report":
    """Reads the configuration, sends the synthetic run, returns the report (nothing is printed)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    from ..version import __version__
    from . import config, delivery, report, synthetic
    from .capture import LogCapture

    started = time.monotonic()
    capture = LogCapture().install()
    try:
        found = config.read(zero_code=zero_code)
        result = report.Report(
            version=f"opentelemetry-instrumentation-azure-ai-agents {__version__}",
            configuration=found,
            run=None,
            outcomes=[],
            strict=strict,
            timeout_s=timeout_s,
        )
        sendable = [d for d in found.destinations if d.problem is None]
        outcomes = {
            d.name: delivery.Outcome(d.name, d.entry_point, d.endpoint, delivery.MISCONFIGURED, d.problem)
            for d in found.destinations
            if d.problem is not None
        }
        if send and sendable:
            resource = Resource.create({SERVICE_NAME: found.service_name})
            result.run = synthetic.build(resource, agent_name or synthetic.DEFAULT_AGENT_NAME)
            remaining = max(0.5, timeout_s - (time.monotonic() - started))
            for outcome in delivery.deliver(sendable, result.run, remaining, capture):
                if outcome.ok:
                    outcome.find = report.find_hints(outcome, result.run)
                outcomes[outcome.destination] = outcome
        result.outcomes = [outcomes[d.name] for d in found.destinations if d.name in outcomes]
        result.elapsed_s = time.monotonic() - started
        report.verdict(result)
        return result
    finally:
        capture.remove()


def run_cli(args: argparse.Namespace) -> int:
    import logging

    from . import report

    # Exporters abandoned at the deadline may still log while the process exits: never onto the terminal.
    if not logging.getLogger().handlers:
        logging.getLogger().addHandler(logging.NullHandler())

    missing = _missing_sdk()
    if missing:
        payload = {"schema": report.SCHEMA_VERSION, "ok": False, "exit_code": 1, "failures": [missing]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n" if args.json else f"Result: FAIL\n  - {missing}\n")
        return 1
    result = run(
        strict=args.strict,
        timeout_s=args.timeout,
        zero_code=args.zero_code,
        agent_name=args.agent_name,
        send=not args.no_send,
    )
    sys.stdout.write(report.render_json(result) if args.json else report.render_text(result))
    sys.stdout.flush()
    return result.exit_code


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog or "azure-ai-agents-otel-doctor",
        description="Check that agent-run traces reach their destinations: reads the app's telemetry "
        "configuration, sends one synthetic agent run through each destination, and reports.",
    )
    add_arguments(parser)
    return run_cli(parser.parse_args(argv))


def exit_now(code: int) -> None:
    """Exits with ``code`` without waiting for exporter threads that outlived the time limit.

    An export still retrying at the deadline runs on a thread the doctor no longer waits for; interpreter
    shutdown would join it (and exporters' exit hooks would retry once more), breaking the time bound.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        os._exit(code)
    sys.exit(code)


def console_main() -> None:
    """The ``azure-ai-agents-otel-doctor`` console script."""
    exit_now(main())


def _missing_sdk() -> Optional[str]:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return (
            "the OpenTelemetry SDK is not installed, so nothing is exported: "
            "pip install 'opentelemetry-instrumentation-azure-ai-agents[otlp]' (or [azure-monitor], [nexus])"
        )
    return None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value
