"""One run's state machine: what the service and the app have shown about a run, and what changed.

Pure: no spans, no locks, no I/O, no clock of its own (callers pass the time). Every method folds one
observation into the state and returns what the caller must act on. The caller (``tracker``) holds the run's
lock while calling these (see ``registry``'s locking rule), so the methods themselves need not be thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from ..core import attributes as attrs
from . import attributes as cattrs

#: Bounds that keep one pathological run from holding unbounded memory.
MAX_STEPS_PER_RUN = 256
MAX_CALLS_PER_RUN = 256
MAX_KNOWN_AGENTS = 4096

#: A status change not yet on the span: (seen at ns, status, previous, required call count, action type).
Transition = tuple[int, str, Optional[str], Optional[int], Optional[str]]


@dataclass
class PendingCall:
    """A function call the service asked the app to execute (``requires_action``)."""

    name: Optional[str] = None
    first_seen_ns: Optional[int] = None
    submitted_ns: Optional[int] = None
    arguments: Optional[str] = None
    output: Any = None


@dataclass(frozen=True)
class Change:
    """What one run snapshot changed: the span attributes to set (on a status change) and whether it ended."""

    status: Optional[str]
    attributes: Optional[dict[str, Any]]  #: the snapshot's attributes, when the status changed
    terminal: bool


#: What the span layer emits for one run end: (step, its calls) in service order, and calls no step holds.
StepPlan = list[tuple[Mapping[str, Any], list[tuple[attrs.ToolCall, Optional[PendingCall]]]]]


@dataclass(eq=False)
class RunState:
    """Everything known about one run while its span is open (and a little after)."""

    start_ns: int
    agent_id: Optional[str] = None
    agent_named: bool = False
    model: Optional[str] = None
    run_id: Optional[str] = None
    thread_id: Optional[str] = None
    status: Optional[str] = None
    last_seen: float = 0.0
    last_sent_ns: int = 0  #: when the request of the newest applied snapshot was sent (monotonic ns)
    end_ns: Optional[int] = None
    #: the run left the open registry: it is being ended (or was); nothing else may end it
    finishing: bool = False
    #: the run span has ended: no more writes to it (late steps still become child spans)
    ended: bool = False
    error: Optional[tuple[str, Optional[str]]] = None
    usage: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, PendingCall] = field(default_factory=dict)
    steps: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    steps_dropped: int = 0  #: steps not kept because of MAX_STEPS_PER_RUN
    emitted: set[str] = field(default_factory=set)  # step and tool-call ids whose spans exist
    children_emitted: bool = False  # the run ended and its step/tool spans were emitted once
    first_chunk_s: Optional[float] = None  # streamed runs: seconds from create to the first event
    awaiting_outputs: bool = False  # requires_action observed and not answered yet
    #: seconds in the service's queue, from the newest snapshot that showed them (see ``attributes.run_queue_time``)
    queue_time_s: Optional[float] = None
    #: client wall-clock ns (``time.time_ns``) spent waiting for the app's outputs in the rounds already answered
    tool_wait_ns: int = 0
    #: when the current ``requires_action`` round was first seen (None: not waiting for the app)
    waiting_since_ns: Optional[int] = None
    transitions: list[Transition] = field(default_factory=list)
    #: attributes from allowed metadata keys (``azure.ai.agents.run.metadata.*``), set once
    metadata_done: bool = False
    # Content (only filled when capture is on): what the run was asked, with what, and what it answered.
    content: Optional["RunContent"] = None

    # ---- run snapshots ---------------------------------------------------------------------------------
    def observe(
        self, run: Any, now_ns: int, monotonic: float, capture_arguments: bool, sent_ns: Optional[int] = None
    ) -> Optional[Change]:
        """Folds a run snapshot in. None when the run is already finishing (nothing to do). ``sent_ns`` is when
        the request that returned it was sent: the answer to a request older than the one already applied (two
        threads polling one run) is stale and changes nothing."""
        if self.finishing:
            return None
        self.last_seen = monotonic
        if sent_ns is not None:
            if sent_ns < self.last_sent_ns:
                return Change(self.status, None, False)
            self.last_sent_ns = sent_ns
        status = attrs.text_field(run, "status")
        changed = status is not None and status != self.status
        if changed and self.status is not None and _RANK.get(status, 1) < _RANK.get(self.status, 1):  # type: ignore[arg-type]
            # A run never goes back (in_progress -> queued, say): this answer was overtaken on its way (two
            # threads polling; a request sent first may reach the service second).
            return Change(self.status, None, False)
        previous = self.status
        if changed:
            self.status = status
        if status == "requires_action":
            new_calls = self.note_required_calls(run, now_ns, capture_arguments)
            if changed or new_calls:
                self.awaiting_outputs = True
                if self.waiting_since_ns is None:
                    self.waiting_since_ns = now_ns
        elif status is not None:
            self.awaiting_outputs = False
            self._stop_waiting(now_ns)  # the run moved on without the app (cancelled, expired, ...)
        if changed:  # the service stamps started_at when the run leaves the queue: a status change (polls cost less)
            queue_time = cattrs.run_queue_time(run)
            if queue_time is not None:
                self.queue_time_s = queue_time
        terminal = status in cattrs.TERMINAL_STATUSES
        if terminal:
            self.end_ns = now_ns
            self.finishing = True
        attributes = None
        if changed:
            waiting = status == "requires_action"
            required = len(cattrs.required_tool_calls(run)) if waiting else None
            action_type = cattrs.required_action_type(run) if waiting else None
            self.transitions.append((now_ns, status, previous, required, action_type))  # type: ignore[arg-type]
            attributes = cattrs.run_attributes(run)
            attributes[attrs.RUN_STATUS] = status
            reason = cattrs.finish_reason(run, status) if terminal else None
            if reason:
                attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = (reason,)
            self.usage = {
                k: v
                for k, v in attributes.items()
                if k in (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS)
            }
            if self.agent_id is None:
                self.agent_id = attributes.get(gen_ai.GEN_AI_AGENT_ID)
            if self.model is None:
                self.model = attributes.get(gen_ai.GEN_AI_REQUEST_MODEL)
        if self.content is not None:
            self.content.observe_run(run)
        if terminal and status is not None:
            self.error = cattrs.run_error_type(run, status)
        return Change(status, attributes, terminal)

    def note_required_calls(self, run: Any, now_ns: int, capture_arguments: bool) -> bool:
        """Starts the client-side timing of the function calls a ``requires_action`` run waits for; True if
        any is new. Other required actions (MCP tool approvals, types not invented yet) are only counted on
        the status event."""
        new = False
        for call in cattrs.required_tool_calls(run):
            call_id = attrs.text_field(call, "id")
            if call_id is None or (call_id not in self.calls and len(self.calls) >= MAX_CALLS_PER_RUN):
                continue
            if attrs.text_field(call, "type") not in (None, "function"):
                continue
            pending = self.calls.setdefault(call_id, PendingCall())
            if pending.first_seen_ns is None:
                new = True
                function = attrs.field(call, "function")
                pending.first_seen_ns = now_ns
                pending.name = attrs.text_field(function, "name")
                if capture_arguments:
                    pending.arguments = attrs.field(function, "arguments")
        return new

    def outputs_submitted(self, outputs: Any, now_ns: int, monotonic: float, capture: bool) -> None:
        """The app answered ``requires_action``: ends the client-side timing of the calls it answered."""
        self.last_seen = monotonic
        self.awaiting_outputs = False
        self._stop_waiting(now_ns)
        if not isinstance(outputs, Iterable) or isinstance(outputs, (str, bytes, Mapping)):
            return
        for output in outputs:
            call_id = attrs.text_field(output, "tool_call_id")
            if call_id is None:
                continue
            call = self.calls.get(call_id)
            if call is None:
                if len(self.calls) >= MAX_CALLS_PER_RUN:
                    continue
                call = self.calls[call_id] = PendingCall()
            if call.submitted_ns is None:
                call.submitted_ns = now_ns
            if capture:
                call.output = attrs.field(output, "output")

    # ---- where the run's time went ---------------------------------------------------------------------
    def _stop_waiting(self, now_ns: int) -> None:
        if self.waiting_since_ns is not None:
            self.tool_wait_ns += max(now_ns - self.waiting_since_ns, 0)
            self.waiting_since_ns = None

    def timings(self, end_ns: int) -> tuple[Optional[float], Optional[float]]:
        """``(queue time, tool-wait time)`` in seconds, for the run span and the histograms.

        * Queue time: the service's clock (its ``created_at`` -> ``started_at`` stamps), None until known.
        * Tool-wait time: the client's wall clock (``time.time_ns``, the clock of the span timestamps), from the
          first poll response or stream event that showed a ``requires_action`` round to the
          ``submit_tool_outputs`` call that answered it (measured when the call is made), summed over rounds; a
          round never answered counts until the run left ``requires_action`` or, still waiting, until ``end_ns``.
          0.0 for a run that never waited; None for a run the service never created (no run id).
        """
        if self.run_id is None:
            return self.queue_time_s, None
        waited = self.tool_wait_ns
        if self.waiting_since_ns is not None:
            waited += max(end_ns - self.waiting_since_ns, 0)
        return self.queue_time_s, waited / 1e9

    # ---- steps -----------------------------------------------------------------------------------------
    def store_steps(self, steps: Iterable[Any]) -> None:
        """Remembers step snapshots (latest wins), at most MAX_STEPS_PER_RUN; the rest is counted."""
        steps = list(steps)
        if self.content is not None:
            self.content.note_steps(steps)
        for step in steps:
            step_id = attrs.text_field(step, "id")
            if step_id is None or step_id in self.emitted:
                continue
            if step_id not in self.steps and len(self.steps) >= MAX_STEPS_PER_RUN:
                self.steps_dropped += 1
                continue
            self.steps[step_id] = step

    def plan_children(self) -> tuple[StepPlan, list[tuple[str, PendingCall]]]:
        """Which step and tool spans to emit now: each step and call id exactly once, steps in service order.
        Function calls no listed step accounts for are returned apart (they hang under the run span)."""
        new_steps = [s for sid, s in self.steps.items() if sid not in self.emitted]
        self.emitted.update(sid for sid in self.steps if sid not in self.emitted)
        plan: StepPlan = []
        for step in sorted(new_steps, key=lambda s: attrs.number(attrs.field(s, "created_at")) or 0):
            calls = []
            for info in map(cattrs.tool_call, cattrs.step_tool_calls(step)):
                if info.id is not None:
                    if info.id in self.emitted:
                        continue
                    self.emitted.add(info.id)
                calls.append((info, self.calls.get(info.id) if info.id else None))
            plan.append((step, calls))
        orphans = [(cid, c) for cid, c in self.calls.items() if cid not in self.emitted]
        self.emitted.update(cid for cid, _ in orphans)
        self.children_emitted = True
        # Step payloads are not needed once planned (their ids stay in ``emitted``): release them now.
        self.steps = {}
        return plan, orphans

    def take_transitions(self) -> list[Transition]:
        transitions, self.transitions = self.transitions, []
        return transitions

    def release_payloads(self) -> None:
        """After the run span ended: only ids (``emitted``) are kept for late step listings."""
        self.steps = {}
        self.calls = {}
        self.content = None


#: Bounds on what one run keeps for content capture.
MAX_MESSAGES_PER_RUN = 64


@dataclass(eq=False)
class RunContent:
    """What a run was asked and answered, kept only while content capture is on (then released with the
    run's payloads): the request's instructions and input messages, the run's effective instructions and tools
    (the run object carries them), and the messages it created (by id, from stream events, the app's own
    listings, or our one fetch)."""

    request_instructions: tuple[Any, ...] = ()
    input_messages: list[Any] = field(default_factory=list)
    instructions: Optional[str] = None
    tools: Any = None
    messages: dict[str, Any] = field(default_factory=dict)
    #: the run's assistant message ids, in step order (from its message_creation steps)
    message_ids: list[str] = field(default_factory=list)

    def observe_run(self, run: Any) -> None:
        instructions = attrs.field(run, "instructions")
        if isinstance(instructions, str) and instructions:
            self.instructions = instructions
        tools = attrs.field(run, "tools")
        if isinstance(tools, list):
            self.tools = attrs.plain(tools)

    def observe_messages(self, messages: Iterable[Any]) -> None:
        for message in messages:
            message_id = attrs.text_field(message, "id")
            if message_id is None:
                continue
            if message_id in self.messages or len(self.messages) < MAX_MESSAGES_PER_RUN:
                self.messages[message_id] = attrs.plain(message)

    def note_steps(self, steps: Iterable[Any]) -> None:
        for step in steps:
            message_id = cattrs.step_message_id(step)
            if message_id and message_id not in self.message_ids and len(self.message_ids) < MAX_MESSAGES_PER_RUN:
                self.message_ids.append(message_id)

    def missing_messages(self) -> list[str]:
        """Ids of messages the run created whose content we have not seen."""
        return [m for m in self.message_ids if m not in self.messages]


#: How far along a run is, by status: a snapshot showing an earlier stage than one already applied is stale.
#: ``in_progress`` and ``requires_action`` alternate legitimately (one stage); unknown statuses are mid-run.
_RANK = {"queued": 0, "in_progress": 1, "requires_action": 1, "cancelling": 2}
_RANK.update(dict.fromkeys(("completed", "failed", "cancelled", "expired", "incomplete"), 3))


@dataclass(frozen=True)
class TrackerConfig:
    max_open_runs: int = 5_000
    idle_timeout_s: float = 1800.0
    list_steps_on_completion: bool = True
    finished_runs_kept: int = 1024
    #: run / agent metadata keys recorded as ``azure.ai.agents.run.metadata.<key>`` (none by default)
    metadata_keys: tuple[str, ...] = ()
    fetch_timeout_s: float = 5.0
