"""Classic runs' coordinator: one trace per agent run. The operations (``operations``) tell the tracker what each
SDK call revealed; the tracker folds it into the run's state (``run_state``, pure), keeps the registry (``runs``),
decides what only we can still read when a run ends and has it read off the app's path (``reads``, through the
core's fetcher), and has the spans emitted (``spans``). Data flows one way: observe -> decide -> fetch off-path
-> emit; nothing it calls calls back into it (the fetcher only completes the jobs the tracker gave it).

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

Every public method may be called from any thread; all of them follow the locking rule stated in ``registry``.
All service objects are read as wire-format mappings (see ``attributes``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Optional

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import Tracer

from ..core import attributes as attrs
from ..core import messages
from ..core.content import ContentPolicy
from ..core.fetcher import Fetcher
from ..core.forking import at_fork_in_child
from ..core.metrics import RunMetrics
from . import attributes as cattrs
from .agents import AgentCache
from .message_reads import PostedMessages
from .reads import ReadPlan, RunReader, RunReads
from .run_state import RunContent, RunState, TrackerConfig
from .runs import Run, RunRegistry
from .spans import RunSpans

__all__ = ["LiveTool", "RunTracker"]

_log = logging.getLogger(__name__)


class LiveTool:
    """An ``execute_tool`` span open while the SDK runs the app's function."""

    __slots__ = ("span", "context", "info", "start_ns")

    def __init__(self, span: Any, info: attrs.ToolCall, start_ns: int) -> None:
        self.span, self.info, self.start_ns = span, info, start_ns
        self.context = trace.set_span_in_context(span)


class RunTracker:
    """Folds every observation of a run into that run's trace."""

    def __init__(
        self,
        tracer: Tracer,
        content: ContentPolicy,
        config: Optional[TrackerConfig] = None,
        metrics: Optional[RunMetrics] = None,
    ) -> None:
        self._content = content
        self.config = config or TrackerConfig()
        self._metrics = metrics
        self.spans = RunSpans(tracer, content, metrics)
        self.registry = RunRegistry(self.config)
        self.spans.find_run = self._run_span_context
        self.agents = AgentCache()
        self.fetcher = Fetcher(timeout_s=self.config.fetch_timeout_s)
        self.fetcher.on_flush = self.registry.drain_deferred
        #: False once shut down: wrappers left in place (someone wrapped on top of ours) then do nothing.
        self.active = True
        #: messages the app posted to threads, until a run consumes them (content capture only)
        self.thread_messages = PostedMessages()
        at_fork_in_child(self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """A forked child traces its own runs only: the parent's runs are left to the parent (the fetcher
        resets itself). Caches with locks a vanished thread may hold start afresh."""
        self.registry.forget_after_fork()
        self.agents = AgentCache()
        self.thread_messages = PostedMessages()

    @property
    def content_enabled(self) -> bool:
        return self._content.enabled

    # ---- creating a run ------------------------------------------------------------------------------
    def begin_run(self, request: Mapping[str, Any], server: Mapping[str, Any]) -> Run:
        """Opens the run span just before the create call, as a child of the current span."""
        self.sweep()
        agent_id = request.get("assistant_id") if isinstance(request.get("assistant_id"), str) else None
        agent = self.agents.get(agent_id)
        agent_name = agent.name if agent is not None else None
        start_ns = time.time_ns()
        span = self.spans.start_run(request, server, agent_name, start_ns)
        if agent is not None:
            span.set_attributes({**agent.attributes(), **self._metadata(agent.metadata)})
        model = request.get("model")
        state = RunState(
            start_ns=start_ns,
            agent_id=agent_id,
            agent_named=agent_name is not None,
            model=model if isinstance(model, str) else None,
            last_seen=time.monotonic(),
        )
        if self._content.enabled:
            state.content = self._request_content(request)
        run = Run(state, span, trace.set_span_in_context(span))
        self.registry.add_unregistered(run)
        return run

    def _request_content(self, request: Mapping[str, Any]) -> RunContent:
        """What the create request says the run is asked (content capture on): the thread's messages the app
        posted since the thread's previous run, a new thread's messages, ``additional_messages``; and the
        request's instructions (used when the run object does not report its effective ones)."""
        thread_id = request.get("thread_id")
        posted = self.thread_messages.take(thread_id) if isinstance(thread_id, str) else []
        inputs = list(posted)
        for source in (request.get("thread_messages"), request.get("additional_messages")):
            inputs.extend(messages.input_messages(source) or [])
        return RunContent(
            request_instructions=(request.get("instructions"), request.get("additional_instructions")),
            input_messages=inputs,
        )

    def run_created(self, run: Run, snapshot: Any) -> Optional[Run]:
        """Registers the run the service created. Returns the run if it is already terminal."""
        run_id = attrs.text_field(snapshot, "id")
        if run_id is None:
            self._end_unfinished(run, "no_run_id")
            return None
        with run.lock:
            if run.state.finishing:  # ended meanwhile (uninstrumented during the create, say)
                return None
            run.state.run_id = run_id
            run.state.thread_id = attrs.text_field(snapshot, "thread_id")
        for old, reason in self.registry.register(run):
            self._end_unfinished(old, reason)
        return self.observe_run(snapshot)

    def run_create_failed(self, run: Run, exc: BaseException) -> None:
        """The create call raised: the run span records the SDK's exception and ends as an error."""
        with run.lock:
            if not self._claim(run):
                return
            error_type = self.spans.record_run_exception(run, exc)
            end_ns = time.time_ns()
            run.state.end_ns = end_ns
            self.spans.end_run(run, end_ns)
        self._record_run_metrics(run.state, end_ns, error_type)

    # ---- observing a run -----------------------------------------------------------------------------
    def context_for(self, run_id: Any) -> Optional[Context]:
        """The context to make current while the app calls the service about an open run."""
        run = self.registry.open_item(run_id)
        return run.context if run is not None else None

    def open_state(self, run_id: Any) -> Optional[Run]:
        """An open run (a streamed run continued by ``submit_tool_outputs_stream``)."""
        return self.registry.open_item(run_id)

    def knows(self, run_id: Any) -> bool:
        """True for a run that is open or recently finished (its steps can still be emitted)."""
        return self.registry.known_item(run_id) is not None

    def observe_run(self, snapshot: Any, sent_ns: Optional[int] = None) -> Optional[Run]:
        """Folds a run snapshot into its span. Returns the run exactly once: when it just ended; the caller
        then has its steps listed (off the app's path) and calls :meth:`finish_run`."""
        run = self.registry.open_item(attrs.text_field(snapshot, "id"))
        if run is None:
            return None
        with run.lock:
            change = run.state.observe(snapshot, time.time_ns(), time.monotonic(), self._content.enabled, sent_ns)
            if change is None:
                return None
            if change.attributes is not None:
                self.spans.update_run(run, change.attributes)
            if self.config.metadata_keys and not run.state.metadata_done:
                run.state.metadata_done = True
                self.spans.update_run(run, self._metadata(attrs.field(snapshot, "metadata")))
            if run.state.status == "requires_action":
                self.registry.own_calls(run, list(run.state.calls))
        if change.terminal:
            self.registry.close(run)
            return run
        self.registry.touch(run)
        return None

    def tool_outputs_submitted(self, run_id: Any, outputs: Any) -> None:
        """The app answered a ``requires_action`` (tool outputs, or tool approvals when ``outputs`` is None):
        ends the client-side timing of the function calls it answered."""
        run = self.registry.open_item(run_id)
        if run is None:
            return
        with run.lock:
            run.state.outputs_submitted(outputs, time.time_ns(), time.monotonic(), self._content.enabled)
        self.registry.touch(run)

    def observe_steps(self, run_id: Any, steps: Iterable[Any]) -> None:
        """Remembers run steps (latest snapshot wins). Steps of an already-finished run are emitted at once."""
        run = self.registry.known_item(run_id)
        if run is None:
            return
        with run.lock:
            run.state.store_steps(steps)
            if run.state.children_emitted:
                self.spans.emit_children(run)

    def read_and_finish(
        self, run: Run, reader: Optional[RunReader], instance: Any, is_async: bool, list_steps: bool = True
    ) -> None:
        """A run just ended (the caller got it from :meth:`observe_run` or :meth:`end_now`): decides what only
        we can still read for it (:meth:`plan_reads`), has ``reader`` read that off the app's path (the
        fetcher), then ends it (:meth:`finish_run`) with what was read. Whatever happens, the run ends.

        Two reads at most: the run's own (steps, answer), and its agent's lookup, one per agent id, which every
        run of that agent ending while it is in flight joins (the fetcher runs one job per key), so that they
        all carry the agent's name."""
        submitted = False
        try:
            plan = self.plan_reads(run, reader is not None and list_steps)
            agent_id = self._agent_to_read(run) if reader is not None else None
            if reader is None or (plan.empty and agent_id is None):
                return
            owner = reader.owner(instance)
            join = _Join(run, self.finish_run, 2 if not plan.empty and agent_id else 1)
            if not plan.empty:
                self.fetcher.submit("steps", run.run_id or str(id(run)), reader.job(instance, plan, is_async),
                                    join.steps_done, owner=owner)
            if agent_id is not None:
                self.fetcher.submit("agent", agent_id, self._agent_job(reader, instance, agent_id, is_async),
                                    join.agent_done, owner=owner)
            submitted = True
        finally:
            if not submitted:
                self.finish_run(run)

    def plan_reads(self, run: Run, list_steps: bool) -> ReadPlan:
        """What to read for a run that just ended: its steps (when listing on completion is on) and its answer
        (content capture on)."""
        with run.lock:
            content = run.state.content if self._content.enabled else None
            return ReadPlan(
                thread_id=run.thread_id,
                run_id=run.run_id,
                list_steps=list_steps and self.config.list_steps_on_completion,
                messages_known=frozenset(content.messages) if content is not None else None,
                message_ids=tuple(content.message_ids) if content is not None else (),
            )

    def _agent_to_read(self, run: Run) -> Optional[str]:
        """The run's agent id while its name is unknown and a lookup is to start or still in flight."""
        if run.state.agent_named:
            return None
        return run.state.agent_id if self.agents.lookup_wanted(run.state.agent_id) else None

    def _agent_job(self, reader: RunReader, instance: Any, agent_id: str, is_async: bool) -> Any:
        """The agent's lookup (one request per id): what it finds is learned before the job returns, so a run
        deciding meanwhile either sees the agent known or joins the job still pending. A job started after the
        agent became known answers from the cache."""
        read = reader.agent_job(instance, agent_id, is_async)
        if is_async:

            async def lookup_async(timeout_s: float) -> Any:
                known = self.agents.get(agent_id)
                if known is not None:
                    return known
                try:
                    agent = await read(timeout_s)  # type: ignore[misc]
                    self.learn_agent(agent)
                    return agent
                finally:
                    self.agents.lookup_done(agent_id)

            return lookup_async

        def lookup(timeout_s: float) -> Any:
            known = self.agents.get(agent_id)
            if known is not None:
                return known
            try:
                agent = read(timeout_s)
                self.learn_agent(agent)
                return agent
            finally:
                self.agents.lookup_done(agent_id)

        return lookup

    def finish_run(self, run: Run, reads: Optional[RunReads] = None, unavailable: Optional[str] = None) -> None:
        """Folds what our reads found into the run, emits step and tool spans, sets the final status and ends
        the run span at the time its terminal status was observed. ``unavailable`` says why the steps could
        not be listed."""
        if reads is not None and reads.messages:
            self.observe_messages(reads.messages)
        state = run.state
        with run.lock:
            if state.ended:
                return
            end_ns = state.end_ns or time.time_ns()
            try:
                listing = reads.listing if reads is not None else None
                if listing is not None:
                    state.store_steps(listing.steps)
                    state.steps_dropped += listing.dropped
                if unavailable is not None:
                    self.spans.set_run_attribute(run, attrs.RUN_STEPS_UNAVAILABLE, unavailable)
                self.spans.emit_children(run)
                if not state.agent_named:
                    agent = self.agents.get(state.agent_id)
                    if agent is not None and agent.name:
                        state.agent_named = True
                        self.spans.name_run(run, agent.name)
                        self.spans.update_run(run, agent.attributes())
                if state.error:
                    self.spans.record_error(run, state.error)
            finally:
                self.spans.end_run(run, end_ns)
        self._record_run_metrics(state, end_ns, state.error[0] if state.error else None)

    def end_now(self, run: Run, reason: str) -> bool:
        """A run the app will not follow further (an SDK helper returned it unfinished): it ends now, with
        the status seen, marked ``unfinished=reason``. True when the caller must finish it (``finish_run``,
        after listing its steps); False when it had already ended or is ending."""
        with run.lock:
            if not self._claim(run):
                return False
            run.state.end_ns = time.time_ns()
            self.spans.set_run_attribute(run, attrs.RUN_UNFINISHED, reason)
        self.registry.close(run)
        return True

    def abandon_run(
        self,
        run: Run,
        reason: str,
        exc: Optional[BaseException] = None,
        error: Optional[tuple[str, Optional[str]]] = None,
    ) -> None:
        """Ends a run that will not be seen to finish (its stream stopped early, or the SDK call driving it
        raised): marked ``unfinished=reason``; an error if ``exc`` or ``error`` says so. Idempotent."""
        with run.lock:
            if not self._claim(run):
                return
            self.spans.flush_transitions(run)  # status events first: the exception event comes after them
            error_type = None
            if exc is not None:
                error_type = self.spans.record_run_exception(run, exc)
            elif error is not None:
                error_type = error[0]
                self.spans.record_error(run, error)
            self._end_claimed(run, reason, remember=True)
        if error_type is not None:
            self._record_run_metrics(run.state, run.state.end_ns or time.time_ns(), error_type)

    def waiting_for_outputs(self, run: Run) -> bool:
        """True while the run waits for the app to submit tool outputs (it goes on without the app's stream)."""
        return run.state.awaiting_outputs and not run.state.finishing

    # ---- streams ---------------------------------------------------------------------------------------
    def first_event(self, run: Run) -> None:
        """The first streamed event of a run arrived: records ``gen_ai.response.time_to_first_chunk`` once."""
        with run.lock:
            if run.state.first_chunk_s is not None:
                return
            run.state.first_chunk_s = max(time.time_ns() - run.state.start_ns, 0) / 1e9
            self.spans.set_run_attribute(run, gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, run.state.first_chunk_s)

    # ---- tools the SDK executes for the app ----------------------------------------------------------
    def start_tool(self, call: Any) -> LiveTool:
        """Opens a live ``execute_tool`` span for a function the SDK is about to run. Its parent is the run
        that asked for the call (by call id), else the current span; the run's step spans will not repeat it."""
        info = cattrs.tool_call(call)
        run = self.registry.owner_of_call(info.id)
        parent = None
        if run is not None:
            with run.lock:
                run.state.emitted.add(info.id)  # type: ignore[arg-type]
                run.state.last_seen = time.monotonic()
                parent = run.context
        start_ns = time.time_ns()
        return LiveTool(self.spans.start_live_tool(parent, info, start_ns), info, start_ns)

    def end_tool(self, tool: LiveTool, result: Any = None, exc: Optional[BaseException] = None) -> None:
        """Ends a live tool span: the function's result (content capture permitting) or the exception it raised."""
        end_ns = time.time_ns()
        error_type = self.spans.end_live_tool(tool.span, result, exc, end_ns)
        if self._metrics is not None:
            duration_s = (end_ns - tool.start_ns) / 1e9
            self._metrics.record_tool(duration_s, tool.info.name, tool.info.semconv_type, error_type)

    def tool_failed(self, call: Any, exc: BaseException) -> None:
        """The SDK could not even start the app's function (unknown name, bad arguments): a failed tool span."""
        self.end_tool(self.start_tool(call), exc=exc)

    def _run_span_context(self, run_id: str) -> Optional[Any]:
        """The span context of a run we trace (open or recently finished), for links to it."""
        run = self.registry.known_item(run_id)
        return run.span.get_span_context() if run is not None else None

    # ---- agents ----------------------------------------------------------------------------------------
    def learn_agent(self, agent: Any) -> None:
        """Remembers an agent (from create / get / update agent, or our own lookup) so run spans read
        ``invoke_agent {name}`` and carry its description; names the open runs of that agent still unnamed."""
        info = attrs.agent_info(agent)
        if info is None:
            return
        self.agents.learn(info)
        if info.name is None:
            return
        for run in self.registry.runs_named_by(info.id):
            with run.lock:
                if not run.state.agent_named and not run.state.ended:
                    run.state.agent_named = True
                    self.spans.name_run(run, info.name)
                    self.spans.update_run(run, {**info.attributes(), **self._metadata(info.metadata)})

    def start_agent_operation(self, operation: str, request: Mapping[str, Any], server: Mapping[str, Any]) -> Any:
        """Opens a ``create_agent`` / ``update_agent`` span (a child of the current span)."""
        return self.spans.start_agent_operation(operation, request, server)

    def end_agent_operation(self, span: Any, operation: str, agent: Any, exc: Optional[BaseException] = None) -> None:
        self.spans.end_agent_operation(span, operation, agent, exc)

    @staticmethod
    def context_of(span: Any) -> Context:
        return trace.set_span_in_context(span)

    def agent_name(self, agent_id: Optional[str]) -> Optional[str]:
        agent = self.agents.get(agent_id)
        return agent.name if agent is not None else None

    # ---- messages (content capture only) ------------------------------------------------------------------
    def message_posted(self, thread_id: Any, message: Any) -> None:
        """The app posted a message to a thread: the next run on that thread consumed it (its input)."""
        if self._content.enabled and isinstance(thread_id, str):
            self.thread_messages.add(thread_id, message)

    def observe_messages(self, items: Iterable[Any]) -> None:
        """Messages the app read (or a stream carried): the runs that created them keep their content."""
        if not self._content.enabled:
            return
        for message in items:
            run = self.registry.known_item(attrs.text_field(message, "run_id"))
            if run is None:
                continue
            with run.lock:
                if run.state.content is not None and not run.state.ended:
                    run.state.content.observe_messages([message])

    def _metadata(self, metadata: Any) -> dict[str, str]:
        return attrs.metadata_attributes(metadata, self.config.metadata_keys) if self.config.metadata_keys else {}

    # ---- bounds ----------------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Runs queued work, then ends runs nobody has asked about for ``idle_timeout_s``."""
        self.registry.drain_deferred()
        for run in self.registry.take_idle():
            self._end_unfinished(run, "idle_timeout")

    def shutdown(self, timeout_s: Optional[float] = None) -> None:
        """Gives pending fetches up to ``timeout_s`` (default: the fetch timeout) to finish, then ends every
        open run span, marked unfinished (uninstrument, interpreter exit)."""
        self.active = False
        self.fetcher.shutdown(timeout_s)
        self.registry.drain_deferred()
        for run in self.registry.take_all():
            self._end_unfinished(run, "shutdown")

    @property
    def open_runs(self) -> int:
        return self.registry.open_count

    # ---- internals -------------------------------------------------------------------------------------
    @staticmethod
    def _claim(run: Run) -> bool:
        """Under ``run.lock``: True for the one caller that gets to end the run."""
        if run.state.finishing:
            return False
        run.state.finishing = True
        return True

    def _end_unfinished(self, run: Run, reason: str) -> None:
        """Ends a run that left the registry without a terminal status (evicted, idle, shutdown...)."""
        with run.lock:
            if not self._claim(run):
                return
            self._end_claimed(run, reason)

    def _end_claimed(self, run: Run, reason: str, remember: bool = False) -> None:
        """Under ``run.lock``, after :meth:`_claim`: ends the run now, marked ``unfinished=reason``;
        ``remember`` keeps it known for late step listings."""
        self.registry.close(run, finished=remember)
        run.state.end_ns = time.time_ns()
        self.spans.set_run_attribute(run, attrs.RUN_UNFINISHED, reason)
        try:
            self.spans.emit_children(run)
        finally:
            self.spans.end_run(run, run.state.end_ns)

    def _record_run_metrics(self, state: RunState, end_ns: int, error_type: Optional[str]) -> None:
        """Recorded when the run ends, so that every metric of a run carries the same (final) model."""
        if self._metrics is None:
            return
        self._metrics.record_run((end_ns - state.start_ns) / 1e9, state.model, error_type, state.usage)
        self._metrics.record_run_timings(*state.timings(end_ns), state.model, error_type)
        if state.first_chunk_s is not None:
            self._metrics.record_time_to_first_chunk(state.first_chunk_s, state.model)


class _Join:
    """Ends a run once its reads are all done (its own, and its agent's lookup): the steps' outcome says
    whether they were available; the lookup's only adds (or not) what it learned, already in the cache."""

    __slots__ = ("_run", "_finish", "_left", "_lock", "_reads", "_unavailable")

    def __init__(self, run: Run, finish: Callable[[Run, Optional[RunReads], Optional[str]], None], parts: int) -> None:
        self._run, self._finish, self._left = run, finish, parts
        self._lock = threading.Lock()
        self._reads: Optional[RunReads] = None
        self._unavailable: Optional[str] = None

    def steps_done(self, reads: Optional[RunReads], reason: Optional[str]) -> None:
        self._reads, self._unavailable = reads, reason
        self._one_done()

    def agent_done(self, _agent: Any, _reason: Optional[str]) -> None:
        self._one_done()

    def _one_done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._finish(self._run, self._reads, self._unavailable)
