"""What a finished run still needs that only we can read: its agent (never fetched by the app: name,
description) and, with content capture on, the messages it created (its answer), when neither a stream nor the
app's own reads showed them. At most one agent lookup per agent id, and one message listing per run, never
with content capture off; each request bounded and without retries, made with instrumentation suppressed.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

from opentelemetry.instrumentation.utils import suppress_instrumentation

from .agents import AgentGetter
from .message_reads import MessageLister
from .registry import Run
from .tracker import RunTracker

_log = logging.getLogger(__name__)

#: Per-request wait of our own reads (connect and read), in seconds, when the tracker sets none.
TIMEOUT_S = 5.0


def _timeout(tracker: RunTracker) -> float:
    """The fetcher's timeout (``fetch_timeout``): each of our own requests waits at most that long."""
    fetcher = getattr(tracker, "fetcher", None)
    return float(getattr(fetcher, "timeout_s", TIMEOUT_S))


class RunExtras:
    def __init__(self, agents: AgentGetter, messages: MessageLister) -> None:
        self._agents, self._messages = agents, messages

    def _plan(self, tracker: RunTracker, run: Run, steps: Optional[Iterable[Any]]) -> tuple[Optional[str], bool]:
        with run.lock:
            if run.state.content is not None and steps is not None:
                run.state.content.note_steps(steps)
        return tracker.agent_to_look_up(run), tracker.messages_to_fetch(run)

    def read(self, tracker: RunTracker, instance: Any, thread_id: Optional[str], run: Run, steps: Any) -> None:
        agent_id, messages = self._plan(tracker, run, steps)
        with suppress_instrumentation():
            if agent_id is not None:
                try:
                    tracker.learn_agent(self._agents.get(instance, agent_id, _timeout(tracker)))
                except Exception:
                    _log.debug("could not read agent %s", agent_id, exc_info=True)
            if messages:
                try:
                    tracker.observe_messages(self._messages.list(instance, thread_id, run.run_id, _timeout(tracker)))
                except Exception:
                    _log.debug("could not list the messages of run %s", run.run_id, exc_info=True)

    async def read_async(
        self, tracker: RunTracker, instance: Any, thread_id: Optional[str], run: Run, steps: Any
    ) -> None:
        agent_id, messages = self._plan(tracker, run, steps)
        with suppress_instrumentation():
            if agent_id is not None:
                try:
                    tracker.learn_agent(await self._agents.get_async(instance, agent_id, _timeout(tracker)))
                except Exception:
                    _log.debug("could not read agent %s", agent_id, exc_info=True)
            if messages:
                try:
                    answer = await self._messages.list_async(instance, thread_id, run.run_id, _timeout(tracker))
                    tracker.observe_messages(answer)
                except Exception:
                    _log.debug("could not list the messages of run %s", run.run_id, exc_info=True)
