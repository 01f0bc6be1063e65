"""The new Foundry agents: one ``invoke_agent`` span per agent invocation on the Responses API.

An invocation is one ``responses.create`` carrying an agent reference. Its span opens at the create call (a CLIENT
child of the current span) and ends at the first terminal status observed: at once for a plain call, at the
terminal event for a stream, and at the poll (``responses.retrieve``) that first shows it for a background
response. Polls never create spans. What a response reveals lands on the invocation's span, with the classic run's
attributes where the meaning is the same (``responses_attributes``).

* Server-side tool items (``code_interpreter_call``, ``mcp_call``, ...) become ``execute_tool`` spans under the
  invocation, timed by their stream events when streamed, else taking the invocation's window.
* ``function_call`` items are answered by the app in a *later* invocation: that invocation's span carries a span
  link to the invocation that asked (one link per answered call id), so the round trip reads as one story.
* Open background invocations live in a bounded registry by response id (least recently active first): beyond
  ``max_open`` or idle for ``idle_timeout_s`` they are ended and marked ``azure.ai.agents.run.unfinished``, like
  classic runs; so is everything still open at shutdown.

Every method may be called from any thread; one lock guards the registries, and an invocation ends exactly once
(``Invocation.finishing``, set under the lock). Spans are made outside the lock.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer

from ..core import attributes as attrs
from ..core import messages
from ..core.content import ContentPolicy
from ..core.metrics import RunMetrics
from ..core.spans import SpanEmitter, record_exception
from . import attributes as rattrs

_log = logging.getLogger(__name__)

#: Function call ids remembered (with the span that asked for them) so that the answering invocation links back.
MAX_REQUESTED_CALLS = 4096
#: Streamed output items tracked per invocation (their client-side windows).
MAX_ITEMS_PER_INVOCATION = 256


@dataclass(eq=False)
class Invocation:
    """One agent invocation while its span is open."""

    span: Span
    context: Context
    start_ns: int
    model: Optional[str]
    last_seen: float
    response_id: Optional[str] = None
    status: Optional[str] = None
    finishing: bool = False
    first_chunk_s: Optional[float] = None
    usage: dict[str, Any] = field(default_factory=dict)
    #: streamed output items: output_index -> (seen added at ns, seen done at ns or None)
    item_windows: dict[int, tuple[int, Optional[int]]] = field(default_factory=dict)
    #: server-side tool items already given a span (by item id)
    emitted: set[str] = field(default_factory=set)


class Invocations:
    """Folds every observation of an agent invocation into its span (the Responses-API counterpart of the run
    tracker; it shares the content policy, the metrics and the conventions, not the run registry)."""

    def __init__(
        self,
        tracer: Tracer,
        content: ContentPolicy,
        metrics: Optional[RunMetrics] = None,
        max_open: int = 5_000,
        idle_timeout_s: float = 1800.0,
    ) -> None:
        self._tracer = tracer
        self._content = content
        self._metrics = metrics
        self._spans = SpanEmitter(tracer, content, metrics)
        self._max_open = max_open
        self._idle_timeout_s = idle_timeout_s
        self._lock = threading.Lock()
        self._open: "OrderedDict[str, Invocation]" = OrderedDict()  # by response id, least recently active first
        self._unregistered: "weakref.WeakSet[Invocation]" = weakref.WeakSet()  # begun, response id not known yet
        self._requested: "OrderedDict[str, SpanContext]" = OrderedDict()  # function call id -> asking span

    # ---- an invocation starts ------------------------------------------------------------------------------
    def begin(self, kwargs: Mapping[str, Any], reference: Mapping[str, Any], server: Mapping[str, Any]) -> Invocation:
        """Opens the invocation span just before ``responses.create``, as a child of the current span."""
        self.sweep()
        attributes = rattrs.request_attributes(kwargs, reference)
        attributes.update(server)
        links = self._links(kwargs.get("input"))
        start_ns = time.time_ns()
        span = self._tracer.start_span(
            _span_name(attributes.get(gen_ai.GEN_AI_AGENT_NAME)),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=links,
            start_time=start_ns,
        )
        if self._content.enabled and span.is_recording():
            self._content.record(
                span,
                {
                    gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS: self._content.text(
                        "system_instructions", messages.system_instructions(kwargs.get("instructions"))
                    ),
                    gen_ai.GEN_AI_INPUT_MESSAGES: self._content.text(
                        "input.messages", rattrs.input_messages(kwargs.get("input"))
                    ),
                },
            )
        model = kwargs.get("model")
        return Invocation(
            span=span,
            context=trace.set_span_in_context(span),
            start_ns=start_ns,
            model=model if isinstance(model, str) else None,
            last_seen=time.monotonic(),
        )

    def streaming(self, invocation: Invocation) -> None:
        """The invocation goes on in a stream the app reads later: ended at shutdown if never finished."""
        with self._lock:
            if not invocation.finishing:
                self._unregistered.add(invocation)

    def _links(self, given: Any) -> Optional[list[Link]]:
        """Links to the invocations whose function calls this request answers (``function_call_output`` items)."""
        call_ids = rattrs.answered_call_ids(given)
        if not call_ids:
            return None
        with self._lock:
            found = [(call_id, self._requested.get(call_id)) for call_id in call_ids]
        links = [Link(ctx, {gen_ai.GEN_AI_TOOL_CALL_ID: call_id}) for call_id, ctx in found if ctx is not None]
        return links or None

    # ---- what the service says ---------------------------------------------------------------------------
    def observe(self, invocation: Invocation, response: Any) -> None:
        """A response snapshot (create's result, a poll, a stream's lifecycle event). Ends the invocation at the
        first terminal status; registers it for polling while it is not terminal."""
        response_id = rattrs.text(response, "id")
        status = rattrs.text(response, "status")
        evicted: list[Invocation] = []
        with self._lock:
            if invocation.finishing:
                return
            invocation.last_seen = time.monotonic()
            previous = invocation.status
            changed = status is not None and status != previous
            if changed:
                invocation.status = status
            terminal = status in rattrs.TERMINAL_STATUSES or (response_id is None and invocation.response_id is None)
            if response_id is not None and invocation.response_id is None:
                invocation.response_id = response_id
            if terminal:
                invocation.finishing = True
                self._forget(invocation)
            elif invocation.response_id is not None:
                self._unregistered.discard(invocation)
                self._open[invocation.response_id] = invocation
                self._open.move_to_end(invocation.response_id)
                while len(self._open) > self._max_open:
                    evicted.append(self._release(self._open.popitem(last=False)[1]))
        for old in evicted:
            self._end_unfinished(old, "evicted")
        if not terminal and not changed:
            return  # a poll that shows nothing new costs nothing more
        span = invocation.span
        snapshot: dict[str, Any] = {}
        if span.is_recording():
            snapshot = rattrs.response_attributes(response)
            if status is not None:
                snapshot[attrs.RUN_STATUS] = status
            if changed and (previous is not None or not terminal):  # no event for a plain call's only status
                event = {attrs.RUN_STATUS: status}
                if previous:
                    event[attrs.PREVIOUS_STATUS] = previous
                span.add_event(attrs.RUN_STATUS_CHANGED_EVENT, event)
        if not terminal:
            if snapshot:
                span.set_attributes(snapshot)
            return
        if response_id is None:
            span.set_attributes(snapshot)
            self._end_unfinished(invocation, "no_response_id")
            return
        self._finish(invocation, response, status, snapshot)

    def first_event(self, invocation: Invocation) -> None:
        """The first event of a streamed invocation arrived: ``gen_ai.response.time_to_first_chunk``, once."""
        if invocation.first_chunk_s is None:
            invocation.first_chunk_s = max(time.time_ns() - invocation.start_ns, 0) / 1e9
            invocation.span.set_attribute(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, invocation.first_chunk_s)

    def item_added(self, invocation: Invocation, index: Any) -> None:
        """A streamed output item started: the client-side start of its tool span."""
        if isinstance(index, int) and len(invocation.item_windows) < MAX_ITEMS_PER_INVOCATION:
            invocation.item_windows.setdefault(index, (time.time_ns(), None))

    def item_done(self, invocation: Invocation, index: Any) -> None:
        """A streamed output item finished: the client-side end of its tool span."""
        window = invocation.item_windows.get(index) if isinstance(index, int) else None
        if window is not None and window[1] is None:
            invocation.item_windows[index] = (window[0], time.time_ns())

    def context_for(self, response_id: Any) -> Optional[Context]:
        """The context to make current while the app polls an open background invocation (None: not ours)."""
        invocation = self._open.get(response_id) if isinstance(response_id, str) else None
        return invocation.context if invocation is not None else None

    def open_invocation(self, response_id: Any) -> Optional[Invocation]:
        return self._open.get(response_id) if isinstance(response_id, str) else None

    # ---- endings -------------------------------------------------------------------------------------------
    def failed(self, invocation: Invocation, exc: BaseException) -> None:
        """The create call raised: the span records the SDK's exception and ends as an error."""
        self.abandon(invocation, None, exc=exc)

    def abandon(
        self,
        invocation: Invocation,
        reason: Optional[str],
        exc: Optional[BaseException] = None,
        error: Optional[tuple[str, Optional[str]]] = None,
    ) -> None:
        """Ends an invocation that will not be seen to finish (its stream stopped early, its call raised), marked
        ``unfinished=reason`` when a reason is given; an error when ``exc`` or ``error`` says so. Idempotent."""
        with self._lock:
            if invocation.finishing:
                return
            invocation.finishing = True
            self._forget(invocation)
        error_type = None
        span = invocation.span
        if exc is not None:
            error_type = record_exception(span, exc)
        elif error is not None:
            error_type = error[0]
            span.set_attribute(error_attributes.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, error[1] or error_type))
        if reason is not None:
            span.set_attribute(attrs.RUN_UNFINISHED, reason)
        self._end(invocation, time.time_ns(), error_type)

    def sweep(self) -> None:
        """Ends background invocations nobody polled for ``idle_timeout_s`` (least recently active first)."""
        if not self._open:
            return
        deadline = time.monotonic() - self._idle_timeout_s
        idle: list[Invocation] = []
        with self._lock:
            while self._open:
                invocation = next(iter(self._open.values()))
                if invocation.last_seen > deadline:
                    break
                idle.append(self._release(self._open.popitem(last=False)[1]))
        for invocation in idle:
            self._end_unfinished(invocation, "idle_timeout")

    def shutdown(self) -> None:
        """Ends every open invocation, marked unfinished (uninstrument, interpreter exit)."""
        with self._lock:
            states = [self._release(i) for i in self._open.values()]
            states += [self._release(i) for i in list(self._unregistered) if not i.finishing]
            self._open.clear()
            self._requested.clear()
        for invocation in states:
            self._end_unfinished(invocation, "shutdown")

    @property
    def open_invocations(self) -> int:
        return len(self._open)

    # ---- internals -----------------------------------------------------------------------------------------
    def _finish(self, invocation: Invocation, response: Any, status: Optional[str], snapshot: dict[str, Any]) -> None:
        """Tool spans, content, requested function calls, final status; then the span ends. ``snapshot`` holds
        the response's attributes (empty when the span is not recorded); they are set here in one call."""
        end_ns = time.time_ns()
        span = invocation.span
        output = rattrs.get(response, "output")
        items = output if isinstance(output, list) else []
        calls = rattrs.function_calls(items)
        if calls:
            context = span.get_span_context()
            with self._lock:
                for call in calls:
                    call_id = rattrs.text(call, "call_id")
                    if call_id:
                        self._requested[call_id] = context
                        self._requested.move_to_end(call_id)
                while len(self._requested) > MAX_REQUESTED_CALLS:
                    self._requested.popitem(last=False)
        error = rattrs.error_of(response, status)
        if snapshot:
            if calls:
                snapshot[rattrs.REQUIRED_TOOL_CALLS] = len(calls)
            if error:
                snapshot[error_attributes.ERROR_TYPE] = error[0]
            span.set_attributes(snapshot)
            for index, item in enumerate(items):
                if rattrs.is_server_tool(item):
                    self._tool_span(invocation, index, item, end_ns)
            if self._content.enabled:
                messages = rattrs.output_messages(items, status)
                self._content.record(
                    span, {gen_ai.GEN_AI_OUTPUT_MESSAGES: self._content.text("output.messages", messages)}
                )
            if error:
                span.set_status(Status(StatusCode.ERROR, error[1] or error[0]))
            invocation.usage = {
                k: snapshot[k] for k in (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS)
                if k in snapshot
            }
        if invocation.model is None:
            invocation.model = rattrs.text(response, "model")
        self._end(invocation, end_ns, error[0] if error else None)

    def _tool_span(self, invocation: Invocation, index: int, item: Any, end_ns: int) -> None:
        info = rattrs.tool_call(item, self._content.enabled)
        if info.id is not None:
            if info.id in invocation.emitted:
                return
            invocation.emitted.add(info.id)
        start, end = invocation.start_ns, end_ns
        window = invocation.item_windows.get(index)
        if window is not None:
            start, end = window[0], window[1] or end_ns
        status = rattrs.text(item, "status")
        self._spans.tool(
            invocation.context,
            info,
            None,
            start,
            end,
            rattrs.tool_error(item),
            extra={rattrs.TOOL_STATUS: status} if status else None,
        )

    def _end(self, invocation: Invocation, end_ns: int, error_type: Optional[str]) -> None:
        invocation.span.end(end_time=end_ns)
        if self._metrics is not None:
            self._metrics.record_run((end_ns - invocation.start_ns) / 1e9, invocation.model, error_type,
                                     invocation.usage)
            if invocation.first_chunk_s is not None:
                self._metrics.record_time_to_first_chunk(invocation.first_chunk_s, invocation.model)

    def _end_unfinished(self, invocation: Invocation, reason: str) -> None:
        invocation.span.set_attribute(attrs.RUN_UNFINISHED, reason)
        self._end(invocation, time.time_ns(), None)

    def _forget(self, invocation: Invocation) -> None:
        """Drops an ending invocation from the registries (caller holds the lock)."""
        self._unregistered.discard(invocation)
        if invocation.response_id is not None and self._open.get(invocation.response_id) is invocation:
            del self._open[invocation.response_id]

    def _release(self, invocation: Invocation) -> Invocation:
        """Marks an invocation leaving the registry as ending (caller holds the lock): no second ending."""
        invocation.finishing = True
        self._unregistered.discard(invocation)
        return invocation


def _span_name(agent_name: Optional[str]) -> str:
    return f"{attrs.INVOKE_AGENT} {agent_name}" if agent_name else attrs.INVOKE_AGENT
