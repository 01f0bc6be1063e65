"""The sample app's new Foundry agents (azure-ai-projects >= 2): the same three jobs as agent_app.py's classic
runs, as agent invocations on the Responses API, so the traces can be compared side by side.

* a function tool answered by the app (two invocations: the second answers the first's ``function_call``);
* the code interpreter, in background mode polled with ``responses.retrieve``;
* an invocation the service fails, streamed.

It talks to real Azure when PROJECT_ENDPOINT is set (DefaultAzureCredential), otherwise to the bundled emulator.
On the emulator, request metadata ``{"scenario": ...}`` picks the scripted behaviour. Nothing here knows about
OpenTelemetry. Needs ``azure-ai-projects`` >= 2 (with ``openai``); :func:`installed` says whether it is there.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from typing import Any, Optional

from agent_app import get_weather, model


def installed() -> bool:
    """True when the new agents' SDK (azure-ai-projects >= 2 and openai) is installed."""
    try:
        import openai  # noqa: F401
        from azure.ai.projects.models import PromptAgentDefinition  # noqa: F401
    except ImportError:
        return False
    return True


def make_project(stack: ExitStack) -> tuple[Any, bool]:
    """(project client, emulated): real Azure when PROJECT_ENDPOINT is set, else an emulator living as long as
    ``stack``."""
    endpoint = os.environ.get("PROJECT_ENDPOINT")
    if endpoint:
        from azure.ai.projects import AIProjectClient
        from azure.identity import DefaultAzureCredential

        return stack.enter_context(AIProjectClient(endpoint=endpoint, credential=DefaultAzureCredential())), False
    from azure_ai_agents_emulator import AgentsEmulator, foundry_project_client

    emulator = stack.enter_context(AgentsEmulator())
    return stack.enter_context(foundry_project_client(emulator)), True


def _agent(project: Any, name: str, tools: list[Any]) -> dict[str, Any]:
    from azure.ai.projects.models import PromptAgentDefinition

    version = project.agents.create_version(
        agent_name=name, definition=PromptAgentDefinition(model=model(), instructions="Be helpful.", tools=tools)
    )
    return {"agent_reference": {"name": version.name, "version": version.version, "type": "agent_reference"}}


def _scenario(name: str, emulated: bool) -> Optional[dict[str, str]]:
    return {"scenario": name} if emulated else None


def weather_invocations(project: Any, client: Any, emulated: bool) -> Any:
    """A function tool answered by the app: the first invocation asks for get_weather, the second answers it."""
    from azure.ai.projects.models import FunctionTool

    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = FunctionTool(name="get_weather", description="The weather in a city", parameters=parameters, strict=True)
    agent = _agent(project, "weather-agent", [tool])
    conversation = client.conversations.create()
    response = client.responses.create(
        conversation=conversation.id, input="What's the weather in Seattle?", extra_body=agent,
        metadata=_scenario("function_call", emulated),
    )
    answers = [
        {"type": "function_call_output", "call_id": item.call_id, "output": get_weather(**json.loads(item.arguments))}
        for item in response.output
        if item.type == "function_call"
    ]
    return client.responses.create(
        conversation=conversation.id, input=answers, extra_body=agent, metadata=_scenario("function_call", emulated)
    )


def code_invocation(project: Any, client: Any, emulated: bool) -> Any:
    """A server-side tool in background mode: created queued, polled until it ends."""
    import time

    from azure.ai.projects.models import CodeInterpreterTool

    agent = _agent(project, "math-agent", [CodeInterpreterTool()])
    response = client.responses.create(
        input="What is 6 * 7? Compute it.", background=True, extra_body=agent,
        metadata=_scenario("code_interpreter", emulated),
    )
    while response.status in ("queued", "in_progress"):
        time.sleep(0 if emulated else 1)
        response = client.responses.retrieve(response.id)
    return response


def failing_invocation(project: Any, client: Any, emulated: bool) -> Any:
    """An invocation the service fails, streamed: the trace shows why (error.type = the service's error code)."""
    agent = _agent(project, "flaky-agent", [])
    final = None
    stream = client.responses.create(
        input="Summarise the quarterly report.", stream=True, extra_body=agent, metadata=_scenario("failed", emulated)
    )
    for event in stream:
        if event.type in ("response.completed", "response.failed", "response.incomplete"):
            final = event.response
    return final


def invoke_all(project: Any, emulated: bool) -> list[Any]:
    client = project.get_openai_client()
    with client:
        return [
            weather_invocations(project, client, emulated),
            code_invocation(project, client, emulated),
            failing_invocation(project, client, emulated),
        ]
