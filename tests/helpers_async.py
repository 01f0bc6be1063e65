"""App-side code for the async clients: the same manual loops as ``helpers``, awaited."""

from __future__ import annotations

from typing import Any

from .helpers import ACTIVE, INSTRUCTIONS, TOOL_OUTPUT, USER_MESSAGE, get_weather, metadata


async def agents_setup_async(client: Any, name: str = "weather-agent") -> tuple[str, str]:
    from azure.ai.agents.models import FunctionTool

    agent = await client.create_agent(
        model="gpt-4o", name=name, instructions=INSTRUCTIONS, tools=FunctionTool({get_weather}).definitions
    )
    thread = await client.threads.create()
    await client.messages.create(thread_id=thread.id, role="user", content=USER_MESSAGE)
    return agent.id, thread.id


async def agents_run_async(
    client: Any, agent_id: str, thread_id: str, scenario: str, polls: int = 1, cancel: bool = False
) -> Any:
    from azure.ai.agents.models import ToolOutput

    run = await client.runs.create(
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
            run = await client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
        elif cancel and not cancelled and run.status == "in_progress":
            cancelled = True
            run = await client.runs.cancel(thread_id=thread_id, run_id=run.id)
        else:
            run = await client.runs.get(thread_id=thread_id, run_id=run.id)
    return run


async def projects_setup_async(client: Any, name: str = "weather-agent") -> tuple[str, str]:
    from azure.ai.projects.models import FunctionTool

    agent = await client.agents.create_agent(
        model="gpt-4o", name=name, instructions=INSTRUCTIONS, tools=FunctionTool({get_weather}).definitions
    )
    thread = await client.agents.create_thread()
    await client.agents.create_message(thread_id=thread.id, role="user", content=USER_MESSAGE)
    return agent.id, thread.id


async def projects_run_async(
    client: Any, agent_id: str, thread_id: str, scenario: str, polls: int = 1, cancel: bool = False
) -> Any:
    from azure.ai.projects.models import ToolOutput

    run = await client.agents.create_run(
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
            run = await client.agents.submit_tool_outputs_to_run(
                thread_id=thread_id, run_id=run.id, tool_outputs=outputs
            )
        elif cancel and not cancelled and run.status == "in_progress":
            cancelled = True
            run = await client.agents.cancel_run(thread_id=thread_id, run_id=run.id)
        else:
            run = await client.agents.get_run(thread_id=thread_id, run_id=run.id)
    return run
