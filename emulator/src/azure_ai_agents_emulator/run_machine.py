"""The run state machine: how a run moves through its states and steps, and its server-sent events.

A run advances one state per *observation* (a GET of the run, or the response of create, submit or
cancel) once it has been observed ``polls_per_state`` times in its current state (0: every observation after
the create response runs it to its next wait or its end, as a stream does): ``queued`` ->
``in_progress`` (its planned steps begin and complete one after another) -> ``requires_action`` at a
client-side tool-calls step (until tool outputs are submitted) -> the scenario's outcome
(``completed``, ``failed``, ``expired``, ``incomplete``; none: the run hangs in progress), or
``cancelling`` -> ``cancelled``. A run still active when its ``expires_at`` passes expires. While a run is
streamed, every change is also recorded as an SSE event, and :meth:`RunMachine._stream` drives it until it
waits or ends.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from .rest import Response, ResponseHook, text_content
from .scenarios import MessageStep, Scenario, ToolCallsStep
from .tool_plans import structured_answer

__all__ = ["PlannedStep", "Run", "RunMachine"]

_ACTIVE = frozenset({"queued", "in_progress", "requires_action", "cancelling"})


@dataclass
class PlannedStep:
    spec: Union[ToolCallsStep, MessageStep]
    calls: list[dict[str, Any]]
    usage: Optional[dict[str, int]]
    wire: Optional[dict[str, Any]] = None
    message: Optional[dict[str, Any]] = None


@dataclass
class Run:
    wire: dict[str, Any]
    scenario: Scenario
    plan: list[PlannedStep]
    polls_per_state: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    index: int = 0  # plan index of the current (begun, unfinished) step
    seen: int = 0  # observations in the current state
    outputs: list[str] = field(default_factory=list)
    events: Optional[list[tuple[str, Any]]] = None  # collected only while streaming


class RunMachine:
    """State transitions, steps and events of :class:`Run` objects (a part of :class:`~.service.AgentsService`)."""

    # provided by AgentsService
    response_hook: Optional[ResponseHook]
    _now: Callable[[], float]
    _add_message: Callable[..., dict[str, Any]]
    _new_id: Callable[[str], str]

    # ------------------------------------------------------------------ states

    def _observe(self, run: Run, creating: bool = False) -> None:
        """Count one observation; advance first if the current state has been seen enough."""
        if self._expire_if_due(run):
            return
        if run.polls_per_state <= 0 and not creating:
            while self._advance(run):
                pass
            run.seen = 1
            return
        limit = 1 if run.wire["status"] == "cancelling" else max(1, run.polls_per_state)
        if run.seen >= limit and self._advance(run):
            run.seen = 0
        run.seen += 1

    def _expire_if_due(self, run: Run) -> bool:
        """Expire an active run whose ``expires_at`` has passed (a run nobody answers or cancels)."""
        expires_at = run.wire.get("expires_at")
        if run.wire["status"] not in _ACTIVE or not isinstance(expires_at, (int, float)) or self._now() < expires_at:
            return False
        run.wire["required_action"] = None
        self._stop_step(run, "expired")
        self._finish(run, "expired")
        return True

    def _advance(self, run: Run) -> bool:
        """Move the run one state forward; False if it waits (requires_action, hang, terminal)."""
        status = run.wire["status"]
        if status == "queued":
            run.wire["started_at"] = self._now()
            self._set_status(run, "in_progress")
            if run.plan:
                self._begin_step(run)
            return True
        if status == "cancelling":
            self._set_status(run, "cancelled")
            run.wire["cancelled_at"] = self._now()
            run.wire["expires_at"] = None
            self._emit_run(run)
            return True
        if status != "in_progress":
            return False
        outcome = run.scenario.outcome
        while True:
            if run.index >= len(run.plan):
                return self._finish(run, outcome)
            step = run.plan[run.index]
            if isinstance(step.spec, ToolCallsStep) and step.spec.client_side:
                required = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                    }
                    for c in step.calls
                ]
                run.wire["required_action"] = {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {"tool_calls": required},
                }
                self._set_status(run, "requires_action")
                return True
            last = run.index == len(run.plan) - 1
            if last and outcome is None:
                return False
            if last and outcome in ("failed", "expired"):
                self._stop_step(run, outcome, run.scenario.step_error)
                return self._finish(run, outcome)
            self._complete_step(run)
            if run.index < len(run.plan):
                self._begin_step(run)

    def _finish(self, run: Run, outcome: Optional[str]) -> bool:
        """Put the run in its terminal state (``outcome``)."""
        if outcome is None:
            return False
        wire, now = run.wire, self._now()
        wire["required_action"] = None
        wire["expires_at"] = now if outcome == "expired" else None
        if outcome == "failed":
            wire["failed_at"] = now
            wire["last_error"] = copy.deepcopy(dict(run.scenario.last_error)) if run.scenario.last_error else None
        if outcome in ("completed", "incomplete"):
            wire["completed_at"] = now
            if run.scenario.usage is not None:
                prompt, completion = run.scenario.usage
                wire["usage"] = {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                }
        if outcome == "incomplete":
            wire["incomplete_details"] = dict(run.scenario.incomplete_details or {"reason": "max_completion_tokens"})
        self._set_status(run, outcome)
        return True

    def _set_status(self, run: Run, status: str) -> None:
        run.wire["status"] = status
        run.seen = 0  # a new state starts its own count of observations
        if status != "cancelled":  # cancelled is emitted once its timestamps are set
            self._emit_run(run)

    def _emit_run(self, run: Run) -> None:
        self._emit(run, "thread.run." + run.wire["status"], run.wire)

    def _emit(self, run: Run, event: str, data: Any) -> None:
        if run.events is not None:
            run.events.append((event, copy.deepcopy(data)))

    # ------------------------------------------------------------------ steps

    def _begin_step(self, run: Run) -> None:
        """Create the current planned step (status in_progress)."""
        planned, now = run.plan[run.index], self._now()
        if isinstance(planned.spec, MessageStep):
            message = self._add_message(
                run.wire["thread_id"], {"role": "assistant", "content": []}, run.wire["id"], run.wire["assistant_id"]
            )
            message.update(status="in_progress", completed_at=None)
            planned.message = message
            details: dict[str, Any] = {"type": "message_creation", "message_creation": {"message_id": message["id"]}}
        else:
            details = {"type": "tool_calls", "tool_calls": planned.calls}
        planned.wire = {
            "id": self._new_id("step"),
            "object": "thread.run.step",
            "type": details["type"],
            "assistant_id": run.wire["assistant_id"],
            "thread_id": run.wire["thread_id"],
            "run_id": run.wire["id"],
            "status": "in_progress",
            "step_details": details,
            "last_error": None,
            "created_at": now,
            "expired_at": None,
            "completed_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "usage": None,
            "metadata": {},
        }
        run.steps.append(planned.wire)
        self._emit(run, "thread.run.step.created", planned.wire)
        self._emit(run, "thread.run.step.in_progress", planned.wire)
        if planned.message is not None:
            self._emit(run, "thread.message.created", planned.message)
            self._emit(run, "thread.message.in_progress", planned.message)
        elif planned.calls:
            delta_calls = [{"index": i, **call} for i, call in enumerate(planned.calls)]
            self._emit(
                run,
                "thread.run.step.delta",
                {
                    "id": planned.wire["id"],
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": delta_calls}},
                },
            )

    def _complete_step(self, run: Run) -> None:
        """Complete the current step (and its message) and move to the next planned step."""
        planned, now = run.plan[run.index], self._now()
        assert planned.wire is not None
        if planned.message is not None and isinstance(planned.spec, MessageStep):
            text = structured_answer(run.wire.get("response_format")) or planned.spec.text.replace(
                "{outputs}", "; ".join(run.outputs) or "nothing"
            )
            incomplete = run.scenario.outcome == "incomplete"
            words = text.split(" ")
            chunks = [" ".join(words[i : i + 4]) + (" " if i + 4 < len(words) else "") for i in range(0, len(words), 4)]
            for chunk in chunks:
                self._emit(
                    run,
                    "thread.message.delta",
                    {
                        "id": planned.message["id"],
                        "object": "thread.message.delta",
                        "delta": {
                            "role": "assistant",
                            "content": [{"index": 0, "type": "text", "text": {"value": chunk, "annotations": []}}],
                        },
                    },
                )
            planned.message["content"] = text_content(text)
            if incomplete:
                planned.message.update(
                    status="incomplete",
                    incomplete_at=now,
                    incomplete_details={"reason": "max_tokens"},
                )
                self._emit(run, "thread.message.incomplete", planned.message)
            else:
                planned.message.update(status="completed", completed_at=now)
                self._emit(run, "thread.message.completed", planned.message)
        planned.wire.update(status="completed", completed_at=now, usage=planned.usage)
        self._emit(run, "thread.run.step.completed", planned.wire)
        run.index += 1

    def _stop_step(self, run: Run, status: str, error: Optional[Any] = None) -> None:
        """End the current step, if begun, as failed / expired / cancelled."""
        if run.index >= len(run.plan) or run.plan[run.index].wire is None:
            return
        planned, now = run.plan[run.index], self._now()
        assert planned.wire is not None
        if planned.wire["status"] != "in_progress":
            return
        stamp = {"failed": "failed_at", "expired": "expired_at", "cancelled": "cancelled_at"}[status]
        planned.wire.update({"status": status, stamp: now, "last_error": copy.deepcopy(dict(error)) if error else None})
        if planned.message is not None:
            planned.message.update(
                status="incomplete", incomplete_at=now, incomplete_details={"reason": "run_" + status}
            )
        self._emit(run, "thread.run.step." + status, planned.wire)

    # ------------------------------------------------------------------ streaming

    def _stream(self, run: Run) -> Response:
        """Drive the run until it waits or ends and answer with its events as SSE frames.

        The caller has started collecting events (``run.events = []``) before changing the run.
        """
        try:
            while self._advance(run):
                pass
            run.seen = 1
            events = run.events or []
        finally:
            run.events = None
        frames: list[bytes] = []
        for event, data in events:
            if self.response_hook is not None:
                changed = self.response_hook("POST", "stream:" + event, data)
                data = data if changed is None else changed
            text = data if isinstance(data, str) else json.dumps(data)
            frames.append(f"event: {event}\ndata: {text}\n\n".encode("utf-8"))
        frames.append(b"event: done\ndata: [DONE]\n\n")
        return Response(200, {"Content-Type": "text/event-stream"}, iter(frames))
