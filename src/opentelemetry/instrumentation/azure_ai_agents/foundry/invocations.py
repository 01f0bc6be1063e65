"""The new Foundry agents: one ``invoke_agent`` span per agent invocation on the Responses API.

An invocation is one ``responses.create`` that invokes an agent: one carrying an agent reference (GA key
``agent_reference``, the early betas' ``agent``), or any made through an agent's endpoint client
(``project.get_openai_client(agent_name=N)``: the base URL names the agent; hosted agents are reached the same
way). Its span opens at the create call (a CLIENT child of the current span) and ends at the first terminal status
observed: at once for a plain call, at the terminal event for a stream, at the poll (``responses.retrieve``) that
first shows it for a background response. Polls never create spans. What a response reveals lands on the span,
with the classic run's attributes where the meaning is the same.

* Under it, one ``chat {model}`` span (operation ``chat``) stands for the model calls the service made for the
  response: the service reports one usage per response, not per model call, so that span carries the response's
  usage, its finish reason and (capture on) its messages. Trace backends that count tokens only on model-call
  spans (Arize Phoenix) count them there; the ``invoke_agent`` span keeps the usage too (conventions,
  Application Insights), and backends that count a span's usage only when no ancestor has any (MLflow) count it
  once. The token metric is recorded once, for the invocation.
* Server-side tool items (``code_interpreter_call``, ``mcp_call``, ...) become ``execute_tool`` spans under the
  invocation, timed by their stream events when streamed, else taking the invocation's window.
* ``function_call`` items are answered by the app in a *later* invocation: that invocation's span carries a span
  link to the invocation that asked (one link per answered call id), so the round trip reads as one story.
* With content capture on, the input is the conversation items the app posted since the conversation's last
  invocation plus ``input`` (``conversations``); instructions and tool definitions come from the request, else the
  response, else the agent version (``agents``: learned from the app's agent calls or read once off its path).
* The version, when the response does not echo it, is the agent's (``agents``). An invocation that still needs a
  read ends its span when the read is done (at the end time observed: the app never waits).
* Open background invocations live in the registry both generations share (``core.registry``), by response id:
  beyond ``max_open`` or idle for ``idle_timeout_s`` they are ended and marked ``azure.ai.agents.run.unfinished``,
  like classic runs; so is everything still open at shutdown. Finalizers (a stream the app dropped) take no lock:
  they only queue work (``registry.deferred``), run at the next call, at flush and at shutdown.

The registry's locking rule holds: each invocation has its own lock, guarding its state (status, response id,
``finishing``); the registry's lock is only taken inside it. An invocation ends exactly once, by whoever first set
``finishing`` under its lock (:meth:`Invocations._claim`). Spans are written outside the locks: once claimed, an
invocation is written by its claimer only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Mapping, Optional

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, Tracer

from ..core import attributes as attrs
from ..core import conventions as conv
from ..core.bounded import LruMap
from ..core.calls import guarded
from ..core.content import ContentPolicy
from ..core.fetcher import Fetcher
from ..core.forking import at_fork_in_child
from ..core.metrics import RunMetrics
from ..core.registry import Registry
from ..core.spans import SpanEmitter, record_exception
from . import attributes as rattrs
from .agents import AgentDirectory, VersionFacts
from .clients import ClientInfo
from .conversations import PostedItems
from .emit import InvocationContent, Outcome, chat_span

_log = logging.getLogger(__name__)

#: Function call ids remembered (with the span that asked for them) so that the answering invocation links back.
MAX_REQUESTED_CALLS = 4096
#: Streamed output items tracked per invocation (their client-side windows).
MAX_ITEMS_PER_INVOCATION = 256
_USAGE_KEYS = (conv.USAGE_INPUT_TOKENS, conv.USAGE_OUTPUT_TOKENS)


_NO_USAGE: Mapping[str, Any] = {}


class Invocation:
    """One agent invocation while its span is open. (A plain slotted class: one is made per agent call.)"""

    __slots__ = (
        "span", "context", "start_ns", "model", "last_seen", "agent_name", "version", "via_endpoint", "client",
        "endpoint", "server", "response_id", "status", "finishing", "first_chunk_s", "usage", "item_windows",
        "emitted", "content", "output_type", "conversation", "lock", "__weakref__",
    )

    def __init__(
        self,
        span: Span,
        context: Context,
        start_ns: int,
        model: Optional[str],
        last_seen: float,
        agent_name: Optional[str] = None,
        version: Optional[str] = None,
        via_endpoint: bool = False,
        client: Any = None,
        endpoint: Optional[str] = None,
        server: Mapping[str, Any] = _NO_USAGE,
        output_type: Optional[str] = None,
        conversation: Optional[str] = None,
    ) -> None:
        self.span = span
        self.context = context
        self.start_ns = start_ns
        self.model = model
        self.last_seen = last_seen
        self.agent_name = agent_name
        self.version = version  #: asked for in the request's reference
        self.via_endpoint = via_endpoint  #: made through the agent's endpoint client
        self.client = client  #: the openai client it was made with (reads of its agent go through it)
        self.endpoint = endpoint  #: the project endpoint
        self.server = server
        self.output_type = output_type  #: asked for in the request
        self.conversation = conversation
        self.response_id: Optional[str] = None
        self.status: Optional[str] = None
        self.finishing = False
        self.first_chunk_s: Optional[float] = None
        self.usage: Mapping[str, Any] = _NO_USAGE
        #: streamed output items: output_index -> (seen added at ns, seen done at ns or None); made when streamed
        self.item_windows: Optional[dict[int, tuple[int, Optional[int]]]] = None
        #: server-side tool items already given a span (by item id); made at the first one
        self.emitted: Optional[set[str]] = None
        self.content: Optional[InvocationContent] = None  #: what the request said (content capture only)
        self.lock = threading.RLock()  #: guards the state above (see the module docstring)

    @property
    def key(self) -> Optional[str]:
        """The registry's key: the response id, once known."""
        return self.response_id


class Invocations:
    """Folds every observation of an agent invocation into its span (the Responses-API counterpart of the run
    tracker; it shares the content policy, the metrics, the fetcher and the conventions)."""

    def __init__(
        self,
        tracer: Tracer,
        content: ContentPolicy,
        metrics: Optional[RunMetrics] = None,
        max_open: int = 5_000,
        idle_timeout_s: float = 1800.0,
        fetcher: Optional[Fetcher] = None,
        project_id: Optional[str] = None,
    ) -> None:
        self._tracer = tracer
        self._content = content
        self._metrics = metrics
        self._spans = SpanEmitter(tracer, content, metrics)
        self._project = {conv.FOUNDRY_PROJECT_ID: project_id} if project_id else {}
        self.registry: Registry[Invocation] = Registry(max_open, idle_timeout_s)
        self.fetcher = fetcher if fetcher is not None else Fetcher()
        self._fresh_caches()
        at_fork_in_child(self._after_fork_in_child)

    def _fresh_caches(self) -> None:
        self.agents = AgentDirectory(self.fetcher, self._content.enabled)
        self.posted = PostedItems()
        self._requested: LruMap[str, SpanContext] = LruMap(MAX_REQUESTED_CALLS)  # function call id -> asking span

    def _after_fork_in_child(self) -> None:
        """A forked child traces its own invocations only: the parent's are left to the parent (marked as ending
        in the child's copies, so nothing there ends or extends them); caches whose locks a vanished thread may
        hold start afresh (the fetcher resets itself)."""
        for invocation in self.registry.forget_after_fork():
            invocation.finishing = True
            invocation.lock = threading.RLock()
        self._fresh_caches()

    @property
    def content_enabled(self) -> bool:
        return self._content.enabled

    @property
    def spans(self) -> SpanEmitter:
        return self._spans

    # ---- an invocation starts ------------------------------------------------------------------------------
    def begin(
        self, kwargs: Mapping[str, Any], reference: Optional[Mapping[str, Any]], info: ClientInfo, client: Any
    ) -> Invocation:
        """Opens the invocation span just before ``responses.create``, as a child of the current span."""
        self.sweep()
        attributes = rattrs.request_attributes(kwargs, reference, info.agent_name)
        attributes.update(info.server)
        if self._project:
            attributes.update(self._project)
        links = self._links(kwargs.get("input"))
        start_ns = time.time_ns()
        agent_name = attributes.get(conv.AGENT_NAME)
        span = self._tracer.start_span(
            conv.span_name(conv.INVOKE_AGENT, agent_name),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=links,
            start_time=start_ns,
        )
        model = kwargs.get("model")
        invocation = Invocation(
            span=span,
            context=trace.set_span_in_context(span),
            start_ns=start_ns,
            model=model if isinstance(model, str) else None,
            last_seen=time.monotonic(),
            agent_name=agent_name,
            version=attributes.get(conv.AGENT_VERSION),
            via_endpoint=reference is None,
            client=client,
            endpoint=info.endpoint,
            server=info.server,
            output_type=attributes.get(conv.OUTPUT_TYPE),
            conversation=attributes.get(conv.CONVERSATION_ID),
        )
        if self._content.enabled:
            posted = self.posted.take(attributes.get(conv.CONVERSATION_ID))
            invocation.content = InvocationContent.of_request(kwargs, posted)
            if span.is_recording():
                invocation.content.record_input(self._content, span)
        return invocation

    def streaming(self, invocation: Invocation) -> None:
        """The invocation goes on in a stream the app reads later: ended at shutdown if never finished."""
        with invocation.lock:
            if not invocation.finishing:
                self.registry.add_unregistered(invocation)

    def defer(self, work: Any) -> None:
        """Queues ``work`` for the next call (lock-free: for finalizers and code that may run in a collection)."""
        self.registry.deferred.append(work)

    def _links(self, given: Any) -> Optional[list[Link]]:
        """Links to the invocations whose function calls this request answers (``function_call_output`` items)."""
        call_ids = rattrs.answered_call_ids(given)
        if not call_ids:
            return None
        found = [(call_id, self._requested.get(call_id)) for call_id in call_ids]
        links = [Link(ctx, {conv.TOOL_CALL_ID: call_id}) for call_id, ctx in found if ctx is not None]
        return links or None

    # ---- what the service says ---------------------------------------------------------------------------
    def observe(self, invocation: Invocation, response: Any) -> None:
        """A response snapshot (create's result, a poll, a stream's lifecycle event). Ends the invocation at the
        first terminal status; registers it for polling while it is not terminal."""
        response_id = rattrs.text(response, "id")
        status = rattrs.text(response, "status")
        evicted: list[tuple[Invocation, str]] = []
        with invocation.lock:
            if invocation.finishing:
                return  # already ending
            invocation.last_seen = time.monotonic()
            previous = invocation.status
            changed = status if status is not None and status != previous else None
            if changed is not None:
                invocation.status = status
            known = invocation.response_id is not None
            if response_id is not None and not known:
                invocation.response_id = response_id
            terminal = status in rattrs.TERMINAL_STATUSES or (response_id is None and not known)
            if terminal:
                invocation.finishing = True
                self.registry.close(invocation, finished=False)
            elif invocation.response_id is not None:
                if known:
                    self.registry.touch(invocation)
                else:
                    evicted = self.registry.register(invocation)
        for old, reason in evicted:
            if self._claim(old):
                self._end_unfinished(old, reason)
        if not terminal and changed is None:
            return  # a poll that shows nothing new costs nothing more
        span = invocation.span
        snapshot: dict[str, Any] = {}
        if span.is_recording():
            snapshot = rattrs.response_attributes(response)
            if status is not None:
                snapshot[attrs.RUN_STATUS] = status
            # No event for a plain call's only status.
            if changed is not None and (previous is not None or not terminal):
                event = {attrs.RUN_STATUS: changed}
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
        self._finish(invocation, response, response_id, status, snapshot)

    def first_event(self, invocation: Invocation) -> None:
        """The first event of a streamed invocation arrived: ``gen_ai.response.time_to_first_chunk``, once."""
        if invocation.first_chunk_s is None:
            invocation.first_chunk_s = max(time.time_ns() - invocation.start_ns, 0) / 1e9
            invocation.span.set_attribute(conv.RESPONSE_TIME_TO_FIRST_CHUNK, invocation.first_chunk_s)

    def item_added(self, invocation: Invocation, index: Any) -> None:
        """A streamed output item started: the client-side start of its tool span."""
        windows = invocation.item_windows
        if windows is None:
            windows = invocation.item_windows = {}
        if isinstance(index, int) and len(windows) < MAX_ITEMS_PER_INVOCATION:
            windows.setdefault(index, (time.time_ns(), None))

    def item_done(self, invocation: Invocation, index: Any) -> None:
        """A streamed output item finished: the client-side end of its tool span."""
        windows = invocation.item_windows
        window = windows.get(index) if windows is not None and isinstance(index, int) else None
        if window is not None and window[1] is None:
            windows[index] = (window[0], time.time_ns())  # type: ignore[index]

    def open_invocation(self, response_id: Any) -> Optional[Invocation]:
        return self.registry.open_item(response_id)

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
        if not self._claim(invocation):
            return
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
        for invocation in self.registry.take_idle():
            if self._claim(invocation):
                self._end_unfinished(invocation, "idle_timeout")

    def shutdown(self) -> None:
        """Ends every open invocation, marked unfinished (uninstrument, interpreter exit)."""
        self.registry.drain_deferred()
        for invocation in self.registry.take_all():
            if self._claim(invocation):
                self._end_unfinished(invocation, "shutdown")
        self._requested.clear()
        self.posted.clear()

    @property
    def open_invocations(self) -> int:
        return self.registry.open_count

    def _claim(self, invocation: Invocation) -> bool:
        """True exactly once per invocation: the caller ends it (it leaves the registry)."""
        with invocation.lock:
            if invocation.finishing:
                return False
            invocation.finishing = True
            self.registry.close(invocation, finished=False)
            return True

    # ---- internals -----------------------------------------------------------------------------------------
    def _finish(
        self,
        invocation: Invocation,
        response: Any,
        response_id: str,
        status: Optional[str],
        snapshot: dict[str, Any],
    ) -> None:
        """Tool spans, status, requested function calls; then what the agent adds (version, instructions, tools:
        perhaps read off the path) and the span ends. ``snapshot`` holds the response's attributes (empty when the
        span is not recorded); they are set with the agent's, in one call, by :meth:`_complete`."""
        end_ns = time.time_ns()
        span = invocation.span
        read = rattrs.reader(response)
        output = read("output")
        items = output if isinstance(output, list) else []
        calls, asks, tools, outputs = rattrs.scan(items)
        if calls:
            context = span.get_span_context()
            for call in calls:
                call_id = rattrs.text(call, "call_id")
                if call_id:
                    self._requested.put(call_id, context)
        error = rattrs.error_of(response, status) if status in rattrs.ERROR_STATUSES else None
        model = snapshot.get(conv.REQUEST_MODEL)
        if invocation.model is None:
            invocation.model = model if model is not None else attrs.bounded(read("model"))
        if not snapshot:
            self._end(invocation, end_ns, error[0] if error else None)
            return
        finish = rattrs.finish_reason(asks, status, response)
        if not invocation.agent_name:
            name = rattrs.text(read("agent_reference") or read("agent"), "name")
            if name:
                invocation.agent_name = name
                snapshot[conv.AGENT_NAME] = name
                span.update_name(conv.span_name(conv.INVOKE_AGENT, name))
        version = snapshot.get(conv.AGENT_VERSION) or invocation.version
        if calls:
            snapshot[rattrs.REQUIRED_TOOL_CALLS] = len(calls)
        if error:
            snapshot[error_attributes.ERROR_TYPE] = error[0]
        if finish:
            snapshot[conv.RESPONSE_FINISH_REASONS] = (finish,)
        if invocation.output_type is None:
            invocation.output_type = rattrs.json_output_type(read("text"))
            if invocation.output_type is not None:
                snapshot[conv.OUTPUT_TYPE] = invocation.output_type
        for index in tools:
            self._tool_span(invocation, index, items[index], end_ns, outputs)
        if error:
            span.set_status(Status(StatusCode.ERROR, error[1] or error[0]))
        if conv.USAGE_INPUT_TOKENS in snapshot or conv.USAGE_OUTPUT_TOKENS in snapshot:
            invocation.usage = {k: snapshot[k] for k in _USAGE_KEYS if k in snapshot}
        conversation = snapshot.get(conv.CONVERSATION_ID) or invocation.conversation
        outcome = Outcome(
            response, items, finish, end_ns, error[0] if error else None, response_id, conversation, snapshot
        )
        content = invocation.content
        if content is not None:
            content.of_response(response)
        want_content = content is not None and content.wants_agent()
        name = invocation.agent_name
        if name and (version is None or want_content):

            def done(found_version: Optional[str], facts: Optional[VersionFacts]) -> None:
                self._complete(invocation, outcome, found_version, facts)

            self.agents.resolve(
                invocation.client, invocation.endpoint, name, version, invocation.via_endpoint, want_content, done
            )
            return
        facts = self.agents.known(invocation.endpoint, name, version) if name else None
        self._complete(invocation, outcome, version, facts)

    def _complete(
        self, invocation: Invocation, outcome: Outcome, version: Optional[str], facts: Optional[VersionFacts]
    ) -> None:
        """The agent's part (version, instructions, tools, output format), the ``chat`` span, then the end."""
        span = invocation.span
        try:
            found = outcome.attributes
            if version is not None:
                found[conv.AGENT_VERSION] = version
            if facts is not None:
                if facts.id and conv.AGENT_ID not in found:
                    found[conv.AGENT_ID] = facts.id
                if invocation.output_type is None and facts.output_type:
                    invocation.output_type = found[conv.OUTPUT_TYPE] = facts.output_type
                if invocation.model is None:
                    invocation.model = facts.model
            span.set_attributes(found)
            content = invocation.content
            if content is not None:
                content.of_agent(facts)
                content.record_outcome(self._content, span, outcome)
            if invocation.usage:
                chat_span(self._tracer, self._content, invocation, outcome)
        except Exception:  # noqa: BLE001 - the span still ends below
            _log.debug("azure-ai-agents: completing an invocation failed", exc_info=True)
        finally:
            guarded(self._end, invocation, outcome.end_ns, outcome.error_type)

    def _tool_span(
        self, invocation: Invocation, index: int, item: Any, end_ns: int, outputs: Optional[Mapping[str, Any]] = None
    ) -> None:
        info = rattrs.tool_call(item, self._content.enabled, outputs)
        if info.id is not None:
            if invocation.emitted is None:
                invocation.emitted = set()
            elif info.id in invocation.emitted:
                return
            invocation.emitted.add(info.id)
        start, end = invocation.start_ns, end_ns
        window = invocation.item_windows.get(index) if invocation.item_windows else None
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
        invocation.client = None  # the app's client is not kept alive by an ended invocation
        if self._metrics is not None:
            self._metrics.record_run((end_ns - invocation.start_ns) / 1e9, invocation.model, error_type,
                                     invocation.usage)
            if invocation.first_chunk_s is not None:
                self._metrics.record_time_to_first_chunk(invocation.first_chunk_s, invocation.model)

    def _end_unfinished(self, invocation: Invocation, reason: str) -> None:
        invocation.span.set_attribute(attrs.RUN_UNFINISHED, reason)
        self._end(invocation, time.time_ns(), None)
