"""Factories returning REAL azure SDK clients wired to an emulator.

Each factory takes an :class:`AgentsEmulator` (HTTP) or, with ``in_process=True``, an emulator or a
bare :class:`AgentsService` (no sockets). Extra keyword arguments go to the client constructor
(e.g. ``retry_total=0`` to make injected 5xx faults fail fast). azure-core refuses bearer tokens
over plain http, so the clients get an authentication policy that sets a fixed token instead. Clients of an
HTTPS emulator (``tls=True``) trust its CA (``connection_verify``).
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any, Union

from .service import AgentsService

if TYPE_CHECKING:  # pragma: no cover
    from .server import AgentsEmulator

Target = Union["AgentsEmulator", "AgentsService"]

TOKEN = "emulator-token"
_OFFLINE_HOST = "http://emulator.invalid"  # host used by in-process clients; never resolved
_LEGACY_DEFAULTS = {
    "subscription_id": "00000000-0000-0000-0000-000000000000",
    "resource_group_name": "rg-emulated",
    "project_name": "emulated",
}


class FakeCredential:
    """A ``TokenCredential`` whose ``get_token`` returns a fixed token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(TOKEN, int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> "FakeCredential":
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()


class AsyncFakeCredential:
    """An ``AsyncTokenCredential`` whose ``get_token`` returns a fixed token."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(TOKEN, int(time.time()) + 3600)

    async def close(self) -> None:
        """Nothing to close."""

    async def __aenter__(self) -> "AsyncFakeCredential":
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.close()


@functools.lru_cache(maxsize=None)
def _auth_policy_class() -> type:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class EmulatorAuthPolicy(SansIOHTTPPolicy):
        """Sets ``Authorization: Bearer emulator-token`` on every request."""

        def on_request(self, request: Any) -> None:
            request.http_request.headers["Authorization"] = f"Bearer {TOKEN}"

    return EmulatorAuthPolicy


def auth_policy() -> Any:
    """A SansIOHTTPPolicy setting ``Authorization: Bearer emulator-token`` (works over http)."""
    return _auth_policy_class()()


def _is_service(target: Target) -> bool:
    return isinstance(target, AgentsService)


def _service(target: Target) -> AgentsService:
    return target if isinstance(target, AgentsService) else target.service


def _kwargs(target: Target, transport: Any, in_process: bool, is_async: bool, extra: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"authentication_policy": auth_policy(), **extra}
    certificate = getattr(target, "certificate", None)
    if certificate is not None and getattr(target, "tls", False) and not in_process:
        kwargs.setdefault("connection_verify", str(certificate.ca_file))
    if transport is None and (in_process or _is_service(target)):
        from . import transport as _transport

        cls = _transport.AsyncInProcessTransport if is_async else _transport.InProcessTransport
        transport = cls(_service(target))
    if transport is not None:
        kwargs["transport"] = transport
    return kwargs


def _base_url(target: Target, in_process: bool) -> str:
    if in_process or isinstance(target, AgentsService):
        return _OFFLINE_HOST
    return target.base_url


def _endpoint(target: Target, in_process: bool) -> str:
    return _base_url(target, in_process) + "/api/projects/" + getattr(target, "project", "emulated")


def _legacy_args(target: Target, in_process: bool) -> dict[str, Any]:
    args = dict(_LEGACY_DEFAULTS)
    args.update(getattr(target, "legacy_names", {}))
    return {"endpoint": _base_url(target, in_process), **args}


def agents_client(
    emulator: Target, *, transport: Any = None, in_process: bool = False, **kwargs: Any
) -> Any:
    """A sync ``azure.ai.agents.AgentsClient`` talking to ``emulator``."""
    from azure.ai.agents import AgentsClient

    return AgentsClient(
        endpoint=_endpoint(emulator, in_process),
        credential=FakeCredential(),
        **_kwargs(emulator, transport, in_process, False, kwargs),
    )


def async_agents_client(
    emulator: Target, *, transport: Any = None, in_process: bool = False, **kwargs: Any
) -> Any:
    """An ``azure.ai.agents.aio.AgentsClient`` talking to ``emulator``."""
    from azure.ai.agents.aio import AgentsClient

    return AgentsClient(
        endpoint=_endpoint(emulator, in_process),
        credential=AsyncFakeCredential(),
        **_kwargs(emulator, transport, in_process, True, kwargs),
    )


def project_client(
    emulator: Target, *, transport: Any = None, in_process: bool = False, **kwargs: Any
) -> Any:
    """A legacy sync ``azure.ai.projects.AIProjectClient`` (1.0.0b10), agents under ``.agents``."""
    from azure.ai.projects import AIProjectClient

    return AIProjectClient(
        credential=FakeCredential(),
        **_legacy_args(emulator, in_process),
        **_kwargs(emulator, transport, in_process, False, kwargs),
    )


def async_project_client(
    emulator: Target, *, transport: Any = None, in_process: bool = False, **kwargs: Any
) -> Any:
    """A legacy ``azure.ai.projects.aio.AIProjectClient`` (1.0.0b10)."""
    from azure.ai.projects.aio import AIProjectClient

    return AIProjectClient(
        credential=AsyncFakeCredential(),
        **_legacy_args(emulator, in_process),
        **_kwargs(emulator, transport, in_process, True, kwargs),
    )


__all__ = [
    "AsyncFakeCredential",
    "FakeCredential",
    "agents_client",
    "async_agents_client",
    "async_project_client",
    "auth_policy",
    "project_client",
]

