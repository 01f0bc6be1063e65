"""Several agent runs with telemetry set up the Azure Monitor way: ``configure_azure_monitor(**options)`` plus
``AzureAgentInstrumentor().instrument()``.

Run in a subprocess by the tests (the distro installs global providers and instruments many libraries).
Reads ``APPLICATIONINSIGHTS_CONNECTION_STRING``, ``AZURE_AI_AGENTS_ENDPOINT``, ``DISTRO_OPTIONS`` (JSON keyword
arguments for ``configure_azure_monitor``, e.g. ``{"instrumentation_options": {"azure_sdk": {"enabled": false}}}``)
``RUNS`` (default 3) and ``MICROSOFT_AGENTS_TRACING=off`` (uninstrument Microsoft's ``AIAgentsInstrumentor``
after the distro turned it on). Prints one JSON line per run (``zero_code_app``'s), then flushes at exit.
"""

from __future__ import annotations

import json
import os
import sys

from azure.monitor.opentelemetry import configure_azure_monitor

from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zero_code_app  # noqa: E402

configure_azure_monitor(
    enable_live_metrics=False,
    disable_offline_storage=True,
    **json.loads(os.environ.get("DISTRO_OPTIONS") or "{}"),
)
if os.environ.get("MICROSOFT_AGENTS_TRACING") == "off":
    # Keeps the distro's azure-core tracing (other Azure SDKs' spans) but removes Microsoft's agents instrumentor.
    from azure.ai.agents.telemetry import AIAgentsInstrumentor

    if AIAgentsInstrumentor().is_instrumented():
        AIAgentsInstrumentor().uninstrument()
AzureAgentInstrumentor().instrument()  # the global providers the distro installed

for _ in range(int(os.environ.get("RUNS", "3"))):
    zero_code_app.main()
