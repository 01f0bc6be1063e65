"""What each kind of classic SDK call tells the tracker (observe).

An :class:`Operation` reads one SDK method's arguments (``before``) and result (``after``) and reports them to the
:class:`~.tracker.RunTracker`. Operations know argument positions and result shapes, nothing about timing or
span rules. The table in ``surfaces.py`` binds SDK methods to these operations.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Optional

from ..core import attributes as attrs
from ..core.calls import Arg, Call, Operation, guarded
from .reads import RunReader
from .runs import Run
from .steps import ObservedPages
from .tracker import RunTracker

_log = logging.getLogger(__name__)


#: Set while one of the SDK's polling helpers runs: the runs it creates, to end if the helper raises.
_PROCESS_SCOPE: ContextVar[Optional[list[Run]]] = ContextVar("azure_ai_agents_process_scope", default=None)


class RunOperation(Operation):
    """Base of the classic operations. Those whose result is a run snapshot report it to the tracker
    (:meth:`_observe`); a run that just ended goes back to the tracker with this surface's ``reader`` (what only
    we can still read for it: steps, agent, answer), which has it read off the app's path and ends it."""

    #: this SDK surface's reads of a finished run (steps, agent, answer); set by the table in ``surfaces``
    reader: Optional[RunReader] = None
    #: whether a finished run's steps are listed (False where they arrive otherwise: streams)
    lists_steps = True

    def _observe(self, tracker: RunTracker, instance: Any, call: Call, run: Any) -> None:
        ended = tracker.observe_run(run, call.sent_ns)
        if ended is not None:
            tracker.read_and_finish(ended, self.reader, instance, False, self.lists_steps)

    async def _observe_async(self, tracker: RunTracker, instance: Any, call: Call, run: Any) -> None:
        ended = tracker.observe_run(run, call.sent_ns)
        if ended is not None:
            tracker.read_and_finish(ended, self.reader, instance, True, self.lists_steps)


class CreateRun(RunOperation):
    """``runs.create`` / ``create_run`` / ``create_thread_and_run``: opens the run span."""

    def __init__(
        self, reader: Optional[RunReader], thread: Optional[Arg] = None, body: Arg = Arg(1, "body")
    ) -> None:
        self.reader, self._thread, self._body = reader, thread, body

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        state = tracker.begin_run(self._request(args, kwargs), attrs.server_address(_endpoint(instance)))
        scope = _PROCESS_SCOPE.get()
        if scope is not None:
            scope.append(state)
        return Call(context=state.context, state=state)

    def _request(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """The create request's fields, from keyword arguments or a JSON body."""
        body = self._body.get(args, kwargs)
        source: Mapping[str, Any] = body if isinstance(body, Mapping) else kwargs
        thread = source.get("thread")
        request = {
            "assistant_id": kwargs.get("agent_id") or kwargs.get("assistant_id") or source.get("assistant_id"),
            "thread_id": self._thread.get(args, kwargs) if self._thread else None,
            "thread_messages": attrs.field(thread, "messages"),
        }
        for key in (
            "model",
            "temperature",
            "top_p",
            "max_prompt_tokens",
            "max_completion_tokens",
            "instructions",
            "additional_instructions",
            "additional_messages",
        ):
            request[key] = source.get(key)
        return request

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        ended = tracker.run_created(call.state, result)  # type: ignore[arg-type]
        if ended is not None:
            tracker.read_and_finish(ended, self.reader, instance, False, self.lists_steps)
        return result

    async def after_async(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        ended = tracker.run_created(call.state, result)  # type: ignore[arg-type]
        if ended is not None:
            tracker.read_and_finish(ended, self.reader, instance, True, self.lists_steps)
        return result

    def failed(self, tracker: RunTracker, call: Call, exc: BaseException) -> None:
        if call.state is not None:
            tracker.run_create_failed(call.state, exc)


class ProcessRun(RunOperation):
    """``runs.create_and_process`` / ``create_and_process_run`` / ``create_thread_and_process_run``.

    The SDK's polling helpers call the wrapped create / get / submit / cancel themselves (``self.create``,
    ``self.get``, ``self.runs.get``), so their run is traced like a manual loop. This operation covers the
    helper returning a run it did not see finish (``cancelling`` after ``max_retry`` failing function calls, or
    ``requires_action`` without tool calls to run): that run ends when the helper returns, with the status
    seen (``unfinished=helper_returned``); and the helper raising mid-run (a poll failing for good, say): the
    run span then ends with that error instead of staying open until the idle timeout.
    """

    def __init__(self, reader: Optional[RunReader] = None) -> None:
        self.reader = reader

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        return Call(payload=_PROCESS_SCOPE.set([]))

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        for run in self._returned(tracker, call):
            tracker.read_and_finish(run, self.reader, _operations_of(instance), False)
        return result

    async def after_async(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        for run in self._returned(tracker, call):
            tracker.read_and_finish(run, self.reader, _operations_of(instance), True)
        return result

    @staticmethod
    def _returned(tracker: RunTracker, call: Call) -> list[Run]:
        """The helper's runs still open: ended now (their steps are listed like any finished run's)."""
        runs = _PROCESS_SCOPE.get() or []
        _PROCESS_SCOPE.reset(call.payload)
        return [r for r in runs if tracker.end_now(r, "helper_returned")]

    def failed(self, tracker: RunTracker, call: Call, exc: BaseException) -> None:
        runs = _PROCESS_SCOPE.get() or []
        _PROCESS_SCOPE.reset(call.payload)
        for run in runs:
            guarded(tracker.abandon_run, run, "error", exc)


class ObserveRun(RunOperation):
    """``runs.get`` / ``get_run`` / ``cancel``: a run snapshot; the run span is current during the call."""

    def __init__(
        self, reader: Optional[RunReader], thread: Arg = Arg(0, "thread_id"), run: Arg = Arg(1, "run_id")
    ) -> None:
        self.reader, self._thread, self._run = reader, thread, run

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        run_id = self._run.get(args, kwargs)
        context = tracker.context_for(run_id)
        if context is None:
            return None  # not a run we track: no work at all on this call
        return Call(context=context, run_id=run_id, thread_id=self._thread.get(args, kwargs))

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        self._observe(tracker, instance, call, result)
        return result

    async def after_async(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        await self._observe_async(tracker, instance, call, result)
        return result


class SubmitToolOutputs(ObserveRun):
    """``submit_tool_outputs`` / ``submit_tool_outputs_to_run``: answers pending function calls."""

    def __init__(
        self,
        reader: Optional[RunReader],
        thread: Arg = Arg(0, "thread_id"),
        run: Arg = Arg(1, "run_id"),
        body: Arg = Arg(2, "body"),
        outputs: Arg = Arg(None, "tool_outputs"),
    ) -> None:
        super().__init__(reader, thread, run)
        self._body, self._outputs = body, outputs

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        call = super().before(tracker, instance, args, kwargs)
        if call is not None:
            outputs = self._outputs.get(args, kwargs)
            if outputs is None:
                outputs = attrs.field(self._body.get(args, kwargs), "tool_outputs")
            tracker.tool_outputs_submitted(call.run_id, outputs)
        return call


class _ReadsSteps(RunOperation):
    """Reads steps of a run we know (open, or recently finished: late steps still join its trace)."""

    def __init__(self, run: Arg = Arg(1, "run_id")) -> None:
        self._run = run

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        run_id = self._run.get(args, kwargs)
        if not tracker.knows(run_id):
            return None
        return Call(context=tracker.context_for(run_id), run_id=run_id)


class ListSteps(_ReadsSteps):
    """``run_steps.list`` (lazy pages) / ``list_run_steps`` (one page model): steps of a tracked run."""

    def __init__(self, run: Arg = Arg(1, "run_id"), paged: bool = True) -> None:
        super().__init__(run)
        self._paged = paged

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        run_id = call.run_id
        if self._paged:
            return ObservedPages(result, lambda items: tracker.observe_steps(run_id, items))
        data = attrs.field(result, "data")
        if isinstance(data, list):
            tracker.observe_steps(run_id, data)
        return result


class GetStep(_ReadsSteps):
    """``run_steps.get`` / ``get_run_step``: one step of a tracked run."""

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        tracker.observe_steps(call.run_id, [result])
        return result


class ObserveAgent(RunOperation):
    """``get_agent``: learns the agent's name, description and model."""

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        return _NO_CONTEXT

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        tracker.learn_agent(result)
        return result


class AgentOperation(ObserveAgent):
    """``create_agent`` / ``update_agent``: a ``create_agent`` (or ``update_agent``) span around the call, current
    during it; the agent it returns is learned like ``get_agent``'s."""

    _FIELDS = ("name", "description", "model", "temperature", "top_p", "response_format")

    def __init__(self, operation: str, agent: Optional[Arg] = None, body: Arg = Arg(None, "body")) -> None:
        self._operation, self._agent, self._body = operation, agent, body

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        body = self._body.get(args, kwargs)
        source: Mapping[str, Any] = body if isinstance(body, Mapping) else kwargs
        request = {key: source.get(key) for key in self._FIELDS}
        if self._agent is not None:
            request["agent_id"] = self._agent.get(args, kwargs)
        span = tracker.start_agent_operation(self._operation, request, attrs.server_address(_endpoint(instance)))
        return Call(context=tracker.context_of(span), payload=span)

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        tracker.learn_agent(result)
        tracker.end_agent_operation(call.payload, self._operation, result)
        return result

    def failed(self, tracker: RunTracker, call: Call, exc: BaseException) -> None:
        tracker.end_agent_operation(call.payload, self._operation, None, exc)


class PostMessage(RunOperation):
    """``messages.create`` / ``create_message`` (content capture only): the message is the input of the next run
    on its thread."""

    def __init__(self, thread: Arg = Arg(0, "thread_id")) -> None:
        self._thread = thread

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        if not tracker.content_enabled:
            return None
        return Call(thread_id=self._thread.get(args, kwargs))

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        tracker.message_posted(call.thread_id, result)
        return result


class ReadMessages(RunOperation):
    """``messages.list`` / ``messages.get`` / ``list_messages`` / ``get_message`` (content capture only): the
    messages a run created are its answer; the app's own reads spare ours."""

    def __init__(self, paged: bool = False) -> None:
        self._paged = paged

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        return _NO_CONTEXT if tracker.content_enabled else None

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        if self._paged:
            return ObservedPages(result, tracker.observe_messages)
        data = attrs.field(result, "data")
        tracker.observe_messages(data if isinstance(data, list) else [result])
        return result


class CloseClient(RunOperation):
    """``AgentsClient.close`` / ``__exit__`` / ``__aexit__`` (and the legacy ``AIProjectClient``'s): a closed
    client cannot finish the fetches still going through it, so closing waits for those (at most the fetch
    timeout; usually one round trip). The only place where the app may wait for the instrumentation, and
    only when the app closes a client right after a run ended."""

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        if tracker.fetcher.pending:
            tracker.fetcher.flush(tracker.fetcher.timeout_s, owners=_pipelines(instance))
        return None

    async def before_async(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        if tracker.fetcher.pending:
            await tracker.fetcher.drain_async(_pipelines(instance))
        return None


def _pipelines(client: Any) -> list[Any]:
    """The pipeline clients an SDK client owns (``_client``; the legacy ``AIProjectClient`` has ``_client0..3``)."""
    return [v for k, v in vars(client).items() if k.startswith("_client")] if hasattr(client, "__dict__") else []


_NO_CONTEXT = Call()


def _endpoint(instance: Any) -> Any:
    return getattr(getattr(instance, "_config", None), "endpoint", None)


def _operations_of(instance: Any) -> Any:
    """``create_thread_and_process_run`` is a client method: its runs' steps are read through ``client.runs``."""
    return getattr(instance, "runs", None) or instance
