"""Span emission both generations share: ``execute_tool`` spans (after the fact, or live around a function the SDK
runs for the app), agent lifecycle spans (``create_agent`` / ``update_agent`` / ...), and recording an exception.

Callers hold the lock of the run or invocation whose spans they write; this module takes no lock of its own and
keeps no state besides its tracer and policies.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer

from . import attributes as attrs
from . import conventions as conv
from . import messages
from .content import ContentPolicy
from .metrics import RunMetrics


def clamp(value: int, low: int, high: int) -> int:
    return low if value < low else high if value > high else value


class SpanEmitter:
    """Makes ``execute_tool`` and agent lifecycle spans with explicit timestamps."""


    def __init__(self, tracer: Tracer, content: ContentPolicy, metrics: Optional[RunMetrics]) -> None:
        self._tracer = tracer
        self._content = content
        self._metrics = metrics
        #: run id -> the span context of a run we trace (set by the tracker): links a connected agent's sub-run
        self.find_run: Callable[[str], Optional[SpanContext]] = lambda run_id: None

    # ---- agent operations -----------------------------------------------------------------------------
    def start_agent_operation(self, operation: str, request: Mapping[str, Any], server: Mapping[str, Any]) -> Span:
        attributes = {**attrs.agent_operation_attributes(operation, None, request), **server}
        return self._tracer.start_span(
            conv.span_name(operation, attributes.get(conv.AGENT_NAME)), kind=SpanKind.CLIENT, attributes=attributes
        )

    def end_agent_operation(
        self,
        span: Span,
        operation: str,
        agent: Any,
        exc: Optional[BaseException],
        extra: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Ends a ``create_agent`` / ``update_agent`` span with what the returned agent says (or the error); with
        content capture on, the agent's instructions and tool definitions as the service stored them. ``extra``
        attributes are set whatever the outcome (the new agents' version)."""
        if extra:
            span.set_attributes(extra)
        if exc is not None:
            record_exception(span, exc)
        else:
            result = attrs.agent_operation_attributes(operation, agent, {})
            name = result.get(conv.AGENT_NAME)
            if name:
                span.update_name(conv.span_name(operation, name))
            span.set_attributes(result)
            if self._content.enabled:
                instructions = messages.system_instructions(attrs.field(agent, "instructions"))
                tools = messages.tool_definitions(attrs.plain(attrs.field(agent, "tools")))
                self._content.record(
                    span,
                    {
                        conv.SYSTEM_INSTRUCTIONS: self._content.text("system_instructions", instructions),
                        conv.TOOL_DEFINITIONS: self._content.text("tool.definitions", tools),
                    },
                )
        span.end()

    # ---- live tool spans (functions the SDK runs for the app) -----------------------------------------
    def start_live_tool(self, parent: Optional[Context], info: attrs.ToolCall, start_ns: int) -> Span:
        span = self._tracer.start_span(
            conv.span_name(conv.EXECUTE_TOOL, info.name),
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=info.attributes(),
            start_time=start_ns,
        )
        if self._content.enabled:
            arguments = self._content.text("tool.arguments", messages.json_value(info.arguments))
            self._content.record(span, {gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS: arguments})
        return span

    def end_live_tool(self, span: Span, result: Any, exc: Optional[BaseException], end_ns: int) -> Optional[str]:
        error_type = None
        if exc is not None:
            error_type = record_exception(span, exc)
        elif self._content.enabled:
            result_text = self._content.text("tool.result", messages.json_value(result))
            self._content.record(span, {gen_ai.GEN_AI_TOOL_CALL_RESULT: result_text})
        span.end(end_time=end_ns)
        return error_type

    def tool(
        self,
        parent: Context,
        info: attrs.ToolCall,
        pending: Any,
        start: int,
        end: int,
        error: Optional[tuple[str, Optional[str]]],
        step_id: Optional[str] = None,
        extra: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """One ``execute_tool`` span (classic tool calls and the Responses API's server-side tool items)."""
        attributes = info.attributes()
        if step_id:
            attributes[attrs.STEP_ID] = step_id
        if extra:
            attributes.update(extra)
        sub_run = self.find_run(info.sub_run[2]) if info.sub_run[2] else None
        span = self._tracer.start_span(
            conv.span_name(conv.EXECUTE_TOOL, info.name),
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=start,
            links=[Link(sub_run)] if sub_run is not None else None,
        )
        if self._content.enabled:
            arguments = info.arguments if info.arguments is not None else (pending.arguments if pending else None)
            result = info.result if info.result is not None else (pending.output if pending else None)
            self._content.record(
                span,
                {
                    conv.TOOL_CALL_ARGUMENTS: self._content.text("tool.arguments", messages.json_value(arguments)),
                    conv.TOOL_CALL_RESULT: self._content.text("tool.result", messages.json_value(result)),
                },
            )
        if error:
            record_service_error(span, error, end)
        span.end(end_time=end)
        if self._metrics is not None:
            self._metrics.record_tool((end - start) / 1e9, info.name, info.semconv_type, error[0] if error else None)


def record_service_error(span: Span, error: tuple[str, Optional[str]], timestamp: Optional[int] = None) -> None:
    """Marks ``span`` as failed for a reason the service reported (``(code, message)``): ``error.type`` and the
    status description, and an ``exception`` event with ``exception.type`` = the code and ``exception.message`` =
    the service's message (else the code), so that backends listing exceptions (Application Insights' Failures
    view) show the reason. Only the service's code and message are recorded, never content."""
    code, message = error
    span.set_attribute(error_attributes.ERROR_TYPE, code)
    span.set_status(Status(StatusCode.ERROR, message or code))
    span.add_event(
        conv.EXCEPTION_EVENT, {conv.EXCEPTION_TYPE: code, conv.EXCEPTION_MESSAGE: message or code}, timestamp=timestamp
    )


def record_exception(span: Span, exc: BaseException) -> str:
    """Records ``exc`` on ``span`` as an error; returns its ``error.type``."""
    error_type = type(exc).__qualname__
    span.record_exception(exc)
    span.set_attribute(error_attributes.ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:1024] or error_type))
    return error_type
