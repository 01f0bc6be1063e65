"""What we know about agents: name, description, model and metadata, by agent id.

Learned from every SDK call that returns an agent (create / get / update agent), and, for an agent the app never
fetched (created in the portal, a deploy script, another process), looked up once per agent id through the
fetcher, off the app's path. Bounded: the least recently used agents are forgotten first; an id whose lookup
failed is not retried (it is remembered as looked up, with nothing learned).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
from collections import OrderedDict
from typing import Any, Optional

from ..core.attributes import AgentInfo

MAX_KNOWN_AGENTS = 4096
_PENDING = object()


class AgentCache:
    def __init__(self, max_agents: int = MAX_KNOWN_AGENTS) -> None:
        self._lock = threading.Lock()
        self._agents: "OrderedDict[str, AgentInfo]" = OrderedDict()
        #: ids whose lookup was started: _PENDING while in flight, None once it ended
        self._looked_up: "OrderedDict[str, Optional[object]]" = OrderedDict()
        self._max = max_agents

    def learn(self, info: AgentInfo) -> None:
        with self._lock:
            self._agents[info.id] = info
            self._agents.move_to_end(info.id)
            while len(self._agents) > self._max:
                self._agents.popitem(last=False)

    def get(self, agent_id: Optional[str]) -> Optional[AgentInfo]:
        if not agent_id:
            return None
        with self._lock:
            info = self._agents.get(agent_id)
            if info is not None:
                self._agents.move_to_end(agent_id)
            return info

    def lookup_wanted(self, agent_id: Optional[str]) -> bool:
        """True for an agent id we know nothing about whose lookup is to start (the first call claims it) or is
        still in flight (the caller joins it); False once known, or once its one lookup ended without it."""
        if not agent_id:
            return False
        with self._lock:
            if agent_id in self._agents:
                return False
            state = self._looked_up.get(agent_id)
            if state is None and agent_id not in self._looked_up:
                self._looked_up[agent_id] = _PENDING
                while len(self._looked_up) > self._max:
                    self._looked_up.popitem(last=False)
                return True
            return state is _PENDING

    def lookup_done(self, agent_id: str) -> None:
        """The one lookup of ``agent_id`` ended (learned or not): it is never made again."""
        with self._lock:
            if agent_id in self._looked_up:
                self._looked_up[agent_id] = None

    def clear(self) -> None:
        with self._lock:
            self._agents.clear()
            self._looked_up.clear()


class AgentGetter:
    """Reads one agent through the SDK (``get_agent``), from the object the app called: the client itself,
    the legacy ``AgentsOperations``, or a ``RunsOperations`` group (through the client's generated mixin, which
    needs only the pipeline the group shares). No retries; the caller suppresses instrumentation."""

    def __init__(self, mixin_module: Optional[str] = None, mixin_class: str = "_AgentsClientOperationsMixin") -> None:
        self._module, self._class = mixin_module, mixin_class

    def _method(self, instance: Any) -> Any:
        """The SDK's ``get_agent`` bound to ``instance``, with per-request options: no retries, bounded waits,
        and (through the SDK's tracing decorator, when there is one) no azure-core tracing span."""
        options: dict[str, Any] = {"retry_total": 0}
        method = getattr(instance, "get_agent", None)
        if method is not None:
            options["tracing_options"] = {"enabled": False}
        else:
            mixin = getattr(importlib.import_module(self._module or ""), self._class)
            method = functools.partial(inspect.unwrap(mixin.get_agent), instance)
        return functools.partial(method, **options)

    def get(self, instance: Any, agent_id: str, timeout_s: float) -> Any:
        return self._method(instance)(agent_id, connection_timeout=timeout_s, read_timeout=timeout_s)

    async def get_async(self, instance: Any, agent_id: str, timeout_s: float) -> Any:
        return await self._method(instance)(agent_id, connection_timeout=timeout_s, read_timeout=timeout_s)
