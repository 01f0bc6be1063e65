"""The new Foundry agents (``azure-ai-projects`` >= 2): agent versions, conversations and the Responses API.

Routes (after the ``/api/projects/{p}`` prefix), as the real ``azure-ai-projects`` 2.x and ``openai`` clients call
them (``project.get_openai_client()`` has the base URL ``{endpoint}/openai/v1``):

* ``POST /agents/{name}/versions`` (``project.agents.create_version``), ``GET /agents/{name}``,
  ``GET /agents/{name}/versions/{version}``;
* ``POST /openai/v1/conversations``, ``GET /openai/v1/conversations/{id}``;
* ``POST /openai/v1/responses`` (with ``agent_reference``, or the early key ``agent``, in the body; ``stream``;
  ``background``), ``GET /openai/v1/responses/{id}`` (background polling), ``POST .../{id}/cancel``.

What a response does is its scenario (:data:`RESPONSE_SCENARIOS`): the request's metadata ``scenario``, else the
agent definition's metadata ``scenario``, else the agent's name when it names a scenario, else ``message``.

* ``message``: one assistant message;
* ``function_call``: a ``function_call`` item (the agent's first function tool, else ``get_weather``); a
  follow-up response carrying ``function_call_output`` items answers with a message quoting the outputs;
* ``code_interpreter``: a ``code_interpreter_call`` item, then a message;
* ``all_tools``: one item of each server-side tool type (code interpreter, file search, web search, MCP);
* ``failed``: status ``failed`` with ``error {code, message}``; ``incomplete``: status ``incomplete``.

A background response (``"background": true``) starts ``queued`` and advances ``queued -> in_progress -> final``
once it has been observed (created or retrieved) ``polls_per_state`` times in a state (the service's setting, or
the request's metadata ``polls_per_state``). ``"stream": true`` answers with the Responses API's server-sent
events (``response.created`` ... ``response.completed`` / ``response.failed`` / ``response.incomplete``).
Only the standard library is used; state lives in the service's store under its lock.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from .rest import Response, ServiceError, to_int

__all__ = ["ROUTES", "RESPONSE_SCENARIOS", "FoundryOperations"]

# (method, route pattern, response kind, operation name): joined to the service's route table.
ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("POST", r"/agents/(?P<agent_name>[^/]+)/versions", "agent_version", "create_agent_version"),
    ("GET", r"/agents/(?P<agent_name>[^/]+)/versions/(?P<agent_version>[^/]+)", "agent_version", "get_agent_version"),
    ("GET", r"/agents/(?P<agent_name>[^/]+)", "agent_object", "get_foundry_agent"),
    ("POST", r"/openai/v1/conversations", "conversation", "create_conversation"),
    ("GET", r"/openai/v1/conversations/(?P<conversation_id>[^/]+)", "conversation", "get_conversation"),
    ("POST", r"/openai/v1/responses", "response", "create_response"),
    ("GET", r"/openai/v1/responses/(?P<response_id>[^/]+)", "response", "retrieve_response"),
    ("POST", r"/openai/v1/responses/(?P<response_id>[^/]+)/cancel", "response", "cancel_response"),
)

RESPONSE_SCENARIOS = ("message", "function_call", "code_interpreter", "all_tools", "failed", "incomplete")
_USAGE = (120, 30)  # input, output tokens of every response
_TERMINAL = frozenset({"completed", "failed", "cancelled", "incomplete"})


@dataclass
class _Background:
    """A background response: its final wire object and where it is on the way there."""

    final: dict[str, Any]
    polls_per_state: int
    states: list[str] = field(default_factory=lambda: ["queued", "in_progress"])
    observed: int = 0


class FoundryOperations:
    """The Foundry routes' ``_op_*`` methods, mixed into :class:`~.service.AgentsService`."""

    # provided by AgentsService
    _lock: Any
    polls_per_state: int
    _new_id: Callable[[str], str]
    _now: Callable[[], float]

    def _reset_foundry(self) -> None:
        self._agent_versions: dict[str, list[dict[str, Any]]] = {}
        self._conversations: dict[str, dict[str, Any]] = {}
        self._responses: dict[str, dict[str, Any]] = {}
        self._background: dict[str, _Background] = {}

    # ------------------------------------------------------------------ agents (versioned definitions)

    def _op_create_agent_version(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        name = params["agent_name"]
        definition = body.get("definition")
        if not isinstance(definition, dict) or not definition.get("kind"):
            raise ServiceError(400, "invalid_request", "'definition' with a 'kind' is required")
        versions = self._agent_versions.setdefault(name, [])
        version = {
            "object": "agent.version",
            "id": f"{name}:{len(versions) + 1}",
            "name": name,
            "version": str(len(versions) + 1),
            "description": body.get("description"),
            "created_at": int(self._now()),
            "metadata": body.get("metadata") or {},
            "definition": definition,
            "status": "active",
        }
        versions.append(version)
        return version

    def _foundry_agent(self, name: str, version: Optional[str] = None) -> dict[str, Any]:
        versions = self._agent_versions.get(name)
        if not versions:
            raise ServiceError(404, "not_found", f"Agent '{name}' not found.")
        if version is None:
            return versions[-1]
        for candidate in versions:
            if candidate["version"] == str(version):
                return candidate
        raise ServiceError(404, "not_found", f"Agent '{name}' has no version '{version}'.")

    def _op_get_agent_version(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return self._foundry_agent(params["agent_name"], params["agent_version"])

    def _op_get_foundry_agent(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        latest = self._foundry_agent(params["agent_name"])
        return {"object": "agent", "id": latest["name"], "name": latest["name"], "versions": {"latest": latest}}

    # ------------------------------------------------------------------ conversations

    def _op_create_conversation(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        conversation: dict[str, Any] = {
            "id": self._new_id("conv"),
            "object": "conversation",
            "created_at": int(self._now()),
            "metadata": body.get("metadata") or {},
        }
        self._conversations[conversation["id"]] = conversation
        return conversation

    def _op_get_conversation(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        conversation = self._conversations.get(params["conversation_id"])
        if conversation is None:
            raise ServiceError(404, "not_found", f"Conversation '{params['conversation_id']}' not found.")
        return conversation

    # ------------------------------------------------------------------ responses

    def _op_create_response(self, params: dict, query: dict, body: dict) -> Union[dict[str, Any], Response]:
        reference = body.get("agent_reference") or body.get("agent")
        agent: Optional[dict[str, Any]] = None
        if isinstance(reference, dict) and reference.get("name"):
            agent = self._foundry_agent(str(reference["name"]), reference.get("version"))
        elif not body.get("model"):
            raise ServiceError(400, "invalid_request", "'model' or an agent reference is required")
        conversation_id = _conversation_id(body.get("conversation"))
        if conversation_id is not None and conversation_id not in self._conversations:
            raise ServiceError(404, "not_found", f"Conversation '{conversation_id}' not found.")
        metadata: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
        definition = agent["definition"] if agent else {}
        scenario = self._response_scenario(agent, metadata)
        final = self._response_object(body, agent, definition, conversation_id, metadata)
        self._play(final, scenario, definition, body.get("input"))
        self._responses[final["id"]] = final
        if body.get("stream"):
            return _stream(final)
        if body.get("background"):
            polls = to_int(metadata.get("polls_per_state")) or self.polls_per_state
            self._background[final["id"]] = _Background(final=final, polls_per_state=polls)
            return self._observe_background(final["id"])
        return final

    def _op_retrieve_response(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        response_id = params["response_id"]
        if response_id in self._background:
            return self._observe_background(response_id)
        if response_id not in self._responses:
            raise ServiceError(404, "not_found", f"Response '{response_id}' not found.")
        return self._responses[response_id]

    def _op_cancel_response(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        response_id = params["response_id"]
        background = self._background.pop(response_id, None)
        if background is None:
            raise ServiceError(400, "invalid_request", "Only background responses can be cancelled.")
        final = background.final
        final.update(status="cancelled", output=[], usage=None, error=None, completed_at=None)
        return final

    def _observe_background(self, response_id: str) -> dict[str, Any]:
        """One observation of a background response: it moves on once seen ``polls_per_state`` times."""
        background = self._background[response_id]
        if background.observed >= background.polls_per_state:
            background.states.pop(0)
            background.observed = 0
        background.observed += 1
        if not background.states:
            del self._background[response_id]
            return background.final
        snapshot = copy.deepcopy(background.final)
        snapshot.update(status=background.states[0], output=[], usage=None, error=None, completed_at=None)
        snapshot["incomplete_details"] = None
        return snapshot

    # ------------------------------------------------------------------ scenario playing

    def _response_scenario(self, agent: Optional[dict[str, Any]], metadata: dict[str, Any]) -> str:
        agent_metadata = agent.get("metadata") if agent else None
        for candidate in (
            metadata.get("scenario"),
            agent_metadata.get("scenario") if isinstance(agent_metadata, dict) else None,
            agent["name"] if agent else None,
        ):
            if candidate in RESPONSE_SCENARIOS:
                return str(candidate)
        return "message"

    def _response_object(
        self,
        body: dict[str, Any],
        agent: Optional[dict[str, Any]],
        definition: dict[str, Any],
        conversation_id: Optional[str],
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        now = self._now()
        response: dict[str, Any] = {
            "id": self._new_id("resp"),
            "object": "response",
            "created_at": int(now),
            "status": "completed",
            "background": bool(body.get("background")),
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions") or definition.get("instructions"),
            "model": body.get("model") or definition.get("model") or "gpt-4o",
            "output": [],
            "parallel_tool_calls": True,
            "temperature": body.get("temperature", definition.get("temperature", 1.0)),
            "top_p": body.get("top_p", definition.get("top_p", 1.0)),
            "max_output_tokens": body.get("max_output_tokens"),
            "tool_choice": "auto",
            "tools": definition.get("tools") or body.get("tools") or [],
            "usage": {
                "input_tokens": _USAGE[0],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": _USAGE[1],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": sum(_USAGE),
            },
            "conversation": {"id": conversation_id} if conversation_id else None,
            "previous_response_id": body.get("previous_response_id"),
            "metadata": metadata,
            "completed_at": int(now),
        }
        if agent is not None:
            reference = {"type": "agent_reference", "name": agent["name"], "version": agent["version"]}
            response["agent_reference"] = reference
        return response

    def _play(self, response: dict[str, Any], scenario: str, definition: dict[str, Any], given: Any) -> None:
        """Fills ``response`` (output, status, error) as ``scenario`` says."""
        items = given if isinstance(given, list) else []
        answered = [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
        output: list[dict[str, Any]] = []
        if scenario == "function_call" and not answered:
            name, arguments = _function_of(definition)
            output.append(
                {
                    "type": "function_call",
                    "id": self._new_id("fc"),
                    "call_id": self._new_id("call"),
                    "name": name,
                    "arguments": json.dumps(arguments),
                    "status": "completed",
                }
            )
        elif scenario == "code_interpreter":
            output.append(self._code_interpreter_call())
        elif scenario == "all_tools":
            output += [self._code_interpreter_call(), *self._knowledge_and_mcp_calls()]
        if scenario == "failed":
            response.update(
                status="failed",
                usage=None,
                completed_at=None,
                error={"code": "server_error", "message": "The agent failed (emulated)."},
            )
        elif scenario == "incomplete":
            output.append(self._message("The answer was cut"))
            response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
        elif not (scenario == "function_call" and not answered):
            quoted = "; ".join(str(a.get("output")) for a in answered)
            output.append(self._message(f"Done: {quoted}" if quoted else "Hello from the emulated agent."))
        response["output"] = output

    def _message(self, text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "id": self._new_id("msg"),
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }

    def _code_interpreter_call(self) -> dict[str, Any]:
        return {
            "type": "code_interpreter_call",
            "id": self._new_id("ci"),
            "status": "completed",
            "code": "print(6 * 7)",
            "container_id": self._new_id("cntr"),
            "outputs": [{"type": "logs", "logs": "42\n"}],
        }

    def _knowledge_and_mcp_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "file_search_call",
                "id": self._new_id("fs"),
                "status": "completed",
                "queries": ["refund policy"],
                "results": [{"file_id": "file_1", "filename": "policy.md", "score": 0.9, "text": "30 days"}],
            },
            {
                "type": "web_search_call",
                "id": self._new_id("ws"),
                "status": "completed",
                "action": {"type": "search", "query": "weather Paris"},
            },
            {
                "type": "mcp_call",
                "id": self._new_id("mcp"),
                "name": "lookup_docs",
                "server_label": "docs",
                "arguments": json.dumps({"q": "retention"}),
                "output": "Traces are kept 30 days.",
                "status": "completed",
            },
        ]


def _conversation_id(value: Any) -> Optional[str]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return None


def _function_of(definition: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The agent's first function tool (made-up arguments fitting its required parameters), else get_weather."""
    for tool in definition.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "function" and tool.get("name"):
            parameters: dict[str, Any] = tool["parameters"] if isinstance(tool.get("parameters"), dict) else {}
            required = parameters.get("required") or []
            return str(tool["name"]), {str(name): "Paris" for name in required}
    return "get_weather", {"city": "Paris"}


def _stream(final: dict[str, Any]) -> Response:
    """The Responses API's server-sent events for ``final`` (already played out)."""
    frames: list[bytes] = []

    def emit(event_type: str, **data: Any) -> None:
        payload = {"type": event_type, "sequence_number": len(frames), **data}
        frames.append(f"event: {event_type}\ndata: {json.dumps(payload)}\n\n".encode())

    start = copy.deepcopy(final)
    start.update(status="in_progress", output=[], usage=None, error=None, completed_at=None, incomplete_details=None)
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(final["output"]):
        added = copy.deepcopy(item)
        added["status"] = "in_progress"
        if item["type"] == "message":
            added["content"] = []
        emit("response.output_item.added", output_index=index, item=added)
        for part_index, part in enumerate(item["content"] if item["type"] == "message" else []):
            where = {"item_id": item["id"], "output_index": index, "content_index": part_index}
            emit("response.content_part.added", **where, part={**part, "text": ""})
            words = part["text"].split(" ")
            for delta in [w + " " for w in words[:-1]] + words[-1:]:
                emit("response.output_text.delta", **where, delta=delta, logprobs=[])
            emit("response.output_text.done", **where, text=part["text"], logprobs=[])
            emit("response.content_part.done", **where, part=part)
        emit("response.output_item.done", output_index=index, item=item)
    terminal = {"completed": "response.completed", "failed": "response.failed"}.get(final["status"])
    emit(terminal or "response.incomplete", response=final)
    return Response(200, {"Content-Type": "text/event-stream"}, iter(frames))
