"""Fork safety: what a forked child must do before it runs any code of the app (gunicorn ``--preload``, uWSGI,
celery prefork, ``multiprocessing`` with ``fork``).

A forked child has only the thread that called ``fork()``: our background threads are gone, any lock one of them
held stays held forever, and the parent's in-flight work (runs, pending reads) is the parent's to finish. Objects
that own threads, locks or per-process work register a method here; it runs in the child right after the fork
(``os.register_at_fork(after_in_child=...)``, as the OpenTelemetry SDK's batch processors do). The method is held
weakly: registering never keeps an object alive (handlers cannot be unregistered).
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Callable

_log = logging.getLogger(__name__)


def at_fork_in_child(method: Callable[[], None]) -> None:
    """Calls the bound ``method`` in every child forked from now on (if its object still exists). Never raises."""
    if not hasattr(os, "register_at_fork"):  # not on Windows: no fork there
        return
    ref = weakref.WeakMethod(method)  # type: ignore[arg-type]

    def after_in_child() -> None:
        target = ref()
        if target is None:
            return
        try:
            target()
        except Exception:  # noqa: BLE001 - a fork handler must never break the child
            _log.debug("azure-ai-agents: after-fork reset failed", exc_info=True)

    os.register_at_fork(after_in_child=after_in_child)
