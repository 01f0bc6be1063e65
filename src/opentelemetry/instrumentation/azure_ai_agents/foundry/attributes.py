"""Maps Responses API objects (new Foundry agents) to the same attributes classic runs carry.

Requests are the keyword arguments of ``responses.create``; responses, output items and stream events are the
``openai`` package's models (pydantic) or plain dicts: :func:`get` reads either, never raising. Where a field means
what a classic run's field meant, the attribute is the classic one (see docs/migration.md, "Migrating to the new Foundry
agents"): the conversation is ``gen_ai.conversation.id``, the response id ``azure.ai.agents.run.id``, its status
``azure.ai.agents.run.status``, its model and settings ``gen_ai.request.*``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Optional

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from ..core import attributes as attrs
from ..core import conventions as conv
from ..core import messages as core_messages

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


def request_attributes(
    kwargs: Mapping[str, Any], reference: Optional[Mapping[str, Any]], agent_name: Optional[str]
) -> dict[str, Any]:
    """Attributes known before the service answers: the same set as a classic run's create, plus the response the
    request continues and the output type it asks for. ``agent_name`` is the reference's, else the agent
    endpoint's (from the client's URL)."""
    out = dict(_INVOKE_IDENTITY)
    if reference is not None:
        agent_name = text(reference, "name") or agent_name
        version = _version(get(reference, "version"))
        if version:
            out[AGENT_VERSION] = version
        agent_id = text(reference, "id")
        if agent_id:
            out[gen_ai.GEN_AI_AGENT_ID] = agent_id
    if agent_name:
        out[gen_ai.GEN_AI_AGENT_NAME] = agent_name
    for key, value in kwargs.items():
        name = _REQUEST_KEYS.get(key)
        if name is None or value is None:
            continue
        if name == gen_ai.GEN_AI_CONVERSATION_ID:
            found: Any = conversation_id(value)
        elif name == conv.OUTPUT_TYPE:
            found = output_type(value)
        elif name == gen_ai.GEN_AI_REQUEST_MAX_TOKENS:
            found = _int(value)
        elif name in (gen_ai.GEN_AI_REQUEST_TEMPERATURE, gen_ai.GEN_AI_REQUEST_TOP_P):
            found = attrs.number(value)
        else:
            found = attrs.bounded(value)
        if found is not None:
            out[name] = found
    return out


_INVOKE_IDENTITY = attrs.identity(attrs.INVOKE_AGENT)
#: The request keywords that say something before the service answers, and the attribute each sets.
_REQUEST_KEYS = {
    "conversation": gen_ai.GEN_AI_CONVERSATION_ID,
    "model": gen_ai.GEN_AI_REQUEST_MODEL,
    "temperature": gen_ai.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": gen_ai.GEN_AI_REQUEST_TOP_P,
    "max_output_tokens": gen_ai.GEN_AI_REQUEST_MAX_TOKENS,
    "previous_response_id": conv.PREVIOUS_RESPONSE_ID,
    "text": conv.OUTPUT_TYPE,
}


def output_type(text_config: Any) -> Optional[str]:
    """gen_ai.output.type from a ``text`` setting (``{"format": {"type": "json_schema", ...}}``): ``json`` for
    ``json_schema`` / ``json_object``, ``text`` for ``text``."""
    return attrs.output_type(get(get(text_config, "format"), "type"))


def json_output_type(text_config: Any) -> Optional[str]:
    """gen_ai.output.type from a response's (or an agent's) ``text`` setting: only a JSON format says something
    (every response echoes the default ``text`` format, asked for or not)."""
    found = output_type(text_config)
    return found if found == conv.OUTPUT_TYPE_JSON else None


def echoed_reference(response: Any) -> Any:
    """The agent reference a response echoes (``agent_reference``; the early betas' ``agent``)."""
    return get(response, "agent_reference") or get(response, "agent")


def reader(obj: Any) -> Callable[[str], Any]:
    """A reader of ``obj``'s fields, for code that reads many of one object's fields (a finished response): a dict's
    ``get``, a pydantic model's field and extra dictionaries read directly; anything else through :func:`get`.
    Fields only (a property reads as None): what is read through it is fields."""
    if type(obj) is dict:
        return obj.get
    extra: Any = getattr(obj, "__pydantic_extra__", _NOT_A_MODEL)
    fields = getattr(obj, "__dict__", None)
    if extra is _NOT_A_MODEL or type(fields) is not dict:
        return lambda key: get(obj, key)
    if not extra:
        return fields.get

    def read(key: str) -> Any:
        value = fields.get(key)
        return extra.get(key) if value is None and key not in fields else value

    return read


def response_attributes(response: Any) -> dict[str, Any]:
    """What a response snapshot reveals: ids, model, settings, usage, conversation, the agent's version.

    As on classic run spans: the id is ``azure.ai.agents.run.id`` and the model ``gen_ai.request.model`` (no
    ``gen_ai.response.id`` / ``.model`` on ``invoke_agent``), and the settings are the effective ones (the agent's
    unless the request overrode them). Runs once per invocation: written for speed."""
    read = reader(response)
    out: dict[str, Any] = {}
    value = read("id")
    if type(value) is str and value:
        out[attrs.RUN_ID] = value if len(value) <= attrs.MAX_TEXT else attrs.bounded(value)
    value = read("model")
    if type(value) is str and value:
        out[gen_ai.GEN_AI_REQUEST_MODEL] = value if len(value) <= attrs.MAX_TEXT else attrs.bounded(value)
    for key, name in _NUMBERS:
        value = read(key)
        if value is not None:
            number = value if type(value) is float and math.isfinite(value) else attrs.number(value)
            if number is not None:
                out[name] = number
    value = _int(read("max_output_tokens"))
    if value is not None:
        out[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] = value
    usage = read("usage")
    if usage is not None:
        read_usage = reader(usage)
        for key, name in _USAGE:
            value = read_usage(key)
            if type(value) is int and abs(value) < 2**63:
                out[name] = value
    value = read("conversation")
    if value is not None:
        conversation = conversation_id(value)
        if conversation:
            out[gen_ai.GEN_AI_CONVERSATION_ID] = conversation
    reference = read("agent_reference") or read("agent")
    if reference is not None:
        version = _version(get(reference, "version"))
        if version:
            out[AGENT_VERSION] = version
    return out


_NUMBERS = (("temperature", gen_ai.GEN_AI_REQUEST_TEMPERATURE), ("top_p", gen_ai.GEN_AI_REQUEST_TOP_P))
_USAGE = (("input_tokens", gen_ai.GEN_AI_USAGE_INPUT_TOKENS), ("output_tokens", gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS))


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
def tool_call(item: Any, with_content: bool, outputs: Optional[Mapping[str, Any]] = None) -> attrs.ToolCall:
    """A server-side tool item as the classic :class:`~.attributes.ToolCall` (same span shape and types); its
    result from the item, else from its ``T_call_output`` item (``outputs``, by call id)."""
    item_type = text(item, "type") or "unknown_call"
    raw_type = item_type[: -len("_call")] if item_type.endswith("_call") else item_type
    arguments = result = None
    if with_content:
        arguments = _first(item, ("arguments", "code", "queries", "action", "input", "query"))
        result = _first(item, ("output", "outputs", "results", "result"))
        if result is None and outputs:
            call_id = text(item, "call_id")
            result = plain(outputs.get(call_id)) if call_id else None
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


def scan(items: Any) -> tuple[list[Any], bool, list[int], dict[str, Any]]:
    """One pass over a finished response's output items: the ``function_call`` items (the app answers them),
    whether the response asks the app for anything (a function, a computer action, an MCP approval), the indices
    of the server-side tool items (``execute_tool`` spans), and the outputs Foundry's own tools report in items of
    their own (``T_call_output``, by ``call_id``)."""
    calls: list[Any] = []
    tools: list[int] = []
    outputs: dict[str, Any] = {}
    asks = False
    if not isinstance(items, list):
        return calls, asks, tools, outputs
    for index, item in enumerate(items):
        kind = get(item, "type")
        if not isinstance(kind, str):
            continue
        if kind == "function_call":
            calls.append(item)
            asks = True
        elif kind in CLIENT_SIDE_ITEMS or kind == "mcp_approval_request":
            asks = True
        elif kind.endswith("_call"):
            tools.append(index)
        elif kind.endswith("_call_output"):
            call_id = text(item, "call_id")
            if call_id:
                outputs[call_id] = get(item, "output")
    return calls, asks, tools, outputs


def finish_reason(asks: bool, status: Optional[str], response: Any) -> Optional[str]:
    """Why the model stopped, in the conventions' words: ``tool_call`` when the response asks the app for tool
    calls (functions, computer actions, MCP approvals), ``stop`` when it completed, ``length`` /
    ``content_filter`` for an incomplete response cut for that reason, ``error`` when it failed, else the status."""
    if asks:
        return "tool_call"
    if status == "completed":
        return "stop"
    if status == "failed":
        return "error"
    if status == "incomplete":
        reason = text(get(response, "incomplete_details"), "reason")
        return {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason or "", status)
    return status


# --- content (only read when capture is on) -------------------------------------------------------------------
def input_messages(given: Any) -> Optional[list[dict[str, Any]]]:
    """gen_ai.input.messages from ``input`` or conversation items: a string, or a list of messages, function calls
    and their outputs (and the other items an app sends back: computer actions' outputs, MCP approvals)."""
    if isinstance(given, str):
        return [{"role": "user", "parts": [{"type": "text", "content": given}]}]
    if not isinstance(given, (list, tuple)):
        return None
    messages: list[dict[str, Any]] = []
    for item in given:
        kind = get(item, "type")
        if kind in (None, "message"):
            found = core_messages.parts(get(item, "content"))
            if found:
                messages.append({"role": text(item, "role") or "user", "parts": found})
        elif kind in ("function_call_output", "custom_tool_call_output", "computer_call_output"):
            output = core_messages.json_value(plain(get(item, "output")))
            part = {"type": "tool_call_response", "id": get(item, "call_id"), "response": output}
            messages.append({"role": "tool", "parts": [part]})
        elif kind == "function_call":  # the app replays a call it answers (history)
            messages.append({"role": "assistant", "parts": [_function_call_part(item)]})
        elif kind == "mcp_approval_response":
            part = {"type": kind, "id": get(item, "approval_request_id"), "approve": get(item, "approve")}
            messages.append({"role": "user", "parts": [part]})
    return messages or None


def output_messages(output: Any, finish: Optional[str]) -> Optional[list[dict[str, Any]]]:
    """gen_ai.output.messages from a finished response's output: text, and the function calls it asks for."""
    if not isinstance(output, list):
        return None
    parts: list[dict[str, Any]] = []
    for item in output:
        kind = get(item, "type")
        if kind == "message":
            parts += core_messages.parts(get(item, "content"))
        elif kind == "function_call":
            parts.append(_function_call_part(item))
    if not parts:
        return None
    return [{"role": "assistant", "parts": parts, "finish_reason": finish or "stop"}]


def _function_call_part(item: Any) -> dict[str, Any]:
    arguments = core_messages.json_value(get(item, "arguments"))
    return {"type": "tool_call", "id": get(item, "call_id"), "name": get(item, "name"), "arguments": arguments}


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

