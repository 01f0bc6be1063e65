"""The ``auto`` scenario: what a run does when nothing names a scenario follows the agent's tools.

* server tools (code interpreter, file search, Bing, Azure AI Search, OpenAPI, connected agents, Azure
  Functions, ... and types not known here) -> one ``tool_calls`` step with one call per tool, executed by the
  "service" (file search cites the files of the run's vector stores; OpenAPI calls name the spec's operation);
* function tools -> a ``requires_action`` step calling every declared function once, with arguments valid for
  its JSON schema (:mod:`.schema_values`);
* both -> the server step first; none -> a plain answer (one ``message_creation`` step).

:func:`structured_answer` gives the final message of any scenario when the run asks for JSON
(``response_format`` ``json_object`` or ``json_schema``): an instance of the schema.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Optional

from .scenarios import (
    ALL_SERVER_TOOL_CALLS,
    CODE_INTERPRETER_CALL,
    FILE_SEARCH_CALL,
    MessageStep,
    Scenario,
    ToolCallsStep,
)
from .schema_values import sample

__all__ = ["AUTO_SCENARIO", "structured_answer", "tool_scenario"]

AUTO_SCENARIO = "auto"
_MAX_SERVER_CALLS = 8
_TEMPLATES = {call["type"]: call for call in ALL_SERVER_TOOL_CALLS if call["type"] != "function"}
_PLAIN_ANSWER = "Hello! I am an emulated agent. How can I help you today?"


def tool_scenario(tools: list[Any], files: list[tuple[str, str]]) -> Scenario:
    """The scenario for an agent with ``tools``; ``files`` are ``(id, name)`` of its vector stores' files."""
    server: list[dict[str, Any]] = []
    functions: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            continue
        if tool["type"] == "function":
            if isinstance(tool.get("function"), dict):
                name = tool["function"].get("name")
                functions.append({"type": "function", "function": {"name": name, "arguments": {}}})
        elif len(server) < _MAX_SERVER_CALLS:
            server.append(_server_call(tool, files))
    steps: list[Any] = []
    if server:
        steps.append(ToolCallsStep(tuple(server)))
    if functions:
        steps.append(ToolCallsStep(tuple(functions), client_side=True))
    steps.append(MessageStep(_answer(server, bool(functions), files)))
    kinds = ", ".join(sorted({t["type"] for t in server} | ({"function"} if functions else set()))) or "no tools"
    return Scenario(
        AUTO_SCENARIO,
        f"Follows the agent's tools ({kinds}).",
        tuple(steps),
        usage=(120 * len(steps) + 200 * len(server), 40 * len(steps)),
    )


def structured_answer(response_format: Any) -> Optional[str]:
    """The JSON text a run with this ``response_format`` answers, or None for free text."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return json.dumps({"answer": "Hello from the emulated agent."})
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return json.dumps(sample(schema if isinstance(schema, dict) else {"type": "object"}))
    return None


def _server_call(tool: dict[str, Any], files: list[tuple[str, str]]) -> dict[str, Any]:
    kind: str = tool["type"]
    found = tool.get(kind)
    definition: dict[str, Any] = found if isinstance(found, dict) else {}
    if kind == "code_interpreter":
        return copy.deepcopy(CODE_INTERPRETER_CALL)
    if kind == "file_search":
        call = copy.deepcopy(FILE_SEARCH_CALL)
        if files:
            call["file_search"]["results"] = [
                {"file_id": file_id, "file_name": name, "score": round(0.9 - 0.1 * i, 2)}
                for i, (file_id, name) in enumerate(files[:3])
            ]
        return call
    if kind == "openapi":
        operation = _first_operation(definition.get("spec"))
        name = f"{definition.get('name') or 'openapi'}_{operation}"
        return {"type": "openapi", "openapi": {"name": name, "arguments": "{}", "output": '{"result": "ok"}'}}
    if kind == "connected_agent":
        call = copy.deepcopy(_TEMPLATES["connected_agent"])
        call["connected_agent"]["name"] = definition.get("name") or "connected_agent"
        call["connected_agent"]["assistant_id"] = definition.get("id") or call["connected_agent"]["assistant_id"]
        return call
    if kind == "azure_function":
        call = copy.deepcopy(_TEMPLATES["azure_function"])
        function = definition.get("function")
        call["azure_function"]["name"] = (function.get("name") if isinstance(function, dict) else None) or "function"
        return call
    if kind in _TEMPLATES:
        return copy.deepcopy(_TEMPLATES[kind])
    return {"type": kind, kind: {"output": "done"}}


def _first_operation(spec: Any) -> str:
    paths = spec.get("paths") if isinstance(spec, dict) else None
    for path in (paths or {}).values():
        for operation in (path or {}).values() if isinstance(path, dict) else ():
            if isinstance(operation, dict) and operation.get("operationId"):
                return str(operation["operationId"])
    return "call"


def _answer(server: list[dict[str, Any]], functions: bool, files: list[tuple[str, str]]) -> str:
    parts: list[str] = []
    kinds = [call["type"] for call in server]
    if "file_search" in kinds:
        parts.append(f"According to {files[0][1] if files else 'the documents'}, here is the answer.")
    if "code_interpreter" in kinds:
        parts.append("I ran the code: 2 + 2 = 4.")
    other = [k for k in kinds if k not in ("file_search", "code_interpreter")]
    if other:
        parts.append(f"I used {', '.join(other)}.")
    if functions:
        parts.append("Here is what I found: {outputs}")
    return " ".join(parts) or _PLAIN_ANSWER
