"""The new Foundry agents' definitions: agents, their versions and their endpoint (``project.agents``).

Routes (after the ``/api/projects/{p}`` prefix), as ``azure-ai-projects`` 2.x calls them:

* ``POST /agents/{name}/versions`` (``create_version``), ``GET /agents/{name}/versions`` (``list_versions``),
  ``GET|DELETE /agents/{name}/versions/{version}`` (``get_version`` / ``delete_version``);
* ``GET /agents`` (``list``, filtered by ``kind``), ``GET|DELETE /agents/{name}`` (``get`` / ``delete``),
  ``PATCH /agents/{name}`` (``update_details``: a JSON merge patch of ``agent_endpoint``, ``agent_card``...).

Versions count up per agent name from 1 and are never reused; a draft version (``draft: true``) is not the
agent's latest. Deleting an agent's last version deletes the agent.

**The agent endpoint.** ``get_openai_client(agent_name=N)`` sends the Responses and Conversations calls to
``/agents/N/endpoint/protocols/openai/...``; :meth:`FoundryAgents._endpoint_version` picks the version that
answers them: the ``agent_endpoint.version_selector`` rule with the highest ``traffic_percentage`` (the first of
equals: the emulator does not split traffic at random), else the agent's latest version. An agent whose endpoint
was never configured answers with its latest version (the service may refuse that; the samples always configure).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .rest import Response, Route, ServiceError, page

__all__ = ["FoundryAgents", "ROUTES", "merge_patch"]

_AGENT = r"/agents/(?P<agent_name>[^/:]+)"
ROUTES: tuple[Route, ...] = (
    ("POST", _AGENT + r"/versions", "agent_version", "create_agent_version"),
    ("GET", _AGENT + r"/versions", "agent_version_list", "list_agent_versions"),
    ("GET", _AGENT + r"/versions/(?P<agent_version>[^/]+)", "agent_version", "get_agent_version"),
    ("DELETE", _AGENT + r"/versions/(?P<agent_version>[^/]+)", "deletion", "delete_agent_version"),
    ("GET", r"/agents", "agent_object_list", "list_foundry_agents"),
    ("GET", _AGENT, "agent_object", "get_foundry_agent"),
    ("PATCH", _AGENT, "agent_object", "update_foundry_agent"),
    ("DELETE", _AGENT, "deletion", "delete_foundry_agent"),
    ("POST", _AGENT + r":(?P<switch>enable|disable)", "agent_state", "switch_foundry_agent"),
)
#: Fields of an agent that ``update_details`` may change (the rest are the service's).
_UPDATABLE = ("agent_endpoint", "agent_card", "digital_worker_type")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: ``patch`` applied to ``target`` (a null member deletes; objects merge; anything else replaces)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


class FoundryAgents:
    """The ``_op_*`` methods of agent definitions (a part of :class:`~.service.AgentsService`)."""

    # provided by AgentsService
    _now: Callable[[], float]

    def _reset_foundry_agents(self) -> None:
        self._agent_versions: dict[str, list[dict[str, Any]]] = {}
        self._agent_details: dict[str, dict[str, Any]] = {}  # name -> updatable fields (agent_endpoint...)
        self._agent_version_counter: dict[str, int] = {}

    # ------------------------------------------------------------------ lookups

    def _foundry_agent(self, name: str, version: Optional[str] = None) -> dict[str, Any]:
        """A version of agent ``name``: ``version``, else its latest (not draft) version; 404 otherwise."""
        versions = self._agent_versions.get(name)
        if not versions:
            raise ServiceError(404, "not_found", f"Agent '{name}' not found.")
        if version is None:
            released = [v for v in versions if not v.get("draft")]
            return (released or versions)[-1]
        for candidate in versions:
            if candidate["version"] == str(version):
                return candidate
        raise ServiceError(404, "not_found", f"Agent '{name}' has no version '{version}'.")

    def _endpoint_version(self, name: str) -> dict[str, Any]:
        """The version of ``name`` that its endpoint (``/agents/{name}/endpoint/...``) answers with."""
        if self._agent_details.get(name, {}).get("state") == "disabled":
            raise ServiceError(403, "agent_disabled", f"Agent '{name}' is disabled.")
        endpoint = self._agent_details.get(name, {}).get("agent_endpoint")
        selector = endpoint.get("version_selector") if isinstance(endpoint, dict) else None
        rules = selector.get("version_selection_rules") if isinstance(selector, dict) else None
        best: Optional[dict[str, Any]] = None
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, dict) and rule.get("agent_version") is not None:
                share = rule.get("traffic_percentage")
                if best is None or (isinstance(share, (int, float)) and share > (best.get("traffic_percentage") or 0)):
                    best = rule
        return self._foundry_agent(name, str(best["agent_version"]) if best else None)

    def _agent_object(self, name: str) -> dict[str, Any]:
        latest = self._foundry_agent(name)
        agent: dict[str, Any] = {
            "object": "agent",
            "id": name,
            "name": name,
            "state": "enabled",
            "configuration_state": "enabled",
            "versions": {"latest": latest},
        }
        agent.update(self._agent_details.get(name, {}))
        return agent

    # ------------------------------------------------------------------ versions

    def _op_create_agent_version(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        name = params["agent_name"]
        definition = body.get("definition")
        if not isinstance(definition, dict) or not definition.get("kind"):
            raise ServiceError(400, "invalid_request", "'definition' with a 'kind' is required")
        number = self._agent_version_counter.get(name, 0) + 1
        self._agent_version_counter[name] = number
        version = {
            "object": "agent.version",
            "id": f"{name}:{number}",
            "name": name,
            "version": str(number),
            "description": body.get("description"),
            "created_at": int(self._now()),
            "metadata": body.get("metadata") or {},
            "definition": definition,
            "status": "active",
        }
        if body.get("draft") is not None:
            version["draft"] = bool(body["draft"])
        self._agent_versions.setdefault(name, []).append(version)
        return version

    def _op_list_agent_versions(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._foundry_agent(params["agent_name"])
        versions = self._agent_versions[params["agent_name"]]
        if query.get("include_drafts", "").lower() != "true":
            versions = [v for v in versions if not v.get("draft")]
        return page(versions, query)

    def _op_get_agent_version(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._foundry_agent(params["agent_name"], params["agent_version"])

    def _op_delete_agent_version(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        name = params["agent_name"]
        version = self._foundry_agent(name, params["agent_version"])
        self._agent_versions[name].remove(version)
        if not self._agent_versions[name]:
            del self._agent_versions[name]
            self._agent_details.pop(name, None)
        return {"object": "agent.version.deleted", "name": name, "version": version["version"], "deleted": True}

    # ------------------------------------------------------------------ agents

    def _op_list_foundry_agents(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        agents = [self._agent_object(name) for name in self._agent_versions]
        kind = query.get("kind")
        if kind:
            agents = [a for a in agents if a["versions"]["latest"]["definition"].get("kind") == kind]
        return page(agents, query)

    def _op_get_foundry_agent(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._agent_object(params["agent_name"])

    def _op_update_foundry_agent(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        name = params["agent_name"]
        self._foundry_agent(name)
        details = self._agent_details.setdefault(name, {})
        for key in _UPDATABLE:
            if key in body:
                patched = merge_patch(details.get(key), body[key])
                if patched is None:
                    details.pop(key, None)
                else:
                    details[key] = patched
        return self._agent_object(name)

    def _op_switch_foundry_agent(self, params: dict, query: dict, body: dict) -> Response:
        name = params["agent_name"]
        self._foundry_agent(name)
        state = "enabled" if params["switch"] == "enable" else "disabled"
        self._agent_details.setdefault(name, {}).update(state=state, configuration_state=state)
        return Response(204, {}, b"")

    def _op_delete_foundry_agent(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        name = params["agent_name"]
        self._foundry_agent(name)
        del self._agent_versions[name]
        self._agent_details.pop(name, None)
        return {"object": "agent.deleted", "name": name, "deleted": True}
