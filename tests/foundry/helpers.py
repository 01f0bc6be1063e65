"""Shared by the new-Foundry-agents tests: skip outside their environment, agents and clients on the emulator."""

from __future__ import annotations

import importlib
from typing import Any

import pytest


def require_new_foundry_sdk() -> None:
    """Skips the calling module unless azure-ai-projects >= 2 and openai are installed (requirements-foundry.txt)."""
    pytest.importorskip("openai")
    models = pytest.importorskip("azure.ai.projects.models")
    if not hasattr(models, "PromptAgentDefinition"):
        pytest.skip("needs azure-ai-projects >= 2 (requirements-foundry.txt)", allow_module_level=True)


def agent_ref(name: str, key: str = "agent_reference") -> dict[str, Any]:
    """``extra_body`` naming an agent (``key="agent"`` is the early 2.0 betas' spelling)."""
    return {key: {"name": name, "type": "agent_reference"}}


def create_agents(project: Any, *names: str) -> None:
    """One version of each agent; the emulator plays the scenario its name says."""
    models = importlib.import_module("azure.ai.projects.models")
    for name in names:
        tools = []
        if name == "function_call":
            tools = [
                models.FunctionTool(
                    name="get_weather",
                    description="weather of a city",
                    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                    strict=True,
                )
            ]
        definition = models.PromptAgentDefinition(model="gpt-4o", instructions=f"You are {name}.", tools=tools)
        project.agents.create_version(agent_name=name, definition=definition)


def attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})
