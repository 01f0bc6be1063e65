"""Async: five agent runs at once with the asyncio client; five separate run traces, no cross-talk.

    python examples/async_example.py
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from typing import Any

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


async def make_client(stack: AsyncExitStack) -> tuple[Any, bool]:
    endpoint = os.environ.get("PROJECT_ENDPOINT")
    if endpoint:
        from azure.ai.agents.aio import AgentsClient
        from azure.identity.aio import DefaultAzureCredential

        credential = await stack.enter_async_context(DefaultAzureCredential())
        return AgentsClient(endpoint=endpoint, credential=credential), False
    from azure_ai_agents_emulator import AgentsEmulator, async_agents_client

    emulator = stack.enter_context(AgentsEmulator())
    return async_agents_client(emulator), True


async def one_run(client: Any, agent_id: str, question: str, emulated: bool) -> str:
    thread = await client.threads.create()
    await client.messages.create(thread_id=thread.id, role="user", content=question)
    run = await client.runs.create_and_process(
        thread_id=thread.id,
        agent_id=agent_id,
        metadata={"scenario": "code_interpreter"} if emulated else None,
        polling_interval=0 if emulated else 1,
    )
    return f"{run.id}: {run.status}"


async def main() -> None:
    with configure_telemetry(service_name="async-example"):
        async with AsyncExitStack() as stack:
            client, emulated = await make_client(stack)
            async with client:
                agent = await client.create_agent(
                    model=os.environ.get("MODEL_DEPLOYMENT_NAME", "gpt-4o"),
                    name="math-agent",
                    instructions="Use Python.",
                )
                questions = [f"What is {n} squared?" for n in range(1, 6)]
                for line in await asyncio.gather(*(one_run(client, agent.id, q, emulated) for q in questions)):
                    print(line)
                await client.delete_agent(agent.id)


if __name__ == "__main__":
    asyncio.run(main())
