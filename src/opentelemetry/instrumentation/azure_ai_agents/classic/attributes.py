"""Maps classic Agent Service objects (runs, run steps, tool calls) to semantic-convention attributes.

Every function takes the service's *wire* shape: a mapping keyed by REST field names. Both SDK generations'
models are ``MutableMapping`` views of the wire JSON, so ``run.get("assistant_id")`` works on an
``azure.ai.agents.models.ThreadRun``, an ``azure.ai.projects.models.ThreadRun``, a streamed event payload and a
plain dict alike. Nothing here trusts the payload's types: malformed values are skipped, never raised on.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from ..core import conventions as conv
from ..core import messages
from ..core.attributes import (
    INVOKE_AGENT,
    RUN_ID,
    STEP_ID,
    STEP_STATUS,
    STEP_TYPE,
    ToolCall,
    bounded,
    field,
    identity,
    int_field,
    number,
    plain,
    seconds_to_ns,
    settings,
    text_field,
    without_none,
)

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
ERROR_STATUSES = frozenset({"failed", "expired", "incomplete"})


def run_request_attributes(request: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes known before the service answers: agent, thread, model and sampling parameters."""
    thread_id = bounded(request.get("thread_id"))
    return without_none(
        {
            **identity(INVOKE_AGENT),
            conv.AGENT_ID: bounded(request.get("assistant_id")),
            conv.CONVERSATION_ID: thread_id,
            **settings(request),
        }
    )


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
            **settings(run),
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


#: A run that ended without ever starting (failed, cancelled or expired while queued) queued until its end stamp.
_END_STAMPS = {"failed": "failed_at", "cancelled": "cancelled_at", "expired": "expires_at", "completed": "completed_at"}


def run_queue_time(run: Mapping[str, Any]) -> Optional[float]:
    """Seconds the run waited in the service's queue, from the service's own timestamps (unix seconds, whole
    seconds on the real service): ``created_at`` -> ``started_at``; for a run that ended without starting,
    ``created_at`` -> its end stamp. None while the run is still queued, or when the stamps are missing or
    inconsistent (a start before the creation)."""
    created = number(field(run, "created_at"))
    if created is None or created <= 0:
        return None
    started = number(field(run, "started_at"))
    if started is None:
        end_stamp = _END_STAMPS.get(text_field(run, "status") or "")
        started = number(field(run, end_stamp)) if end_stamp else None
    if started is None or started < created:
        return None
    return round(started - created, 6)  # stamps in milliseconds at most: no float noise in the seconds


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
    return messages.system_instructions(*texts)


def input_messages(given: Any) -> Optional[list[dict[str, Any]]]:
    return messages.input_messages(given)


def _first(primary: Mapping[str, Any], fallback: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        for source in (primary, fallback):
            value = field(source, key)
            if value not in (None, "", []):
                return value
    return None

