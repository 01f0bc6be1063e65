"""Zero-code start-up with the Azure AI Agents SDKs hidden; prints what happened as one JSON line.

It does exactly what ``opentelemetry-instrument``'s ``sitecustomize`` does (``initialize()``), after hiding the
SDKs, so the whole loader path runs: distro, configurator, every ``opentelemetry_instrumentor`` entry point.

Mode (argv[1]):

* ``uninstalled``: neither SDK is installed as far as the loader can tell (distribution lookups fail) and
  their modules cannot be imported;
* ``unimportable``: the distributions are there but ``import azure.ai.agents`` / ``azure.ai.projects`` fails
  (a broken or partial install).
"""

from __future__ import annotations

import importlib.abc
import json
import logging
import sys
from typing import Any

HIDDEN_MODULES = ("azure.ai.agents", "azure.ai.projects")
HIDDEN_DISTRIBUTIONS = {"azure-ai-agents", "azure-ai-projects"}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if any(name == hidden or name.startswith(hidden + ".") for hidden in HIDDEN_MODULES):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _hide_distributions() -> None:
    import importlib.metadata as stdlib_metadata

    import opentelemetry.instrumentation.dependencies as dependencies
    import opentelemetry.util._importlib_metadata as otel_metadata

    def hiding(real: Any) -> Any:
        def version(name: str) -> str:
            if _canonical(name) in HIDDEN_DISTRIBUTIONS:
                raise stdlib_metadata.PackageNotFoundError(name)
            return real(name)

        return version

    for module in (dependencies, otel_metadata, stdlib_metadata):
        module.version = hiding(module.version)  # type: ignore[attr-defined]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def main() -> None:
    mode = sys.argv[1]
    for name in list(sys.modules):
        if name.startswith(HIDDEN_MODULES):
            del sys.modules[name]
    sys.meta_path.insert(0, _Blocker())
    if mode == "uninstalled":
        _hide_distributions()
    elif mode != "unimportable":
        raise SystemExit(f"unknown mode {mode!r}")

    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)

    from opentelemetry.instrumentation.auto_instrumentation import initialize

    initialize(swallow_exceptions=False)  # raise instead of logging if anything in the loader fails

    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    ours = [r for r in collect.records if "azure_ai_agents" in r.name or "azure_ai_agents" in r.getMessage()
            or "azure-ai-agents" in r.getMessage()]
    print(
        json.dumps(
            {
                "instrumented": AzureAgentInstrumentor().is_instrumented_by_opentelemetry,
                "problems": [f"{r.levelname} {r.name}: {r.getMessage()}" for r in ours if r.levelno >= logging.WARNING],
                "debug": [r.getMessage() for r in ours if r.levelno < logging.WARNING],
                "azure_modules": sorted(m for m in sys.modules if m.startswith(HIDDEN_MODULES)),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
