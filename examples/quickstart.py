"""Quickstart: three agent runs, each printed as one trace tree in your terminal; with the new Foundry agents'
SDK installed (azure-ai-projects >= 2, see requirements-foundry.txt), the same three jobs as new-agent invocations
too, so a classic run and a new invocation can be compared side by side.

    python examples/quickstart.py

With no settings it runs against the bundled Agents service emulator: no Azure subscription, no keys.
With PROJECT_ENDPOINT set (an Azure AI Foundry project endpoint) it runs the same app against real Azure,
authenticating with DefaultAzureCredential (``pip install azure-identity``; set MODEL_DEPLOYMENT_NAME too).
Traces go to the terminal tree, and also to Nexus / Application Insights / OTLP when their standard
variables are set (NEXUS_API_KEY, APPLICATIONINSIGHTS_CONNECTION_STRING, OTEL_EXPORTER_OTLP_ENDPOINT), or to
whatever OTEL_TRACES_EXPORTER names.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

import new_agents_app
from agent_app import make_client, run_all

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


def exporters_from_env() -> list[str]:
    """The terminal tree always, plus each backend whose standard variables are set."""
    chosen = ["agent_tree"]
    if os.environ.get("NEXUS_API_KEY"):
        chosen.append("nexus")
    if os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        chosen.append("azure_monitor")
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        chosen.append("otlp")
    return chosen


def main() -> None:
    exporters = None if os.environ.get("OTEL_TRACES_EXPORTER") else exporters_from_env()
    with configure_telemetry(exporters, service_name="agents-quickstart"), ExitStack() as stack:
        client, emulated = make_client(stack)
        run_all(client, emulated)
        if new_agents_app.installed():
            project, emulated = new_agents_app.make_project(stack)
            new_agents_app.invoke_all(project, emulated)


if __name__ == "__main__":
    main()
