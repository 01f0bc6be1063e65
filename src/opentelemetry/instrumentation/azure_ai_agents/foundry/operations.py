"""What the Responses API's calls tell the invocation tracker (the new Foundry agents, ``openai`` client).

* ``responses.create`` that invokes an agent opens an invocation (:class:`CreateResponse`): one with an agent
  reference, or any through an agent's endpoint client (its base URL names the agent, see ``clients``). A plain
  model call is not touched (the OpenAI instrumentations cover those). ``responses.stream(...)`` calls
  ``create(stream=True)`` itself, so it is covered by the same row.
* ``responses.retrieve`` / ``responses.cancel`` of an open background invocation is a snapshot of it
  (:class:`ObserveResponse`); any other retrieve or cancel is not touched.
* A streamed result is handed back wrapped in a transparent proxy (:class:`ObservedStream` /
  :class:`AsyncObservedStream`) that reads each event on its way to the app. A stream the app drops (garbage
  collected) only queues the end of its invocation: code that may run inside a collection takes no lock.

The conversations, agent and client rows are in ``agent_operations``.

These operations run in the generic wrappers of ``patch.py`` (hooks never raise into the app); the tracker they
receive is an :class:`~.invocations.Invocations`.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Optional

import wrapt

from ..core.calls import Arg, Call, Operation, guarded
from . import attributes as rattrs
from .clients import client_info, client_of
from .invocations import Invocation, Invocations

_log = logging.getLogger(__name__)

_LIFECYCLE = frozenset({"response.created", "response.queued", "response.in_progress"})
_TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete", "response.cancelled"})


class CreateResponse(Operation):
    """``responses.create`` (sync and async): one invocation span per call that carries an agent reference."""

    def before(self, tracker: Any, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        reference = rattrs.agent_reference(kwargs)
        client = client_of(instance)
        info = client_info(client)
        if reference is None and info.agent_name is None:
            return None  # a plain model call: one lookup, no other work
        invocations: Invocations = tracker
        invocation = invocations.begin(kwargs, reference, info, client)
        return Call(context=invocation.context, payload=invocation)

    def after(self, tracker: Any, instance: Any, call: Call, result: Any) -> Any:
        if _is_stream(result):
            tracker.streaming(call.payload)
            return ObservedStream(result, _StreamObserver(tracker, call.payload))
        tracker.observe(call.payload, result)
        return result

    async def after_async(self, tracker: Any, instance: Any, call: Call, result: Any) -> Any:
        if _is_stream(result):
            tracker.streaming(call.payload)
            return AsyncObservedStream(result, _StreamObserver(tracker, call.payload))
        tracker.observe(call.payload, result)
        return result

    def failed(self, tracker: Any, call: Call, exc: BaseException) -> None:
        tracker.failed(call.payload, exc)


class ObserveResponse(Operation):
    """``responses.retrieve`` / ``cancel``: a snapshot of an open background invocation (a poll); its span is
    current during the call."""

    _response = Arg(0, "response_id")

    def before(self, tracker: Any, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        invocation = tracker.open_invocation(self._response.get(args, kwargs))
        if invocation is None:
            return None  # not an invocation we track: no work at all
        return Call(context=invocation.context, payload=invocation)

    def after(self, tracker: Any, instance: Any, call: Call, result: Any) -> Any:
        if _is_stream(result):
            return ObservedStream(result, _StreamObserver(tracker, call.payload))
        tracker.observe(call.payload, result)
        return result

    async def after_async(self, tracker: Any, instance: Any, call: Call, result: Any) -> Any:
        if _is_stream(result):
            return AsyncObservedStream(result, _StreamObserver(tracker, call.payload))
        tracker.observe(call.payload, result)
        return result


def _is_stream(result: Any) -> bool:
    """An ``openai`` ``Stream`` / ``AsyncStream`` of events (not a ``Response``)."""
    return rattrs.get(result, "object") != "response" and (
        hasattr(result, "__next__") or hasattr(result, "__anext__")
    )


class _StreamObserver:
    """Feeds one stream's events to its invocation; ends it when the stream stops short of a terminal event
    (:meth:`end` from the app's own calls; :meth:`end_later` from code that may run inside a garbage collection,
    which takes no lock and only queues the end)."""

    __slots__ = ("_tracker", "_invocation", "done")

    def __init__(self, tracker: Invocations, invocation: Invocation) -> None:
        self._tracker, self._invocation, self.done = tracker, invocation, False

    def event(self, event: Any) -> None:
        if self.done:
            return
        tracker, invocation = self._tracker, self._invocation
        tracker.first_event(invocation)
        kind = rattrs.get(event, "type")
        if kind == "response.output_item.added":
            tracker.item_added(invocation, rattrs.get(event, "output_index"))
        elif kind == "response.output_item.done":
            tracker.item_done(invocation, rattrs.get(event, "output_index"))
        elif kind in _LIFECYCLE:
            tracker.observe(invocation, rattrs.get(event, "response"))
        elif kind in _TERMINAL_EVENTS:
            self.done = True
            tracker.observe(invocation, rattrs.get(event, "response"))
        elif kind == "error":
            self.done = True
            code = rattrs.text(event, "code") or rattrs.text(rattrs.get(event, "error"), "code") or "error"
            message = rattrs.text(event, "message") or rattrs.text(rattrs.get(event, "error"), "message")
            tracker.abandon(invocation, "stream_error", error=(code, message))

    def end(self, reason: str, exc: Optional[BaseException] = None) -> None:
        """The stream stopped (ran out, closed, raised) before a terminal event."""
        if not self.done:
            self.done = True
            self._tracker.abandon(self._invocation, reason, exc=exc)

    def end_later(self, reason: str) -> None:
        """The stream was dropped or its iterator collected: the end is queued (lock-free) for the next call."""
        if not self.done:
            self._tracker.defer(lambda: self.end(reason))


class ObservedStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """A ``Stream`` that shows each event to the invocation before the app gets it. Everything else (``response``,
    ``close``, ``with``, ``isinstance``) is the wrapped stream's."""

    def __init__(self, wrapped: Any, observer: _StreamObserver) -> None:
        super().__init__(wrapped)
        self._self_observer = observer
        weakref.finalize(self, _dropped, observer)

    def __iter__(self) -> Any:
        observer = self._self_observer
        try:
            for event in self.__wrapped__:
                guarded(observer.event, event)
                yield event
        except GeneratorExit:  # closed by the app, or collected: perhaps inside a collection
            guarded(observer.end_later, "stream_closed")
            raise
        except BaseException as exc:  # errors and cancellation alike: the invocation never stays open
            guarded(observer.end, "stream_error", exc)
            raise
        guarded(observer.end, "stream_ended")

    def __next__(self) -> Any:
        try:
            event = self.__wrapped__.__next__()
        except StopIteration:
            guarded(self._self_observer.end, "stream_ended")
            raise
        except BaseException as exc:
            guarded(self._self_observer.end, "stream_error", exc)
            raise
        guarded(self._self_observer.event, event)
        return event

    def __enter__(self) -> "ObservedStream":
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            guarded(self._self_observer.end, "stream_closed")

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            guarded(self._self_observer.end, "stream_closed")


class AsyncObservedStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """The ``AsyncStream`` twin of :class:`ObservedStream`."""

    def __init__(self, wrapped: Any, observer: _StreamObserver) -> None:
        super().__init__(wrapped)
        self._self_observer = observer
        weakref.finalize(self, _dropped, observer)

    async def __aiter__(self) -> Any:
        observer = self._self_observer
        try:
            async for event in self.__wrapped__:
                guarded(observer.event, event)
                yield event
        except GeneratorExit:  # closed by the app, or collected: perhaps inside a collection
            guarded(observer.end_later, "stream_closed")
            raise
        except BaseException as exc:  # errors and cancellation alike: the invocation never stays open
            guarded(observer.end, "stream_error", exc)
            raise
        guarded(observer.end, "stream_ended")

    async def __anext__(self) -> Any:
        try:
            event = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            guarded(self._self_observer.end, "stream_ended")
            raise
        except BaseException as exc:
            guarded(self._self_observer.end, "stream_error", exc)
            raise
        guarded(self._self_observer.event, event)
        return event

    async def __aenter__(self) -> "AsyncObservedStream":
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            guarded(self._self_observer.end, "stream_closed")

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            guarded(self._self_observer.end, "stream_closed")


def _dropped(observer: _StreamObserver) -> None:
    """The app let go of a stream it never finished reading (a finalizer: only queues the end)."""
    guarded(observer.end_later, "stream_abandoned")
