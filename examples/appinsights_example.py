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

import json
import os
from contextlib import ExitStack
from typing import Any, Optional

from azure.ai.agents import AgentsClient
from azure.ai.agents.models import FunctionTool, ToolOutput

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


def get_weather(city: str) -> str:
    """Returns the current weather for a city.

    :param city: The city name, e.g. Seattle.
    :return: The weather as JSON.
    """
    return json.dumps({"city": city, "temperature_c": 14, "sky": "light rain"})


def make_client(stack: ExitStack) -> tuple[AgentsClient, bool]:
    """A real client when PROJECT_ENDPOINT is set, else one wired to a local emulator (returns emulated?)."""
    endpoint = os.environ.get("PROJECT_ENDPOINT")
    if endpoint:
        from azure.identity import DefaultAzureCredential

        return AgentsClient(endpoint=endpoint, credential=DefaultAzureCredential()), False
    from opentelemetry.instrumentation.azure_ai_agents.emulator import AgentsEmulator, agents_client

    emulator = stack.enter_context(AgentsEmulator())
    return agents_client(emulator), True


def weather_run(client: AgentsClient, model: str, scenario: Optional[str]) -> Any:
    functions = FunctionTool({get_weather})
    agent = client.create_agent(
        model=model, name="weather-agent", instructions="Answer with the weather.", tools=functions.definitions
    )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="What's the weather in Seattle?")
    metadata = {"scenario": scenario} if scenario else None  # the emulator's script; real Azure just stores it
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id, metadata=metadata)
    while run.status in ("queued", "in_progress", "requires_action"):
        if run.status == "requires_action":
            outputs = [
                ToolOutput(tool_call_id=call.id, output=functions.execute(call))
                for call in run.required_action.submit_tool_outputs.tool_calls
            ]
            run = client.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)
        else:
            run = client.runs.get(thread_id=thread.id, run_id=run.id)
    client.delete_agent(agent.id)
    return run


def show(receiver: Any) -> None:
    """What Application Insights would list for these operations."""
    from opentelemetry.instrumentation.azure_ai_agents.emulator.appinsights_server import base_data

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
            from opentelemetry.instrumentation.azure_ai_agents.emulator.appinsights_server import AppInsightsReceiver

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
        model = os.environ.get("MODEL_DEPLOYMENT_NAME", "gpt-4o")
        try:
            with client:
                weather_run(client, model, "function_call" if emulated else None)
                if emulated:
                    weather_run(client, model, "failed")  # a failed run: an unsuccessful dependency
        finally:
            telemetry.shutdown()  # flushes the batch processors before the local endpoint stops
        if receiver is not None:
            show(receiver)


if __name__ == "__main__":
    main()
