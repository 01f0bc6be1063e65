"""The new Foundry agents (``azure-ai-projects`` >= 2): the Responses API and the OpenAI-compatible routes.

The OpenAI routes are served under two base URLs, as the real clients call them:

* ``{endpoint}/openai/v1`` (``project.get_openai_client()``): a response names its agent in the body
  (``agent_reference``, or the early 2.0 betas' key ``agent``), or is a plain model call (``model``);
* ``{endpoint}/agents/{name}/endpoint/protocols/openai`` (``project.get_openai_client(agent_name=name)``, the way
  most of azure-ai-projects 2.x's own samples call agents): every response is an invocation of agent ``name``,
  answered by the version its endpoint selects (see :mod:`.foundry_agents`), with that version's model,
  instructions and tools, though the body names no agent. A body that names another agent gets 400.

Routes under either base: ``POST /responses`` (``stream``, ``background``, ``conversation``,
``previous_response_id``), ``GET|DELETE /responses/{id}``, ``POST /responses/{id}/cancel``,
``GET /responses/{id}/input_items``; conversations and their items (:mod:`.foundry_conversations`); files and
vector stores (the same store as the classic routes, :mod:`.files`); ``GET /containers/{id}/files/{id}[/content]``
(files a code interpreter made). Agent definitions are at ``{endpoint}/agents/...`` (:mod:`.foundry_agents`).

A response made by an agent echoes ``agent_reference`` ``{type, name, version}`` (the version that answered),
whichever way it was called: the service puts the reference on agents' responses and items (its hosted-agent
server library stamps them). ``AgentsService.echo_agent_reference = False`` leaves it out, to check that an
instrumentation does not depend on it.

What a response does is :func:`.foundry_plans.play` (scenarios, or the agent's tools), or for a workflow agent
:func:`.foundry_workflows.play_workflow`. Its input items are the request's ``input`` (a string is one user
message); without ``input`` it answers the conversation's last user message. In a conversation, the input items
and then the output items are appended to it. A background response (``"background": true``) starts ``queued``
and advances ``queued -> in_progress -> final`` once it has been observed (created or retrieved)
``polls_per_state`` times in a state (the service's setting, or the request's metadata ``polls_per_state``).
``"stream": true`` answers with server-sent events (:mod:`.foundry_stream`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from . import files, foundry_agents, foundry_conversations
from .foundry_agents import FoundryAgents
from .foundry_conversations import FoundryConversations, normalize_item
from .foundry_plans import RESPONSE_SCENARIOS, USAGE, ContainerFile, Outcome, Turn, play
from .foundry_stream import stream
from .foundry_workflows import WorkflowPause, play_workflow, workflow_actions
from .rest import Response, Route, ServiceError, page, to_int

__all__ = ["FoundryOperations", "OPENAI_PREFIXES", "RESPONSE_SCENARIOS", "ROUTES"]

#: The two OpenAI base paths: the project's, and an agent endpoint's (which names the agent).
OPENAI_PREFIXES = (r"/openai/v1", r"/agents/(?P<endpoint_agent>[^/:]+)/endpoint/protocols/openai")
_RESPONSE = r"/responses/(?P<response_id>[^/]+)"
_CONTAINER_FILE = r"/containers/(?P<container_id>[^/]+)/files/(?P<file_id>[^/]+)"
_OPENAI_ROUTES: tuple[Route, ...] = (
    ("POST", r"/responses", "response", "create_response"),
    ("GET", _RESPONSE, "response", "retrieve_response"),
    ("DELETE", _RESPONSE, "deletion", "delete_response"),
    ("POST", _RESPONSE + r"/cancel", "response", "cancel_response"),
    ("GET", _RESPONSE + r"/input_items", "response_item_list", "list_response_input_items"),
    ("GET", _CONTAINER_FILE, "container_file", "get_container_file"),
    ("GET", _CONTAINER_FILE + r"/content", "file_content", "get_container_file_content"),
    *foundry_conversations.ROUTES,
    *files.ROUTES,
)
# (method, route pattern, response kind, operation name): joined to the service's route table.
ROUTES: tuple[Route, ...] = (
    *foundry_agents.ROUTES,
    *((method, prefix + path, kind, op) for prefix in OPENAI_PREFIXES for method, path, kind, op in _OPENAI_ROUTES),
)
_TERMINAL = frozenset({"completed", "failed", "cancelled", "incomplete"})
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")


@dataclass
class _Background:
    """A background response: its final wire object and where it is on the way there."""

    final: dict[str, Any]
    polls_per_state: int
    states: list[str] = field(default_factory=lambda: ["queued", "in_progress"])
    observed: int = 0


@dataclass
class _Record:
    """What the service keeps of a response besides its wire object: its input items and a paused workflow."""

    previous_id: Optional[str]
    given: list[dict[str, Any]]
    workflow: Optional[WorkflowPause] = None


class FoundryOperations(FoundryAgents, FoundryConversations):
    """The Foundry routes' ``_op_*`` methods, mixed into :class:`~.service.AgentsService`."""

    #: Put ``agent_reference`` on agents' responses (see the module's documentation).
    echo_agent_reference: bool = True
    # provided by AgentsService
    _lock: Any
    polls_per_state: int
    _new_id: Callable[[str], str]
    _now: Callable[[], float]
    vector_store_file_names: Callable[[list[Any]], list[tuple[str, str]]]

    def _reset_foundry(self) -> None:
        self._reset_foundry_agents()
        self._reset_foundry_conversations()
        self._responses: dict[str, dict[str, Any]] = {}
        self._response_records: dict[str, _Record] = {}
        self._background: dict[str, _Background] = {}
        self._container_files: dict[tuple[str, str], ContainerFile] = {}
        self.echo_agent_reference = True

    # ------------------------------------------------------------------ responses

    def _op_create_response(self, params: dict, query: dict, body: dict) -> Union[dict[str, Any], Response]:
        agent = self._responding_agent(params.get("endpoint_agent"), body)
        if agent is None and not body.get("model"):
            raise ServiceError(400, "invalid_request", "'model' or an agent reference is required")
        conversation_id = _conversation_id(body.get("conversation"))
        if conversation_id is not None:
            self._conversation(conversation_id)
        previous_id = body.get("previous_response_id")
        if previous_id is not None and previous_id not in self._response_records:
            raise ServiceError(404, "not_found", f"Response '{previous_id}' not found.")
        given = _input_items(body.get("input"), self._new_id)
        history = self._history(conversation_id, previous_id)
        metadata: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
        definition = _render(agent["definition"], body.get("structured_inputs")) if agent else {}
        outcome, pause = self._play(agent, definition, body, metadata, given, history)
        final = self._response_object(body, agent, definition, conversation_id, metadata, outcome)
        self._responses[final["id"]] = final
        self._response_records[final["id"]] = _Record(previous_id, given, pause)
        for made in outcome.container_files:
            self._container_files[(made.container_id, made.file_id)] = made
        self._append_items(conversation_id, [*given, *copy.deepcopy(final["output"])])
        if body.get("stream"):
            return stream(final)
        if body.get("background"):
            polls = to_int(metadata.get("polls_per_state")) or self.polls_per_state
            self._background[final["id"]] = _Background(final=final, polls_per_state=polls)
            return self._observe_background(final["id"])
        return final

    def _responding_agent(self, endpoint_agent: Optional[str], body: dict[str, Any]) -> Optional[dict[str, Any]]:
        """The agent version that answers: the endpoint's, else the one the body names, else None (a model call)."""
        reference = body.get("agent_reference") or body.get("agent")
        named = reference.get("name") if isinstance(reference, dict) else None
        version = reference.get("version") if isinstance(reference, dict) else None
        if endpoint_agent is not None:
            if named and named != endpoint_agent:
                raise ServiceError(
                    400, "invalid_request", f"This endpoint serves agent '{endpoint_agent}', not '{named}'."
                )
            return self._foundry_agent(endpoint_agent, version) if version else self._endpoint_version(endpoint_agent)
        return self._foundry_agent(str(named), version) if named else None

    def _history(self, conversation_id: Optional[str], previous_id: Optional[str]) -> list[dict[str, Any]]:
        """The items before this request: the previous responses' (oldest first), then the conversation's."""
        chain: list[dict[str, Any]] = []
        seen: set[str] = set()
        while previous_id and previous_id in self._response_records and previous_id not in seen:
            seen.add(previous_id)
            record = self._response_records[previous_id]
            chain[:0] = [*record.given, *self._responses[previous_id]["output"]]
            previous_id = record.previous_id
        return chain + (self._conversation_items[conversation_id] if conversation_id else [])

    def _play(
        self,
        agent: Optional[dict[str, Any]],
        definition: dict[str, Any],
        body: dict[str, Any],
        metadata: dict[str, Any],
        given: list[dict[str, Any]],
        history: list[dict[str, Any]],
    ) -> tuple[Outcome, Optional[WorkflowPause]]:
        if definition.get("kind") == "workflow":
            previous = self._response_records.get(str(body.get("previous_response_id")))
            resume = previous.workflow if previous is not None else None
            question = given or [m for m in history if m.get("type") == "message" and m.get("role") == "user"][-1:]
            return play_workflow(workflow_actions(definition), question, self._invoke, self._new_id, resume)
        turn = Turn(
            scenario=self._response_scenario(agent, metadata),
            definition=definition,
            tools=list(definition.get("tools") or body.get("tools") or []),
            given=given,
            history=history,
            text_format=_text_format(body) or _text_format(definition),
            quote_question="input" not in body or body.get("input") is None,
        )
        return play(turn, self._new_id, self.vector_store_file_names), None

    def _invoke(
        self, name: str, given: list[dict[str, Any]], history: list[dict[str, Any]]
    ) -> tuple[Outcome, dict[str, Any]]:
        """A workflow's InvokeAzureAgent: agent ``name`` (latest version) answers ``given``; an unknown agent fails
        the workflow's response (the service runs workflows after answering the request)."""
        try:
            agent = self._foundry_agent(name)
        except ServiceError as missing:
            failed = Outcome(status="failed", error={"code": "agent_not_found", "message": missing.message}, turns=0)
            return failed, {"type": "agent_reference", "name": name}
        definition = agent["definition"]
        turn = Turn(
            scenario=self._response_scenario(agent, {}),
            definition=definition,
            tools=list(definition.get("tools") or []),
            given=given,
            history=history,
            text_format=_text_format(definition),
        )
        return play(turn, self._new_id, self.vector_store_file_names), _reference(agent)

    def _op_retrieve_response(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        response_id = params["response_id"]
        if response_id in self._background:
            return self._observe_background(response_id)
        return self._response(response_id)

    def _response(self, response_id: str) -> dict[str, Any]:
        if response_id not in self._responses:
            raise ServiceError(404, "not_found", f"Response '{response_id}' not found.")
        return self._responses[response_id]

    def _op_delete_response(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        response_id = self._response(params["response_id"])["id"]
        del self._responses[response_id]
        self._response_records.pop(response_id, None)
        self._background.pop(response_id, None)
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    def _op_list_response_input_items(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        response_id = self._response(params["response_id"])["id"]
        return page(self._response_records[response_id].given, query)

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

    # ------------------------------------------------------------------ container files

    def _container_file(self, params: dict) -> ContainerFile:
        made = self._container_files.get((params["container_id"], params["file_id"]))
        if made is None:
            raise ServiceError(404, "not_found", f"File '{params['file_id']}' not found in the container.")
        return made

    def _op_get_container_file(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        made = self._container_file(params)
        return {
            "id": made.file_id,
            "object": "container.file",
            "container_id": made.container_id,
            "bytes": len(made.content),
            "created_at": int(self._now()),
            "path": "/mnt/data/" + made.filename,
            "source": "assistant",
        }

    def _op_get_container_file_content(self, params: dict, query: dict, body: dict) -> Response:
        return Response(200, {"Content-Type": "application/octet-stream"}, self._container_file(params).content)

    # ------------------------------------------------------------------ the response object

    def _response_scenario(self, agent: Optional[dict[str, Any]], metadata: dict[str, Any]) -> str:
        agent_metadata = agent.get("metadata") if agent else None
        for candidate in (
            metadata.get("scenario"),
            agent_metadata.get("scenario") if isinstance(agent_metadata, dict) else None,
            agent["name"] if agent else None,
        ):
            if candidate in RESPONSE_SCENARIOS:
                return str(candidate)
        return "auto"

    def _response_object(
        self,
        body: dict[str, Any],
        agent: Optional[dict[str, Any]],
        definition: dict[str, Any],
        conversation_id: Optional[str],
        metadata: dict[str, Any],
        outcome: Outcome,
    ) -> dict[str, Any]:
        now = self._now()
        tool_choice = body.get("tool_choice")
        text_format = _text_format(body) or _text_format(definition) or {"type": "text"}
        response: dict[str, Any] = {
            "id": self._new_id("resp"),
            "object": "response",
            "created_at": int(now),
            "status": outcome.status,
            "background": bool(body.get("background")),
            "error": outcome.error,
            "incomplete_details": outcome.incomplete_details,
            "instructions": body.get("instructions") or definition.get("instructions"),
            "model": body.get("model") or definition.get("model") or "gpt-4o",
            "output": outcome.output,
            "parallel_tool_calls": True,
            "temperature": body.get("temperature", definition.get("temperature", 1.0)),
            "top_p": body.get("top_p", definition.get("top_p", 1.0)),
            "max_output_tokens": body.get("max_output_tokens"),
            "tool_choice": tool_choice if tool_choice is not None else "auto",
            "tools": definition.get("tools") or body.get("tools") or [],
            "text": {"format": text_format},
            "truncation": body.get("truncation") or "disabled",
            "usage": _usage(outcome.turns),
            "conversation": {"id": conversation_id} if conversation_id else None,
            "previous_response_id": body.get("previous_response_id"),
            "metadata": metadata,
            "completed_at": int(now) if outcome.status == "completed" else None,
        }
        if outcome.status == "failed":
            response["usage"] = None
        if agent is not None and self.echo_agent_reference:
            response["agent_reference"] = _reference(agent)
        return response


def _reference(agent: dict[str, Any]) -> dict[str, Any]:
    return {"type": "agent_reference", "name": agent["name"], "version": agent["version"]}


def _usage(turns: int) -> dict[str, Any]:
    given, made = USAGE[0] * max(1, turns), USAGE[1] * max(1, turns)
    return {
        "input_tokens": given,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": made,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": given + made,
    }


def _conversation_id(value: Any) -> Optional[str]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    return None


def _input_items(value: Any, new_id: Callable[[str], str]) -> list[dict[str, Any]]:
    """A request's ``input`` as stored items (a string is one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [normalize_item({"type": "message", "role": "user", "content": value}, new_id)]
    if not isinstance(value, list):
        raise ServiceError(400, "invalid_request", "'input' must be a string or a list of items")
    return [normalize_item(item, new_id) for item in value]


def _text_format(source: dict[str, Any]) -> Optional[dict[str, Any]]:
    text = source.get("text")
    found = text.get("format") if isinstance(text, dict) else None
    return found if isinstance(found, dict) and found.get("type") != "text" else None


def _render(definition: dict[str, Any], values: Any) -> dict[str, Any]:
    """The definition with its ``{{name}}`` templates filled from the request's ``structured_inputs``."""
    if not isinstance(values, dict) or not values:
        return definition

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            return _TEMPLATE.sub(lambda m: str(values.get(m.group(1), m.group(0))), node)
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        return node

    rendered: dict[str, Any] = fill(definition)
    return rendered
