"""Agent Service messages, instructions and tools in the GenAI conventions' JSON formats (opt-in content).

Formats (``gen-ai-input-messages.json``, ``gen-ai-output-messages.json``, ``gen-ai-system-instructions.json``,
``gen-ai-tool-definitions.json`` of the development registry):

* a message is ``{"role": ..., "parts": [...]}``; output messages also carry ``finish_reason`` (deprecated in the
  newest schema in favour of ``gen_ai.response.finish_reasons``, which we set too, but still required by
  backends that validate against the previous schema, Arize Phoenix among them);
* parts: ``{"type": "text", "content": ...}`` (classic ``text``, the Responses API's ``input_text`` /
  ``output_text``); an uploaded file ``{"type": "file", "modality": "image" | "document", "file_id": ...}``
  (classic ``image_file``, ``input_image`` / ``input_file`` with ``file_id``); a URL ``{"type": "uri",
  "modality": ..., "uri": ...}`` (classic ``image_url``, ``input_image.image_url``, ``input_file.file_url``);
  inline data ``{"type": "blob", "modality": ..., "mime_type": ..., "content": <base64>}`` (``data:`` URLs,
  ``input_audio``); a function call ``{"type": "tool_call", "id", "name", "arguments"}``; its output
  ``{"type": "tool_call_response", "id", "response"}`` (arguments and responses as JSON values where the text
  parses: the conventions want objects); a service-side tool call ``{"type": "server_tool_call", "id", "name",
  "server_tool_call": {...}}``; any other content block ``{"type": <its type>}`` (the generic part);
* system instructions are a list of text parts; tool definitions ``{"type": "function", "name", "description",
  "parameters"}`` for functions and ``{"type": <type>, "name": <name or type>}`` for the service's tools.

Inputs are the service's wire shapes (both SDK generations' models are mappings of them), the SDK's request
models (``ThreadMessageOptions``, ``MessageInputTextBlock``, ...), which are mappings too, or the ``openai``
package's models (read through ``model_dump``). Only called when content
capture is on; nothing here raises on a malformed value (it is skipped).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional

from .attributes import ToolCall, field, plain, text_field

Message = dict[str, Any]


def system_instructions(*texts: Any) -> Optional[list[dict[str, Any]]]:
    """gen_ai.system_instructions: one text part per non-empty text."""
    parts: list[dict[str, Any]] = [{"type": "text", "content": t} for t in texts if isinstance(t, str) and t]
    return parts or None


def parts(content: Any) -> list[dict[str, Any]]:
    """A message's content (a string, or a list of content blocks, service or request shape) as parts."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    if not isinstance(content, (list, tuple)):
        return []
    return [p for p in map(_part, content) if p is not None]


def _part(block: Any) -> Optional[dict[str, Any]]:
    if isinstance(block, str):
        return {"type": "text", "content": block}
    if not isinstance(block, Mapping):
        block = _as_mapping(block)  # the openai package's content models (pydantic)
        if block is None:
            return None
    kind = text_field(block, "type") or "text"
    if kind in _TEXT_PARTS:
        text = field(block, "text")
        if isinstance(text, Mapping):  # service shape: {"text": {"value": ..., "annotations": [...]}}
            text = field(text, "value")
        return {"type": "text", "content": text} if isinstance(text, str) else None
    if kind == "refusal":
        refusal = field(block, "refusal")
        return {"type": "refusal", "content": refusal} if isinstance(refusal, str) else {"type": kind}
    if kind == "image_file":  # classic: an uploaded image
        file_id = text_field(field(block, "image_file"), "file_id")
        return {"type": "file", "modality": "image", "file_id": file_id} if file_id else {"type": kind}
    if kind == "image_url":  # classic: an image by URL
        url = field(field(block, "image_url"), "url")
        return reference_part(url, None, "image") or {"type": kind}
    if kind == "input_image":  # Responses API: image_url (a URL or a data URL) or file_id
        url = field(block, "image_url")
        return reference_part(url, text_field(block, "file_id"), "image") or {"type": kind}
    if kind == "input_file":  # Responses API: file_id, file_url or file_data (a data URL)
        url = field(block, "file_url") or field(block, "file_data")
        return reference_part(url, text_field(block, "file_id"), "document") or {"type": kind}
    if kind == "input_audio":
        audio = field(block, "input_audio")
        data, audio_format = field(audio, "data"), text_field(audio, "format")
        if isinstance(data, str) and data:
            part = {"type": "blob", "modality": "audio", "content": data}
            return {**part, "mime_type": f"audio/{audio_format}"} if audio_format else part
        return {"type": kind}
    return {"type": kind}


#: Text content blocks: classic ``text``, the Responses API's ``input_text`` / ``output_text``.
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


def reference_part(url: Any, file_id: Optional[str], modality: str) -> Optional[dict[str, Any]]:
    """A file or URL given to the model, as the conventions' part: ``blob`` for a ``data:`` URL (its bytes,
    base64, and MIME type), ``uri`` for any other URL, ``file`` for an uploaded file's id; None when neither."""
    if isinstance(url, str) and url:
        if url.startswith("data:"):
            header, _, data = url.partition(",")
            mime_type = header[5:].split(";", 1)[0] or None
            part: dict[str, Any] = {"type": "blob", "modality": modality, "content": data}
            return {**part, "mime_type": mime_type} if mime_type else part
        return {"type": "uri", "modality": modality, "uri": url}
    if file_id:
        return {"type": "file", "modality": modality, "file_id": file_id}
    return None


def _as_mapping(model: Any) -> Optional[Mapping[str, Any]]:
    dump = getattr(model, "model_dump", None)
    if not callable(dump):
        return None
    try:
        value = dump(mode="json", exclude_none=True)
    except Exception:  # noqa: BLE001 - an unreadable model is skipped
        return None
    return value if isinstance(value, Mapping) else None


def message(role: Any, content: Any) -> Optional[Message]:
    """One message, or None when it has no recordable content."""
    found = parts(content)
    if not found:
        return None
    return {"role": role if isinstance(role, str) and role else "user", "parts": found}


def input_messages(messages: Any) -> Optional[list[Message]]:
    """gen_ai.input.messages from messages (thread messages, ``additional_messages``, a new thread's messages)."""
    if not isinstance(messages, Iterable) or isinstance(messages, (str, bytes, Mapping)):
        return None
    out = []
    for item in messages:
        converted = message(text_field(item, "role"), field(item, "content"))
        if converted is not None:
            out.append(converted)
    return out or None


def output_messages(messages: Iterable[Any], finish_reason: str = "stop") -> Optional[list[Message]]:
    """gen_ai.output.messages from the assistant messages a run created (service ``ThreadMessage`` shape)."""
    out = []
    for item in messages:
        converted = message(text_field(item, "role") or "assistant", field(item, "content"))
        if converted is not None:
            out.append({**converted, "finish_reason": finish_reason})
    return out or None


def tool_call_part(call: ToolCall) -> dict[str, Any]:
    """The model's request for a tool: ``tool_call`` for the app's functions, ``server_tool_call`` for tools
    the service runs itself."""
    if call.raw_type == "function":
        return {"type": "tool_call", "id": call.id, "name": call.name, "arguments": json_value(call.arguments)}
    details: dict[str, Any] = {"type": call.raw_type}
    if call.arguments is not None:
        details["arguments"] = json_value(call.arguments)
    return {"type": "server_tool_call", "id": call.id, "name": call.name, "server_tool_call": details}


def tool_calls_message(calls: Iterable[ToolCall]) -> Optional[Message]:
    """The assistant turn of a ``tool_calls`` step: the tool calls the model asked for."""
    found = [tool_call_part(c) for c in calls]
    return {"role": "assistant", "parts": found, "finish_reason": "tool_call"} if found else None


def tool_results_message(calls: Iterable[tuple[ToolCall, Any]]) -> Optional[Message]:
    """The tool turn that answered a ``tool_calls`` step: each call's result (when known)."""
    found = []
    for call, result in calls:
        if result is None:
            continue
        if call.raw_type == "function":
            found.append({"type": "tool_call_response", "id": call.id, "response": json_value(result)})
        else:
            response = {"type": call.raw_type, "output": json_value(result)}
            found.append({"type": "server_tool_call_response", "id": call.id, "server_tool_call_response": response})
    return {"role": "tool", "parts": found} if found else None


def tool_definitions(tools: Any) -> Optional[list[dict[str, Any]]]:
    """gen_ai.tool.definitions from an agent's, a run's or a response's ``tools``: classic tools keep their details
    under their type (``{"type": "function", "function": {...}}``), the Responses API's are flat (``{"type":
    "function", "name": ..., "parameters": ...}``, ``{"type": "mcp", "server_label": ...}``)."""
    if not isinstance(tools, (list, tuple)):
        return None
    out = []
    for tool in tools:
        kind = text_field(tool, "type")
        if kind is None:
            continue
        details = field(tool, kind)
        if not isinstance(details, Mapping):
            details = tool
        if kind == "function":
            function: dict[str, Any] = {"type": "function", "name": text_field(details, "name") or "function"}
            description = text_field(details, "description")
            parameters = plain(field(details, "parameters"))
            if description:
                function["description"] = description
            if isinstance(parameters, dict):
                function["parameters"] = parameters
            out.append(function)
        else:
            name = text_field(details, "name") or text_field(details, "server_label") or kind
            out.append({"type": kind, "name": name})
    return out or None


def json_value(value: Any) -> Any:
    """Tool arguments and results arrive as JSON text; the conventions ask for them as objects: the JSON value
    when the text parses, else the text itself."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return plain(value)
