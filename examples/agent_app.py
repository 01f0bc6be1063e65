"""The sample agent app every example runs; the examples differ only in how telemetry is set up.

It talks to real Azure when PROJECT_ENDPOINT is set (DefaultAzureCredential; ``pip install azure-identity``;
MODEL_DEPLOYMENT_NAME names the model deployment), otherwise to the bundled Agents service emulator. On the
emulator, run metadata ``{"scenario": ...}`` picks the scripted behaviour; real Azure just stores it.
Nothing here knows about OpenTelemetry.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from typing import Any, Optional

from azure.ai.agents import AgentsClient
from azure.ai.agents.models import CodeInterpreterTool, FunctionTool, ToolOutput

ACTIVE = ("queued", "in_progress", "requires_action")


def get_weather(city: str) -> str:
    """Returns the current weather for a city.

    :param city: The city name, e.g. Seattle.
    :return: The weather as JSON.
    """
    return json.dumps({"city": city, "temperature_c": 14, "sky": "light rain"})


def model() -> str:
    return os.environ.get("MODEL_DEPLOYMENT_NAME", "gpt-4o")


def make_client(stack: ExitStack) -> tuple[AgentsClient, bool]:
    """(client, emulated): a real client when PROJECT_ENDPOINT is set, else one wired to a local emulator
    that lives as long as ``stack``."""
    endpoint = os.environ.get("PROJECT_ENDPOINT")
    if endpoint:
        from azure.identity import DefaultAzureCredential

        return AgentsClient(endpoint=endpoint, credential=DefaultAzureCredential()), False
    from azure_ai_agents_emulator import AgentsEmulator, agents_client

    emulator = stack.enter_context(AgentsEmulator())
    return agents_client(emulator), True


def use_test_fakes() -> None:
    """Makes the repository's fake backends (``tests/fakes``: Nexus, OTLP, Application Insights receivers)
    importable. The examples start one when no real backend is configured; it needs a source checkout."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)


def _scenario(name: str, emulated: bool) -> Optional[dict[str, str]]:
    return {"scenario": name} if emulated else None


def _interval(emulated: bool) -> int:
    return 0 if emulated else 1


def weather_run(client: AgentsClient, emulated: bool, scenario: str = "function_call") -> Any:
    """A function tool answered by the app: create, poll, requires_action, submit_tool_outputs, poll."""
    functions = FunctionTool({get_weather})
    agent = client.create_agent(
        model=model(), name="weather-agent", instructions="Answer with the weather.", tools=functions.definitions
    )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="What's the weather in Seattle?")
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id, metadata=_scenario(scenario, emulated))
    while run.status in ACTIVE:
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


def code_run(client: AgentsClient, emulated: bool) -> Any:
    """A server-side tool: the SDK's own polling helper runs the code interpreter to the end."""
    agent = client.create_agent(
        model=model(), name="math-agent", instructions="Use Python.", tools=CodeInterpreterTool().definitions
    )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="What is 2 + 2? Compute it.")
    run = client.runs.create_and_process(
        thread_id=thread.id,
        agent_id=agent.id,
        metadata=_scenario("code_interpreter", emulated),
        polling_interval=_interval(emulated),
    )
    client.delete_agent(agent.id)
    return run


def failing_run(client: AgentsClient, emulated: bool) -> Any:
    """A run the service fails: the trace shows where and why (error.type = the service's error code)."""
    agent = client.create_agent(model=model(), name="flaky-agent", instructions="Try your best.")
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="Summarise the quarterly report.")
    run = client.runs.create_and_process(
        thread_id=thread.id,
        agent_id=agent.id,
        metadata=_scenario("failed", emulated),
        polling_interval=_interval(emulated),
    )
    client.delete_agent(agent.id)
    return run


def run_all(client: AgentsClient, emulated: bool) -> list[Any]:
    with client:
        return [weather_run(client, emulated), code_run(client, emulated), failing_run(client, emulated)]


def main() -> None:
    """Runs the app with no telemetry code at all (zero-code: see the README's "Use" section)."""
    import new_agents_app

    with ExitStack() as stack:
        client, emulated = make_client(stack)
        for run in run_all(client, emulated):
            print(f"run {run.id}: {run.status}")
        if new_agents_app.installed():  # the new Foundry agents, side by side (azure-ai-projects >= 2)
            project, emulated = new_agents_app.make_project(stack)
            for response in new_agents_app.invoke_all(project, emulated):
                print(f"response {response.id}: {response.status}")


if __name__ == "__main__":
    main()
