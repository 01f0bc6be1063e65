"""The emulated Azure AI Agents service, SDK-independent: :class:`AgentsService`.

``AgentsService.handle(method, path, query, body)`` answers one REST request of either API
generation (``/api/projects/{p}/...`` or the legacy ``/agents/v1.0/subscriptions/...`` prefix) and
returns a :class:`Response`. All state lives in memory behind one lock.

A run advances one state per *observation* (a GET of the run, or the response of create, submit or
cancel) once it has been observed ``polls_per_state`` times in its current state. Streaming requests
(``"stream": true``) drive the run through its scenario at once and answer with server-sent events.

The service is assembled from parts with one purpose each:

* :mod:`.rest`: routes, request parsing, responses and errors, fault rules, response hook, pagination;
* :mod:`.runs`: the run and run-step endpoints (creating and planning runs, tool outputs, cancel);
* :mod:`.run_machine`: the run state machine (states, steps, streaming events);
* :mod:`.tool_plans` / :mod:`.schema_values`: the default scenario, which follows the agent's tools;
* :mod:`.files`: files and vector stores; :mod:`.identity`: the managed-identity token endpoint;
  :mod:`.control`: ``/emulator/...`` routes to script the emulator from outside;
* this module: the in-memory store (ids, agents, threads, messages) and the public API.
"""

from __future__ import annotations

import copy
import random
import threading
import time
import uuid
from typing import Any, Optional

from . import control, files, foundry, identity
from .control import ControlRoutes
from .files import FilesAndVectorStores
from .foundry import FoundryOperations
from .identity import ManagedIdentityEndpoint
from .rest import FailRule, Response, ResponseHook, RestFrontend, ServiceError, page, text_content
from .run_machine import Run
from .runs import RunOperations
from .scenarios import DEFAULT_SCENARIO, SCENARIOS, Scenario
from .tool_plans import AUTO_SCENARIO

__all__ = ["AgentsService", "Response", "ResponseHook", "ServiceError"]

_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _now_seconds() -> float:
    return float(int(time.time()))


def _now_millis() -> float:
    return round(time.time(), 3)


class AgentsService(
    ManagedIdentityEndpoint, RestFrontend, RunOperations, FoundryOperations, FilesAndVectorStores, ControlRoutes
):
    """In-memory Azure AI Agents service (agents, threads, messages, runs, run steps, files, vector stores).

    :param default_scenario: scenario of runs whose agent/run metadata and agent name name none (default
        ``"function_call"``); ``"auto"`` follows the agent's tools (function tools -> function calls, server
        tools -> their tool calls, none -> a plain answer), as ``python -m azure_ai_agents_emulator`` does.
    :param polls_per_state: observations a run spends in each state (overridable per agent or run
        with the metadata key ``polls_per_state``);
        0 runs a run to its next wait or its end at every poll after the create response.
    :param seed: makes generated ids deterministic.
    :param whole_seconds: stamp times in whole seconds like the real service (default: milliseconds).
    :param run_expiry_seconds: a run still active this long after its creation expires (like the service's 10 min).
    :param identity_header: the secret token requests must send as ``X-IDENTITY-HEADER`` (None: any).
    :param require_auth: reject Agents requests without a bearer token issued by the token endpoint.

    A run's scenario is its metadata ``scenario``, else its agent's metadata ``scenario``, else the
    agent's name if that is a scenario name, else ``default_scenario``. Any of them may be ``"auto"``.

    Public attributes (all reset by :meth:`reset`):

    * ``default_scenario``, ``polls_per_state``: settable at any time.
    * ``scenarios``: name -> :class:`Scenario`; add your own.
    * ``requests``: ``(method, path)`` of every request handled; ``operations``: their operation
      names (``"get_run"``, ``"list_run_steps"``, ... or ``"unknown"``).
    * ``latency``: seconds added before answering every request (a realistic round trip: 0.1);
      ``delays``: more seconds for some requests, by route kind, operation name or ``"METHOD kind"``
      (``{"list_run_steps": 0.4}``: a slow steps endpoint). Served over HTTP, or by the in-process
      transports, the wait happens outside the service's lock (concurrent requests wait concurrently).
    * ``response_hook(method, route_kind, payload)``: called with a copy of every successful JSON
      body (``route_kind`` is ``"run"``, ``"run_list"``, ``"step"``, ``"step_list"``, ``"agent"``,
      ``"agent_list"``, ``"thread"``, ``"thread_list"``, ``"message"``, ``"message_list"`` or
      ``"deletion"``) and with the data of every SSE frame (``route_kind`` is ``"stream:<event>"``,
      e.g. ``"stream:thread.run.completed"``). It returns the payload to send, or None to send the
      original; for SSE frames a str is sent verbatim as the ``data:`` line.
    """

    extra_routes = foundry.ROUTES + files.ROUTES + identity.ROUTES + control.ROUTES

    def __init__(
        self,
        default_scenario: str = DEFAULT_SCENARIO,
        polls_per_state: int = 1,
        seed: Optional[int] = None,
        whole_seconds: bool = False,
        run_expiry_seconds: float = 600,
        identity_header: Optional[str] = None,
        require_auth: bool = False,
    ) -> None:
        if default_scenario not in SCENARIOS and default_scenario != AUTO_SCENARIO:
            raise ValueError(f"unknown scenario {default_scenario!r}; known: {[AUTO_SCENARIO, *sorted(SCENARIOS)]}")
        self._defaults = (default_scenario, polls_per_state, seed)
        self.run_expiry_seconds = run_expiry_seconds
        self._init_identity(identity_header, require_auth)
        self._lock = threading.RLock()
        # The real service stamps whole seconds; millisecond stamps (the default here) let sub-second
        # emulated runs show their real step structure in traces.
        self._now = _now_seconds if whole_seconds else _now_millis
        self.reset()

    # ------------------------------------------------------------------ public API

    def reset(self) -> None:
        """Forget all objects, request logs, fault rules and hooks; restore constructor settings."""
        with self._lock:
            self.default_scenario, self.polls_per_state, seed = self._defaults
            self.scenarios: dict[str, Scenario] = dict(SCENARIOS)
            self.response_hook: Optional[ResponseHook] = None
            self.requests: list[tuple[str, str]] = []
            self.operations: list[str] = []
            self._rng = random.Random(seed) if seed is not None else None
            self._ids: set[str] = set()
            self._agents: dict[str, dict[str, Any]] = {}
            self._threads: dict[str, dict[str, Any]] = {}
            self._messages: dict[str, list[dict[str, Any]]] = {}
            self._runs: dict[str, Run] = {}
            self._thread_runs: dict[str, list[str]] = {}
            self._fail_rules: list[FailRule] = []
            self._reset_foundry()  # the new Foundry agents (foundry.py)
            self._reset_files()
            self.latency = 0.0
            self.delays: dict[str, float] = {}

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A copy of a run's current wire object (no observation)."""
        with self._lock:
            return copy.deepcopy(self._run(run_id).wire)

    def get_steps(self, run_id: str) -> list[dict[str, Any]]:
        """Copies of a run's steps in creation order (no observation)."""
        with self._lock:
            return copy.deepcopy(self._run(run_id).steps)

    # ------------------------------------------------------------------ store

    def _new_id(self, prefix: str) -> str:
        while True:
            if self._rng is not None:
                suffix = "".join(self._rng.choice(_ALPHABET) for _ in range(24))
            else:
                suffix = uuid.uuid4().hex[:24]
            new = f"{prefix}_{suffix}"
            if new not in self._ids:
                self._ids.add(new)
                return new

    def _agent(self, agent_id: str) -> dict[str, Any]:
        if agent_id not in self._agents:
            raise ServiceError(404, "NotFound", f"No assistant found with id '{agent_id}'.")
        return self._agents[agent_id]

    def _thread(self, thread_id: str) -> dict[str, Any]:
        if thread_id not in self._threads:
            raise ServiceError(404, "NotFound", f"No thread found with id '{thread_id}'.")
        return self._threads[thread_id]

    # ------------------------------------------------------------------ agents

    def _op_create_agent(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        if not body.get("model"):
            raise ServiceError(400, "BadRequest", "'model' is required")
        agent = {
            "id": self._new_id("asst"),
            "object": "assistant",
            "created_at": self._now(),
            "name": body.get("name"),
            "description": body.get("description"),
            "model": body["model"],
            "instructions": body.get("instructions"),
            "tools": body.get("tools") or [],
            "tool_resources": body.get("tool_resources") or {},
            "temperature": body.get("temperature", 1.0),
            "top_p": body.get("top_p", 1.0),
            "response_format": body.get("response_format", "auto"),
            "metadata": body.get("metadata") or {},
        }
        self._agents[agent["id"]] = agent
        return agent

    def _op_list_agents(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return page(list(self._agents.values()), query)

    def _op_get_agent(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._agent(params["agent_id"])

    def _op_update_agent(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        agent = self._agent(params["agent_id"])
        agent.update({k: v for k, v in body.items() if v is not None and k in agent and k not in ("id", "object")})
        return agent

    def _op_delete_agent(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._agent(params["agent_id"])
        del self._agents[params["agent_id"]]
        return {"id": params["agent_id"], "object": "assistant.deleted", "deleted": True}

    # ------------------------------------------------------------------ threads & messages

    def _new_thread(self, body: dict[str, Any]) -> dict[str, Any]:
        thread: dict[str, Any] = {
            "id": self._new_id("thread"),
            "object": "thread",
            "created_at": self._now(),
            "tool_resources": body.get("tool_resources") or {},
            "metadata": body.get("metadata") or {},
        }
        self._threads[thread["id"]] = thread
        self._messages[thread["id"]] = []
        self._thread_runs[thread["id"]] = []
        for message in body.get("messages") or []:
            self._add_message(thread["id"], message)
        return thread

    def _add_message(
        self,
        thread_id: str,
        body: dict[str, Any],
        run_id: Optional[str] = None,
        agent_id: Optional[str] = None,
    ) -> dict[str, Any]:
        if body.get("role") not in ("user", "assistant"):
            raise ServiceError(400, "BadRequest", "'role' must be 'user' or 'assistant'")
        now = self._now()
        message = {
            "id": self._new_id("msg"),
            "object": "thread.message",
            "created_at": now,
            "thread_id": thread_id,
            "status": "completed",
            "incomplete_details": None,
            "completed_at": now,
            "incomplete_at": None,
            "role": body["role"],
            "content": text_content(body.get("content")),
            "assistant_id": agent_id,
            "run_id": run_id,
            "attachments": body.get("attachments") or [],
            "metadata": body.get("metadata") or {},
        }
        self._messages[thread_id].append(message)
        return message

    def _op_create_thread(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._new_thread(body)

    def _op_list_threads(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return page(list(self._threads.values()), query)

    def _op_get_thread(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._thread(params["thread_id"])

    def _op_update_thread(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        thread = self._thread(params["thread_id"])
        for key in ("metadata", "tool_resources"):
            if body.get(key) is not None:
                thread[key] = body[key]
        return thread

    def _op_delete_thread(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        thread_id = params["thread_id"]
        self._thread(thread_id)
        del self._threads[thread_id]
        self._messages.pop(thread_id, None)
        for run_id in self._thread_runs.pop(thread_id, []):
            self._runs.pop(run_id, None)
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}

    def _op_create_message(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._thread(params["thread_id"])
        return self._add_message(params["thread_id"], body)

    def _op_list_messages(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._thread(params["thread_id"])
        messages = self._messages[params["thread_id"]]
        if query.get("run_id"):
            messages = [m for m in messages if m["run_id"] == query["run_id"]]
        return page(messages, query)

    def _op_get_message(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._thread(params["thread_id"])
        for message in self._messages[params["thread_id"]]:
            if message["id"] == params["message_id"]:
                return message
        raise ServiceError(404, "NotFound", f"No message found with id '{params['message_id']}'.")
