"""What an ``openai`` client's base URL says: which agent it invokes, which project it belongs to, which server.

``project.get_openai_client()`` gives a client on ``{endpoint}/openai/v1`` (requests name their agent with an
``agent_reference``); ``project.get_openai_client(agent_name=N)`` one on the agent's own endpoint,
``{endpoint}/agents/{N}/endpoint/protocols/openai`` (requests name no agent: every ``responses.create`` through it
invokes N; hosted agents are reached the same way). Any other base URL is a plain model client, left alone.

Read once per client (a weak map, re-read if the app changes the client's ``base_url``); a call on a plain client
costs one lookup.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional
from urllib.parse import unquote

from ..core import attributes as attrs

_AGENT_ENDPOINT = re.compile(r"^(?P<endpoint>.+?)/agents/(?P<name>[^/?#]+)/endpoint/protocols/openai(?:[/?#].*)?$")
_PROJECT_OPENAI = re.compile(r"^(?P<endpoint>.+?/api/projects/[^/?#]+)/openai(?:/v1)?/?$")


@dataclass(frozen=True)
class ClientInfo:
    """One client's base URL, read: the agent its endpoint serves (None for a project or plain client), the project
    endpoint (None when the URL is not a Foundry project's), and ``server.address`` / ``server.port``."""

    url: Any
    agent_name: Optional[str] = None
    endpoint: Optional[str] = None
    server: Mapping[str, Any] = field(default_factory=dict)


_NO_CLIENT = ClientInfo(url=None)
_CLIENTS: "weakref.WeakKeyDictionary[Any, ClientInfo]" = weakref.WeakKeyDictionary()


def client_of(resource: Any) -> Any:
    """The ``openai`` client a resource (``client.responses``, ``client.conversations``) belongs to."""
    return getattr(resource, "_client", None)


def client_info(client: Any) -> ClientInfo:
    """The :class:`ClientInfo` of an ``openai`` client (cached per client)."""
    if client is None:
        return _NO_CLIENT
    try:
        url = client.base_url
        known = _CLIENTS.get(client)
    except Exception:  # noqa: BLE001 - not a client we can read (or not weak-referenceable)
        return _NO_CLIENT
    if known is not None and known.url is url:
        return known
    info = read_url(url)
    try:
        _CLIENTS[client] = info
    except TypeError:
        pass
    return info


def read_url(url: Any) -> ClientInfo:
    text = str(url) if url is not None else ""
    agent = _AGENT_ENDPOINT.match(text)
    if agent is not None:
        endpoint, name = agent.group("endpoint"), attrs.bounded(unquote(agent.group("name")))
    else:
        project = _PROJECT_OPENAI.match(text)
        endpoint, name = (project.group("endpoint") if project else None), None
    return ClientInfo(url=url, agent_name=name, endpoint=endpoint, server=attrs.server_address(text))


def project_endpoint(instance: Any) -> Optional[str]:
    """The project endpoint of an ``azure-ai-projects`` operations group (``project.agents``), as the openai
    client URLs give it (no trailing slash)."""
    endpoint = getattr(getattr(instance, "_config", None), "endpoint", None)
    return endpoint.rstrip("/") if isinstance(endpoint, str) and endpoint else None
