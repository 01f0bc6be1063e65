"""Step and tool spans, made after the fact from what the tracker learned about a run.

Windows: a step takes the service's timestamps (``created_at`` -> ``completed_at`` / ...), widened to hold the
client-timed function calls inside it (service stamps may be whole seconds), then clamped inside the run span; a
tool takes its client-observed window when there is one, else its step's, clamped inside the step.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from . import attributes as attrs
from .content import ContentPolicy
from .metrics import RunMetrics
from .state import PendingCall

StepCalls = list[tuple[attrs.ToolCall, Optional[PendingCall]]]


def clamp(value: int, low: int, high: int) -> int:
    return low if value < low else high if value > high else value


class ChildSpans:
    """Makes ``run_step`` and ``execute_tool`` spans with explicit timestamps."""

    def __init__(self, tracer: Tracer, content: ContentPolicy, metrics: Optional[RunMetrics]) -> None:
        self._tracer = tracer
        self._content = content
        self._metrics = metrics

    def step(
        self,
        parent: Context,
        run_id: Optional[str],
        step: Mapping[str, Any],
        calls: StepCalls,
        run_start: int,
        run_end: int,
    ) -> None:
        """One step span and the spans of the tool calls in it (already de-duplicated by the caller)."""
        step_start, step_end = attrs.step_window_ns(step)
        start = step_start if step_start is not None else run_start
        end = step_end if step_end is not None else run_end
        for _info, pending in calls:  # widen the step to hold client-timed function calls
            if pending is not None and pending.first_seen_ns:
                start = min(start, pending.first_seen_ns)
                end = max(end, pending.submitted_ns or pending.first_seen_ns)
        start = clamp(start, run_start, run_end)
        end = clamp(end, start, run_end)
        step_type = attrs.text_field(step, "type") or "unknown"
        step_attrs = attrs.step_attributes(step)
        if run_id:
            step_attrs[attrs.RUN_ID] = run_id
        span = self._tracer.start_span(
            f"run_step {step_type}", context=parent, kind=SpanKind.INTERNAL, attributes=step_attrs, start_time=start
        )
        error = attrs.step_error(step)
        if error:
            span.set_attribute(error_attributes.ERROR_TYPE, error[0])
            span.set_status(Status(StatusCode.ERROR, error[1] or error[0]))
        step_context = trace.set_span_in_context(span)
        for info, pending in calls:
            tool_start, tool_end = start, end
            if pending is not None and pending.first_seen_ns:
                tool_start = clamp(pending.first_seen_ns, start, end)
                tool_end = clamp(pending.submitted_ns or end, tool_start, end)
            self.tool(step_context, info, pending, tool_start, tool_end, error)
        span.end(end_time=end)

    def tool(
        self,
        parent: Context,
        info: attrs.ToolCall,
        pending: Optional[PendingCall],
        start: int,
        end: int,
        error: Optional[tuple[str, Optional[str]]],
    ) -> None:
        span = self._tracer.start_span(
            f"execute_tool {info.name}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=info.attributes(),
            start_time=start,
        )
        if self._content.enabled:
            arguments = info.arguments if info.arguments is not None else (pending.arguments if pending else None)
            result = info.result if info.result is not None else (pending.output if pending else None)
            self._content.record(
                span,
                {
                    gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS: self._content.text("tool.arguments", arguments),
                    gen_ai.GEN_AI_TOOL_CALL_RESULT: self._content.text("tool.result", result),
                },
            )
        if error:
            span.set_attribute(error_attributes.ERROR_TYPE, error[0])
            span.set_status(Status(StatusCode.ERROR, error[1] or error[0]))
        span.end(end_time=end)
        if self._metrics is not None:
            self._metrics.record_tool((end - start) / 1e9, info.name, info.semconv_type, error[0] if error else None)
