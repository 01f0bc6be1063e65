"""The Responses API's server-sent events for a played response (``"stream": true``).

``response.created``, ``response.in_progress``, then per output item ``response.output_item.added`` (status
``in_progress``), the item's own events and ``response.output_item.done``, and finally ``response.completed`` /
``response.failed`` / ``response.incomplete`` with the whole response. The items' own events are those of the
OpenAI protocol: text parts and deltas for messages, ``response.function_call_arguments.delta`` / ``.done`` for
function calls (the added item has empty ``arguments``, as the service sends it), ``*.in_progress`` ...
``*.completed`` for server tools (code interpreter with its code deltas, file search, web search, image
generation, MCP calls and tool listings). Other items (``workflow_action``, Foundry tools' ``*_call``) have only
their added and done events.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .rest import Response

__all__ = ["stream"]

#: Item type -> the stage events between its added and done events (after "response.").
_STAGES: dict[str, tuple[str, ...]] = {
    "code_interpreter_call": (
        "code_interpreter_call.in_progress",
        "code_interpreter_call.interpreting",
        "code_interpreter_call.completed",
    ),
    "file_search_call": ("file_search_call.in_progress", "file_search_call.searching", "file_search_call.completed"),
    "web_search_call": ("web_search_call.in_progress", "web_search_call.searching", "web_search_call.completed"),
    "image_generation_call": (
        "image_generation_call.in_progress",
        "image_generation_call.generating",
        "image_generation_call.completed",
    ),
    "mcp_call": ("mcp_call.in_progress", "mcp_call.completed"),
    "mcp_list_tools": ("mcp_list_tools.in_progress", "mcp_list_tools.completed"),
}


def stream(final: dict[str, Any]) -> Response:
    """The server-sent events of ``final`` (already played out)."""
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
        if "status" in item:
            added["status"] = "in_progress"
        if item["type"] == "message":
            added["content"] = []
        elif item["type"] == "function_call":
            added["arguments"] = ""
        elif item["type"] == "code_interpreter_call":
            added.update(code="", outputs=None)
        emit("response.output_item.added", output_index=index, item=added)
        at = {"item_id": item.get("id"), "output_index": index}
        if item["type"] == "message":
            _text_events(emit, item, index)
        elif item["type"] == "function_call":
            emit("response.function_call_arguments.delta", **at, delta=item["arguments"])
            emit("response.function_call_arguments.done", **at, arguments=item["arguments"], name=item.get("name"))
        for stage in _STAGES.get(item["type"], ()):
            emit("response." + stage, **at)
            if stage == "code_interpreter_call.in_progress":
                emit("response.code_interpreter_call_code.delta", **at, delta=item.get("code") or "")
                emit("response.code_interpreter_call_code.done", **at, code=item.get("code") or "")
        emit("response.output_item.done", output_index=index, item=item)
    terminal = {"completed": "response.completed", "failed": "response.failed"}.get(final["status"])
    emit(terminal or "response.incomplete", response=final)
    return Response(200, {"Content-Type": "text/event-stream"}, iter(frames))


def _text_events(emit: Any, item: dict[str, Any], index: int) -> None:
    for part_index, part in enumerate(item.get("content") or []):
        where = {"item_id": item["id"], "output_index": index, "content_index": part_index}
        emit("response.content_part.added", **where, part={**part, "text": "", "annotations": []})
        words = str(part.get("text") or "").split(" ")
        for delta in [w + " " for w in words[:-1]] + words[-1:]:
            emit("response.output_text.delta", **where, delta=delta, logprobs=[])
        emit("response.output_text.done", **where, text=part.get("text") or "", logprobs=[])
        emit("response.content_part.done", **where, part=part)
