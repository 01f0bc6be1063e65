"""Maps Agent Service objects (runs, run steps, tool calls) to semantic-convention attributes.

Every function takes the service's *wire* shape: a mapping keyed by REST field names. Both SDK generations'
models are ``MutableMapping`` views of the wire JSON, so ``run.get("assistant_id")`` works on an
``azure.ai.agents.models.ThreadRun``, an ``azure.ai.projects.models.ThreadRun``, a streamed event payload and a
plain dict alike. Nothing here trusts the payload's types: malformed values are skipped, never raised on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import urlsplit

from . import conventions as conv

# Names the core reads through this module (declared in ``conventions``).
EXECUTE_TOOL = conv.EXECUTE_TOOL
INVOKE_AGENT = conv.INVOKE_AGENT
MAX_PROMPT_TOKENS = conv.MAX_PROMPT_TOKENS
MCP_SERVER_LABEL = conv.MCP_SERVER_LABEL
PREVIOUS_STATUS = conv.PREVIOUS_STATUS
PROVIDER_NAME = conv.PROVIDER_NAME
REQUIRED_ACTION_TYPE = conv.REQUIRED_ACTION_TYPE
REQUIRED_TOOL_CALLS = conv.REQUIRED_TOOL_CALLS
RUN_ID = conv.RUN_ID
RUN_STATUS = conv.RUN_STATUS
RUN_STATUS_CHANGED_EVENT = conv.RUN_STATUS_CHANGED_EVENT
RUN_STEPS_DROPPED = conv.RUN_STEPS_DROPPED
RUN_STEPS_UNAVAILABLE = conv.RUN_STEPS_UNAVAILABLE
RUN_UNFINISHED = conv.RUN_UNFINISHED
STEP_ID = conv.STEP_ID
STEP_STATUS = conv.STEP_STATUS
STEP_TYPE = conv.STEP_TYPE
SYSTEM = conv.SYSTEM
TOOL_RAW_TYPE = conv.TOOL_RAW_TYPE

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
ERROR_STATUSES = frozenset({"failed", "expired", "incomplete"})

#: How the service's tool types map onto gen_ai.tool.type (function | extension | datastore): the app's own
#: functions are ``function``; the service's knowledge tools (retrieval / grounding over a data source) are
#: ``datastore``; action tools (code interpreter, OpenAPI, MCP, Azure Functions, connected agents, deep research)
#: and any type not listed, including types invented after this release, are agent-side ``extension``.
_TOOL_TYPE_CLASS = {
    "function": "function",
    "file_search": "datastore",
    "azure_ai_search": "datastore",
    "bing_grounding": "datastore",
    "bing_custom_search": "datastore",
    "sharepoint_grounding": "datastore",
    "fabric_dataagent": "datastore",
}


# --- safe access ------------------------------------------------------------------------------------------
def field(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping, else None. Never raises."""
    if isinstance(obj, Mapping):
        try:
            return obj.get(key)
        except Exception:  # a broken model must not break us
            return None
    return None


#: Service strings (ids, names, types, codes, messages) reach span names and attributes: they are cut here.
MAX_TEXT = 512
_INT64 = 2**63 - 1


def bounded(value: Any) -> Optional[str]:
    """A non-empty string, cut to :data:`MAX_TEXT` characters; anything else is None."""
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def text_field(obj: Any, key: str) -> Optional[str]:
    return bounded(field(obj, key))


def int_field(obj: Any, key: str) -> Optional[int]:
    """An integer attribute value: finite, within int64 (what exporters can encode), else None."""
    value = field(obj, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    result = int(value)
    return result if -_INT64 <= result <= _INT64 else None


def number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def seconds_to_ns(value: Any) -> Optional[int]:
    """Service timestamps are unix seconds; OpenTelemetry wants nanoseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    try:
        return int(value * 1_000_000_000)
    except (OverflowError, ValueError):
        return None


def without_none(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK keeps None-valued attributes passed at span start: drop them ourselves."""
    return {k: v for k, v in attributes.items() if v is not None}


# --- requests ---------------------------------------------------------------------------------------------
def server_address(endpoint: Any) -> dict[str, Any]:
    """server.address / server.port from a client's configured endpoint URL."""
    if not isinstance(endpoint, str) or not endpoint:
        return {}
    try:
        parts = urlsplit(endpoint if "//" in endpoint else "https://" + endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    if not parts.hostname:
        return {}
    return {conv.SERVER_ADDRESS: parts.hostname, conv.SERVER_PORT: port}


def identity(operation: str) -> dict[str, Any]:
    """The attributes every span of ours carries: the operation and who provides it."""
    return {conv.OPERATION_NAME: operation, conv.PROVIDER: conv.PROVIDER_NAME, conv.SYSTEM_ATTRIBUTE: conv.SYSTEM}


def run_request_attributes(request: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes known before the service answers: agent, thread, model and sampling parameters."""
    thread_id = _str(request.get("thread_id"))
    return without_none(
        {
            **identity(INVOKE_AGENT),
            conv.AGENT_ID: _str(request.get("assistant_id")),
            conv.CONVERSATION_ID: thread_id,
            **_settings(request),
        }
    )


def _settings(source: Any) -> dict[str, Any]:
    """Model and sampling settings, from a create request or a run object (same field names)."""
    return {
        conv.REQUEST_MODEL: text_field(source, "model"),
        conv.REQUEST_TEMPERATURE: number(field(source, "temperature")),
        conv.REQUEST_TOP_P: number(field(source, "top_p")),
        conv.REQUEST_MAX_TOKENS: int_field(source, "max_completion_tokens"),
        MAX_PROMPT_TOKENS: int_field(source, "max_prompt_tokens"),
        conv.OUTPUT_TYPE: output_type(field(source, "response_format")),
    }


def output_type(response_format: Any) -> Optional[str]:
    """gen_ai.output.type from ``response_format``: ``text`` -> text, ``json_object`` / ``json_schema`` ->
    json; ``auto``, ``none`` and anything else say nothing about the requested type."""
    kind = response_format if isinstance(response_format, str) else text_field(response_format, "type")
    if kind == "text":
        return conv.OUTPUT_TYPE_TEXT
    if kind in ("json_object", "json_schema"):
        return conv.OUTPUT_TYPE_JSON
    return None


def metadata_attributes(metadata: Any, allowed: Iterable[str]) -> dict[str, str]:
    """``azure.ai.agents.run.metadata.<key>`` for each allowed key present in a run's or agent's metadata.
    Nothing by default: metadata can hold user data."""
    if not isinstance(metadata, Mapping):
        return {}
    out = {}
    for key in allowed:
        value = bounded(field(metadata, key))
        if value is not None:
            out[conv.RUN_METADATA_PREFIX + key] = value
    return out


# --- runs -------------------------------------------------------------------------------------------------
def run_attributes(run: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes a run snapshot reveals: ids, model and settings (the run object carries the effective ones),
    usage. Status is handled by the tracker. No ``gen_ai.response.id`` / ``gen_ai.response.model``: the
    invoke_agent span of the conventions' Foundry refinement has neither (the run id is
    ``azure.ai.agents.run.id``; each ``chat`` span carries its model), and backends that find them there show
    them as the run's "output"."""
    usage = field(run, "usage")
    run_id = text_field(run, "id")
    return without_none(
        {
            RUN_ID: run_id,
            conv.CONVERSATION_ID: text_field(run, "thread_id"),
            conv.AGENT_ID: text_field(run, "assistant_id") or text_field(run, "agent_id"),
            **_settings(run),
            conv.USAGE_INPUT_TOKENS: int_field(usage, "prompt_tokens"),
            conv.USAGE_OUTPUT_TOKENS: int_field(usage, "completion_tokens"),
        }
    )


def run_error_type(run: Mapping[str, Any], status: str) -> Optional[tuple[str, Optional[str]]]:
    """(error.type, description) for a run that ended badly, else None. Cancelled is not an error."""
    if status not in ERROR_STATUSES:
        return None
    last_error = field(run, "last_error")
    code = text_field(last_error, "code")
    message = text_field(last_error, "message")
    if code:
        return code, message
    if status == "incomplete":
        reason = text_field(field(run, "incomplete_details"), "reason")
        return (reason or status), message or (f"run incomplete: {reason}" if reason else None)
    return status, message


def finish_reason(obj: Mapping[str, Any], status: Optional[str]) -> Optional[str]:
    """Why a run or a step stopped, in the conventions' vocabulary: ``stop``, ``tool_call`` (a step that asked
    for tools), ``length`` / ``content_filter`` (incomplete for that reason), ``error``; other terminal
    statuses (``cancelled``, ``expired``) as themselves."""
    if status == "completed":
        return "tool_call" if text_field(obj, "type") == "tool_calls" else "stop"
    if status == "incomplete":
        reason = text_field(field(obj, "incomplete_details"), "reason") or ""
        if reason.startswith("max_") or "token" in reason:
            return "length"
        return "content_filter" if "content_filter" in reason else (reason or "length")
    if status == "failed":
        return "error"
    return status if status in ("cancelled", "expired") else None


def required_action_type(run: Mapping[str, Any]) -> Optional[str]:
    """``submit_tool_outputs``, ``submit_tool_approval`` (MCP approvals) or a type not invented yet."""
    return text_field(field(run, "required_action"), "type")


def required_tool_calls(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The tool calls a ``requires_action`` run waits for, whatever the action type: the calls sit under the
    key named by the type (``{"type": T, T: {"tool_calls": [...]}}``)."""
    action = field(run, "required_action")
    action_type = text_field(action, "type") or "submit_tool_outputs"
    calls = field(field(action, action_type), "tool_calls")
    return [c for c in calls if isinstance(c, Mapping)] if isinstance(calls, list) else []


# --- agents -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentInfo:
    """What an agent object (create / get / update agent, or our own lookup) tells us. Content fields
    (``instructions``, ``tools``) are only kept when content capture is on."""

    id: str
    name: Optional[str] = None
    description: Optional[str] = None
    model: Optional[str] = None
    metadata: Optional[Mapping[str, Any]] = None
    instructions: Optional[str] = None
    tools: Any = None

    def attributes(self) -> dict[str, Any]:
        return without_none(
            {conv.AGENT_ID: self.id, conv.AGENT_NAME: self.name, conv.AGENT_DESCRIPTION: self.description}
        )


def agent_info(agent: Any, keep_content: bool = False) -> Optional[AgentInfo]:
    """An :class:`AgentInfo` from an agent object, or None when it has no id."""
    agent_id = text_field(agent, "id")
    if agent_id is None:
        return None
    metadata = field(agent, "metadata")
    return AgentInfo(
        id=agent_id,
        name=text_field(agent, "name"),
        description=text_field(agent, "description"),
        model=text_field(agent, "model"),
        metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
        instructions=field(agent, "instructions") if keep_content else None,
        tools=plain(field(agent, "tools")) if keep_content else None,
    )


def agent_operation_attributes(operation: str, agent: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """``create_agent`` / ``update_agent`` span attributes: the agent (from the result, else the request) and
    its model settings."""
    source = agent if isinstance(agent, Mapping) else request
    return without_none(
        {
            **identity(operation),
            conv.AGENT_ID: text_field(agent, "id") or _str(request.get("agent_id")),
            conv.AGENT_NAME: text_field(source, "name") or _str(request.get("name")),
            conv.AGENT_DESCRIPTION: text_field(source, "description") or _str(request.get("description")),
            **_settings(source),
        }
    )


# --- steps ------------------------------------------------------------------------------------------------
def step_attributes(step: Mapping[str, Any], model: Optional[str] = None) -> dict[str, Any]:
    """A run step is one model inference (it created a message, or asked for tool calls): a ``chat`` span with
    its own usage, keeping the step's identity as our attributes. The model is the run's: the service reports
    the deployment asked for (``gen_ai.request.model``), not the model version that answered, so no
    ``gen_ai.response.model`` is claimed."""
    usage = field(step, "usage")
    status = text_field(step, "status")
    reason = finish_reason(step, status)
    return without_none(
        {
            **identity(conv.CHAT),
            conv.REQUEST_MODEL: model,
            conv.CONVERSATION_ID: text_field(step, "thread_id"),
            conv.AGENT_ID: text_field(step, "assistant_id") or text_field(step, "agent_id"),
            RUN_ID: text_field(step, "run_id"),
            STEP_ID: text_field(step, "id"),
            STEP_TYPE: text_field(step, "type"),
            STEP_STATUS: status,
            conv.RESPONSE_FINISH_REASONS: (reason,) if reason else None,
            conv.USAGE_INPUT_TOKENS: int_field(usage, "prompt_tokens"),
            conv.USAGE_OUTPUT_TOKENS: int_field(usage, "completion_tokens"),
        }
    )


def step_span_name(model: Optional[str]) -> str:
    return conv.span_name(conv.CHAT, model)


def step_window_ns(step: Mapping[str, Any]) -> tuple[Optional[int], Optional[int]]:
    start = seconds_to_ns(field(step, "created_at"))
    end = None
    for key in ("completed_at", "failed_at", "cancelled_at", "expired_at"):
        end = seconds_to_ns(field(step, key))
        if end:
            break
    return start, end


def step_error(step: Mapping[str, Any]) -> Optional[tuple[str, Optional[str]]]:
    status = text_field(step, "status")
    last_error = field(step, "last_error")
    code = text_field(last_error, "code")
    if code or status in ("failed", "expired"):
        return (code or status or "error"), text_field(last_error, "message")
    return None


def step_tool_calls(step: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = field(step, "step_details")
    calls = field(details, "tool_calls")
    return [c for c in calls if isinstance(c, Mapping)] if isinstance(calls, list) else []


def step_message_id(step: Mapping[str, Any]) -> Optional[str]:
    """The id of the message a ``message_creation`` step created."""
    return text_field(field(field(step, "step_details"), "message_creation"), "message_id")


# --- tool calls -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolCall:
    """What one tool call (from ``required_action`` or from step details) tells us."""

    id: Optional[str]
    raw_type: str
    name: str
    arguments: Any
    result: Any
    server_label: Optional[str] = None
    #: a connected-agent call's sub-run: (agent id, thread id, run id), whichever the service reported
    sub_run: tuple[Optional[str], Optional[str], Optional[str]] = (None, None, None)

    @property
    def semconv_type(self) -> str:
        return _TOOL_TYPE_CLASS.get(self.raw_type, "extension")

    def attributes(self) -> dict[str, Any]:
        agent_id, thread_id, run_id = self.sub_run
        return without_none(
            {
                **identity(EXECUTE_TOOL),
                conv.TOOL_NAME: self.name,
                conv.TOOL_CALL_ID: self.id,
                conv.TOOL_TYPE: self.semconv_type,
                TOOL_RAW_TYPE: self.raw_type,
                MCP_SERVER_LABEL: self.server_label,
                conv.CONNECTED_AGENT_ID: agent_id,
                conv.CONNECTED_THREAD_ID: thread_id,
                conv.CONNECTED_RUN_ID: run_id,
            }
        )


def tool_call(call: Mapping[str, Any]) -> ToolCall:
    """Reads any tool call shape. Unknown types still give a usable ToolCall named after their type."""
    raw_type = text_field(call, "type") or "unknown"
    details = field(call, raw_type)
    if not isinstance(details, Mapping):
        details = {}
    name = text_field(details, "name") or text_field(call, "name")
    label = text_field(details, "server_label") or text_field(call, "server_label")
    arguments = plain(_first(details, call, ("arguments", "input", "query", "requesturl")))
    result = plain(_first(details, call, ("output", "outputs", "results", "response_metadata")))
    sub_run: tuple[Optional[str], Optional[str], Optional[str]] = (None, None, None)
    if raw_type == "connected_agent":
        sub_run = (
            text_field(details, "assistant_id") or text_field(details, "agent_id"),
            text_field(details, "thread_id"),
            text_field(details, "run_id"),
        )
    return ToolCall(
        id=text_field(call, "id"),
        raw_type=raw_type,
        name=name or raw_type,
        arguments=arguments,
        result=result,
        server_label=label,
        sub_run=sub_run,
    )


# --- content shapes (only used when capture is on; the formats live in ``messages``) -----------------------
def instructions_parts(*texts: Any) -> Optional[list[dict[str, Any]]]:
    from .messages import system_instructions

    return system_instructions(*texts)


def input_messages(messages: Any) -> Optional[list[dict[str, Any]]]:
    from .messages import input_messages as _input_messages

    return _input_messages(messages)


def plain(value: Any, depth: int = 0) -> Any:
    """SDK models (mappings) nested in lists, as plain dicts and lists: recorded content is then JSON, not a
    Python ``repr``. Depth-bounded."""
    if depth > 8:
        return str(value)
    if isinstance(value, Mapping):
        try:
            return {str(k): plain(v, depth + 1) for k, v in value.items()}
        except Exception:
            return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _first(primary: Mapping[str, Any], fallback: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        for source in (primary, fallback):
            value = field(source, key)
            if value not in (None, "", []):
                return value
    return None


def _str(value: Any) -> Optional[str]:
    return bounded(value)


def _int(value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value <= _INT64:
        return value
    return None
