"""Classic span emission: the run span, and the step (``chat``) and tool spans made after the fact from what a
run's state holds.

Every method that writes to a run's spans is called with that run's lock held (the locking rule is stated in
``registry``); this module takes no lock of its own and keeps no state besides its tracer and policies.

Windows: a step takes the service's timestamps (``created_at`` -> ``completed_at`` / ...), widened to hold the
client-timed function calls inside it (service stamps may be whole seconds), then clamped inside the run span; a
tool takes its client-observed window when there is one, else its step's, clamped inside the step.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..core import attributes as attrs
from ..core import conventions as conv
from ..core import messages
from ..core.spans import SpanEmitter, clamp, record_exception, record_service_error
from . import attributes as cattrs
from .run_state import PendingCall
from .runs import Run

StepCalls = list[tuple[attrs.ToolCall, Optional[PendingCall]]]


class RunSpans(SpanEmitter):
    """Makes the run span, and ``chat`` (run step) and ``execute_tool`` spans with explicit timestamps."""


    # ---- the run span ----------------------------------------------------------------------------------
    def start_run(
        self, request: Mapping[str, Any], server: Mapping[str, Any], agent_name: Optional[str], start_ns: int
    ) -> Span:
        """Opens the run span (a child of the current span), with what the create request says."""
        attributes = cattrs.run_request_attributes(request)
        attributes.update(server)
        if agent_name:
            attributes[gen_ai.GEN_AI_AGENT_NAME] = agent_name
        span = self._tracer.start_span(
            run_span_name(agent_name), kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
        )
        return span

    @staticmethod
    def name_run(run: Run, agent_name: str) -> None:
        if not run.state.ended:
            run.span.update_name(run_span_name(agent_name))
            run.span.set_attribute(gen_ai.GEN_AI_AGENT_NAME, agent_name)

    @staticmethod
    def update_run(run: Run, attributes: Mapping[str, Any]) -> None:
        if not run.state.ended:
            run.span.set_attributes(attributes)

    @staticmethod
    def set_run_attribute(run: Run, key: str, value: Any) -> None:
        if not run.state.ended:
            run.span.set_attribute(key, value)

    @staticmethod
    def flush_transitions(run: Run) -> None:
        """Adds the run's pending status-change events (one per change, stamped when it was seen). Kept as
        compact tuples until now: an SDK event costs ~400 bytes, and open runs may number in the thousands."""
        if run.state.ended:
            return
        for seen_ns, status, previous, required, action_type in run.state.take_transitions():
            event: dict[str, Any] = {attrs.RUN_STATUS: status}
            if previous:
                event[attrs.PREVIOUS_STATUS] = previous
            if required is not None:
                event[attrs.REQUIRED_TOOL_CALLS] = required
                if action_type:
                    event[attrs.REQUIRED_ACTION_TYPE] = action_type
            run.span.add_event(attrs.RUN_STATUS_CHANGED_EVENT, event, timestamp=seen_ns)

    def record_error(self, run: Run, error: tuple[str, Optional[str]]) -> None:
        """A run that ended badly (failed, expired, incomplete; a stream's error event): ``error.type``, the
        status, and an ``exception`` event carrying the service's error code and message (stamped when the
        run's end was seen, after its status events)."""
        if not run.state.ended:
            self.flush_transitions(run)
            record_service_error(run.span, error, run.state.end_ns)

    @staticmethod
    def record_run_exception(run: Run, exc: BaseException) -> Optional[str]:
        return None if run.state.ended else record_exception(run.span, exc)

    def end_run(self, run: Run, end_ns: int) -> None:
        """Ends the run span once. A finished run stays known for a while (late step listings) but only needs
        its span's identity to parent late steps: the ended SDK span and the payloads are dropped."""
        state = run.state
        if state.ended:
            return
        self.flush_transitions(run)
        self.record_timings(run, end_ns)
        if state.steps_dropped:
            run.span.set_attribute(attrs.RUN_STEPS_DROPPED, state.steps_dropped)
        self.record_run_content(run)
        state.ended = True
        run.span.end(end_time=end_ns)
        run.span = trace.NonRecordingSpan(run.span.get_span_context())
        run.context = trace.set_span_in_context(run.span)
        state.release_payloads()

    @staticmethod
    def record_timings(run: Run, end_ns: int) -> None:
        """Where the run's time went: ``azure.ai.agents.run.queue_time`` (service clock) and
        ``azure.ai.agents.run.tool_wait_time`` (client clock); see ``RunState.timings``. (Their histograms are
        recorded with the run's duration, by the tracker.)"""
        queue_time, tool_wait = run.state.timings(end_ns)
        timings = {conv.RUN_QUEUE_TIME: queue_time, conv.RUN_TOOL_WAIT_TIME: tool_wait}
        run.span.set_attributes({k: v for k, v in timings.items() if v is not None})

    def emit_children(self, run: Run) -> None:
        """Emits the chat (step) and tool spans not emitted yet, inside the run's window. With content capture
        on, each chat span gets the conversation as the model saw it in this run (the run's input, then every
        earlier step's output and tool results) and its own output."""
        state = run.state
        run_start, run_end = state.start_ns, state.end_ns or time.time_ns()
        plan, orphans = state.plan_children()
        conversation = self._run_input(state) if self._content.enabled else None
        for step, calls in plan:
            self.step(run, step, calls, run_start, run_end, conversation)
        # Function calls no listed step accounts for hang directly under the run span.
        for call_id, pending in orphans:
            start = clamp(pending.first_seen_ns or run_start, run_start, run_end)
            end = clamp(pending.submitted_ns or run_end, start, run_end)
            info = attrs.ToolCall(call_id, "function", pending.name or "function", pending.arguments, pending.output)
            self.tool(run.context, info, pending, start, end, None)

    def record_run_content(self, run: Run) -> None:
        """The run's opt-in content, set once before its span ends: system instructions (the run's effective
        instructions, agent's plus additional; else the request's), input messages, the answer (the messages
        its steps created), tool definitions."""
        content = run.state.content
        if content is None or not self._content.enabled or run.state.ended:
            return
        instructions = (
            messages.system_instructions(content.instructions)
            if content.instructions
            else messages.system_instructions(*content.request_instructions)
        )
        answer = messages.output_messages(content.messages[m] for m in content.message_ids if m in content.messages)
        self._content.record(
            run.span,
            {
                conv.SYSTEM_INSTRUCTIONS: self._content.text("system_instructions", instructions),
                conv.INPUT_MESSAGES: self._content.text("input.messages", content.input_messages or None),
                conv.OUTPUT_MESSAGES: self._content.text("output.messages", answer),
                conv.TOOL_DEFINITIONS: self._content.text("tool.definitions", messages.tool_definitions(content.tools)),
            },
        )

    @staticmethod
    def _run_input(state: Any) -> list[Any]:
        content = state.content
        return list(content.input_messages) if content is not None else []

    # ---- step and tool spans ---------------------------------------------------------------------------

    def step(
        self,
        run: Run,
        step: Mapping[str, Any],
        calls: StepCalls,
        run_start: int,
        run_end: int,
        conversation: Optional[list[Any]] = None,
    ) -> None:
        """One step as a ``chat`` span (a model inference, with its own usage), and the spans of the tool calls
        it asked for (already de-duplicated by the caller). Tool spans are the step's siblings under the run
        span, as in the conventions' agent examples (the model asks, then the tool runs), each carrying the
        step's id. A step asking for the app's functions ends, as a model call, when the run was first seen
        waiting for them; any other step keeps the service's window (server-side tools run inside it)."""
        step_start, step_end = cattrs.step_window_ns(step)
        start = clamp(step_start if step_start is not None else run_start, run_start, run_end)
        end = clamp(step_end if step_end is not None else run_end, start, run_end)
        # Every call the step asked for, including those already traced live (the SDK ran them for the app).
        asked_calls = [(info, run.state.calls.get(info.id) if info.id else None) for info in _step_calls(step)]
        asked = [p.first_seen_ns for _i, p in asked_calls if p is not None and p.first_seen_ns]
        if asked:
            start = min(start, clamp(min(asked), run_start, run_end))
            end = clamp(min(asked), start, run_end)
        step_attrs = cattrs.step_attributes(step, run.state.model)
        step_id = step_attrs.get(attrs.STEP_ID)
        span = self._tracer.start_span(
            cattrs.step_span_name(run.state.model),
            context=run.context,
            kind=SpanKind.CLIENT,
            attributes=step_attrs,
            start_time=start,
        )
        error = cattrs.step_error(step)
        if error:
            span.set_attribute(error_attributes.ERROR_TYPE, error[0])
            span.set_status(Status(StatusCode.ERROR, error[1] or error[0]))
        if conversation is not None:
            self._record_step_content(run, span, step, [info for info, _p in asked_calls], conversation)
        span.end(end_time=end)
        for info, pending in calls:
            tool_start, tool_end = start, max(end, step_end or end)
            if pending is not None and pending.first_seen_ns:
                tool_start = clamp(pending.first_seen_ns, start, run_end)
                tool_end = clamp(pending.submitted_ns or run_end, tool_start, run_end)
            tool_end = clamp(tool_end, tool_start, run_end)
            self.tool(run.context, info, pending, tool_start, tool_end, error, step_id)
        if conversation is not None:
            results = [(i, i.result if i.result is not None else (p.output if p else None)) for i, p in asked_calls]
            answered = messages.tool_results_message(results)
            if answered is not None:
                conversation.append(answered)

    def _record_step_content(
        self, run: Run, span: Span, step: Mapping[str, Any], infos: list[attrs.ToolCall], conversation: list[Any]
    ) -> None:
        """A chat span's input (the conversation so far, which then grows by this step's output) and output."""
        output: Optional[list[Any]] = None
        if infos:
            asked = messages.tool_calls_message(infos)
            output = [asked] if asked is not None else None
        else:
            content = run.state.content
            message_id = cattrs.step_message_id(step)
            if content is not None and message_id in content.messages:
                output = messages.output_messages([content.messages[message_id]])
        self._content.record(
            span,
            {
                conv.INPUT_MESSAGES: self._content.text("input.messages", list(conversation) or None),
                conv.OUTPUT_MESSAGES: self._content.text("output.messages", output),
            },
        )
        conversation.extend(output or [])




def _step_calls(step: Mapping[str, Any]) -> list[attrs.ToolCall]:
    return [cattrs.tool_call(c) for c in cattrs.step_tool_calls(step)]


def run_span_name(agent_name: Optional[str]) -> str:
    return conv.span_name(conv.INVOKE_AGENT, agent_name)
