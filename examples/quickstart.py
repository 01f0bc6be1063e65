"""Quickstart: three agent runs, each printed as one trace tree in your terminal.

    python examples/quickstart.py

With no settings it runs against the bundled Agents service emulator: no Azure subscription, no keys.
With PROJECT_ENDPOINT set (an Azure AI Foundry project endpoint) it runs the same app against real Azure,
authenticating with DefaultAzureCredential (``pip install azure-identity``; set MODEL_DEPLOYMENT_NAME too).
Traces go to the terminal tree, and also to Nexus / Application Insights / OTLP when their standard
variables are set (NEXUS_API_KEY, APPLICATIONINSIGHTS_CONNECTION_STRING, OTEL_EXPORTER_OTLP_ENDPOINT) or
whatever OTEL_TRACES_EXPORTER names.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from azure.ai.agents import AgentsClient
from azure.ai.agents.models import CodeInterpreterTool, FunctionTool, ToolOutput

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


def get_weather(city: str) -> str:
    """Returns the current weather for a city.

    :param city: The city name, e.g. Seattle.
    :return: The weather as JSON.
    """
    return json.dumps({"city": city, "temperature_c": 14, "sky": "light rain"})


def make_client() -> tuple[AgentsClient, Optional[Any]]:
    """A real client for Azure when PROJECT_ENDPOINT is set, else one wired to a local emulator."""
    endpoint = os.environ.get("PROJECT_ENDPOINT")
    if endpoint:
        from azure.identity import DefaultAzureCredential

        return AgentsClient(endpoint=endpoint, credential=DefaultAzureCredential()), None
    from opentelemetry.instrumentation.azure_ai_agents.emulator import AgentsEmulator, agents_client

    emulator = AgentsEmulator().start()
    return agents_client(emulator), emulator


def scenario(name: str, emulated: bool) -> Optional[dict[str, str]]:
    """On the emulator, run metadata picks the scripted behaviour; real Azure just stores it."""
    return {"scenario": name} if emulated else None


def weather_run(client: AgentsClient, model: str, emulated: bool) -> None:
    """A function tool answered by the app: create, poll, requires_action, submit_tool_outputs, poll."""
    functions = FunctionTool({get_weather})
    agent = client.create_agent(
        model=model, name="weather-agent", instructions="Answer with the weather.", tools=functions.definitions
    )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="What's the weather in Seattle?")
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id, metadata=scenario("function_call", emulated))
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


def code_run(client: AgentsClient, model: str, emulated: bool) -> None:
    """A server-side tool: the SDK's own polling helper runs the code interpreter to the end."""
    agent = client.create_agent(
        model=model, name="math-agent", instructions="Use Python.", tools=CodeInterpreterTool().definitions
    )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="What is 2 + 2? Compute it.")
    client.runs.create_and_process(
        thread_id=thread.id, agent_id=agent.id, metadata=scenario("code_interpreter", emulated), polling_interval=0 if emulated else 1
    )
    client.delete_agent(agent.id)


def failing_run(client: AgentsClient, model: str, emulated: bool) -> None:
    """A run the service fails: the trace shows where and why (error.type = the service's error code)."""
    agent = client.create_agent(model=model, name="flaky-agent", instructions="Try your best.")
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="Summarise the quarterly report.")
    client.runs.create_and_process(
        thread_id=thread.id, agent_id=agent.id, metadata=scenario("failed", emulated), polling_interval=0 if emulated else 1
    )
    client.delete_agent(agent.id)


def main() -> None:
    exporters = None if os.environ.get("OTEL_TRACES_EXPORTER") else _exporters_from_env()
    telemetry = configure_telemetry(exporters, service_name="agents-quickstart")
    client, emulator = make_client()
    model = os.environ.get("MODEL_DEPLOYMENT_NAME", "gpt-4o")
    try:
        with client:
            for run in (weather_run, code_run, failing_run):
                run(client, model, emulator is not None)
    finally:
        telemetry.shutdown()
        if emulator is not None:
            emulator.stop()


def _exporters_from_env() -> list[str]:
    """The terminal tree always, plus each backend whose standard variables are set."""
    chosen = ["agent_tree"]
    if os.environ.get("NEXUS_API_KEY"):
        chosen.append("nexus")
    if os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        chosen.append("azure_monitor")
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        chosen.append("otlp")
    return chosen


if __name__ == "__main__":
    main()
