"""The zero-code agent app, with telemetry set up the Azure Monitor way: ``configure_azure_monitor()`` in code.

Run in a subprocess by the tests (the distro installs global providers and instruments many libraries, which
must not leak into the test process). Reads ``APPLICATIONINSIGHTS_CONNECTION_STRING`` and
``AZURE_AI_AGENTS_ENDPOINT``; ``AZURE_SDK_TRACING=off`` disables the distro's ``azure_sdk`` instrumentation
(azure-core spans and Microsoft's own AIAgentsInstrumentor). Prints the app's JSON line.
"""

from __future__ import annotations

import os
import sys

from azure.monitor.opentelemetry import configure_azure_monitor

from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zero_code_app  # noqa: E402

options = {"azure_sdk": {"enabled": False}} if os.environ.get("AZURE_SDK_TRACING") == "off" else {}
configure_azure_monitor(
    enable_live_metrics=False,
    disable_offline_storage=True,
    instrumentation_options=options,
)
AzureAgentInstrumentor().instrument()  # the global providers the distro installed

zero_code_app.main()
