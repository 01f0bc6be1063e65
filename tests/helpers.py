"""App-side code the tests run: the manual polling loops users write, for both SDK generations."""

from __future__ import annotations

import json
from typing import Any, Optional

ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
TOOL_OUTPUT = json.dumps({"temperature_c": 21, "sky": "sunny-secret-output"})
USER_MESSAGE = "What is the weather in Seattle? (secret-user-message)"
INSTRUCTIONS = "You are a weather bot. (secret-instructions)"


def get_weather(city: str) -> str:
    """Gets the weather.

    :param city: The city.
    """
    return TOOL_OUTPUT


def rate_limited_scenario() -> Any:
    """An emulator scenario (add it to ``service.scenarios`` under its name): the run fails for the deployment's
    rate limit, with the service's code and message."""
    from azure_ai_agents_emulator import MessageStep, Scenario

    return Scenario(
        "rate_limited",
        "The run fails for the deployment's rate limit.",
        (MessageStep("never said"),),
        outcome="failed",
        usage=None,
        last_error={"code": "rate_limit_exceeded", "message": RATE_LIMIT_MESSAGE},
    )


RATE_LIMIT_MESSAGE = "Rate limit is exceeded. Try again in 20 seconds."


def metadata(scenario: str, polls: int = 1) -> dict[str, str]:
    return {"scenario": scenario, "polls_per_state": str(polls)}


# ---- azure-ai-agents 1.x ---------------------------------------------------------------------------------
def agents_setup(client: Any, name: str = "weather-agent") -> tuple[str, str]:
    """Creates an agent (through the instrumented create_agent) and a thread with one user message."""
    from azure.ai.agents.models import FunctionTool

    agent = client.create_agent(
        model="gpt-4o", name=name, instructions=INSTRUCTIONS, tools=FunctionTool({get_weather}).definitions
    )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content=USER_MESSAGE)
    return agent.id, thread.id


def agents_run(client: Any, agent_id: str, thread_id: str, scenario: str, polls: int = 1, cancel: bool = False) -> Any:
    """The manual loop: create, poll, answer requires_action, poll to a terminal status. Never lists steps."""
    from azure.ai.agents.models import ToolOutput

    run = client.runs.create(
        thread_id=thread_id,
        agent_id=agent_id,
        metadata=metadata(scenario, polls),
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=500,
        max_prompt_tokens=4000,
        additional_messages=[{"role": "user", "content": USER_MESSAGE}],
        additional_instructions=INSTRUCTIONS,
    )
    cancelled = False
    while run.status in ACTIVE:
        if run.status == "requires_action":
            calls = run.required_action.submit_tool_outputs.tool_calls
            outputs = [ToolOutput(tool_call_id=c.id, output=TOOL_OUTPUT) for c in calls]
            run = client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
        elif cancel and not cancelled and run.status == "in_progress":
            cancelled = True
            run = client.runs.cancel(thread_id=thread_id, run_id=run.id)
        else:
            run = client.runs.get(thread_id=thread_id, run_id=run.id)
    return run


# ---- azure-ai-projects 1.0.0b10 (legacy) -----------------------------------------------------------------
def projects_setup(client: Any, name: str = "weather-agent") -> tuple[str, str]:
    from azure.ai.projects.models import FunctionTool

    agent = client.agents.create_agent(
        model="gpt-4o", name=name, instructions=INSTRUCTIONS, tools=FunctionTool({get_weather}).definitions
    )
    thread = client.agents.create_thread()
    client.agents.create_message(thread_id=thread.id, role="user", content=USER_MESSAGE)
    return agent.id, thread.id


def projects_run(
    client: Any, agent_id: str, thread_id: str, scenario: str, polls: int = 1, list_steps: bool = False
) -> tuple[Any, Optional[Any]]:
    """The seed app's code path: create_run / get_run / submit_tool_outputs_to_run (/ list_run_steps)."""
    from azure.ai.projects.models import ToolOutput

    run = client.agents.create_run(
        thread_id=thread_id,
        agent_id=agent_id,
        metadata=metadata(scenario, polls),
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=500,
        max_prompt_tokens=4000,
        additional_messages=[{"role": "user", "content": USER_MESSAGE}],
        additional_instructions=INSTRUCTIONS,
    )
    while run.status in ACTIVE:
        if run.status == "requires_action":
            calls = run.required_action.submit_tool_outputs.tool_calls
            outputs = [ToolOutput(tool_call_id=c.id, output=TOOL_OUTPUT) for c in calls]
            run = client.agents.submit_tool_outputs_to_run(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
        else:
            run = client.agents.get_run(thread_id=thread_id, run_id=run.id)
    steps = client.agents.list_run_steps(thread_id=thread_id, run_id=run.id) if list_steps else None
    return run, steps
