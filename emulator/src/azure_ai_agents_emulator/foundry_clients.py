"""Real ``azure-ai-projects`` >= 2 clients (the new Foundry agents) wired to an :class:`AgentsEmulator`.

``foundry_project_client(emulator).get_openai_client()`` is then a real ``openai.OpenAI`` on the emulator's
``/openai/v1`` routes (``async_foundry_project_client`` gives an ``AsyncOpenAI``). Extra keyword arguments go to
the ``AIProjectClient`` constructor. Like the classic factories, these pass an authentication policy that sets a
fixed token, since azure-core refuses bearer tokens over plain http.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .clients import AsyncFakeCredential, FakeCredential, auth_policy

if TYPE_CHECKING:  # pragma: no cover
    from .server import AgentsEmulator

__all__ = ["async_foundry_project_client", "foundry_project_client"]


def foundry_project_client(emulator: "AgentsEmulator", **kwargs: Any) -> Any:
    """A sync ``azure.ai.projects.AIProjectClient`` (azure-ai-projects >= 2) talking to ``emulator``."""
    from azure.ai.projects import AIProjectClient

    return AIProjectClient(
        endpoint=emulator.endpoint, credential=FakeCredential(), authentication_policy=auth_policy(), **kwargs
    )


def async_foundry_project_client(emulator: "AgentsEmulator", **kwargs: Any) -> Any:
    """An ``azure.ai.projects.aio.AIProjectClient`` (azure-ai-projects >= 2) talking to ``emulator``."""
    from azure.ai.projects.aio import AIProjectClient

    return AIProjectClient(
        endpoint=emulator.endpoint, credential=AsyncFakeCredential(), authentication_policy=auth_policy(), **kwargs
    )
