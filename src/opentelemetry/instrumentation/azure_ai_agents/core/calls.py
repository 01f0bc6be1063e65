"""The operation base: what one SDK method's call reveals, read from its arguments (``before``) and its result
(``after``). Operations know argument positions and result shapes, nothing about timing or span rules; each
generation's ``operations`` module subclasses :class:`Operation`, and the table in ``surfaces.py`` binds SDK
methods to them. ``patch.py`` runs the hooks around the SDK call, never letting them raise into the app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry.context import Context

_log = logging.getLogger(__name__)


def guarded(hook: Callable[..., Any], *args: Any) -> Any:
    """Runs an instrumentation hook; its failure is logged, never raised into the app (returns None)."""
    try:
        return hook(*args)
    except Exception:
        _log.debug("azure-ai-agents instrumentation hook %s failed", getattr(hook, "__qualname__", hook), exc_info=True)
        return None


@dataclass(frozen=True)
class Arg:
    """Where a parameter sits: its position (after ``self``) if it may be passed positionally, and its name."""

    index: Optional[int]
    name: str

    def get(self, args: tuple, kwargs: Mapping[str, Any]) -> Any:
        if self.name in kwargs:
            return kwargs[self.name]
        if self.index is not None and self.index < len(args):
            return args[self.index]
        return None


@dataclass
class Call:
    """One in-flight SDK call: the context to make current during it and what ``after`` needs."""

    context: Optional[Context] = None
    run_id: Optional[str] = None
    thread_id: Optional[str] = None
    state: Any = None  #: the tracked run or invocation the call is about
    payload: Any = None  #: whatever else one operation carries from ``before`` to ``after``
    #: when the request was sent (monotonic ns): an answer to an older request never overrides a newer one
    sent_ns: int = field(default_factory=time.monotonic_ns)


class Operation:
    """Base: an operation that reports nothing. Subclasses override the hooks they need. ``tracker`` is the
    generation's tracker the operation reports to."""

    def before(self, tracker: Any, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        return None

    def after(self, tracker: Any, instance: Any, call: Call, result: Any) -> Any:
        return result

    async def after_async(self, tracker: Any, instance: Any, call: Call, result: Any) -> Any:
        return self.after(tracker, instance, call, result)

    def failed(self, tracker: Any, call: Call, exc: BaseException) -> None:
        return None

    async def before_async(self, tracker: Any, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        """``before`` for async methods: may await (closing a client waits for its pending fetches)."""
        return self.before(tracker, instance, args, kwargs)


def attach(ctx: Optional[Context]) -> Optional[object]:
    return otel_context.attach(ctx) if ctx is not None else None


def detach(token: Optional[object]) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]
