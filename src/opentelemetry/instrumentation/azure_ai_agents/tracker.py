"""The SDK-independent core: one trace per agent run.

The adapters tell the tracker what each SDK call revealed (a run was created, a run snapshot, a list of steps,
submitted tool outputs); the tracker owns every timing and state rule:

* A run span opens when the app calls *create* and ends at the first observation of a terminal status.
  Polls never create spans: a status *change* becomes one span event, whatever the number of polls.
* Step and tool spans are emitted when the run ends (or when steps of an already-finished run are listed),
  because only then are their parents and windows known. They carry the service's own timestamps, clamped
  inside their parent's window; a function call is timed by the client from the poll that revealed it in
  ``requires_action`` to the ``submit_tool_outputs`` that answered it, and its step's window is widened to hold it.
* A function the SDK executes for the app (auto function calls) gets a *live* ``execute_tool`` span around the
  real call, parented by the run that asked for it (found by call id); the run's later step spans never
  duplicate it (``RunState.emitted``).
* Streamed runs feed the same rules: run events are run snapshots, step events are step snapshots; a stream
  that stops before a terminal status ends its run early (:meth:`RunTracker.abandon_run`) unless the run is
  waiting for the app's tool outputs.
* Open runs live in a bounded registry ordered by last activity: runs idle for too long, or beyond the
  capacity, are ended and marked unfinished; so is everything still open at shutdown.

Every public method may be called from any thread. All service objects are read as wire-format mappings
(see ``attributes``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from . import attributes as attrs
from .child_spans import ChildSpans, clamp
from .content import ContentPolicy
from .metrics import RunMetrics
from .state import (
    MAX_CALLS_PER_RUN,
    MAX_KNOWN_AGENTS,
    MAX_STEPS_PER_RUN,
    LiveTool,
    PendingCall,
    RunState,
    TrackerConfig,
)

_log = logging.getLogger(__name__)

class RunTracker:
    """Folds every observation of a run into that run's trace."""

    def __init__(
        self,
        tracer: Tracer,
        content: ContentPolicy,
        config: Optional[TrackerConfig] = None,
        metrics: Optional[RunMetrics] = None,
    ) -> None:
        self._tracer = tracer
        self._content = content
        self.config = config or TrackerConfig()
        self._metrics = metrics
        self._children = ChildSpans(tracer, content, metrics)
        self._lock = threading.Lock()
        self._open: "OrderedDict[str, RunState]" = OrderedDict()  # by run id, least recently active first
        self._call_owner: dict[str, str] = {}  # pending function call id -> run id (open runs only)
        #: Runs begun whose id is not known yet (a stream before its first event): ended at shutdown too.
        self._unregistered: "weakref.WeakSet[RunState]" = weakref.WeakSet()
        self._finished: "OrderedDict[str, RunState]" = OrderedDict()
        self._agent_names: "OrderedDict[str, str]" = OrderedDict()

    # ---- creating a run ------------------------------------------------------------------------------
    def begin_run(self, request: Mapping[str, Any], server: Mapping[str, Any]) -> RunState:
        """Opens the run span just before the create call, as a child of the current span."""
        self.sweep()
        agent_id = request.get("assistant_id") if isinstance(request.get("assistant_id"), str) else None
        agent_name = self.agent_name(agent_id)
        attributes = attrs.run_request_attributes(request)
        attributes.update(server)
        if agent_name:
            attributes[gen_ai.GEN_AI_AGENT_NAME] = agent_name
        start_ns = time.time_ns()
        span = self._tracer.start_span(
            _run_span_name(agent_name), kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
        )
        self._record_request_content(span, request)
        model = request.get("model")
        state = RunState(
            span=span,
            context=trace.set_span_in_context(span),
            start_ns=start_ns,
            agent_id=agent_id,
            agent_named=agent_name is not None,
            model=model if isinstance(model, str) else None,
            last_seen=time.monotonic(),
        )
        with self._lock:
            self._unregistered.add(state)
        return state

    def run_created(self, state: RunState, run: Any) -> Optional[RunState]:
        """Registers the run the service created. Returns the state if the run is already terminal."""
        run_id = attrs.text_field(run, "id")
        if run_id is None:
            with self._lock:
                self._release(state)
            self._end_unfinished(state, "no_run_id")
            return None
        state.run_id = run_id
        state.thread_id = attrs.text_field(run, "thread_id")
        evicted: list[tuple[RunState, str]] = []
        with self._lock:
            self._unregistered.discard(state)
            # The service reused an id we still track (a malformed answer): end the older span, never orphan it.
            replaced = self._open.pop(run_id, None)
            if replaced is not None and replaced is not state:
                evicted.append((self._release(replaced), "replaced"))
            self._open[run_id] = state
            while len(self._open) > self.config.max_open_runs:
                evicted.append((self._release(self._open.popitem(last=False)[1]), "evicted"))
        for old, reason in evicted:
            self._end_unfinished(old, reason)
        return self.observe_run(run)

    def run_create_failed(self, state: RunState, exc: BaseException) -> None:
        """The create call raised: the run span records the SDK's exception and ends as an error."""
        with self._lock:
            self._release(state)
        error_type = _record_exception(state.span, exc)
        end_ns = time.time_ns()
        self._end_span(state, end_ns)
        self._record_run_metrics(state, end_ns, error_type)

    # ---- observing a run -----------------------------------------------------------------------------
    def context_for(self, run_id: Any) -> Optional[Context]:
        """The context to make current while the app calls the service about an open run."""
        if not isinstance(run_id, str):
            return None
        state = self._open.get(run_id)
        return state.context if state is not None else None

    def open_state(self, run_id: Any) -> Optional[RunState]:
        """The state of an open run (a streamed run continued by ``submit_tool_outputs_stream``)."""
        return self._open.get(run_id) if isinstance(run_id, str) else None

    def knows(self, run_id: Any) -> bool:
        """True for a run that is open or recently finished (its steps can still be emitted)."""
        return isinstance(run_id, str) and (run_id in self._open or run_id in self._finished)

    def observe_run(self, run: Any) -> Optional[RunState]:
        """Folds a run snapshot into its span. Returns the state exactly once: when the run just ended;
        the caller then (optionally) lists its steps and calls :meth:`finish_run`."""
        run_id = attrs.text_field(run, "id")
        status = attrs.text_field(run, "status")
        if run_id is None:
            return None
        with self._lock:
            state = self._open.get(run_id)
            if state is None or state.finishing:
                return None
            state.last_seen = time.monotonic()
            self._open.move_to_end(run_id)
            changed = status is not None and status != state.status
            if changed:
                previous, state.status = state.status, status
            if status == "requires_action":
                new_calls = self._note_required_calls(state, run)
                if changed or new_calls:
                    state.awaiting_outputs = True
            elif status is not None:
                state.awaiting_outputs = False
            terminal = status in attrs.TERMINAL_STATUSES
            if terminal:
                state.end_ns = time.time_ns()
                del self._open[run_id]
                self._release(state)
                self._remember_finished(state)
        if changed and status is not None:  # (changed implies a status; said again for the type checker)
            # Kept as a compact tuple and added as a span event (with its own timestamp) when the span ends:
            # an SDK event costs ~400 bytes, and open runs may number in the thousands.
            waiting = status == "requires_action"
            required = len(attrs.required_tool_calls(run)) if waiting else None
            action_type = attrs.required_action_type(run) if waiting else None
            transition = (time.time_ns(), status, previous, required, action_type)
            with self._lock:
                state.transitions.append(transition)
            run_attributes = attrs.run_attributes(run)
            run_attributes[attrs.RUN_STATUS] = status
            state.span.set_attributes(run_attributes)
            state.usage = {
                k: v
                for k, v in run_attributes.items()
                if k in (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS)
            }
            if state.agent_id is None:
                state.agent_id = run_attributes.get(gen_ai.GEN_AI_AGENT_ID)
            if state.model is None:
                state.model = run_attributes.get(gen_ai.GEN_AI_RESPONSE_MODEL)
        if terminal and status is not None:
            state.error = attrs.run_error_type(run, status)
            return state
        return None

    def tool_outputs_submitted(self, run_id: Any, outputs: Any) -> None:
        """The app answered a ``requires_action`` (tool outputs, or tool approvals when ``outputs`` is None):
        ends the client-side timing of the function calls it answered."""
        if not isinstance(run_id, str):
            return
        now = time.time_ns()
        with self._lock:
            state = self._open.get(run_id)
            if state is None:
                return
            state.last_seen = time.monotonic()
            state.awaiting_outputs = False
            if not isinstance(outputs, Iterable) or isinstance(outputs, (str, bytes, Mapping)):
                return
            for output in outputs:
                call_id = attrs.text_field(output, "tool_call_id")
                if call_id is None:
                    continue
                call = state.calls.get(call_id)
                if call is None:
                    if len(state.calls) >= MAX_CALLS_PER_RUN:
                        continue
                    call = state.calls[call_id] = PendingCall()
                if call.submitted_ns is None:
                    call.submitted_ns = now
                if self._content.enabled:
                    call.output = attrs.field(output, "output")

    def observe_steps(self, run_id: Any, steps: Iterable[Any]) -> None:
        """Remembers run steps (latest snapshot wins). Steps of an already-finished run are emitted at once."""
        if not isinstance(run_id, str):
            return
        with self._lock:
            state = self._open.get(run_id) or self._finished.get(run_id)
            if state is None:
                return
            self._store_steps(state, steps)
            late = state.children_emitted
        if late:
            self._emit_children(state)

    def finish_run(self, state: RunState, steps: Optional[Iterable[Any]] = None) -> None:
        """Emits step and tool spans, sets the final status and ends the run span."""
        if steps is not None:
            with self._lock:
                self._store_steps(state, steps)
        self._emit_children(state)
        span = state.span
        if not state.agent_named:
            name = self.agent_name(state.agent_id)
            if name:
                span.update_name(_run_span_name(name))
                span.set_attribute(gen_ai.GEN_AI_AGENT_NAME, name)
        if state.error:
            error_type, message = state.error
            span.set_attribute(error_attributes.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, message or error_type))
        end_ns = state.end_ns or time.time_ns()
        self._end_span(state, end_ns)
        self._record_run_metrics(state, end_ns, state.error[0] if state.error else None)

    def abandon_run(
        self,
        state: RunState,
        reason: str,
        exc: Optional[BaseException] = None,
        error: Optional[tuple[str, Optional[str]]] = None,
    ) -> None:
        """Ends a run that will not be seen to finish (its stream stopped early, or the SDK call driving it
        raised): marked ``unfinished=reason``; an error if ``exc`` or ``error`` says so. Idempotent."""
        with self._lock:
            if state.finishing:
                return
            if state.run_id is not None and self._open.get(state.run_id) is state:
                del self._open[state.run_id]
                self._remember_finished(state)
            self._release(state)
        self._flush_transitions(state)  # status events first: the exception event comes after them
        error_type = None
        if exc is not None:
            error_type = _record_exception(state.span, exc)
        elif error is not None:
            error_type = error[0]
            state.span.set_attribute(error_attributes.ERROR_TYPE, error[0])
            state.span.set_status(Status(StatusCode.ERROR, error[1] or error[0]))
        self._end_unfinished(state, reason)
        if error_type is not None:
            self._record_run_metrics(state, state.end_ns or time.time_ns(), error_type)

    def waiting_for_outputs(self, state: RunState) -> bool:
        """True while the run waits for the app to submit tool outputs (it goes on without the app's stream)."""
        return state.awaiting_outputs and not state.finishing

    # ---- streams ---------------------------------------------------------------------------------------
    def first_event(self, state: RunState) -> None:
        """The first streamed event of a run arrived: records ``gen_ai.response.time_to_first_chunk`` once."""
        if state.first_chunk_s is not None:
            return
        state.first_chunk_s = max(time.time_ns() - state.start_ns, 0) / 1e9
        state.span.set_attribute(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, state.first_chunk_s)

    # ---- tools the SDK executes for the app ----------------------------------------------------------
    def start_tool(self, call: Any) -> LiveTool:
        """Opens a live ``execute_tool`` span for a function the SDK is about to run. Its parent is the run
        that asked for the call (by call id), else the current span; the run's step spans will not repeat it."""
        info = attrs.tool_call(call)
        with self._lock:
            state = self._open.get(self._call_owner.get(info.id, "")) if info.id else None
            if state is not None:
                state.emitted.add(info.id)  # type: ignore[arg-type]
                state.last_seen = time.monotonic()
        start_ns = time.time_ns()
        span = self._tracer.start_span(
            f"execute_tool {info.name}",
            context=state.context if state is not None else None,
            kind=SpanKind.INTERNAL,
            attributes=info.attributes(),
            start_time=start_ns,
        )
        if self._content.enabled:
            arguments = self._content.text("tool.arguments", info.arguments)
            self._content.record(span, {gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS: arguments})
        return LiveTool(span, trace.set_span_in_context(span), info, start_ns)

    def end_tool(self, tool: LiveTool, result: Any = None, exc: Optional[BaseException] = None) -> None:
        """Ends a live tool span: the function's result (content capture permitting) or the exception it raised."""
        error_type = None
        if exc is not None:
            error_type = _record_exception(tool.span, exc)
        elif self._content.enabled:
            self._content.record(tool.span, {gen_ai.GEN_AI_TOOL_CALL_RESULT: self._content.text("tool.result", result)})
        end_ns = time.time_ns()
        tool.span.end(end_time=end_ns)
        if self._metrics is not None:
            duration_s = (end_ns - tool.start_ns) / 1e9
            self._metrics.record_tool(duration_s, tool.info.name, tool.info.semconv_type, error_type)

    def tool_failed(self, call: Any, exc: BaseException) -> None:
        """The SDK could not even start the app's function (unknown name, bad arguments): a failed tool span."""
        self.end_tool(self.start_tool(call), exc=exc)

    # ---- agents ----------------------------------------------------------------------------------------
    def learn_agent(self, agent: Any) -> None:
        """Remembers an agent's name (from create/get/update agent) so run spans read ``invoke_agent {name}``."""
        agent_id, name = attrs.text_field(agent, "id"), attrs.text_field(agent, "name")
        if agent_id is None or name is None:
            return
        with self._lock:
            self._agent_names[agent_id] = name
            self._agent_names.move_to_end(agent_id)
            while len(self._agent_names) > MAX_KNOWN_AGENTS:
                self._agent_names.popitem(last=False)
            unnamed = [s for s in self._open.values() if s.agent_id == agent_id and not s.agent_named]
            for state in unnamed:
                state.agent_named = True
        for state in unnamed:
            state.span.update_name(_run_span_name(name))
            state.span.set_attribute(gen_ai.GEN_AI_AGENT_NAME, name)

    def agent_name(self, agent_id: Optional[str]) -> Optional[str]:
        return self._agent_names.get(agent_id) if agent_id else None

    # ---- bounds ----------------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Ends runs nobody has asked about for ``idle_timeout_s`` (least recently active first)."""
        deadline = time.monotonic() - self.config.idle_timeout_s
        idle: list[RunState] = []
        with self._lock:
            while self._open:
                state = next(iter(self._open.values()))
                if state.last_seen > deadline:
                    break
                self._open.popitem(last=False)
                idle.append(self._release(state))
        for state in idle:
            self._end_unfinished(state, "idle_timeout")

    def shutdown(self) -> None:
        """Ends every open run span, marked unfinished (uninstrument, interpreter exit)."""
        with self._lock:
            states = [self._release(s) for s in self._open.values()]
            states += [self._release(s) for s in list(self._unregistered) if not s.finishing]
            self._open.clear()
            self._finished.clear()
        for state in states:
            self._end_unfinished(state, "shutdown")

    @property
    def open_runs(self) -> int:
        return len(self._open)

    # ---- internals -------------------------------------------------------------------------------------
    def _end_span(self, state: RunState, end_ns: int) -> None:
        self._flush_transitions(state)
        state.span.end(end_time=end_ns)
        # A finished run stays known for a while (late step listings) but only needs its span's identity to
        # parent late steps: drop the ended SDK span and the step payloads (their ids stay in ``emitted``).
        state.span = trace.NonRecordingSpan(state.span.get_span_context())
        state.context = trace.set_span_in_context(state.span)
        with self._lock:
            state.steps = {}
            state.calls = {}

    def _flush_transitions(self, state: RunState) -> None:
        """Adds the run's pending status-change events (one per change, stamped when it was seen)."""
        with self._lock:
            transitions, state.transitions = state.transitions, []
        span = state.span
        for seen_ns, status, previous, required, action_type in transitions:
            event: dict[str, Any] = {attrs.RUN_STATUS: status}
            if previous:
                event[attrs.PREVIOUS_STATUS] = previous
            if required is not None:
                event[attrs.REQUIRED_TOOL_CALLS] = required
                if action_type:
                    event[attrs.REQUIRED_ACTION_TYPE] = action_type
            span.add_event(attrs.RUN_STATUS_CHANGED_EVENT, event, timestamp=seen_ns)

    def _end_unfinished(self, state: RunState, reason: str) -> None:
        state.end_ns = time.time_ns()
        state.span.set_attribute(attrs.RUN_UNFINISHED, reason)
        try:
            self._emit_children(state)
        finally:
            self._end_span(state, state.end_ns)

    def _release(self, state: RunState) -> RunState:
        """Bookkeeping for a state leaving the open registry (caller holds the lock): no second ending."""
        state.finishing = True
        self._unregistered.discard(state)
        for call_id in state.calls:
            if self._call_owner.get(call_id) == state.run_id:
                del self._call_owner[call_id]
        return state

    def _record_run_metrics(self, state: RunState, end_ns: int, error_type: Optional[str]) -> None:
        """Recorded when the run ends, so that every metric of a run carries the same (final) model."""
        if self._metrics is None:
            return
        self._metrics.record_run((end_ns - state.start_ns) / 1e9, state.model, error_type, state.usage)
        if state.first_chunk_s is not None:
            self._metrics.record_time_to_first_chunk(state.first_chunk_s, state.model)

    def _remember_finished(self, state: RunState) -> None:
        self._finished[state.run_id] = state  # type: ignore[index]
        while len(self._finished) > self.config.finished_runs_kept:
            self._finished.popitem(last=False)

    def _note_required_calls(self, state: RunState, run: Any) -> bool:
        """Starts the client-side timing of the function calls a ``requires_action`` run waits for; True if
        any is new. Other required actions (MCP tool approvals, types not invented yet) are only counted on
        the status event."""
        now = time.time_ns()
        new = False
        for call in attrs.required_tool_calls(run):
            call_id = attrs.text_field(call, "id")
            if call_id is None or (call_id not in state.calls and len(state.calls) >= MAX_CALLS_PER_RUN):
                continue
            if attrs.text_field(call, "type") not in (None, "function"):
                continue
            if state.run_id is not None:
                self._call_owner[call_id] = state.run_id
            pending = state.calls.setdefault(call_id, PendingCall())
            if pending.first_seen_ns is None:
                new = True
                function = attrs.field(call, "function")
                pending.first_seen_ns = now
                pending.name = attrs.text_field(function, "name")
                if self._content.enabled:
                    pending.arguments = attrs.field(function, "arguments")
        return new

    def _store_steps(self, state: RunState, steps: Iterable[Any]) -> None:
        for step in steps:
            step_id = attrs.text_field(step, "id")
            if step_id is None or (step_id not in state.steps and len(state.steps) >= MAX_STEPS_PER_RUN):
                continue
            state.steps[step_id] = step

    def _emit_children(self, state: RunState) -> None:
        """Emits the step and tool spans not emitted yet, inside the run's window. What to emit is decided
        under the lock (each step and call id exactly once); the spans are made outside it."""
        with self._lock:
            run_start, run_end = state.start_ns, state.end_ns or time.time_ns()
            new_steps = [s for sid, s in state.steps.items() if sid not in state.emitted]
            state.emitted.update(sid for sid in state.steps if sid not in state.emitted)
            plan = []
            for step in sorted(new_steps, key=lambda s: attrs.number(attrs.field(s, "created_at")) or 0):
                calls = []
                for info in map(attrs.tool_call, attrs.step_tool_calls(step)):
                    if info.id is not None:
                        if info.id in state.emitted:
                            continue
                        state.emitted.add(info.id)
                    calls.append((info, state.calls.get(info.id) if info.id else None))
                plan.append((step, calls))
            # Function calls no listed step accounts for hang directly under the run span.
            orphans = [(cid, c) for cid, c in state.calls.items() if cid not in state.emitted]
            state.emitted.update(cid for cid, _ in orphans)
            state.children_emitted = True
        for step, calls in plan:
            self._children.step(state.context, state.run_id, step, calls, run_start, run_end)
        for call_id, pending in orphans:
            start = clamp(pending.first_seen_ns or run_start, run_start, run_end)
            end = clamp(pending.submitted_ns or run_end, start, run_end)
            info = attrs.ToolCall(call_id, "function", pending.name or "function", pending.arguments, pending.output)
            self._children.tool(state.context, info, pending, start, end, None)

    def _record_request_content(self, span: Span, request: Mapping[str, Any]) -> None:
        if not self._content.enabled:
            return
        instructions = attrs.instructions_parts(request.get("instructions"), request.get("additional_instructions"))
        messages = attrs.input_messages(request.get("additional_messages") or request.get("thread_messages"))
        self._content.record(
            span,
            {
                gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS: self._content.text("system_instructions", instructions),
                gen_ai.GEN_AI_INPUT_MESSAGES: self._content.text("input.messages", messages),
            },
        )


def _record_exception(span: Span, exc: BaseException) -> str:
    """Records ``exc`` on ``span`` as an error; returns its ``error.type``."""
    error_type = type(exc).__qualname__
    span.record_exception(exc)
    span.set_attribute(error_attributes.ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:1024] or error_type))
    return error_type


def _run_span_name(agent_name: Optional[str]) -> str:
    return f"{attrs.INVOKE_AGENT} {agent_name}" if agent_name else attrs.INVOKE_AGENT


def attach(ctx: Optional[Context]) -> Optional[object]:
    return otel_context.attach(ctx) if ctx is not None else None


def detach(token: Optional[object]) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]
