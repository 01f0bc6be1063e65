"""Our own reads of a finished run, made off the app's path (by the fetcher), returned as data.

A finished run may still need what only we can read: its steps (to emit step and tool spans), its agent (never
fetched by the app: name, description) and, with content capture on, the messages it created (its answer). The
tracker decides what to read (a :class:`ReadPlan`, from the run's state); a :class:`RunReader` (one per SDK
surface: its step lister, agent getter and message lister) makes the requests and hands back a
:class:`RunReads`; the tracker then folds that into the run and ends it. Nothing here calls the tracker.

Each request is bounded (the fetcher's timeout) and made without retries, with instrumentation suppressed. A
failing step listing fails the read (the fetcher records why: ``steps_unavailable``); a failing agent lookup or
message listing only loses that detail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Union

from opentelemetry.instrumentation.utils import suppress_instrumentation

from . import attributes as cattrs
from .agents import AgentGetter
from .message_reads import MessageLister
from .steps import Listing, StepLister

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadPlan:
    """What to read for one finished run (decided by the tracker; plain data)."""

    thread_id: Optional[str]
    run_id: Optional[str]
    list_steps: bool = False
    #: content capture on: the ids of the messages the run created whose content is already known (None: off)
    messages_known: Optional[frozenset[str]] = None
    #: message ids the run is known to have created so far (from steps seen before the listing)
    message_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.list_steps and not self._may_need_messages

    @property
    def _may_need_messages(self) -> bool:
        if self.messages_known is None:
            return False
        return self.list_steps or any(m not in self.messages_known for m in self.message_ids)


@dataclass
class RunReads:
    """What our reads found (each part None / empty when not read or not readable)."""

    listing: Optional[Listing] = None
    messages: list[Any] = field(default_factory=list)


Job = Callable[[float], Union[RunReads, Awaitable[RunReads]]]


class RunReader:
    """The reads of one SDK surface. ``job`` gives the fetcher a function of its timeout (a coroutine function
    for async clients)."""

    def __init__(
        self,
        steps: Optional[StepLister] = None,
        agents: Optional[AgentGetter] = None,
        messages: Optional[MessageLister] = None,
    ) -> None:
        self.steps, self._agents, self._messages = steps, agents, messages

    def owner(self, instance: Any) -> Any:
        """The client whose close waits for these reads."""
        return StepLister.owner(instance)

    def job(self, instance: Any, plan: ReadPlan, is_async: bool) -> Job:
        if is_async:

            async def read_async(timeout_s: float) -> RunReads:
                reads = RunReads()
                with suppress_instrumentation():
                    if plan.list_steps and self.steps is not None:
                        reads.listing = await self.steps.list_async(instance, plan.thread_id, plan.run_id, timeout_s)
                    if self._messages is not None and _needs_messages(plan, reads.listing):
                        try:
                            reads.messages = list(
                                await self._messages.list_async(instance, plan.thread_id, plan.run_id, timeout_s)
                            )
                        except Exception:
                            _log.debug("could not list the messages of run %s", plan.run_id, exc_info=True)
                return reads

            return read_async

        def read(timeout_s: float) -> RunReads:
            reads = RunReads()
            with suppress_instrumentation():
                if plan.list_steps and self.steps is not None:
                    reads.listing = self.steps.list(instance, plan.thread_id, plan.run_id, timeout_s)
                if self._messages is not None and _needs_messages(plan, reads.listing):
                    try:
                        reads.messages = list(self._messages.list(instance, plan.thread_id, plan.run_id, timeout_s))
                    except Exception:
                        _log.debug("could not list the messages of run %s", plan.run_id, exc_info=True)
            return reads

        return read

    def agent_job(self, instance: Any, agent_id: str, is_async: bool) -> Job:
        """One agent's lookup (``GET /assistants/{id}``), with instrumentation suppressed; its result is the
        agent object (None when it could not be read)."""
        if is_async:

            async def get_async(timeout_s: float) -> Any:
                if self._agents is None:
                    return None
                with suppress_instrumentation():
                    try:
                        return await self._agents.get_async(instance, agent_id, timeout_s)
                    except Exception:
                        _log.debug("could not read agent %s", agent_id, exc_info=True)
                        return None

            return get_async

        def get(timeout_s: float) -> Any:
            if self._agents is None:
                return None
            with suppress_instrumentation():
                try:
                    return self._agents.get(instance, agent_id, timeout_s)
                except Exception:
                    _log.debug("could not read agent %s", agent_id, exc_info=True)
                    return None

        return get


def _needs_messages(plan: ReadPlan, listing: Optional[Listing]) -> bool:
    """True when the run created messages (known before, or shown by the listing) whose content is unknown."""
    known = plan.messages_known
    if known is None:
        return False
    ids = list(plan.message_ids)
    if listing is not None:
        ids.extend(m for m in (cattrs.step_message_id(s) for s in listing.steps) if m)
    return any(m not in known for m in ids)
