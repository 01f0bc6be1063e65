"""What one Responses API answer of a new Foundry agent holds: its output items, status and usage.

:func:`play` takes a :class:`Turn` (the agent's definition, the request's input items, the items before them) and
returns an :class:`Outcome`. Named scenarios (:data:`RESPONSE_SCENARIOS`, by request metadata, agent metadata or
agent name) script an answer; otherwise (``auto``) the answer follows the agent's tools, like the service:

* ``function``: one ``function_call`` per function tool (arguments valid for its JSON schema); the app answers
  with ``function_call_output`` items in its next request, then gets a message quoting them;
* ``mcp``: ``mcp_list_tools`` (once per server label in the conversation), then ``mcp_approval_request`` unless
  ``require_approval`` is ``"never"``; approved (an ``mcp_approval_response`` item) -> ``mcp_call``, then a message;
* ``computer_use_preview`` / ``computer``: ``computer_call`` items (type some text, press ENTER), each answered by
  a ``computer_call_output``; after two, a message;
* ``code_interpreter``: a ``code_interpreter_call``; with files in its container the answer cites a generated
  ``chart.png`` (``container_file_citation``, downloadable from ``/containers/{id}/files/{id}/content``);
* ``file_search``: a ``file_search_call`` with results from the tool's vector stores, cited by the answer;
* ``web_search`` / ``web_search_preview``: a ``web_search_call``, cited by the answer (``url_citation``);
* ``image_generation``: an ``image_generation_call`` whose ``result`` is a base64 PNG;
* any other tool type T (``bing_grounding``, ``azure_ai_search``, ``openapi``, ``azure_function``, ``a2a_preview``,
  ``sharepoint_grounding_preview``, ``fabric_dataagent_preview``, ``browser_automation_preview``, ... and types
  not invented yet): a ``T_call`` item and its ``T_call_output``, as Foundry's own tools answer;
* no tools: a message.

Every answer has ``usage``: 120 input and 30 output tokens per model turn. A request with ``text.format`` of type
``json_schema`` (or an agent whose definition has one) is answered with JSON valid for the schema. A request with
no ``input`` answers the conversation's last user message and quotes it (``You asked: "..."``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .schema_values import sample, sample_arguments
from .tool_plans import _first_operation

__all__ = ["RESPONSE_SCENARIOS", "ContainerFile", "Outcome", "Turn", "play", "PLAIN_ANSWER", "USAGE"]

RESPONSE_SCENARIOS = ("message", "function_call", "code_interpreter", "all_tools", "failed", "incomplete")
PLAIN_ANSWER = "Hello from the emulated agent."
USAGE = (120, 30)  # input, output tokens per model turn
#: Items that wait for the app: a response ending with one of these has no message.
CLIENT_ITEMS = frozenset({"function_call", "mcp_approval_request", "computer_call"})
_MAX_SERVER_CALLS = 8
_COMPUTER_STEPS = ({"type": "type", "text": "emulated search"}, {"type": "keypress", "keys": ["ENTER"]})
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class Turn:
    """What one response is asked to do."""

    scenario: str  # a RESPONSE_SCENARIOS name, or "auto"
    definition: dict[str, Any]  # the agent version's definition ({} for a plain model call)
    tools: list[Any]  # the tools in effect: the definition's, else the request's
    given: list[dict[str, Any]]  # this request's input items (normalized)
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier items (conversation, previous responses)
    text_format: Optional[dict[str, Any]] = None  # text.format of the request or the definition
    quote_question: bool = False  # the request had no input: say which message is answered


@dataclass
class ContainerFile:
    """A file a code interpreter made (served at ``/containers/{container_id}/files/{file_id}/content``)."""

    container_id: str
    file_id: str
    filename: str
    content: bytes


@dataclass
class Outcome:
    """The played answer: output items, final status and what goes with it."""

    output: list[dict[str, Any]] = field(default_factory=list)
    status: str = "completed"
    error: Optional[dict[str, Any]] = None
    incomplete_details: Optional[dict[str, Any]] = None
    turns: int = 1  # model turns, for usage
    container_files: list[ContainerFile] = field(default_factory=list)

    def waits_for_app(self) -> bool:
        """True when the answer ends with items the app must answer (function calls, approvals...)."""
        return any(item.get("type") in CLIENT_ITEMS for item in self.output)


def question_of(items: list[dict[str, Any]]) -> Optional[str]:
    """The text of the last user message among ``items``."""
    from .foundry_conversations import item_text

    for item in reversed(items):
        if item.get("type") == "message" and item.get("role") == "user":
            text = item_text(item)
            if text:
                return text
    return None


def play(
    turn: Turn, new_id: Callable[[str], str], store_files: Callable[[list[Any]], list[tuple[str, str]]]
) -> Outcome:
    """The answer to ``turn`` (``store_files`` lists ``(file id, name)`` of vector stores)."""
    return _Player(turn, new_id, store_files).play()


class _Player:
    def __init__(
        self, turn: Turn, new_id: Callable[[str], str], store_files: Callable[[list[Any]], list[tuple[str, str]]]
    ) -> None:
        self.turn, self.new_id, self.store_files = turn, new_id, store_files
        self.outcome = Outcome()
        self.question = question_of(turn.given) or question_of(turn.history)
        self.annotations: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ scenarios

    def play(self) -> Outcome:
        scenario = self.turn.scenario
        given_types = {item.get("type") for item in self.turn.given}
        answered = [i for i in self.turn.given if i.get("type") == "function_call_output"]
        if scenario == "failed":
            self.outcome.status = "failed"
            self.outcome.error = {"code": "server_error", "message": "The agent failed (emulated)."}
        elif scenario == "incomplete":
            self._message("The answer was cut")
            self.outcome.status = "incomplete"
            self.outcome.incomplete_details = {"reason": "max_output_tokens"}
        elif scenario == "function_call":
            if answered:
                self._answer()
            else:
                name, arguments = _first_function(self.turn.tools)
                self._function_call(name, arguments)
        elif scenario == "code_interpreter":
            self._add(self._code_interpreter_call({}))
            self._answer()
        elif scenario == "all_tools":
            self._add(self._code_interpreter_call({}))
            self._add_all(self._fixed_knowledge_and_mcp_calls())
            self._answer()
        elif scenario == "message":
            self._answer()
        else:
            self._auto(given_types)
        return self.outcome

    def _auto(self, given_types: set[Any]) -> None:
        tools = [t for t in self.turn.tools if isinstance(t, dict) and isinstance(t.get("type"), str)]
        continuing = bool(given_types & {"function_call_output", "mcp_approval_response", "computer_call_output"})
        if not continuing:
            server = [t for t in tools if t["type"] not in ("function", "mcp", "computer_use_preview", "computer")]
            for tool in server[:_MAX_SERVER_CALLS]:
                self._server_tool(tool)
        for tool in (t for t in tools if t["type"] == "mcp"):
            self._mcp(tool)
        computer = next((t for t in tools if t["type"] in ("computer_use_preview", "computer")), None)
        if computer is not None:
            self._computer()
        if not continuing and not self.outcome.waits_for_app():
            for tool in (t for t in tools if t["type"] == "function" and t.get("name")):
                self._function_call(str(tool["name"]), sample_arguments(tool.get("parameters")))
        if not self.outcome.waits_for_app():
            self._answer()

    # ------------------------------------------------------------------ items

    def _add(self, item: dict[str, Any]) -> dict[str, Any]:
        self.outcome.output.append(item)
        return item

    def _add_all(self, items: list[dict[str, Any]]) -> None:
        self.outcome.output.extend(items)

    def _message(self, text: str) -> None:
        self._add(
            {
                "type": "message",
                "id": self.new_id("msg"),
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": self.annotations}],
            }
        )

    def _answer(self) -> None:
        """The final message: JSON for a structured format, else quoting function outputs or the question."""
        structured = _structured(self.turn.text_format)
        outputs = [str(i.get("output")) for i in self.turn.given if i.get("type") == "function_call_output"]
        if structured is not None:
            text = structured
        elif outputs:
            text = "Done: " + "; ".join(outputs)
        elif self.turn.quote_question and self.question:
            text = f'{PLAIN_ANSWER} You asked: "{self.question}"'
        else:
            text = PLAIN_ANSWER
        for annotation in self.annotations:
            if "index" in annotation:
                annotation["index"] = len(text)
            if "end_index" in annotation:
                annotation["end_index"] = len(text)
        self._message(text)

    def _function_call(self, name: str, arguments: dict[str, Any]) -> None:
        self._add(
            {
                "type": "function_call",
                "id": self.new_id("fc"),
                "call_id": self.new_id("call"),
                "name": name,
                "arguments": json.dumps(arguments),
                "status": "completed",
            }
        )

    def _code_interpreter_call(self, tool: dict[str, Any]) -> dict[str, Any]:
        container = tool.get("container")
        container_id = container if isinstance(container, str) and container else self.new_id("cntr")
        if isinstance(container, dict) and container.get("file_ids"):
            made = ContainerFile(container_id, self.new_id("cfile"), "chart.png", _PNG)
            self.outcome.container_files.append(made)
            self.annotations.append(
                {
                    "type": "container_file_citation",
                    "container_id": container_id,
                    "file_id": made.file_id,
                    "filename": made.filename,
                    "start_index": 0,
                    "end_index": 0,
                }
            )
        return {
            "type": "code_interpreter_call",
            "id": self.new_id("ci"),
            "status": "completed",
            "code": "print(6 * 7)",
            "container_id": container_id,
            "outputs": [{"type": "logs", "logs": "42\n"}],
        }

    def _server_tool(self, tool: dict[str, Any]) -> None:
        kind: str = tool["type"]
        query = self.question or "emulated query"
        if kind == "code_interpreter":
            self._add(self._code_interpreter_call(tool))
        elif kind == "file_search":
            files = self.store_files(list(tool.get("vector_store_ids") or []))
            results = [
                {"file_id": f, "filename": n, "score": round(0.9 - 0.1 * i, 2), "text": "(emulated excerpt)"}
                for i, (f, n) in enumerate(files[:3])
            ]
            self._add(
                {
                    "type": "file_search_call",
                    "id": self.new_id("fs"),
                    "status": "completed",
                    "queries": [query],
                    "results": results,
                }
            )
            self.annotations += [
                {"type": "file_citation", "file_id": f, "filename": n, "index": 0} for f, n in files[:3]
            ]
        elif kind in ("web_search", "web_search_preview"):
            self._add(
                {
                    "type": "web_search_call",
                    "id": self.new_id("ws"),
                    "status": "completed",
                    "action": {"type": "search", "query": query},
                }
            )
            self.annotations.append(
                {
                    "type": "url_citation",
                    "url": "https://example.com/emulated",
                    "title": "Emulated result",
                    "start_index": 0,
                    "end_index": 0,
                }
            )
        elif kind == "image_generation":
            self._add(
                {
                    "type": "image_generation_call",
                    "id": self.new_id("ig"),
                    "status": "completed",
                    "result": base64.b64encode(_PNG).decode("ascii"),
                    "revised_prompt": query,
                    "output_format": "png",
                }
            )
        else:
            self._foundry_tool(tool, query)

    def _foundry_tool(self, tool: dict[str, Any], query: str) -> None:
        """A tool of Foundry's own (or an unknown one): a ``T_call`` and its ``T_call_output``."""
        kind: str = tool["type"]
        call: dict[str, Any] = {
            "type": f"{kind}_call",
            "id": self.new_id("tc"),
            "call_id": self.new_id("call"),
            "arguments": json.dumps({"query": query}),
            "status": "completed",
        }
        found = tool.get(kind)
        definition: dict[str, Any] = found if isinstance(found, dict) else {}
        if kind == "openapi":
            call["name"] = f"{definition.get('name') or 'openapi'}_{_first_operation(definition.get('spec'))}"
        elif kind == "azure_function":
            function = definition.get("function")
            call["name"] = (function.get("name") if isinstance(function, dict) else None) or "function"
        self._add(call)
        output = {
            "type": f"{kind}_call_output",
            "id": self.new_id("tco"),
            "call_id": call["call_id"],
            "output": json.dumps({"result": f"emulated {kind} result"}),
            "status": "completed",
        }
        self._add(output)

    def _mcp(self, tool: dict[str, Any]) -> None:
        label = str(tool.get("server_label") or "mcp")
        name, arguments = "fetch_docs", json.dumps({"query": self.question or "emulated query"})
        earlier = [*self.turn.history, *self.outcome.output]
        if not any(i.get("type") == "mcp_list_tools" and i.get("server_label") == label for i in earlier):
            schema = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
            self._add(
                {
                    "type": "mcp_list_tools",
                    "id": self.new_id("mcpl"),
                    "server_label": label,
                    "error": None,
                    "tools": [{"name": name, "description": "Fetch documentation", "input_schema": schema}],
                }
            )
        requests = {i.get("id"): i for i in self.turn.history if i.get("type") == "mcp_approval_request"}
        responses = [i for i in self.turn.given if i.get("type") == "mcp_approval_response"]
        answered = [(r, requests.get(r.get("approval_request_id"))) for r in responses]
        mine = [(r, q) for r, q in answered if q is not None and q.get("server_label") == label]
        if mine:
            for response, request in mine:
                if response.get("approve"):
                    self._mcp_call(
                        label,
                        str(request.get("name") or name),
                        str(request.get("arguments") or arguments),
                        approval_request_id=request.get("id"),
                    )
        elif _needs_approval(tool.get("require_approval")):
            self._add(
                {
                    "type": "mcp_approval_request",
                    "id": self.new_id("mcpr"),
                    "server_label": label,
                    "name": name,
                    "arguments": arguments,
                }
            )
        elif not responses:
            self._mcp_call(label, name, arguments)

    def _mcp_call(self, label: str, name: str, arguments: str, approval_request_id: Any = None) -> None:
        item = {
            "type": "mcp_call",
            "id": self.new_id("mcp"),
            "server_label": label,
            "name": name,
            "arguments": arguments,
            "output": "Emulated MCP result.",
            "error": None,
            "status": "completed",
        }
        if approval_request_id:
            item["approval_request_id"] = approval_request_id
        self._add(item)

    def _computer(self) -> None:
        done = sum(1 for i in [*self.turn.history, *self.turn.given] if i.get("type") == "computer_call_output")
        if done < len(_COMPUTER_STEPS):
            self._add(
                {
                    "type": "computer_call",
                    "id": self.new_id("cu"),
                    "call_id": self.new_id("call"),
                    "action": dict(_COMPUTER_STEPS[done]),
                    "pending_safety_checks": [],
                    "status": "completed",
                }
            )

    def _fixed_knowledge_and_mcp_calls(self) -> list[dict[str, Any]]:
        """The ``all_tools`` scenario's file search, web search and MCP calls."""
        return [
            {
                "type": "file_search_call",
                "id": self.new_id("fs"),
                "status": "completed",
                "queries": ["refund policy"],
                "results": [{"file_id": "file_1", "filename": "policy.md", "score": 0.9, "text": "30 days"}],
            },
            {
                "type": "web_search_call",
                "id": self.new_id("ws"),
                "status": "completed",
                "action": {"type": "search", "query": "weather Paris"},
            },
            {
                "type": "mcp_call",
                "id": self.new_id("mcp"),
                "name": "lookup_docs",
                "server_label": "docs",
                "arguments": json.dumps({"q": "retention"}),
                "output": "Traces are kept 30 days.",
                "status": "completed",
            },
        ]


def _needs_approval(setting: Any) -> bool:
    """``require_approval``: "never" -> no; "always", absent or a per-tool filter with an "always" list -> yes."""
    if setting == "never":
        return False
    if isinstance(setting, dict):
        return "always" in setting or "never" not in setting
    return True


def _first_function(tools: list[Any]) -> tuple[str, dict[str, Any]]:
    """The ``function_call`` scenario's call: the first function tool (its required parameters), else get_weather."""
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "function" and tool.get("name"):
            parameters: dict[str, Any] = tool["parameters"] if isinstance(tool.get("parameters"), dict) else {}
            return str(tool["name"]), {str(name): "Paris" for name in parameters.get("required") or []}
    return "get_weather", {"city": "Paris"}


def _structured(text_format: Optional[dict[str, Any]]) -> Optional[str]:
    """The JSON answer a ``text.format`` asks for (None: free text)."""
    if not isinstance(text_format, dict):
        return None
    if text_format.get("type") == "json_object":
        return json.dumps({"answer": PLAIN_ANSWER})
    if text_format.get("type") == "json_schema":
        schema = text_format.get("schema")
        return json.dumps(sample(schema if isinstance(schema, dict) else {"type": "object"}))
    return None
