"""Makes an SDK ``TracerProvider``'s ``force_flush()`` and ``shutdown()`` account for the reads the fetcher still
has pending (a run ends only when its steps are listed, off the app's path).

* ``force_flush(timeout)`` waits for the pending reads, then flushes the spans their runs produced; it returns
  False when some did not finish (timeout, or reads pending on the event loop of the calling thread, which
  cannot run while that thread waits).
* ``shutdown()`` first waits, at most the fetch timeout, for the pending reads and ends their runs; what is left
  then ends without its reads (``azure.ai.agents.run.steps_unavailable=shutdown``, counted in the fetcher's
  failures); only then do the span processors shut down, so a ``BatchSpanProcessor`` exports those runs.

How, with public SDK APIs only: ``force_flush`` is the one hook that reaches every span processor and
``add_span_processor`` the one public way in, so a span processor is added once per provider (re-pointed at the
current fetcher when the instrumentation is installed again, inert after uninstrument). But processors shut down
in the order they were added, and ours usually comes after the app's exporting processor: its ``shutdown`` would
run too late. So the provider object's own ``shutdown`` is also wrapped (an instance attribute, calling the
original afterwards; the class and other providers are untouched). ``TracerProvider``'s own exit handler
calls the original method; at interpreter exit the instrumentation's exit handler (registered later, so run
earlier) has already drained the fetcher.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Optional

from .fetcher import Fetcher

_log = logging.getLogger(__name__)

_HOOKS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_MARK = "_azure_ai_agents_shutdown_hook"


def hook_provider(provider: Any, fetcher: Optional[Fetcher]) -> None:
    """Makes ``provider.force_flush()`` and ``provider.shutdown()`` account for ``fetcher``'s pending reads (None:
    stop doing so). Only an SDK ``TracerProvider`` (one with ``add_span_processor``) can be hooked; others are
    left alone."""
    if not callable(getattr(provider, "add_span_processor", None)):
        return
    try:
        hook = _HOOKS.get(provider)
        if hook is None:
            if fetcher is None:
                return
            hook = _hook_class()(provider)
            hook.fetcher = fetcher
            provider.add_span_processor(hook)
            _HOOKS[provider] = hook
            _wrap_shutdown(provider, hook)
        hook.fetcher = fetcher
    except Exception:  # noqa: BLE001 - no SDK, or a provider that refuses processors or new attributes
        _log.debug("azure-ai-agents: cannot hook the flush and shutdown of %r", provider, exc_info=True)


def _wrap_shutdown(provider: Any, hook: Any) -> None:
    """``provider.shutdown`` first ends the runs whose reads are pending (see the module docstring)."""
    inner = getattr(provider, "__dict__", {}).get("shutdown")  # an instance-level wrapper installed before ours
    if getattr(inner, _MARK, False):
        return
    method = type(provider).shutdown
    provider_ref = weakref.ref(provider)  # the provider holds this function: no cycle through it

    def shutdown(*args: Any, **kwargs: Any) -> Any:
        hook.before_shutdown()
        if inner is not None:
            return inner(*args, **kwargs)
        target = provider_ref()
        return None if target is None else method(target, *args, **kwargs)

    shutdown.__doc__ = method.__doc__
    setattr(shutdown, _MARK, True)
    provider.shutdown = shutdown


def _hook_class() -> type:
    from opentelemetry.sdk.trace import SpanProcessor  # the SDK is optional for this package

    class ProviderHook(SpanProcessor):  # type: ignore[misc]
        """Its ``force_flush`` waits for the pending reads; when some were pending (their runs then ended: new
        spans reached the other processors, possibly after those were flushed), it calls
        ``provider.force_flush()`` once more with the time left, so a ``BatchSpanProcessor`` added before it
        exports them too (a thread-local flag stops the recursion). ``before_shutdown`` drains the reads.
        Its ``on_start`` / ``on_end`` do nothing."""

        def __init__(self, provider: Any) -> None:
            self.fetcher: Optional[Fetcher] = None
            self._provider = weakref.ref(provider)  # the provider holds this processor: no cycle
            self._inside = threading.local()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            fetcher = self.fetcher
            if fetcher is None or getattr(self._inside, "flag", False):
                return True
            deadline = time.monotonic() + timeout_millis / 1000
            had_pending = fetcher.pending > 0
            done = fetcher.flush(max(0.0, deadline - time.monotonic()))
            if had_pending:
                self._inside.flag = True
                try:
                    remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
                    provider = self._provider()
                    if provider is not None:
                        done = bool(provider.force_flush(remaining_ms)) and done
                finally:
                    self._inside.flag = False
            return done

        def before_shutdown(self) -> None:
            """Waits (at most the fetch timeout) for the pending reads, then ends the runs of the rest without
            them (``shutdown``): all before any span processor shuts down."""
            fetcher = self.fetcher
            if fetcher is None:
                return
            try:
                fetcher.drain(fetcher.timeout_s, "shutdown")
            except Exception:  # noqa: BLE001 - never raise into the app's shutdown
                _log.debug("azure-ai-agents: draining pending reads at shutdown failed", exc_info=True)

        def shutdown(self) -> None:
            # Reached without our wrapper (the SDK's exit handler calls the original method): drain now, for
            # the processors added after this one; then inert.
            self.before_shutdown()
            self.fetcher = None

    return ProviderHook
