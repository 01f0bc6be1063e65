"""Maps Responses API objects (new Foundry agents) to the same attributes classic runs carry.

Requests are the keyword arguments of ``responses.create``; responses, output items and stream events are the
``openai`` package's models (pydantic) or plain dicts: :func:`get` reads either, never raising. Where a field means
what a classic run's field meant, the attribute is the classic one (see docs/migration.md, "Migrating to the new Foundry
agents"): the conversation is ``gen_ai.conversation.id``, the response id ``azure.ai.agents.run.id``, its status
``azure.ai.agents.run.status``, its model and settings ``gen_ai.request.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable, Optional

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from ..core import attributes as attrs
from ..core import conventions as conv

AGENT_VERSION = conv.AGENT_VERSION
TOOL_STATUS = conv.TOOL_STATUS
#: Function calls a response asks the app to answer (``function_call`` output items); the classic name.
REQUIRED_TOOL_CALLS = attrs.REQUIRED_TOOL_CALLS

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete"})
ERROR_STATUSES = frozenset({"failed", "incomplete"})

#: Output item types the app itself executes and answers in its next request: not server-side tool spans.
CLIENT_SIDE_ITEMS = frozenset(
    {"function_call", "custom_tool_call", "computer_call", "local_shell_call", "shell_call", "apply_patch_call"}
)


_NOT_A_MODEL = object()


def get(obj: Any, key: str) -> Any:
    """``obj.key`` for a model, ``obj[key]`` for a mapping; None when absent or unreadable. (Models first: this
    runs a few dozen times per invocation, and ``isinstance(x, Mapping)`` is an ABC check.)"""
    if obj is None:
        return None
    try:
        if type(obj) is dict:
            return obj.get(key)
        extra: Any = getattr(obj, "__pydantic_extra__", _NOT_A_MODEL)
        if extra is not _NOT_A_MODEL:
            # A pydantic model (the openai package's): its fields and extra fields read directly, as its own
            # ``__getattr__`` would. Through ``getattr`` an absent field (most of those read here are) costs a
            # raised and caught AttributeError plus the Mapping check, ~3.5 us each.
            fields = obj.__dict__
            if key in fields:
                return fields[key]
            if extra and key in extra:
                return extra[key]
            if not hasattr(type(obj), key):
                return None
        value = getattr(obj, key, None)
        if value is None and isinstance(obj, Mapping):
            return obj.get(key)
        return value
    except Exception:  # a broken model must not break us
        return None


def text(obj: Any, key: str) -> Optional[str]:
    return attrs.bounded(get(obj, key))


def integer(obj: Any, key: str) -> Optional[int]:
    value = get(obj, key)
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63 else None


def agent_reference(kwargs: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The agent reference of a ``responses.create`` call (``extra_body={"agent_reference": ...}``, or the early
    2.0 betas' key ``agent``); None for a plain model call."""
    body = kwargs.get("extra_body")
    if not isinstance(body, Mapping):
        return None
    reference = body.get("agent_reference")
    if reference is None:
        reference = body.get("agent")
    if isinstance(reference, str):  # tolerated: a bare agent name
        return {"name": reference}
    return reference if isinstance(reference, Mapping) else None


def conversation_id(value: Any) -> Optional[str]:
    """A conversation given as an id or as ``{"id": ...}`` (request) / a ``Conversation`` model (response)."""
    if isinstance(value, str):
        return attrs.bounded(value)
    return text(value, "id")


_SERVERS: dict[str, dict[str, Any]] = {}  # base URL -> its server.* attributes (an app has a handful of clients)


def server_address(base_url: Any) -> dict[str, Any]:
    """server.address / server.port from the OpenAI client's base URL (parsed once per URL)."""
    if base_url is None:
        return {}
    url = str(base_url)
    known = _SERVERS.get(url)
    if known is None:
        known = attrs.server_address(url)
        if len(_SERVERS) < 64:
            _SERVERS[url] = known
    return known


def request_attributes(kwargs: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes known before the service answers: the same set as a classic run's create."""
    conversation = conversation_id(kwargs.get("conversation"))
    return attrs.without_none(
        {
            gen_ai.GEN_AI_OPERATION_NAME: attrs.INVOKE_AGENT,
            gen_ai.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_NAME,
            gen_ai.GEN_AI_SYSTEM: attrs.SYSTEM,
            gen_ai.GEN_AI_AGENT_NAME: text(reference, "name"),
            AGENT_VERSION: _version(get(reference, "version")),
            gen_ai.GEN_AI_AGENT_ID: text(reference, "id"),
            gen_ai.GEN_AI_CONVERSATION_ID: conversation,
            gen_ai.GEN_AI_REQUEST_MODEL: attrs.bounded(kwargs.get("model")),
            gen_ai.GEN_AI_REQUEST_TEMPERATURE: attrs.number(kwargs.get("temperature")),
            gen_ai.GEN_AI_REQUEST_TOP_P: attrs.number(kwargs.get("top_p")),
            gen_ai.GEN_AI_REQUEST_MAX_TOKENS: _int(kwargs.get("max_output_tokens")),
        }
    )


def response_attributes(response: Any) -> dict[str, Any]:
    """What a response snapshot reveals: ids, model, usage, conversation, the agent's version."""
    response_id = text(response, "id")
    usage = get(response, "usage")
    conversation = conversation_id(get(response, "conversation"))
    reference = get(response, "agent_reference") or get(response, "agent")
    return attrs.without_none(
        {
            # As on classic run spans: the id is azure.ai.agents.run.id and the model gen_ai.request.model (no
            # gen_ai.response.id / .model on invoke_agent: see attributes.run_attributes).
            attrs.RUN_ID: response_id,
            # The effective settings, as classic runs take them from the run object (the agent's unless overridden).
            gen_ai.GEN_AI_REQUEST_MODEL: text(response, "model"),
            gen_ai.GEN_AI_REQUEST_TEMPERATURE: attrs.number(get(response, "temperature")),
            gen_ai.GEN_AI_REQUEST_TOP_P: attrs.number(get(response, "top_p")),
            gen_ai.GEN_AI_REQUEST_MAX_TOKENS: _int(get(response, "max_output_tokens")),
            gen_ai.GEN_AI_USAGE_INPUT_TOKENS: integer(usage, "input_tokens"),
            gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: integer(usage, "output_tokens"),
            gen_ai.GEN_AI_CONVERSATION_ID: conversation,
            AGENT_VERSION: _version(get(reference, "version")),
        }
    )


def error_of(response: Any, status: Optional[str]) -> Optional[tuple[str, Optional[str]]]:
    """(error.type, description) for a response that ended badly: its ``error.code``, else the incomplete reason,
    else the status. A cancelled response is not an error."""
    if status not in ERROR_STATUSES:
        return None
    error = get(response, "error")
    code, message = text(error, "code"), text(error, "message")
    if code:
        return code, message
    if status == "incomplete":
        reason = text(get(response, "incomplete_details"), "reason")
        return reason or status, message or (f"response incomplete: {reason}" if reason else None)
    return status, message  # type: ignore[return-value]


# --- output items -------------------------------------------------------------------------------------------
def is_server_tool(item: Any) -> bool:
    """A server-side tool item (``code_interpreter_call``, ``file_search_call``, ``mcp_call``, types not invented
    yet ending in ``_call``); function calls and other client-side calls are the app's."""
    item_type = get(item, "type")
    return isinstance(item_type, str) and item_type.endswith("_call") and item_type not in CLIENT_SIDE_ITEMS


def tool_call(item: Any, with_content: bool) -> attrs.ToolCall:
    """A server-side tool item as the classic :class:`~.attributes.ToolCall` (same span shape and types)."""
    item_type = text(item, "type") or "unknown_call"
    raw_type = item_type[: -len("_call")] if item_type.endswith("_call") else item_type
    arguments = result = None
    if with_content:
        arguments = _first(item, ("arguments", "code", "queries", "action", "input", "query"))
        result = _first(item, ("output", "outputs", "results", "result"))
    return attrs.ToolCall(
        id=text(item, "id") or text(item, "call_id"),
        raw_type=raw_type,
        name=text(item, "name") or raw_type,
        arguments=arguments,
        result=result,
        server_label=text(item, "server_label"),
    )


def tool_error(item: Any) -> Optional[tuple[str, Optional[str]]]:
    status = text(item, "status")
    error = get(item, "error")
    if error is not None or status in ("failed", "incomplete"):
        code = text(error, "code") or (error if isinstance(error, str) else None)
        return attrs.bounded(code) or status or "error", text(error, "message")
    return None


def function_calls(output: Any) -> list[Any]:
    """The ``function_call`` items of a response's output: calls the app must answer."""
    if not isinstance(output, list):
        return []
    return [item for item in output if get(item, "type") == "function_call"]


def answered_call_ids(given: Any) -> list[str]:
    """Call ids of the ``function_call_output`` items in a request's ``input``."""
    if not isinstance(given, (list, tuple)):
        return []
    ids = []
    for item in given:
        if get(item, "type") == "function_call_output":
            call_id = text(item, "call_id")
            if call_id:
                ids.append(call_id)
    return ids


# --- content (only read when capture is on) -------------------------------------------------------------------
def input_messages(given: Any) -> Optional[list[dict[str, Any]]]:
    """gen_ai.input.messages from ``input``: a string, or a list of messages and function call outputs."""
    if isinstance(given, str):
        return [{"role": "user", "parts": [{"type": "text", "content": given}]}]
    if not isinstance(given, (list, tuple)):
        return None
    messages = []
    for item in given:
        kind = get(item, "type")
        if kind == "function_call_output":
            part = {"type": "tool_call_response", "id": get(item, "call_id"), "response": plain(get(item, "output"))}
            messages.append({"role": "tool", "parts": [part]})
        elif kind in (None, "message"):
            messages.append({"role": text(item, "role") or "user", "parts": _parts(get(item, "content"))})
    return messages or None


def output_messages(output: Any, status: Optional[str]) -> Optional[list[dict[str, Any]]]:
    """gen_ai.output.messages from a finished response's output: text and the function calls it asks for."""
    if not isinstance(output, list):
        return None
    parts: list[dict[str, Any]] = []
    for item in output:
        kind = get(item, "type")
        if kind == "message":
            parts += _parts(get(item, "content"))
        elif kind == "function_call":
            call = {"type": "tool_call", "id": get(item, "call_id"), "name": get(item, "name")}
            parts.append({**call, "arguments": get(item, "arguments")})
    if not parts:
        return None
    finish: Optional[str] = "tool_call"
    if not any(p["type"] == "tool_call" for p in parts):
        finish = "stop" if status == "completed" else status
    return [{"role": "assistant", "parts": parts, "finish_reason": finish}]


def plain(value: Any, depth: int = 0) -> Any:
    """Models (also nested in lists and dicts) as plain JSON-able values (content capture only). Depth-bounded."""
    if depth > 8:
        return str(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, Mapping):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    return value


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for part in content if isinstance(content, (list, tuple)) else []:
        value = get(part, "text")
        if isinstance(value, str):
            parts.append({"type": "text", "content": value})
        else:
            parts.append({"type": text(part, "type") or "unknown"})
    return parts


def _first(item: Any, keys: Iterable[str]) -> Any:
    for key in keys:
        value = get(item, key)
        if value not in (None, "", []):
            return plain(value)
    return None


def _version(value: Any) -> Optional[str]:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return attrs.bounded(value)


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63 else None

