"""Installing and removing the wrappers, and the wrappers themselves.

A wrapper runs the operation's hooks around the SDK call. Hooks never raise into the app (they are guarded);
the SDK call itself is made outside any guard, so its exceptions reach the app unchanged.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

import wrapt
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .core.calls import Operation, attach, detach
from .core.calls import guarded as _guarded
from .surfaces import Surface

_log = logging.getLogger(__name__)


def _deferred(tracker: Any) -> Any:
    """The queue of work finalizers left for the next call (a tracker without one gets an empty tuple)."""
    registry = getattr(tracker, "registry", None)
    return getattr(registry, "deferred", ())


def sync_wrapper(tracker: Any, operation: Operation) -> Callable[..., Any]:
    deferred = _deferred(tracker)

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not getattr(tracker, "active", True) or not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        if deferred:
            tracker.registry.drain_deferred()  # work finalizers queued (they take no locks themselves)
        call = _guarded(operation.before, tracker, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        token = _guarded(attach, call.context)
        try:
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                _guarded(operation.failed, tracker, call, exc)
                raise
            try:
                return operation.after(tracker, instance, call, result)
            except Exception:
                _log.debug("azure-ai-agents instrumentation failed after %s", wrapped, exc_info=True)
                return result
        finally:
            _guarded(detach, token)

    return wrapper


def async_wrapper(tracker: Any, operation: Operation) -> Callable[..., Any]:
    deferred = _deferred(tracker)

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if not getattr(tracker, "active", True) or not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        if deferred:
            tracker.registry.drain_deferred()
        call = await _guarded_async(operation.before_async, tracker, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        token = _guarded(attach, call.context)
        try:
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                _guarded(operation.failed, tracker, call, exc)
                raise
            try:
                return await operation.after_async(tracker, instance, call, result)
            except Exception:
                _log.debug("azure-ai-agents instrumentation failed after %s", wrapped, exc_info=True)
                return result
        finally:
            _guarded(detach, token)

    return wrapper


async def _guarded_async(hook: Callable[..., Any], *args: Any) -> Any:
    try:
        return await hook(*args)
    except Exception:
        _log.debug("azure-ai-agents instrumentation hook %s failed", getattr(hook, "__qualname__", hook), exc_info=True)
        return None


class OurWrapper(wrapt.FunctionWrapper):  # type: ignore[misc]
    """Marks the wrappers this package installs: uninstall removes these and nothing else."""


@dataclass
class Installed:
    """One installed wrapper, with what is needed to put the original back exactly."""

    owner: type
    name: str
    original: Any
    owned: bool  #: the attribute was defined on ``owner`` itself (not inherited)
    wrapper: Any = None  #: the exact object installed

    def remove(self) -> None:
        current = self.owner.__dict__.get(self.name)
        if current is not self.wrapper:
            # Someone wrapped on top of ours (or put something else there): their wrapper stays in place and
            # still calls ours, which the tracker's shutdown has made inert (no run is tracked any more).
            return
        if self.owned:
            setattr(self.owner, self.name, self.original)
        else:
            delattr(self.owner, self.name)


def install(surface: Surface, tracker: Any) -> Optional[Installed]:
    """Wraps one SDK method; returns None when the SDK, class or method is not installed. ``tracker`` is what the
    surface's operations report to: the :class:`RunTracker` (classic runs) or the ``Invocations`` (Responses API).
    Other wrappers already there (Microsoft's instrumentor, other wrapt-based instrumentations) are wrapped, not
    replaced."""
    try:
        module = importlib.import_module(surface.module)
    except Exception:  # SDK not installed (or broken): skip quietly
        return None
    owner = getattr(module, surface.cls, None)
    if not isinstance(owner, type) or not hasattr(owner, surface.method):
        return None
    if isinstance(owner.__dict__.get(surface.method), OurWrapper):
        return None  # already wrapped by us
    owned = surface.method in owner.__dict__
    original = owner.__dict__[surface.method] if owned else getattr(owner, surface.method)
    make = async_wrapper if inspect.iscoroutinefunction(inspect.unwrap(original)) else sync_wrapper
    wrapper = OurWrapper(original, make(tracker, surface.operation))
    setattr(owner, surface.method, wrapper)
    return Installed(owner, surface.method, original, owned, wrapper)
