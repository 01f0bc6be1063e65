"""Agent runs in Application Insights: one operation per run, GenAI dependencies for the run and its tools.

    python examples/appinsights_example.py

* With APPLICATIONINSIGHTS_CONNECTION_STRING set, telemetry goes to your Application Insights resource
  (look in Transaction search / the Agents view for ``invoke_agent weather-agent``).
* Without it, a local ingestion endpoint (``emulator.appinsights_server``) receives the envelopes and the
  example prints what Application Insights would show: dependency type, name and operation id.
* With PROJECT_ENDPOINT set (an Azure AI Foundry project endpoint, plus MODEL_DEPLOYMENT_NAME), the app talks to
  real Azure with DefaultAzureCredential (``pip install azure-identity``); otherwise to the bundled emulator.

Needs the ``azure-monitor`` extra: ``pip install 'opentelemetry-instrumentation-azure-ai-agents[azure-monitor]'``.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

from agent_app import make_client, use_test_fakes, weather_run

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


def show(receiver: Any) -> None:
    """What Application Insights would list for these operations."""
    use_test_fakes()
    from tests.fakes.appinsights_server import base_data

    print(f"\nLocal ingestion endpoint got {len(receiver.envelopes)} envelopes. Dependencies:")
    for envelope in receiver.dependencies():
        data, tags = base_data(envelope), envelope["tags"]
        parent = tags.get("ai.operation.parentId", "-")
        print(
            f"  operation {tags['ai.operation.id'][:8]}  parent {parent[:8]:<8}  "
            f"{data['type']:<22} {data['name']}  success={data['success']}"
        )


def main() -> None:
    with ExitStack() as stack:
        receiver = None
        options: dict[str, Any] = {}
        if not os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
            use_test_fakes()
            from tests.fakes.appinsights_server import AppInsightsReceiver

            receiver = stack.enter_context(AppInsightsReceiver())
            os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"] = receiver.connection_string
            # a local endpoint: no calls to Microsoft's control plane or statsbeat, no offline storage
            for name in (
                "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED",
                "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
                "APPLICATIONINSIGHTS_SDKSTATS_DISABLED",
            ):
                os.environ.setdefault(name, "true")
            options = {"azure_monitor": {"disable_offline_storage": True}}

        telemetry = configure_telemetry(
            ["azure_monitor", "agent_tree"], service_name="appinsights-example", exporter_options=options
        )
        client, emulated = make_client(stack)
        try:
            with client:
                weather_run(client, emulated)
                if emulated:
                    weather_run(client, emulated, "failed")  # a failed run: an unsuccessful dependency
        finally:
            telemetry.shutdown()  # flushes the batch processors before the local endpoint stops
        if receiver is not None:
            show(receiver)


if __name__ == "__main__":
    main()
