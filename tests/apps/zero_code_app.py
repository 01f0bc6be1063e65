"""An agent app with NO telemetry code, for zero-code runs: ``opentelemetry-instrument python zero_code_app.py``.

It talks to the service at ``AZURE_AI_AGENTS_ENDPOINT`` (the tests pass a local emulator's endpoint), creates an
agent with one function tool, runs it with the usual polling loop (answering ``requires_action``), and prints
one JSON line: ``{"run_id": ..., "status": ..., "agent_id": ..., "thread_id": ...}``.

Nothing here imports OpenTelemetry or this package: the instrumentation comes from the entry point.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from azure.ai.agents import AgentsClient
from azure.ai.agents.models import FunctionTool, ToolOutput
from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import SansIOHTTPPolicy

ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")


class StaticToken:
    """A credential for a local endpoint (a real app would use DefaultAzureCredential)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("local-token", int(time.time()) + 3600)


class StaticTokenPolicy(SansIOHTTPPolicy):
    """azure-core refuses bearer tokens over plain http: set the header ourselves for the local emulator."""

    def on_request(self, request: Any) -> None:
        request.http_request.headers["Authorization"] = "Bearer local-token"


def get_weather(city: str) -> str:
    """Gets the weather.

    :param city: The city.
    """
    return json.dumps({"city": city, "temperature_c": 21})


def _city(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            arguments = {}
    return str(arguments.get("city", "unknown")) if isinstance(arguments, dict) else "unknown"


def main() -> None:
    endpoint = os.environ["AZURE_AI_AGENTS_ENDPOINT"]
    kwargs: dict[str, Any] = {"authentication_policy": StaticTokenPolicy()} if endpoint.startswith("http:") else {}
    client = AgentsClient(endpoint=endpoint, credential=StaticToken(), **kwargs)  # type: ignore[arg-type]
    agent = client.create_agent(
        model="gpt-4o",
        name=os.environ.get("AGENT_NAME", "zero-code-agent"),
        instructions="You are a weather bot.",
        tools=FunctionTool({get_weather}).definitions,
    )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="Weather in Seattle?")
    run = client.runs.create(
        thread_id=thread.id, agent_id=agent.id, metadata={"scenario": os.environ.get("SCENARIO", "function_call")}
    )
    while run.status in ACTIVE:
        if run.status == "requires_action":
            calls = run.required_action.submit_tool_outputs.tool_calls
            outputs = [ToolOutput(tool_call_id=c.id, output=get_weather(_city(c.function.arguments)))
                       for c in calls]
            run = client.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)
        else:
            run = client.runs.get(thread_id=thread.id, run_id=run.id)
    print(json.dumps({"run_id": run.id, "status": str(run.status), "agent_id": agent.id, "thread_id": thread.id}),
          flush=True)


if __name__ == "__main__":
    main()
