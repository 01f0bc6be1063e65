"""A local emulator of the Azure AI Agents service for tests, examples and benchmarks.

    from azure_ai_agents_emulator import AgentsEmulator, agents_client

    with AgentsEmulator() as emulator:
        client = agents_client(emulator)            # a real azure.ai.agents.AgentsClient
        agent = client.create_agent(model="gpt-4o", name="function_call")
        ...

Importing this package needs only the standard library; azure SDK modules are imported by the
functions that need them. ``InProcessTransport`` / ``AsyncInProcessTransport`` are loaded on first
access (they subclass azure-core classes).
"""

from typing import Any

from .clients import agents_client, async_agents_client, async_project_client, project_client
from .foundry import RESPONSE_SCENARIOS
from .foundry_clients import async_foundry_project_client, foundry_project_client
from .scenarios import DEFAULT_SCENARIO, SCENARIO_NAMES, SCENARIOS, MessageStep, Scenario, ToolCallsStep
from .server import AgentsEmulator
from .service import AgentsService, Response, ServiceError
from .tool_plans import AUTO_SCENARIO


def __getattr__(name: str) -> Any:
    if name in ("InProcessTransport", "AsyncInProcessTransport"):
        from . import transport

        return getattr(transport, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUTO_SCENARIO",
    "DEFAULT_SCENARIO",
    "RESPONSE_SCENARIOS",
    "SCENARIOS",
    "SCENARIO_NAMES",
    "AgentsEmulator",
    "AgentsService",
    "AsyncInProcessTransport",
    "InProcessTransport",
    "MessageStep",
    "Response",
    "Scenario",
    "ServiceError",
    "ToolCallsStep",
    "agents_client",
    "foundry_project_client",
    "async_agents_client",
    "async_foundry_project_client",
    "async_project_client",
    "project_client",
]
