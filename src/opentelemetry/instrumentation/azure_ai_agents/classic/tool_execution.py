"""Live ``execute_tool`` spans around the app's functions when the SDK runs them (auto function calls).

Why ``BaseFunctionTool._get_func_and_args`` is the seam: every path that runs an app function goes through it
(``FunctionTool.execute`` / ``AsyncFunctionTool.execute``, called by ``ToolSet.execute_tool_calls`` in
``create_and_process``, ``create_thread_and_process_run`` and the stream handlers, or by the app itself), in both
SDK generations (azure-ai-agents 1.0 - 1.2.0b6, azure-ai-projects 1.0.0bX). ``execute`` itself is too coarse:
it catches the function's exception and returns an error string, so only here is the exception still visible.
The wrapper returns the app's function wrapped in a span; the span covers exactly the function's execution and
records the exception it raised. If the SDK cannot resolve the call at all (unknown name, malformed arguments),
a failed tool span records that instead.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional

from ..core.calls import Arg, Call, Operation, attach, detach, guarded
from .tracker import RunTracker


class ExecuteFunction(Operation):
    """``BaseFunctionTool._get_func_and_args(tool_call)`` -> ``(function, arguments)``."""

    def __init__(self, tool_call: Arg = Arg(0, "tool_call")) -> None:
        self._tool_call = tool_call

    def before(self, tracker: RunTracker, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        return Call(payload=self._tool_call.get(args, kwargs))

    def after(self, tracker: RunTracker, instance: Any, call: Call, result: Any) -> Any:
        if not (isinstance(result, tuple) and len(result) == 2 and callable(result[0])):
            return result
        return traced(tracker, result[0], call.payload), result[1]

    def failed(self, tracker: RunTracker, call: Call, exc: BaseException) -> None:
        tracker.tool_failed(call.payload, exc)


def traced(tracker: RunTracker, function: Callable[..., Any], tool_call: Any) -> Callable[..., Any]:
    """``function`` inside a live tool span that is current while it runs (its own spans nest under it).
    A coroutine function stays one (the async SDK checks ``inspect.iscoroutinefunction`` before awaiting)."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            tool = guarded(tracker.start_tool, tool_call)
            token = guarded(attach, tool.context if tool is not None else None)
            try:
                result = await function(*args, **kwargs)
            except BaseException as exc:
                _end(tracker, tool, None, exc)
                raise
            else:
                _end(tracker, tool, result, None)
                return result
            finally:
                guarded(detach, token)

        return run_async

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        tool = guarded(tracker.start_tool, tool_call)
        token = guarded(attach, tool.context if tool is not None else None)
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            _end(tracker, tool, None, exc)
            raise
        else:
            _end(tracker, tool, result, None)
            return result
        finally:
            guarded(detach, token)

    return run


def _end(tracker: RunTracker, tool: Any, result: Any, exc: Optional[BaseException]) -> None:
    if tool is not None:
        guarded(tracker.end_tool, tool, result, exc)
