"""One synthetic agent run: an ``invoke_agent`` span with a ``chat`` and an ``execute_tool`` child.

It carries the attributes our classic runs carry (so every exporter, the Nexus one included, treats it as an
agent run, and backends file it where real runs go), plus ``azure.ai.agents.synthetic=true`` on every span so
that it can be told apart (and filtered out of dashboards). Token counts and timings are fixed, made-up values,
reported as such; no content is recorded.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, set_span_in_context
from opentelemetry.util.types import AttributeValue

from ..core import conventions as conv

SYNTHETIC = conv.SYNTHETIC
DEFAULT_AGENT_NAME = "azure-ai-agents-doctor"
MODEL = "gpt-4o"
TOOL = "doctor_check"
INPUT_TOKENS = 120
OUTPUT_TOKENS = 24
#: Offsets (seconds) of the run's phases; the run ends when the doctor builds it.
_QUEUED, _STARTED, _CHAT, _TOOL_START, _TOOL_END, _END = 0.0, 0.15, (0.2, 0.9), 0.95, 1.1, 1.2


@dataclass
class SyntheticRun:
    """The spans and the evidence an operator searches for."""

    spans: list[ReadableSpan]
    provider: TracerProvider
    trace_id: str
    run_id: str
    conversation_id: str
    agent_id: str
    agent_name: str
    model: str = MODEL
    input_tokens: int = INPUT_TOKENS
    output_tokens: int = OUTPUT_TOKENS
    duration_s: float = _END
    started_at: str = ""
    span_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "run_id": self.run_id,
            "conversation_id": self.conversation_id,
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "model": self.model,
            "spans": self.span_names,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "duration_s": self.duration_s,
            "started_at": self.started_at,
            "synthetic_attribute": SYNTHETIC,
        }


def build(resource: Optional[Resource] = None, agent_name: str = DEFAULT_AGENT_NAME) -> SyntheticRun:
    """Records the synthetic run in memory (always sampled: the doctor checks delivery, not the sampler)."""
    from ..core import conventions as conv

    provider = TracerProvider(resource=resource or Resource.create(), sampler=ALWAYS_ON, shutdown_on_exit=False)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    from ..version import __version__

    tracer = provider.get_tracer("opentelemetry.instrumentation.azure_ai_agents.doctor", __version__)
    suffix = secrets.token_hex(12)
    run_id, thread_id, agent_id = f"run_doctor_{suffix}", f"thread_doctor_{suffix}", f"asst_doctor_{suffix}"
    step_id, call_id = f"step_doctor_{suffix}", f"call_doctor_{suffix}"
    end_ns = time.time_ns()
    start_ns = end_ns - int(_END * 1e9)

    def at(offset: float) -> int:
        return start_ns + int(offset * 1e9)

    common: dict[str, AttributeValue] = {
        conv.PROVIDER: conv.PROVIDER_NAME,
        conv.SYSTEM_ATTRIBUTE: conv.SYSTEM,
        SYNTHETIC: True,
    }
    run = tracer.start_span(
        conv.span_name(conv.INVOKE_AGENT, agent_name),
        kind=SpanKind.CLIENT,
        start_time=start_ns,
        attributes={
            **common,
            conv.OPERATION_NAME: conv.INVOKE_AGENT,
            conv.AGENT_ID: agent_id,
            conv.AGENT_NAME: agent_name,
            conv.CONVERSATION_ID: thread_id,
            conv.REQUEST_MODEL: MODEL,
            conv.RUN_ID: run_id,
        },
    )
    run.add_event(conv.RUN_STATUS_CHANGED_EVENT, {conv.RUN_STATUS: "queued"}, timestamp=at(_QUEUED))
    run.add_event(
        conv.RUN_STATUS_CHANGED_EVENT,
        {conv.RUN_STATUS: "in_progress", conv.PREVIOUS_STATUS: "queued"},
        timestamp=at(_STARTED),
    )
    parent = set_span_in_context(run)
    chat = tracer.start_span(
        conv.span_name(conv.CHAT, MODEL),
        context=parent,
        kind=SpanKind.CLIENT,
        start_time=at(_CHAT[0]),
        attributes={
            **common,
            conv.OPERATION_NAME: conv.CHAT,
            conv.REQUEST_MODEL: MODEL,
            conv.AGENT_ID: agent_id,
            conv.CONVERSATION_ID: thread_id,
            conv.RUN_ID: run_id,
            conv.STEP_ID: step_id,
            conv.STEP_TYPE: "tool_calls",
            conv.STEP_STATUS: "completed",
            conv.RESPONSE_FINISH_REASONS: ("tool_call",),
            conv.USAGE_INPUT_TOKENS: INPUT_TOKENS,
            conv.USAGE_OUTPUT_TOKENS: OUTPUT_TOKENS,
        },
    )
    chat.end(end_time=at(_CHAT[1]))
    tool = tracer.start_span(
        conv.span_name(conv.EXECUTE_TOOL, TOOL),
        context=parent,
        kind=SpanKind.INTERNAL,
        start_time=at(_TOOL_START),
        attributes={
            **common,
            conv.OPERATION_NAME: conv.EXECUTE_TOOL,
            conv.TOOL_NAME: TOOL,
            conv.TOOL_TYPE: "function",
            conv.TOOL_RAW_TYPE: "function",
            conv.TOOL_CALL_ID: call_id,
            conv.STEP_ID: step_id,
        },
    )
    tool.end(end_time=at(_TOOL_END))
    run.set_attributes(
        {
            conv.RUN_STATUS: "completed",
            conv.USAGE_INPUT_TOKENS: INPUT_TOKENS,
            conv.USAGE_OUTPUT_TOKENS: OUTPUT_TOKENS,
        }
    )
    run.add_event(
        conv.RUN_STATUS_CHANGED_EVENT,
        {conv.RUN_STATUS: "completed", conv.PREVIOUS_STATUS: "in_progress"},
        timestamp=at(_END),
    )
    run.end(end_time=end_ns)
    spans = list(memory.get_finished_spans())
    return SyntheticRun(
        spans=spans,
        provider=provider,
        trace_id=format(run.get_span_context().trace_id, "032x"),
        run_id=run_id,
        conversation_id=thread_id,
        agent_id=agent_id,
        agent_name=agent_name,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_ns / 1e9)),
        span_names=[s.name for s in sorted(spans, key=lambda s: s.start_time or 0)],
    )
