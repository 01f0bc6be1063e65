"""Fixtures of the new-Foundry-agents tests: a project client on the session's emulator, agents created once."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

AGENTS = ("message", "function_call", "code_interpreter", "all_tools", "failed", "incomplete")


@pytest.fixture(scope="session")
def project(emulator: Any) -> Iterator[Any]:
    from azure_ai_agents_emulator import foundry_project_client

    from .helpers import create_agents

    client = foundry_project_client(emulator)
    create_agents(client, *AGENTS)
    yield client
    client.close()


@pytest.fixture(scope="session")
def openai_client(project: Any) -> Iterator[Any]:
    client = project.get_openai_client()
    yield client
    client.close()
