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

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import server_attributes

# --- names ------------------------------------------------------------------------------------------------
PROVIDER_NAME = "azure.ai.foundry"
#: Deprecated in the conventions, but Application Insights classifies a span as GenAI only when it is set.
SYSTEM = "az.ai.agents"

# Names used by Microsoft's agents instrumentation (no convention exists for threads and runs); kept identical
# so dashboards built on theirs keep working.
THREAD_ID = "gen_ai.thread.id"
RUN_ID = "gen_ai.thread.run.id"
RUN_STATUS = "gen_ai.thread.run.status"

# Our own names, where neither the conventions nor Microsoft define one (documented in README).
STEP_ID = "azure.ai.agents.run_step.id"
STEP_TYPE = "azure.ai.agents.run_step.type"
STEP_STATUS = "azure.ai.agents.run_step.status"
TOOL_RAW_TYPE = "azure.ai.agents.tool.type"
MCP_SERVER_LABEL = "azure.ai.agents.mcp.server_label"
RUN_UNFINISHED = "azure.ai.agents.run.unfinished"
RUN_STEPS_DROPPED = "azure.ai.agents.run.steps_dropped"
RUN_STEPS_UNAVAILABLE = "azure.ai.agents.run.steps_unavailable"
PREVIOUS_STATUS = "azure.ai.agents.run.previous_status"
RUN_STATUS_CHANGED_EVENT = "azure.ai.agents.run.status_changed"
MAX_PROMPT_TOKENS = "azure.ai.agents.request.max_prompt_tokens"
REQUIRED_TOOL_CALLS = "azure.ai.agents.run.required_tool_calls"
REQUIRED_ACTION_TYPE = "azure.ai.agents.run.required_action.type"

INVOKE_AGENT = gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value
EXECUTE_TOOL = gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value

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
    return {server_attributes.SERVER_ADDRESS: parts.hostname, server_attributes.SERVER_PORT: port}


def run_request_attributes(request: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes known before the service answers: agent, thread, model and sampling parameters."""
    return without_none(
        {
            gen_ai.GEN_AI_OPERATION_NAME: INVOKE_AGENT,
            gen_ai.GEN_AI_PROVIDER_NAME: PROVIDER_NAME,
            gen_ai.GEN_AI_SYSTEM: SYSTEM,
            gen_ai.GEN_AI_AGENT_ID: _str(request.get("assistant_id")),
            gen_ai.GEN_AI_CONVERSATION_ID: _str(request.get("thread_id")),
            THREAD_ID: _str(request.get("thread_id")),
            gen_ai.GEN_AI_REQUEST_MODEL: _str(request.get("model")),
            gen_ai.GEN_AI_REQUEST_TEMPERATURE: number(request.get("temperature")),
            gen_ai.GEN_AI_REQUEST_TOP_P: number(request.get("top_p")),
            gen_ai.GEN_AI_REQUEST_MAX_TOKENS: _int(request.get("max_completion_tokens")),
            MAX_PROMPT_TOKENS: _int(request.get("max_prompt_tokens")),
        }
    )


# --- runs -------------------------------------------------------------------------------------------------
def run_attributes(run: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes a run snapshot reveals (ids, model, usage). Status is handled by the tracker."""
    usage = field(run, "usage")
    thread_id = text_field(run, "thread_id")
    return without_none(
        {
            RUN_ID: text_field(run, "id"),
            gen_ai.GEN_AI_RESPONSE_ID: text_field(run, "id"),
            THREAD_ID: thread_id,
            gen_ai.GEN_AI_CONVERSATION_ID: thread_id,
            gen_ai.GEN_AI_AGENT_ID: text_field(run, "assistant_id") or text_field(run, "agent_id"),
            gen_ai.GEN_AI_RESPONSE_MODEL: text_field(run, "model"),
            gen_ai.GEN_AI_USAGE_INPUT_TOKENS: int_field(usage, "prompt_tokens"),
            gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: int_field(usage, "completion_tokens"),
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


# --- steps ------------------------------------------------------------------------------------------------
def step_attributes(step: Mapping[str, Any]) -> dict[str, Any]:
    usage = field(step, "usage")
    return without_none(
        {
            # The GenAI identity makes Application Insights list steps as GenAI dependencies, not InProc.
            gen_ai.GEN_AI_PROVIDER_NAME: PROVIDER_NAME,
            gen_ai.GEN_AI_SYSTEM: SYSTEM,
            STEP_ID: text_field(step, "id"),
            STEP_TYPE: text_field(step, "type"),
            STEP_STATUS: text_field(step, "status"),
            gen_ai.GEN_AI_USAGE_INPUT_TOKENS: int_field(usage, "prompt_tokens"),
            gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: int_field(usage, "completion_tokens"),
        }
    )


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

    @property
    def semconv_type(self) -> str:
        return _TOOL_TYPE_CLASS.get(self.raw_type, "extension")

    def attributes(self) -> dict[str, Any]:
        return without_none(
            {
                gen_ai.GEN_AI_OPERATION_NAME: EXECUTE_TOOL,
                gen_ai.GEN_AI_PROVIDER_NAME: PROVIDER_NAME,
                gen_ai.GEN_AI_SYSTEM: SYSTEM,
                gen_ai.GEN_AI_TOOL_NAME: self.name,
                gen_ai.GEN_AI_TOOL_CALL_ID: self.id,
                gen_ai.GEN_AI_TOOL_TYPE: self.semconv_type,
                TOOL_RAW_TYPE: self.raw_type,
                MCP_SERVER_LABEL: self.server_label,
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
    return ToolCall(
        id=text_field(call, "id"),
        raw_type=raw_type,
        name=name or raw_type,
        arguments=arguments,
        result=result,
        server_label=label,
    )


# --- content shapes (only used when capture is on) -------------------------------------------------------
def instructions_parts(*texts: Any) -> Optional[list[dict[str, str]]]:
    """gen_ai.system_instructions: a list of text parts."""
    parts = [{"type": "text", "content": t} for t in texts if isinstance(t, str) and t]
    return parts or None


def input_messages(messages: Any) -> Optional[list[dict[str, Any]]]:
    """gen_ai.input.messages from ``additional_messages`` (or a new thread's messages)."""
    if not isinstance(messages, Iterable) or isinstance(messages, (str, bytes, Mapping)):
        return None
    out = []
    for message in messages:
        role = text_field(message, "role") or "user"
        content = field(message, "content")
        if isinstance(content, str):
            parts = [{"type": "text", "content": content}]
        elif isinstance(content, list):
            parts = [_content_part(p) for p in content]
        else:
            continue
        out.append({"role": role, "parts": parts})
    return out or None


def _content_part(part: Any) -> dict[str, Any]:
    if isinstance(part, Mapping):
        kind = text_field(part, "type") or "text"
        text = field(part, "text")
        if isinstance(text, Mapping):
            text = field(text, "value")
        return {"type": "text", "content": text} if isinstance(text, str) else {"type": kind}
    return {"type": "text", "content": str(part)}


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
