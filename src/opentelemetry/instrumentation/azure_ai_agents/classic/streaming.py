"""Streamed runs: ``runs.stream`` / ``create_stream`` and ``runs.submit_tool_outputs_stream`` /
``submit_tool_outputs_to_stream``, sync and async, both SDK generations.

Why these seams:

* ``stream()`` calls the generated ``super().create(stream=True)``, not the wrapped ``create``, so it opens the
  run span itself (:class:`StreamRun`), and the run is registered when its first ``thread.run.*`` event arrives.
* ``submit_tool_outputs_stream`` calls the generated submit directly; :class:`SubmitToolOutputsStream` ends the
  client-side timing of the answered calls and binds the handler that will carry the rest of the run.
* Events reach the app through the event handler: ``BaseAgentEventHandler.__next__`` reads one raw frame with
  ``__next_impl__`` and hands it to ``_process_event``, which apps may override (custom handlers return anything).
  :class:`StreamEvents` wraps ``__next_impl__`` (and the async ``__anext_impl__``), so it sees every raw frame of
  every handler, including frames chained in by ``submit_tool_outputs_stream``, and returns them unchanged.
* :class:`StreamClosed` wraps ``AgentRunStream.__exit__`` / ``AsyncAgentRunStream.__aexit__`` (the app left
  its ``with`` block, maybe early, maybe with an exception); a weak finalizer covers streams simply dropped.

Each event is mapped onto the tracker calls of the polling path (:meth:`RunStream.on_frame`): a ``thread.run.*``
payload is a run snapshot, a ``thread.run.step.*`` payload a step snapshot. So streamed and polled runs follow
the same timing and state rules, and give the same trace.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from typing import Any, Optional

from ..core import attributes as attrs
from ..core.calls import Arg, Call, Operation, guarded
from . import attributes as cattrs
from .operations import CreateRun, SubmitToolOutputs
from .reads import RunReader
from .runs import Run
from .tracker import RunTracker

_log = logging.getLogger(__name__)

_STEP_EVENT = "thread.run.step."
_RUN_EVENT = "thread.run."
_MESSAGE_DONE = "thread.message.completed"
_RUN_STATUSES = cattrs.TERMINAL_STATUSES | {"queued", "in_progress", "requires_action", "cancelling"}


def parse_frame(frame: Any) -> tuple[Optional[str], Any]:
    """``(event name, decoded data)`` of one server-sent event frame (``event: X\\ndata: {...}``)."""
    if isinstance(frame, (bytes, bytearray)):
        frame = bytes(frame).decode("utf-8", errors="replace")
    if not isinstance(frame, str):
        return None, None
    name, data = None, ""
    for line in frame.strip().split("\n"):
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
    try:
        return name, json.loads(data)
    except ValueError:
        return name, data


class RunStream:
    """What one stream (one event handler) has shown about its run."""

    def __init__(self, state: Run, created: bool) -> None:
        self.state = state
        self.created = created  #: the run is registered with the tracker (its id is known)
        self.opened_run = not created  #: this stream started the run: its first event times the first chunk
        self.done = False  #: the run ended, or a newer stream carries it
        #: (this surface's reader, the object the app called): what the run still needs when it ends (its agent)
        self.reads: Optional[tuple[RunReader, Any]] = None
        self.is_async = False

    def on_frame(self, tracker: RunTracker, frame: Any) -> None:
        if self.done:
            return
        if self.opened_run:
            self.opened_run = False
            tracker.first_event(self.state)
        name, data = parse_frame(frame)
        if not name:
            return
        if name.startswith(_STEP_EVENT):
            if not name.endswith(".delta") and isinstance(data, dict):
                tracker.observe_steps(self.state.run_id or attrs.text_field(data, "run_id"), [data])
        elif name == _MESSAGE_DONE and isinstance(data, dict):
            tracker.observe_messages([data])  # the run's answer, whole (content capture only)
        elif name.startswith(_RUN_EVENT) and isinstance(data, dict):
            self._on_run(tracker, name[len(_RUN_EVENT) :], data)
        elif name == "error":
            self.done = True
            tracker.abandon_run(self.state, "stream_error", error=_stream_error(data))

    def _on_run(self, tracker: RunTracker, suffix: str, run: dict) -> None:
        if suffix in _RUN_STATUSES and run.get("status") != suffix:
            # The event name is authoritative: the SDK's own synthetic ``thread.run.cancelled`` event (sent when
            # auto function calls give up) carries the ``cancelling`` snapshot its cancel call returned.
            run = {**run, "status": suffix}
        if not self.created:
            self.created = True
            ended = tracker.run_created(self.state, run)
            if self.state.run_id is None:
                self.done = True  # the tracker ended a run without id
        else:
            ended = tracker.observe_run(run)
        if ended is not None:
            self.done = True
            # Steps came as events: nothing to list; the rest (its agent, its answer) is read off the app's path.
            reader, instance = self.reads if self.reads is not None else (None, None)
            tracker.read_and_finish(ended, reader, instance, self.is_async, list_steps=False)

    def on_end(self, tracker: RunTracker, reason: str, exc: Optional[BaseException] = None) -> None:
        """The stream stopped (exhausted, closed, dropped or raised) before a terminal event. Only the run's
        newest stream may end it: an older one (answered with ``submit_tool_outputs_stream`` on a new handler)
        going away later changes nothing."""
        if self.done or self.state.driver is not self:
            return
        if exc is None and tracker.waiting_for_outputs(self.state):
            return  # the app answers requires_action with submit_tool_outputs_stream: the run goes on
        self.done = True
        tracker.abandon_run(self.state, reason, exc=exc)


def _stream_error(data: Any) -> tuple[str, Optional[str]]:
    error = attrs.field(data, "error") if isinstance(data, dict) else None
    source = error if isinstance(error, dict) else data
    code = attrs.text_field(source, "code")
    message = attrs.text_field(source, "message") or (data if isinstance(data, str) and data else None)
    return code or "stream_error", message


class StreamRegistry:
    """Which :class:`RunStream` each live event handler feeds.

    Handlers are the app's objects: they are held weakly (by identity, whatever their ``__eq__``), and a
    handler dropped before its run ended ends that run (``unfinished=stream_abandoned``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_handler: dict[int, tuple[weakref.ref, RunStream, weakref.finalize]] = {}

    def get(self, handler: Any) -> Optional[RunStream]:
        entry = self._by_handler.get(id(handler))
        return entry[1] if entry is not None and entry[0]() is handler else None

    def bind(self, tracker: RunTracker, handler: Any, state: Run, created: bool) -> None:
        """Makes ``handler`` feed ``state``'s run; a handler already feeding that run keeps its stream.
        Handlers another instrumentation wrapped around the app's (Microsoft's ``inner_handler``) are followed:
        frames reach whichever handler of the chain reads them."""
        current = self.get(handler)
        if current is not None and current.state is state and not current.done:
            return
        stream = RunStream(state, created)
        state.driver = stream
        chain = _handler_chain(handler)
        try:
            refs = [weakref.ref(h) for h in chain]
        except TypeError:
            _log.debug("event handler %r cannot be observed (no weak references)", type(handler))
            stream.on_end(tracker, "stream_unobservable")
            return
        for item, ref in zip(chain, refs, strict=True):
            # A finalizer runs wherever garbage collection happens: it only queues work (no lock, see registry).
            dropped = _Dropped(self, id(item), stream, tracker)
            finalizer = weakref.finalize(item, tracker.registry.deferred.append, dropped)
            finalizer.atexit = False  # shutdown ends what is still open
            with self._lock:
                old = self._by_handler.pop(id(item), None)
                self._by_handler[id(item)] = (ref, stream, finalizer)
            if old is not None:
                old[2].detach()

    def give_reads(self, handler: Any, reader: Optional[RunReader], instance: Any, is_async: bool) -> None:
        """The reads ``handler``'s run needs when it ends (see ``reads``), made through ``instance``."""
        stream = self.get(handler) if handler is not None else None
        if stream is not None and reader is not None:
            stream.reads, stream.is_async = (reader, instance), is_async

    def forget(self, key: int, stream: RunStream) -> None:
        with self._lock:
            entry = self._by_handler.get(key)
            if entry is not None and entry[1] is stream:
                del self._by_handler[key]


class _Dropped:
    """Queued by a handler's finalizer; run later by an ordinary call (``Registry.drain_deferred``)."""

    __slots__ = ("registry", "key", "stream", "tracker")

    def __init__(self, registry: StreamRegistry, key: int, stream: RunStream, tracker: RunTracker) -> None:
        self.registry, self.key, self.stream, self.tracker = registry, key, stream, tracker

    def __call__(self) -> None:
        self.registry.forget(self.key, self.stream)
        guarded(self.stream.on_end, self.tracker, "stream_abandoned")


def _handler_chain(handler: Any) -> list[Any]:
    chain = [handler]
    inner = getattr(handler, "inner_handler", None)
    while inner is not None and all(inner is not h for h in chain) and len(chain) < 8:
        chain.append(inner)
        inner = getattr(inner, "inner_handler", None)
    return chain


class StreamRun(CreateRun):
    """``runs.stream`` / ``create_stream``: opens the run span like create; the first run event registers it."""

    def __init__(
        self,
        registry: StreamRegistry,
        reader: Optional[RunReader] = None,
        thread: Arg = Arg(0, "thread_id"),
        body: Arg = Arg(1, "body"),
    ) -> None:
        super().__init__(reader, thread=thread, body=body)
        self._registry = registry
        self.lists_steps = False

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        handler = getattr(result, "event_handler", None)
        if handler is None or call.state is None:
            if call.state is not None:
                tracker.abandon_run(call.state, "stream_unobservable")
            return result
        self._registry.bind(tracker, handler, call.state, created=False)
        self._registry.give_reads(handler, self.reader, instance, is_async=False)
        return result

    async def after_async(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        self.after(tracker, instance, call, result)
        self._registry.give_reads(getattr(result, "event_handler", None), self.reader, instance, is_async=True)
        return result


class SubmitToolOutputsStream(SubmitToolOutputs):
    """``submit_tool_outputs_stream`` / ``submit_tool_outputs_to_stream``: the run goes on in ``event_handler``."""

    def __init__(
        self, registry: StreamRegistry, reader: Optional[RunReader] = None, handler: Arg = Arg(None, "event_handler")
    ) -> None:
        super().__init__(reader)
        self._registry, self._handler = registry, handler
        self.lists_steps = False

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        call = super().before(tracker, instance, args, kwargs)
        if call is not None:
            call.payload = self._handler.get(args, kwargs)
        return call

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        state = tracker.open_state(call.run_id)
        if state is not None and call.payload is not None:
            self._registry.bind(tracker, call.payload, state, created=True)
            self._registry.give_reads(call.payload, self.reader, instance, is_async=False)
        return result

    async def after_async(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        self.after(tracker, instance, call, result)
        self._registry.give_reads(call.payload, self.reader, instance, is_async=True)
        return result


class StreamEvents(Operation):
    """``BaseAgentEventHandler.__next_impl__`` / ``BaseAsyncAgentEventHandler.__anext_impl__``: one raw frame
    per call, returned to the SDK unchanged; the end of the iteration (or its failure) ends the stream."""

    def __init__(self, registry: StreamRegistry) -> None:
        self._registry = registry

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        stream = self._registry.get(instance)
        return Call(payload=stream) if stream is not None and not stream.done else None

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        call.payload.on_frame(tracker, result)
        return result

    def failed(self, tracker: RunTracker, call: Call, exc: BaseException) -> None:
        if isinstance(exc, (StopIteration, StopAsyncIteration)):
            call.payload.on_end(tracker, "stream_ended")
        else:
            call.payload.on_end(tracker, "stream_error", exc)


class StreamClosed(Operation):
    """``AgentRunStream.__exit__`` / ``AsyncAgentRunStream.__aexit__``: the app left its ``with`` block. An
    exception leaving the block is recorded on a run that had not ended."""

    def __init__(self, registry: StreamRegistry) -> None:
        self._registry = registry

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        stream = self._registry.get(getattr(instance, "event_handler", None))
        if stream is None or stream.done:
            return None
        exc = args[1] if len(args) > 1 and isinstance(args[1], BaseException) else None
        return Call(payload=(stream, exc))

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        stream, exc = call.payload
        stream.on_end(tracker, "stream_closed", exc)
        return result
