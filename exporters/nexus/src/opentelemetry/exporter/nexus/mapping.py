"""Pure functions turning the finished spans of one OpenTelemetry trace into Nexus v1 payloads.

Nexus has no fields for attributes, kinds, tokens or models: trace-level facts go to the trace ``metadata``,
span-level facts to the span ``input``/``output`` (captured content when the instrumentation recorded it,
otherwise the span's non-content attributes).
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping, Optional, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

# Attribute names (string literals keep this module import-light; they match the semconv constants).
OPERATION_NAME = "gen_ai.operation.name"
SYSTEM = "gen_ai.system"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
RUN_ID = "azure.ai.agents.run.id"
RUN_STATUS = "azure.ai.agents.run.status"
# Names Microsoft's agents instrumentation (and this project before 0.2) used for the same values.
LEGACY_THREAD_ID = "gen_ai.thread.id"
LEGACY_RUN_ID = "gen_ai.thread.run.id"
LEGACY_RUN_STATUS = "gen_ai.thread.run.status"
ERROR_TYPE = "error.type"
RUN_UNFINISHED = "azure.ai.agents.run.unfinished"
INVOKE_AGENT = "invoke_agent"
_GENAI_PREFIXES = ("gen_ai.", "azure.ai.agents.")
_AGENT_LIFECYCLE = ("create_agent", "update_agent")

#: Opt-in content attributes: never copied into the "attributes" fallback input.
CONTENT_ATTRIBUTES = frozenset(
    {INPUT_MESSAGES, OUTPUT_MESSAGES, SYSTEM_INSTRUCTIONS, TOOL_ARGUMENTS, TOOL_RESULT, TOOL_DEFINITIONS}
)

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024
MAX_NAME_CHARS = 512
MAX_ERROR_CHARS = 4096


def iso8601(ns: Optional[int]) -> Optional[str]:
    """UTC ISO-8601 with microseconds and ``Z`` (the form Nexus' validation regex accepts)."""
    if ns is None:
        return None
    seconds, rest = divmod(int(ns), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


def is_local_root(span: ReadableSpan) -> bool:
    parent = span.parent
    return parent is None or parent.is_remote


def is_run(span: ReadableSpan) -> bool:
    """An agent run: the ``invoke_agent`` span, whose subtree becomes one Nexus trace."""
    return (span.attributes or {}).get(OPERATION_NAME) == INVOKE_AGENT


def is_genai(span: ReadableSpan) -> bool:
    """Any ``gen_ai.*`` or ``azure.ai.agents.*`` attribute, agent lifecycle spans (``create_agent`` /
    ``update_agent``) excepted: alone they are not worth a Nexus trace (the Free plan has 1,000 a month)."""
    attributes = span.attributes or {}
    if attributes.get(OPERATION_NAME) in _AGENT_LIFECYCLE:
        return False
    return any(key.startswith(_GENAI_PREFIXES) for key in attributes)


def span_id(span: ReadableSpan) -> int:
    return span.context.span_id if span.context is not None else 0


def parent_id(span: ReadableSpan) -> Optional[int]:
    """The parent's span id when the parent is in this process (None for a root or a remote parent)."""
    return span.parent.span_id if span.parent is not None and not span.parent.is_remote else None


def is_error(span: Optional[ReadableSpan]) -> bool:
    return span is not None and span.status is not None and span.status.status_code is StatusCode.ERROR


def resolve_agent_id(configured: Optional[str], top: ReadableSpan) -> str:
    """Configured id, else the run's agent name, else the resource's service.name."""
    if configured:
        return configured
    name = (top.attributes or {}).get(AGENT_NAME)
    if isinstance(name, str) and name:
        return name[:MAX_NAME_CHARS]
    return (_service_name(top) or "unknown_service")[:MAX_NAME_CHARS]


def trace_status(top: ReadableSpan, complete: bool) -> str:
    """``error``, ``success``, or ``timeout`` for a run ended unfinished (e.g. by shutdown) or a partial group."""
    if is_error(top):
        return "error"
    if not complete or (top.attributes or {}).get(RUN_UNFINISHED):
        return "timeout"
    return "success"


def build_trace(
    top: ReadableSpan, spans: Sequence[ReadableSpan], *, agent_id: Optional[str], complete: bool = True
) -> dict[str, Any]:
    """The POST /api/v1/traces body for a run (``top`` is its ``invoke_agent`` span) or another group of spans
    (``top`` is its topmost span; ``complete``: False when its top is not a root that ended)."""
    attributes = top.attributes or {}
    parent = top.parent
    metadata: dict[str, Any] = {
        "otel_trace_id": f"{top.context.trace_id:032x}",
        "otel_span_id": f"{span_id(top):016x}",
        "otel_parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "run_id": attributes.get(RUN_ID) or attributes.get(LEGACY_RUN_ID),
        "thread_id": attributes.get(CONVERSATION_ID) or attributes.get(LEGACY_THREAD_ID),
        "agent_id": attributes.get(AGENT_ID),
        "agent_name": attributes.get(AGENT_NAME),
        "provider": attributes.get(PROVIDER_NAME) or attributes.get(SYSTEM),
        "request_model": attributes.get(REQUEST_MODEL),
        "model": attributes.get(RESPONSE_MODEL) or attributes.get(REQUEST_MODEL),
        "input_tokens": attributes.get(INPUT_TOKENS),
        "output_tokens": attributes.get(OUTPUT_TOKENS),
        "run_status": attributes.get(RUN_STATUS) or attributes.get(LEGACY_RUN_STATUS),
        "error_type": attributes.get(ERROR_TYPE),
        "unfinished": attributes.get(RUN_UNFINISHED),
        "service_name": _service_name(top),
        "span_count": len(spans),
        "incomplete": None if complete else True,
    }
    ends = [s.end_time for s in spans if s.end_time is not None]
    payload: dict[str, Any] = {
        "agent_id": resolve_agent_id(agent_id, top),
        "name": (top.name or "trace")[:MAX_NAME_CHARS],
        "status": trace_status(top, complete),
        "started_at": iso8601(min(_start(s) for s in spans)),
        "metadata": {k: _plain(v) for k, v in metadata.items() if v is not None},
    }
    ended = top.end_time if complete else (max(ends) if ends else None)
    if ended is not None:
        payload["ended_at"] = iso8601(ended)
    return payload


def build_span(
    span: ReadableSpan, parent_span_id: Optional[str], max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> dict[str, Any]:
    """The POST /api/v1/traces/{id}/spans body for one span."""
    attributes = dict(span.attributes or {})
    error = is_error(span)
    payload: dict[str, Any] = {
        "name": (span.name or "span")[:MAX_NAME_CHARS],
        "status": "error" if error else "ok",
        "started_at": iso8601(_start(span)),
    }
    if span.end_time is not None:
        payload["ended_at"] = iso8601(span.end_time)
    if parent_span_id is not None:
        payload["parent_span_id"] = parent_span_id

    content_in, content_out = _content(attributes)
    if content_in is not None:
        payload["input"] = bounded(content_in, max_payload_bytes)
    else:
        summary = {k: _plain(v) for k, v in attributes.items() if k not in CONTENT_ATTRIBUTES}
        summary["otel.span_kind"] = span.kind.name if span.kind is not None else None
        summary["otel.span_id"] = f"{span_id(span):016x}"
        payload["input"] = bounded({"attributes": summary}, max_payload_bytes)
    if content_out is not None:
        payload["output"] = bounded(content_out, max_payload_bytes)
    if error:
        message = span.status.description or attributes.get(ERROR_TYPE) or _exception_message(span) or "error"
        payload["error"] = str(message)[:MAX_ERROR_CHARS]
    return payload


def bounded(value: Any, max_bytes: int) -> Any:
    """``value`` if its UTF-8 JSON fits in ``max_bytes``, else ``{"truncated", "original_bytes", "preview"}``
    whose own JSON fits in ``max_bytes`` (the preview is the start of the string, or of the JSON text)."""
    size = _json_size(value)
    if size <= max_bytes:
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    wrapper: dict[str, Any] = {"truncated": True, "original_bytes": size, "preview": ""}
    low, high = 0, min(len(text), max(0, max_bytes - _json_size(wrapper)))
    while low < high:  # the longest prefix whose escaped JSON still fits
        middle = (low + high + 1) // 2
        wrapper["preview"] = text[:middle]
        if _json_size(wrapper) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    wrapper["preview"] = text[:low]
    return wrapper


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8"))


def _content(attributes: Mapping[str, Any]) -> tuple[Any, Any]:
    """Captured content as (input, output): tool arguments/result, or run messages/instructions."""
    if TOOL_ARGUMENTS in attributes or TOOL_RESULT in attributes:
        return _json_or_text(attributes.get(TOOL_ARGUMENTS)), _json_or_text(attributes.get(TOOL_RESULT))
    given = {
        "system_instructions": _json_or_text(attributes.get(SYSTEM_INSTRUCTIONS)),
        "messages": _json_or_text(attributes.get(INPUT_MESSAGES)),
    }
    given = {k: v for k, v in given.items() if v is not None}
    return (given or None), _json_or_text(attributes.get(OUTPUT_MESSAGES))


def _json_or_text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _plain(value)


def _plain(value: Any) -> Any:
    """Attribute values are scalars or (immutable) sequences of scalars: make them JSON-ready."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _exception_message(span: ReadableSpan) -> Optional[str]:
    for event in span.events or ():
        if event.name == "exception":
            attributes = event.attributes or {}
            kind = attributes.get("exception.type")
            message = attributes.get("exception.message")
            if kind or message:
                return f"{kind}: {message}" if kind and message else str(kind or message)
    return None


def _service_name(span: ReadableSpan) -> Optional[str]:
    if span.resource is None:
        return None
    value = span.resource.attributes.get("service.name")
    return value if isinstance(value, str) else None


def _start(span: ReadableSpan) -> int:
    return span.start_time or 0
