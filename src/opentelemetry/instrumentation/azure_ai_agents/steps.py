"""Reading run steps: listing a finished run's steps ourselves, and observing the app's own step listings.

Two listing shapes exist: azure-ai-agents returns lazy ``ItemPaged`` / ``AsyncItemPaged`` iterators that fetch
pages as the app iterates; azure-ai-projects 1.0.0bX returns one page model (``data``, ``has_more``, ``last_id``).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, Optional

import wrapt

from . import attributes as attrs
from .run_state import MAX_STEPS_PER_RUN

_log = logging.getLogger(__name__)

MAX_PAGES = 10
PAGE_SIZE = 100

Observer = Callable[[list], None]
#: Our own listing runs inside the app's completing call: a failing steps endpoint must cost one request, not
#: the client's whole retry policy and its backoff.
NO_RETRY = {"retry_total": 0}
_Items = list  # ``list`` inside the listers' class bodies names their method


class StepLister:
    """Lists all steps of one run through the SDK (bounded)."""

    def list(self, instance: Any, thread_id: Optional[str], run_id: Optional[str]) -> _Items:
        raise NotImplementedError

    async def list_async(self, instance: Any, thread_id: Optional[str], run_id: Optional[str]) -> _Items:
        raise NotImplementedError


class PagedStepLister(StepLister):
    """azure-ai-agents: ``run_steps.list(thread_id, run_id)`` on the client, or on a sibling operations group
    built from a ``RunsOperations`` instance's pipeline (operations groups do not reference each other)."""

    def __init__(self, module: str, class_name: str = "RunStepsOperations", method: str = "list") -> None:
        self._module, self._class_name, self._method = module, class_name, method

    def _operations(self, instance: Any) -> Any:
        steps = getattr(instance, "run_steps", None)
        if steps is not None:
            return steps
        cls = getattr(importlib.import_module(self._module), self._class_name)
        return cls(instance._client, instance._config, instance._serialize, instance._deserialize)

    def _pages(self, instance: Any, thread_id: Optional[str], run_id: Optional[str]) -> Any:
        """Page by page, so that a short page ends the listing (saving the empty page the SDK would fetch);
        one "page" of everything when the listing's ``by_page`` is missing or broken (another
        instrumentation's wrapper, say)."""
        listing = getattr(self._operations(instance), self._method)
        items = listing(thread_id=thread_id, run_id=run_id, limit=PAGE_SIZE, **NO_RETRY)
        try:
            return items.by_page()
        except (AttributeError, TypeError):  # e.g. Microsoft's instrumentor's paged wrapper breaks by_page()
            return _single_page(items)

    def list(self, instance: Any, thread_id: Optional[str], run_id: Optional[str]) -> _Items:
        items: _Items = []
        for page in self._pages(instance, thread_id, run_id):
            size = len(items)
            items.extend(page)
            if len(items) - size < PAGE_SIZE or len(items) >= MAX_STEPS_PER_RUN:
                break
        return items[:MAX_STEPS_PER_RUN]

    async def list_async(self, instance: Any, thread_id: Optional[str], run_id: Optional[str]) -> _Items:
        items: _Items = []
        async for page in self._pages(instance, thread_id, run_id):
            size = len(items)
            items.extend([item async for item in page])
            if len(items) - size < PAGE_SIZE or len(items) >= MAX_STEPS_PER_RUN:
                break
        return items[:MAX_STEPS_PER_RUN]


class _single_page:  # noqa: N801 - an iterator of one page, sync or async
    def __init__(self, items: Any) -> None:
        self._items: Any = items

    def __iter__(self) -> Any:
        if self._items is not None:
            items, self._items = self._items, None
            yield items

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        if self._items is None:
            raise StopAsyncIteration
        items, self._items = self._items, None
        return items


class PageModelStepLister(StepLister):
    """azure-ai-projects 1.0.0bX: ``list_run_steps`` returns one page; follow ``last_id`` while ``has_more``."""

    def __init__(self, method: str = "list_run_steps") -> None:
        self._method = method

    def list(self, instance: Any, thread_id: Optional[str], run_id: Optional[str]) -> _Items:
        items: list = []
        after = None
        for _ in range(MAX_PAGES):
            page = getattr(instance, self._method)(thread_id, run_id, limit=PAGE_SIZE, **NO_RETRY, **_after(after))
            after = _collect(page, items)
            if after is None:
                break
        return items

    async def list_async(self, instance: Any, thread_id: Optional[str], run_id: Optional[str]) -> _Items:
        items: list = []
        after = None
        for _ in range(MAX_PAGES):
            list_page = getattr(instance, self._method)
            page = await list_page(thread_id, run_id, limit=PAGE_SIZE, **NO_RETRY, **_after(after))
            after = _collect(page, items)
            if after is None:
                break
        return items


def _after(cursor: Optional[str]) -> dict:
    return {"after": cursor} if cursor else {}


def _collect(page: Any, items: list) -> Optional[str]:
    """Adds a page's steps to ``items``; returns the cursor of the next page, or None when done."""
    data = attrs.field(page, "data")
    if not isinstance(data, list) or not data:
        return None
    items.extend(data)
    if not attrs.field(page, "has_more") or len(items) >= MAX_STEPS_PER_RUN:
        return None
    return attrs.text_field(page, "last_id")


class ObservedPages(wrapt.ObjectProxy):  # type: ignore[misc]
    """Wraps the SDK's lazy step listing: every step the app iterates over is also shown to the tracker.
    Everything else (``by_page``, continuation tokens, attributes) behaves as the SDK's own object."""

    def __init__(self, wrapped: Any, observe: Observer) -> None:
        super().__init__(wrapped)
        self._self_observe = observe

    def __iter__(self) -> "ObservedPages":
        return self

    def __next__(self) -> Any:
        item = next(self.__wrapped__)
        _notify(self._self_observe, item)
        return item

    def __aiter__(self) -> "ObservedPages":
        return self

    async def __anext__(self) -> Any:
        item = await self.__wrapped__.__anext__()
        _notify(self._self_observe, item)
        return item

    def by_page(self, *args: Any, **kwargs: Any) -> "_ObservedPageIterator":
        return _ObservedPageIterator(self.__wrapped__.by_page(*args, **kwargs), self._self_observe)


class _ObservedPageIterator(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, observe: Observer) -> None:
        super().__init__(wrapped)
        self._self_observe = observe

    def __iter__(self) -> "_ObservedPageIterator":
        return self

    def __next__(self) -> ObservedPages:
        return ObservedPages(iter(next(self.__wrapped__)), self._self_observe)

    def __aiter__(self) -> "_ObservedPageIterator":
        return self

    async def __anext__(self) -> ObservedPages:
        return ObservedPages(await self.__wrapped__.__anext__(), self._self_observe)


def _notify(observe: Observer, item: Any) -> None:
    try:
        observe([item])
    except Exception:  # never let instrumentation break the app's iteration
        _log.debug("failed to observe a run step", exc_info=True)
