"""SDK-independent state machine of the emulated Azure AI Agents service.

``AgentsService.handle(method, path, query, body)`` answers one REST request of either API
generation (``/api/projects/{p}/...`` or the legacy ``/agents/v1.0/subscriptions/...`` prefix) and
returns a :class:`Response`. All state lives in memory behind one lock.

A run advances one state per *observation* (a GET of the run, or the response of create, submit or
cancel) once it has been observed ``polls_per_state`` times in its current state. Streaming requests
(``"stream": true``) drive the run through its scenario at once and answer with server-sent events.
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Union

from .scenarios import DEFAULT_SCENARIO, SCENARIOS, MessageStep, Scenario, ToolCallsStep

ResponseHook = Callable[[str, str, Any], Any]

_TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
_EXPIRY_SECONDS = 600
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

_PREFIX = re.compile(
    r"^(?:/api/projects/[^/]+"
    r"|/agents/v1\.0/subscriptions/[^/]+/resourceGroups/[^/]+"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+)?(?P<route>/.*)$",
    re.IGNORECASE,
)

# (method, route pattern, response kind, operation name)
_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("POST", r"/assistants", "agent", "create_agent"),
    ("GET", r"/assistants", "agent_list", "list_agents"),
    ("GET", r"/assistants/(?P<agent_id>[^/]+)", "agent", "get_agent"),
    ("POST", r"/assistants/(?P<agent_id>[^/]+)", "agent", "update_agent"),
    ("DELETE", r"/assistants/(?P<agent_id>[^/]+)", "deletion", "delete_agent"),
    ("POST", r"/threads", "thread", "create_thread"),
    ("GET", r"/threads", "thread_list", "list_threads"),
    ("POST", r"/threads/runs", "run", "create_thread_and_run"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)", "thread", "get_thread"),
    ("POST", r"/threads/(?P<thread_id>[^/]+)", "thread", "update_thread"),
    ("DELETE", r"/threads/(?P<thread_id>[^/]+)", "deletion", "delete_thread"),
    ("POST", r"/threads/(?P<thread_id>[^/]+)/messages", "message", "create_message"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/messages", "message_list", "list_messages"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/messages/(?P<message_id>[^/]+)", "message", "get_message"),
    ("POST", r"/threads/(?P<thread_id>[^/]+)/runs", "run", "create_run"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/runs", "run_list", "list_runs"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)", "run", "get_run"),
    ("POST", r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)", "run", "update_run"),
    (
        "POST",
        r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/submit_tool_outputs",
        "run",
        "submit_tool_outputs",
    ),
    ("POST", r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/cancel", "run", "cancel_run"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/steps", "step_list", "list_run_steps"),
    (
        "GET",
        r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/steps/(?P<step_id>[^/]+)",
        "step",
        "get_run_step",
    ),
)
_COMPILED = tuple((m, re.compile(p + r"/?$"), k, op) for m, p, k, op in _ROUTES)


@dataclass
class Response:
    """An HTTP answer: ``body`` is bytes, or an iterator of SSE frames (bytes) for streams."""

    status: int
    headers: dict[str, str]
    body: Union[bytes, Iterator[bytes]]

    @property
    def is_stream(self) -> bool:
        """True when ``body`` is an iterator of server-sent event frames."""
        return not isinstance(self.body, (bytes, bytearray))

    def json(self) -> Any:
        """The decoded JSON body (not for streams)."""
        assert isinstance(self.body, (bytes, bytearray)), "streaming response"
        return json.loads(self.body)


class ServiceError(Exception):
    """An error answered to the client as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _FailRule:
    match: str
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int


@dataclass
class _PlannedStep:
    spec: Union[ToolCallsStep, MessageStep]
    calls: list[dict[str, Any]]
    usage: Optional[dict[str, int]]
    wire: Optional[dict[str, Any]] = None
    message: Optional[dict[str, Any]] = None


@dataclass
class _Run:
    wire: dict[str, Any]
    scenario: Scenario
    plan: list[_PlannedStep]
    polls_per_state: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    index: int = 0  # plan index of the current (begun, unfinished) step
    seen: int = 0  # observations in the current state
    outputs: list[str] = field(default_factory=list)
    events: Optional[list[tuple[str, Any]]] = None  # collected only while streaming


def _now_seconds() -> float:
    return float(int(time.time()))


def _now_millis() -> float:
    return round(time.time(), 3)


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _default_code(status: int) -> str:
    return {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        429: "TooManyRequests",
        500: "InternalServerError",
        502: "BadGateway",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
    }.get(status, "Error")


def _to_int(value: Any) -> Optional[int]:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return None


def _text_content(content: Any) -> list[dict[str, Any]]:
    """Normalise message input content (str or content blocks) to ThreadMessage content."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    blocks: list[dict[str, Any]] = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            text = block.get("text")
            value = text.get("value", "") if isinstance(text, dict) else str(text or "")
            blocks.append({"type": "text", "text": {"value": value, "annotations": []}})
        elif isinstance(block, dict) and block.get("type") == "image_file":
            blocks.append({"type": "image_file", "image_file": block.get("image_file") or {}})
        elif isinstance(block, dict):
            blocks.append({"type": "text", "text": {"value": json.dumps(block), "annotations": []}})
    return blocks


def _split_usage(usage: Optional[tuple[int, int]], parts: int) -> list[Optional[dict[str, int]]]:
    """Split a run's (prompt, completion) usage over ``parts`` steps, remainder on the last."""
    if usage is None or parts == 0:
        return [None] * parts
    out: list[Optional[dict[str, int]]] = []
    for i in range(parts):
        p = usage[0] // parts + (usage[0] % parts if i == parts - 1 else 0)
        c = usage[1] // parts + (usage[1] % parts if i == parts - 1 else 0)
        out.append({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
    return out


def _sample_arguments(parameters: Any, default: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a function: the scenario's if they fit its JSON schema, else made up."""
    props = parameters.get("properties") if isinstance(parameters, dict) else None
    if not isinstance(props, dict):
        return dict(default) if not props else {}
    required = parameters.get("required") or list(props)
    if set(default) <= set(props) and set(required) <= set(default):
        return dict(default)
    args: dict[str, Any] = {}
    for name in required:
        schema = props.get(name) or {}
        kind = schema.get("type", "string") if isinstance(schema, dict) else "string"
        if isinstance(schema, dict) and schema.get("enum"):
            args[name] = schema["enum"][0]
        elif name in default:
            args[name] = default[name]
        elif kind == "integer":
            args[name] = 1
        elif kind == "number":
            args[name] = 1.0
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = []
        elif kind == "object":
            args[name] = {}
        else:
            args[name] = "Seattle" if any(k in name.lower() for k in ("city", "location", "place")) else "example"
    return args


def _page(items: list[dict[str, Any]], query: dict[str, str], default_order: str = "desc") -> dict[str, Any]:
    """One page of a list, cursor-paginated like the service (``after``/``before``/``limit``/``order``)."""
    ordered = list(items) if (query.get("order") or default_order) == "asc" else list(reversed(items))
    ids = [item["id"] for item in ordered]
    after, before = query.get("after"), query.get("before")
    if after:
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        ids = [item["id"] for item in ordered]
    if before:
        ordered = ordered[: ids.index(before)] if before in ids else ordered
    limit = min(100, _to_int(query.get("limit")) or 20)
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }


class AgentsService:
    """In-memory Azure AI Agents service (agents, threads, messages, runs, run steps).

    :param default_scenario: scenario of runs whose agent/run metadata and agent name name none.
    :param polls_per_state: observations a run spends in each state (overridable per agent or run
        with the metadata key ``polls_per_state``).
    :param seed: makes generated ids deterministic.
    :param whole_seconds: stamp times in whole seconds like the real service (default: milliseconds).

    A run's scenario is its metadata ``scenario``, else its agent's metadata ``scenario``, else the
    agent's name if that is a scenario name, else ``default_scenario``.

    Public attributes (all reset by :meth:`reset`):

    * ``default_scenario``, ``polls_per_state``: settable at any time.
    * ``scenarios``: name -> :class:`Scenario`; add your own.
    * ``requests``: ``(method, path)`` of every request handled; ``operations``: their operation
      names (``"get_run"``, ``"list_run_steps"``, ... or ``"unknown"``).
    * ``response_hook(method, route_kind, payload)``: called with a copy of every successful JSON
      body (``route_kind`` is ``"run"``, ``"run_list"``, ``"step"``, ``"step_list"``, ``"agent"``,
      ``"agent_list"``, ``"thread"``, ``"thread_list"``, ``"message"``, ``"message_list"`` or
      ``"deletion"``) and with the data of every SSE frame (``route_kind`` is ``"stream:<event>"``,
      e.g. ``"stream:thread.run.completed"``). It returns the payload to send, or None to send the
      original; for SSE frames a str is sent verbatim as the ``data:`` line.
    """

    def __init__(
        self,
        default_scenario: str = DEFAULT_SCENARIO,
        polls_per_state: int = 1,
        seed: Optional[int] = None,
        whole_seconds: bool = False,
    ) -> None:
        if default_scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {default_scenario!r}; known: {sorted(SCENARIOS)}")
        self._defaults = (default_scenario, polls_per_state, seed)
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
            self._runs: dict[str, _Run] = {}
            self._thread_runs: dict[str, list[str]] = {}
            self._fail_rules: list[_FailRule] = []

    def fail_next(
        self,
        route_kind: str,
        status: int,
        body: Any = None,
        count: int = 1,
        headers: Optional[dict[str, str]] = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` without processing them.

        ``route_kind`` matches a response kind (``"run"``, ``"step_list"``...), an operation name
        (``"get_run"``, ``"submit_tool_outputs"``...), ``"METHOD kind"`` (``"GET run"``) or ``"*"``.
        ``body`` defaults to ``{"error": {"code", "message"}}``; a str/bytes body is sent verbatim.
        """
        if body is None:
            body = _error_body(_default_code(status), f"Injected failure ({status})")
        with self._lock:
            self._fail_rules.append(_FailRule(route_kind, status, body, dict(headers or {}), count))

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A copy of a run's current wire object (no observation)."""
        with self._lock:
            return copy.deepcopy(self._run(run_id).wire)

    def get_steps(self, run_id: str) -> list[dict[str, Any]]:
        """Copies of a run's steps in creation order (no observation)."""
        with self._lock:
            return copy.deepcopy(self._run(run_id).steps)

    def handle(
        self, method: str, path: str, query: Optional[dict[str, str]] = None, body: Optional[bytes] = None
    ) -> Response:
        """Answer one REST request."""
        method = method.upper()
        path = path.split("?", 1)[0]
        query = dict(query or {})
        with self._lock:
            self.requests.append((method, path))
            try:
                route = self._route(method, path)
                if route is None:
                    self.operations.append("unknown")
                    raise ServiceError(404, "NotFound", f"No route for {method} {path}")
                kind, op, params = route
                self.operations.append(op)
                failure = self._take_failure(method, kind, op)
                if failure is not None:
                    return failure
                payload = self._parse_body(body)
                result = getattr(self, "_op_" + op)(params, query, payload)
                if isinstance(result, Response):
                    return result
                return self._json(200, self._hook(method, kind, result))
            except ServiceError as err:
                return self._json(err.status, _error_body(err.code, err.message))
            except Exception as err:  # noqa: BLE001 - a bug or a failing hook must not kill the server
                return self._json(500, _error_body("InternalServerError", f"{type(err).__name__}: {err}"))

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _route(method: str, path: str) -> Optional[tuple[str, str, dict[str, str]]]:
        match = _PREFIX.match(path)
        route = match.group("route") if match else path
        for m, pattern, kind, op in _COMPILED:
            found = pattern.match(route)
            if m == method and found:
                return kind, op, found.groupdict()
        return None

    def _take_failure(self, method: str, kind: str, op: str) -> Optional[Response]:
        for rule in self._fail_rules:
            if rule.remaining > 0 and rule.match in (kind, op, f"{method} {kind}", f"{method} {op}", "*"):
                rule.remaining -= 1
                if isinstance(rule.body, (bytes, str)):
                    raw = rule.body.encode() if isinstance(rule.body, str) else rule.body
                    return Response(rule.status, {"Content-Type": "application/json", **rule.headers}, raw)
                response = self._json(rule.status, rule.body)
                response.headers.update(rule.headers)
                return response
        return None

    @staticmethod
    def _parse_body(body: Optional[bytes]) -> dict[str, Any]:
        if not body:
            return {}
        try:
            payload = json.loads(body)
        except ValueError as err:
            raise ServiceError(400, "BadRequest", f"Request body is not valid JSON: {err}") from None
        if not isinstance(payload, dict):
            raise ServiceError(400, "BadRequest", "Request body must be a JSON object")
        return payload

    @staticmethod
    def _json(status: int, payload: Any) -> Response:
        return Response(status, {"Content-Type": "application/json"}, json.dumps(payload).encode("utf-8"))

    def _hook(self, method: str, kind: str, payload: Any) -> Any:
        if self.response_hook is None:
            return payload
        changed = self.response_hook(method, kind, copy.deepcopy(payload))
        return payload if changed is None else changed

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

    def _run(self, run_id: str, thread_id: Optional[str] = None) -> _Run:
        run = self._runs.get(run_id)
        if run is None or (thread_id is not None and run.wire["thread_id"] != thread_id):
            raise ServiceError(404, "NotFound", f"No run found with id '{run_id}'.")
        return run

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
        return _page(list(self._agents.values()), query)

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
        thread = {
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
            "content": _text_content(body.get("content")),
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
        return _page(list(self._threads.values()), query)

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
        return _page(messages, query)

    def _op_get_message(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._thread(params["thread_id"])
        for message in self._messages[params["thread_id"]]:
            if message["id"] == params["message_id"]:
                return message
        raise ServiceError(404, "NotFound", f"No message found with id '{params['message_id']}'.")

    # ------------------------------------------------------------------ runs: creation

    def _op_create_run(self, params: dict, query: dict, body: dict) -> Union[dict[str, Any], Response]:
        thread_id = params["thread_id"]
        self._thread(thread_id)
        return self._start_run(thread_id, body)

    def _op_create_thread_and_run(self, params: dict, query: dict, body: dict) -> Union[dict[str, Any], Response]:
        agent_id = body.get("assistant_id")
        if not agent_id:
            raise ServiceError(400, "BadRequest", "'assistant_id' is required")
        self._agent(agent_id)
        thread = self._new_thread(body.get("thread") or {})
        return self._start_run(thread["id"], body)

    def _pick_scenario(self, agent: dict[str, Any], metadata: dict[str, Any]) -> Scenario:
        name = metadata.get("scenario") or (agent.get("metadata") or {}).get("scenario")
        if not name and agent.get("name") in self.scenarios:
            name = agent["name"]
        name = name or self.default_scenario
        if name not in self.scenarios:
            raise ServiceError(400, "BadRequest", f"Unknown scenario '{name}'; known: {sorted(self.scenarios)}")
        return self.scenarios[name]

    def _start_run(self, thread_id: str, body: dict[str, Any]) -> Union[dict[str, Any], Response]:
        agent_id = body.get("assistant_id")
        if not agent_id:
            raise ServiceError(400, "BadRequest", "'assistant_id' is required")
        agent = self._agent(agent_id)
        metadata = body.get("metadata") or {}
        scenario = self._pick_scenario(agent, metadata)
        polls = (
            _to_int(metadata.get("polls_per_state"))
            or _to_int((agent.get("metadata") or {}).get("polls_per_state"))
            or max(1, int(self.polls_per_state))
        )
        for message in body.get("additional_messages") or []:
            self._add_message(thread_id, message)
        instructions = body.get("instructions") or agent.get("instructions")
        if body.get("additional_instructions"):
            instructions = ((instructions or "") + "\n" + body["additional_instructions"]).strip()
        tools = body.get("tools") if body.get("tools") is not None else agent.get("tools") or []
        now = self._now()
        wire = {
            "id": self._new_id("run"),
            "object": "thread.run",
            "thread_id": thread_id,
            "assistant_id": agent_id,
            "status": "queued",
            "required_action": None,
            "last_error": None,
            "model": body.get("model") or agent.get("model") or "gpt-4o",
            "instructions": instructions,
            "tools": tools,
            "created_at": now,
            "expires_at": now + _EXPIRY_SECONDS,
            "started_at": None,
            "completed_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "incomplete_details": None,
            "usage": None,
            "temperature": body.get("temperature", agent.get("temperature", 1.0)),
            "top_p": body.get("top_p", agent.get("top_p", 1.0)),
            "max_prompt_tokens": body.get("max_prompt_tokens"),
            "max_completion_tokens": body.get("max_completion_tokens"),
            "truncation_strategy": body.get("truncation_strategy") or {"type": "auto", "last_messages": None},
            "tool_choice": body.get("tool_choice") or "auto",
            "response_format": body.get("response_format") or agent.get("response_format") or "auto",
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "tool_resources": body.get("tool_resources") or agent.get("tool_resources") or {},
            "metadata": metadata,
        }
        run = _Run(wire, scenario, self._plan(scenario, tools), polls)
        self._runs[wire["id"]] = run
        self._thread_runs[thread_id].append(wire["id"])
        if body.get("stream"):
            run.events = []
            self._emit(run, "thread.run.created", run.wire)
            self._emit_run(run)
            return self._stream(run)
        self._observe(run)
        return run.wire

    def _plan(self, scenario: Scenario, tools: list[Any]) -> list[_PlannedStep]:
        """Instantiate the scenario's steps for one run (ids, function names from the agent's tools)."""
        functions = [
            t["function"]
            for t in tools
            if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
        ]
        usages = _split_usage(scenario.usage, len(scenario.steps))
        plan: list[_PlannedStep] = []
        n_function = 0
        for spec, usage in zip(scenario.steps, usages):
            calls: list[dict[str, Any]] = []
            if isinstance(spec, ToolCallsStep):
                for template in spec.calls:
                    call = {"id": self._new_id("call"), **copy.deepcopy(dict(template))}
                    if spec.client_side and call.get("type") == "function":
                        fn = call["function"]
                        default_args = fn.get("arguments") if isinstance(fn.get("arguments"), dict) else {}
                        if functions:
                            chosen = functions[n_function % len(functions)]
                            fn["name"] = chosen.get("name", fn["name"])
                            default_args = _sample_arguments(chosen.get("parameters"), default_args)
                        if not isinstance(fn.get("arguments"), str):
                            fn["arguments"] = json.dumps(default_args)
                        fn["output"] = None
                        n_function += 1
                    calls.append(call)
            plan.append(_PlannedStep(spec, calls, usage))
        return plan

    # ------------------------------------------------------------------ runs: operations

    def _op_list_runs(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._thread(params["thread_id"])
        return _page([self._runs[r].wire for r in self._thread_runs[params["thread_id"]]], query)

    def _op_get_run(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        self._observe(run)
        return run.wire

    def _op_update_run(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        if body.get("metadata") is not None:
            run.wire["metadata"] = body["metadata"]
        return run.wire

    def _op_submit_tool_outputs(self, params: dict, query: dict, body: dict) -> Union[dict[str, Any], Response]:
        run = self._run(params["run_id"], params["thread_id"])
        if run.wire["status"] != "requires_action":
            raise ServiceError(
                400, "BadRequest", f"Runs in status '{run.wire['status']}' do not accept tool outputs."
            )
        outputs = body.get("tool_outputs")
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise ServiceError(400, "BadRequest", "'tool_outputs' must be a list of objects")
        by_id = {o.get("tool_call_id"): o.get("output") for o in outputs}
        step = run.plan[run.index]
        expected = {call["id"] for call in step.calls}
        if set(by_id) != expected:
            missing, unknown = sorted(expected - set(by_id)), sorted(set(by_id) - expected)
            raise ServiceError(
                400,
                "BadRequest",
                f"Expected tool outputs for call ids {sorted(expected)}; missing {missing}, unexpected {unknown}.",
            )
        if body.get("stream"):
            run.events = []
        for call in step.calls:
            output = by_id[call["id"]]
            call["function"]["output"] = output if output is None or isinstance(output, str) else json.dumps(output)
            run.outputs.append(str(output))
        run.wire["required_action"] = None
        self._complete_step(run)
        self._set_status(run, "in_progress")
        if run.index < len(run.plan):
            self._begin_step(run)
        if body.get("stream"):
            return self._stream(run)
        self._observe(run)
        return run.wire

    def _op_cancel_run(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        status = run.wire["status"]
        if status in _TERMINAL:
            raise ServiceError(400, "BadRequest", f"Cannot cancel run with status '{status}'.")
        if status != "cancelling":
            run.wire["required_action"] = None
            self._stop_step(run, "cancelled")
            self._set_status(run, "cancelling")
        self._observe(run)
        return run.wire

    def _op_list_run_steps(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        return _page(run.steps, query)

    def _op_get_run_step(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        for step in run.steps:
            if step["id"] == params["step_id"]:
                return step
        raise ServiceError(404, "NotFound", f"No run step found with id '{params['step_id']}'.")

    # ------------------------------------------------------------------ the state machine

    def _observe(self, run: _Run) -> None:
        """Count one observation; advance first if the current state has been seen enough."""
        limit = 1 if run.wire["status"] == "cancelling" else run.polls_per_state
        if run.seen >= limit and self._advance(run):
            run.seen = 0
        run.seen += 1

    def _advance(self, run: _Run) -> bool:
        """Move the run one state forward; False if it waits (requires_action, hang, terminal)."""
        status = run.wire["status"]
        if status == "queued":
            run.wire["started_at"] = self._now()
            self._set_status(run, "in_progress")
            if run.plan:
                self._begin_step(run)
            return True
        if status == "cancelling":
            self._set_status(run, "cancelled")
            run.wire["cancelled_at"] = self._now()
            run.wire["expires_at"] = None
            self._emit_run(run)
            return True
        if status != "in_progress":
            return False
        outcome = run.scenario.outcome
        while True:
            if run.index >= len(run.plan):
                return self._finish(run, outcome)
            step = run.plan[run.index]
            if isinstance(step.spec, ToolCallsStep) and step.spec.client_side:
                required = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                    }
                    for c in step.calls
                ]
                run.wire["required_action"] = {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {"tool_calls": required},
                }
                self._set_status(run, "requires_action")
                return True
            last = run.index == len(run.plan) - 1
            if last and outcome is None:
                return False
            if last and outcome in ("failed", "expired"):
                self._stop_step(run, outcome, run.scenario.step_error)
                return self._finish(run, outcome)
            self._complete_step(run)
            if run.index < len(run.plan):
                self._begin_step(run)

    def _finish(self, run: _Run, outcome: Optional[str]) -> bool:
        """Put the run in its terminal state (``outcome``)."""
        if outcome is None:
            return False
        wire, now = run.wire, self._now()
        wire["required_action"] = None
        wire["expires_at"] = now if outcome == "expired" else None
        if outcome == "failed":
            wire["failed_at"] = now
            wire["last_error"] = copy.deepcopy(dict(run.scenario.last_error)) if run.scenario.last_error else None
        if outcome in ("completed", "incomplete"):
            wire["completed_at"] = now
            if run.scenario.usage is not None:
                prompt, completion = run.scenario.usage
                wire["usage"] = {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                }
        if outcome == "incomplete":
            wire["incomplete_details"] = dict(run.scenario.incomplete_details or {"reason": "max_completion_tokens"})
        self._set_status(run, outcome)
        return True

    def _set_status(self, run: _Run, status: str) -> None:
        run.wire["status"] = status
        run.seen = 0  # a new state starts its own count of observations
        if status != "cancelled":  # cancelled is emitted once its timestamps are set
            self._emit_run(run)

    def _emit_run(self, run: _Run) -> None:
        self._emit(run, "thread.run." + run.wire["status"], run.wire)

    def _emit(self, run: _Run, event: str, data: Any) -> None:
        if run.events is not None:
            run.events.append((event, copy.deepcopy(data)))

    def _begin_step(self, run: _Run) -> None:
        """Create the current planned step (status in_progress)."""
        planned, now = run.plan[run.index], self._now()
        if isinstance(planned.spec, MessageStep):
            message = self._add_message(
                run.wire["thread_id"], {"role": "assistant", "content": []}, run.wire["id"], run.wire["assistant_id"]
            )
            message.update(status="in_progress", completed_at=None)
            planned.message = message
            details: dict[str, Any] = {"type": "message_creation", "message_creation": {"message_id": message["id"]}}
        else:
            details = {"type": "tool_calls", "tool_calls": planned.calls}
        planned.wire = {
            "id": self._new_id("step"),
            "object": "thread.run.step",
            "type": details["type"],
            "assistant_id": run.wire["assistant_id"],
            "thread_id": run.wire["thread_id"],
            "run_id": run.wire["id"],
            "status": "in_progress",
            "step_details": details,
            "last_error": None,
            "created_at": now,
            "expired_at": None,
            "completed_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "usage": None,
            "metadata": {},
        }
        run.steps.append(planned.wire)
        self._emit(run, "thread.run.step.created", planned.wire)
        self._emit(run, "thread.run.step.in_progress", planned.wire)
        if planned.message is not None:
            self._emit(run, "thread.message.created", planned.message)
            self._emit(run, "thread.message.in_progress", planned.message)
        elif planned.calls:
            delta_calls = [{"index": i, **call} for i, call in enumerate(planned.calls)]
            self._emit(
                run,
                "thread.run.step.delta",
                {
                    "id": planned.wire["id"],
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": delta_calls}},
                },
            )

    def _complete_step(self, run: _Run) -> None:
        """Complete the current step (and its message) and move to the next planned step."""
        planned, now = run.plan[run.index], self._now()
        assert planned.wire is not None
        if planned.message is not None and isinstance(planned.spec, MessageStep):
            text = planned.spec.text.replace("{outputs}", "; ".join(run.outputs) or "nothing")
            incomplete = run.scenario.outcome == "incomplete"
            words = text.split(" ")
            chunks = [" ".join(words[i : i + 4]) + (" " if i + 4 < len(words) else "") for i in range(0, len(words), 4)]
            for chunk in chunks:
                self._emit(
                    run,
                    "thread.message.delta",
                    {
                        "id": planned.message["id"],
                        "object": "thread.message.delta",
                        "delta": {
                            "role": "assistant",
                            "content": [{"index": 0, "type": "text", "text": {"value": chunk, "annotations": []}}],
                        },
                    },
                )
            planned.message["content"] = _text_content(text)
            if incomplete:
                planned.message.update(
                    status="incomplete",
                    incomplete_at=now,
                    incomplete_details={"reason": "max_tokens"},
                )
                self._emit(run, "thread.message.incomplete", planned.message)
            else:
                planned.message.update(status="completed", completed_at=now)
                self._emit(run, "thread.message.completed", planned.message)
        planned.wire.update(status="completed", completed_at=now, usage=planned.usage)
        self._emit(run, "thread.run.step.completed", planned.wire)
        run.index += 1

    def _stop_step(self, run: _Run, status: str, error: Optional[Any] = None) -> None:
        """End the current step, if begun, as failed / expired / cancelled."""
        if run.index >= len(run.plan) or run.plan[run.index].wire is None:
            return
        planned, now = run.plan[run.index], self._now()
        assert planned.wire is not None
        if planned.wire["status"] != "in_progress":
            return
        stamp = {"failed": "failed_at", "expired": "expired_at", "cancelled": "cancelled_at"}[status]
        planned.wire.update({"status": status, stamp: now, "last_error": copy.deepcopy(dict(error)) if error else None})
        if planned.message is not None:
            planned.message.update(
                status="incomplete", incomplete_at=now, incomplete_details={"reason": "run_" + status}
            )
        self._emit(run, "thread.run.step." + status, planned.wire)

    # ------------------------------------------------------------------ streaming

    def _stream(self, run: _Run) -> Response:
        """Drive the run until it waits or ends and answer with its events as SSE frames.

        The caller has started collecting events (``run.events = []``) before changing the run.
        """
        try:
            while self._advance(run):
                pass
            run.seen = 1
            events = run.events or []
        finally:
            run.events = None
        frames: list[bytes] = []
        for event, data in events:
            if self.response_hook is not None:
                changed = self.response_hook("POST", "stream:" + event, data)
                data = data if changed is None else changed
            text = data if isinstance(data, str) else json.dumps(data)
            frames.append(f"event: {event}\ndata: {text}\n\n".encode("utf-8"))
        frames.append(b"event: done\ndata: [DONE]\n\n")
        return Response(200, {"Content-Type": "text/event-stream"}, iter(frames))
