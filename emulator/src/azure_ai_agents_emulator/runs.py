"""The run endpoints: create (also with a new thread), get, update, list, submit tool outputs, cancel, steps.

Creating a run picks its scenario (named by the run's or agent's metadata or the agent's name, else the
service's default, which by default follows the agent's tools: :mod:`.tool_plans`) and plans its steps (tool
call ids, function names and arguments valid for the agent's function tools, usage split over the steps); the
state changes themselves are :class:`~.run_machine.RunMachine`'s.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable, Optional, Union

from .rest import Response, ServiceError, page, to_int
from .run_machine import PlannedStep, Run, RunMachine
from .scenarios import Scenario, ToolCallsStep
from .schema_values import sample_arguments
from .tool_plans import AUTO_SCENARIO, tool_scenario

__all__ = ["RunOperations"]

_TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})


def _split_usage(usage: Optional[tuple[int, int]], parts: int) -> list[Optional[dict[str, int]]]:
    """Split a run's (prompt, completion) usage over ``parts`` steps, remainder on the last."""
    if usage is None or parts == 0:
        return [None] * parts
    out: list[Optional[dict[str, int]]] = []
    for i in range(parts):
        p = usage[0] // parts + (usage[0] % parts if i == parts - 1 else 0)
        c = usage[1] // parts + (usage[1] % parts if i == parts - 1 else 0)
        out.append({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
    return out


class RunOperations(RunMachine):
    """The ``_op_*`` methods of runs and run steps (a part of :class:`~.service.AgentsService`)."""

    # provided by AgentsService
    scenarios: dict[str, Scenario]
    default_scenario: str
    polls_per_state: int
    run_expiry_seconds: float
    _runs: dict[str, Run]
    _thread_runs: dict[str, list[str]]
    _agent: Callable[[str], dict[str, Any]]
    _thread: Callable[[str], dict[str, Any]]
    _new_thread: Callable[[dict[str, Any]], dict[str, Any]]
    vector_store_file_names: Callable[[list[Any]], list[tuple[str, str]]]

    def _run(self, run_id: str, thread_id: Optional[str] = None) -> Run:
        run = self._runs.get(run_id)
        if run is None or (thread_id is not None and run.wire["thread_id"] != thread_id):
            raise ServiceError(404, "NotFound", f"No run found with id '{run_id}'.")
        return run

    # ------------------------------------------------------------------ runs: creation

    def _op_create_run(self, params: dict, query: dict, body: dict) -> Union[dict[str, Any], Response]:
        thread_id = params["thread_id"]
        self._thread(thread_id)
        return self._start_run(thread_id, body)

    def _op_create_thread_and_run(self, params: dict, query: dict, body: dict) -> Union[dict[str, Any], Response]:
        agent_id = body.get("assistant_id")
        if not agent_id:
            raise ServiceError(400, "BadRequest", "'assistant_id' is required")
        self._agent(agent_id)
        thread = self._new_thread(body.get("thread") or {})
        return self._start_run(thread["id"], body)

    def _pick_scenario(
        self, agent: dict[str, Any], metadata: dict[str, Any], tools: list[Any], resources: list[Any]
    ) -> Scenario:
        name = metadata.get("scenario") or (agent.get("metadata") or {}).get("scenario")
        if not name and agent.get("name") in self.scenarios:
            name = agent["name"]
        name = name or self.default_scenario
        if name == AUTO_SCENARIO:
            store_ids = [
                store_id
                for r in resources
                if isinstance(r, dict) and isinstance(r.get("file_search"), dict)
                for store_id in r["file_search"].get("vector_store_ids") or []
            ]
            return tool_scenario(tools, self.vector_store_file_names(store_ids))
        if name not in self.scenarios:
            raise ServiceError(400, "BadRequest", f"Unknown scenario '{name}'; known: {sorted(self.scenarios)}")
        return self.scenarios[name]

    def _start_run(self, thread_id: str, body: dict[str, Any]) -> Union[dict[str, Any], Response]:
        agent_id = body.get("assistant_id")
        if not agent_id:
            raise ServiceError(400, "BadRequest", "'assistant_id' is required")
        agent = self._agent(agent_id)
        metadata = body.get("metadata") or {}
        tools: list[Any] = body["tools"] if body.get("tools") is not None else agent.get("tools") or []
        thread_resources = self._thread(thread_id).get("tool_resources")
        resources = [body.get("tool_resources"), agent.get("tool_resources"), thread_resources]
        scenario = self._pick_scenario(agent, metadata, tools, resources)
        polls = (
            to_int(metadata.get("polls_per_state"))
            or to_int((agent.get("metadata") or {}).get("polls_per_state"))
            or max(0, int(self.polls_per_state))
        )
        for message in body.get("additional_messages") or []:
            self._add_message(thread_id, message)
        instructions = body.get("instructions") or agent.get("instructions")
        if body.get("additional_instructions"):
            instructions = ((instructions or "") + "\n" + body["additional_instructions"]).strip()
        now = self._now()
        wire = {
            "id": self._new_id("run"),
            "object": "thread.run",
            "thread_id": thread_id,
            "assistant_id": agent_id,
            "status": "queued",
            "required_action": None,
            "last_error": None,
            "model": body.get("model") or agent.get("model") or "gpt-4o",
            "instructions": instructions,
            "tools": tools,
            "created_at": now,
            "expires_at": now + self.run_expiry_seconds,
            "started_at": None,
            "completed_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "incomplete_details": None,
            "usage": None,
            "temperature": body.get("temperature", agent.get("temperature", 1.0)),
            "top_p": body.get("top_p", agent.get("top_p", 1.0)),
            "max_prompt_tokens": body.get("max_prompt_tokens"),
            "max_completion_tokens": body.get("max_completion_tokens"),
            "truncation_strategy": body.get("truncation_strategy") or {"type": "auto", "last_messages": None},
            "tool_choice": body.get("tool_choice") or "auto",
            "response_format": body.get("response_format") or agent.get("response_format") or "auto",
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "tool_resources": body.get("tool_resources") or agent.get("tool_resources") or {},
            "metadata": metadata,
        }
        run = Run(wire, scenario, self._plan(scenario, tools), polls)
        self._runs[wire["id"]] = run
        self._thread_runs[thread_id].append(wire["id"])
        if body.get("stream"):
            run.events = []
            self._emit(run, "thread.run.created", run.wire)
            self._emit_run(run)
            return self._stream(run)
        self._observe(run, creating=True)
        return run.wire

    def _plan(self, scenario: Scenario, tools: list[Any]) -> list[PlannedStep]:
        """Instantiate the scenario's steps for one run (ids, function names from the agent's tools)."""
        functions = [
            t["function"]
            for t in tools
            if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
        ]
        usages = _split_usage(scenario.usage, len(scenario.steps))
        plan: list[PlannedStep] = []
        n_function = 0
        for spec, usage in zip(scenario.steps, usages, strict=True):
            calls: list[dict[str, Any]] = []
            if isinstance(spec, ToolCallsStep):
                for template in spec.calls:
                    call = {"id": self._new_id("call"), **copy.deepcopy(dict(template))}
                    if spec.client_side and call.get("type") == "function":
                        fn = call["function"]
                        default_args = fn.get("arguments") if isinstance(fn.get("arguments"), dict) else {}
                        if functions:
                            chosen = functions[n_function % len(functions)]
                            fn["name"] = chosen.get("name", fn["name"])
                            default_args = sample_arguments(chosen.get("parameters"), default_args)
                        if not isinstance(fn.get("arguments"), str):
                            fn["arguments"] = json.dumps(default_args)
                        fn["output"] = None
                        n_function += 1
                    calls.append(call)
            plan.append(PlannedStep(spec, calls, usage))
        return plan

    # ------------------------------------------------------------------ runs: operations

    def _op_list_runs(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self._thread(params["thread_id"])
        return page([self._runs[r].wire for r in self._thread_runs[params["thread_id"]]], query)

    def _op_get_run(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        self._observe(run)
        return run.wire

    def _op_update_run(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        if body.get("metadata") is not None:
            run.wire["metadata"] = body["metadata"]
        return run.wire

    def _op_submit_tool_outputs(self, params: dict, query: dict, body: dict) -> Union[dict[str, Any], Response]:
        run = self._run(params["run_id"], params["thread_id"])
        if run.wire["status"] != "requires_action":
            raise ServiceError(
                400, "BadRequest", f"Runs in status '{run.wire['status']}' do not accept tool outputs."
            )
        outputs = body.get("tool_outputs")
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise ServiceError(400, "BadRequest", "'tool_outputs' must be a list of objects")
        by_id = {o.get("tool_call_id"): o.get("output") for o in outputs}
        step = run.plan[run.index]
        expected = {call["id"] for call in step.calls}
        if set(by_id) != expected:
            missing, unknown = sorted(expected - set(by_id)), sorted(set(by_id) - expected)
            raise ServiceError(
                400,
                "BadRequest",
                f"Expected tool outputs for call ids {sorted(expected)}; missing {missing}, unexpected {unknown}.",
            )
        if body.get("stream"):
            run.events = []
        for call in step.calls:
            output = by_id[call["id"]]
            call["function"]["output"] = output if output is None or isinstance(output, str) else json.dumps(output)
            run.outputs.append(str(output))
        run.wire["required_action"] = None
        self._complete_step(run)
        self._set_status(run, "in_progress")
        if run.index < len(run.plan):
            self._begin_step(run)
        if body.get("stream"):
            return self._stream(run)
        self._observe(run)
        return run.wire

    def _op_cancel_run(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        status = run.wire["status"]
        if status in _TERMINAL:
            raise ServiceError(400, "BadRequest", f"Cannot cancel run with status '{status}'.")
        if status != "cancelling":
            run.wire["required_action"] = None
            self._stop_step(run, "cancelled")
            self._set_status(run, "cancelling")
        self._observe(run)
        return run.wire

    def _op_list_run_steps(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        return page(run.steps, query)

    def _op_get_run_step(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        run = self._run(params["run_id"], params["thread_id"])
        for step in run.steps:
            if step["id"] == params["step_id"]:
                return step
        raise ServiceError(404, "NotFound", f"No run step found with id '{params['step_id']}'.")
