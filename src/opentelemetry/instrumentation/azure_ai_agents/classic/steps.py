"""Reading run steps: listing a finished run's steps ourselves, and observing the app's own step listings.

Two listing shapes exist: azure-ai-agents returns lazy ``ItemPaged`` / ``AsyncItemPaged`` iterators that fetch
pages as the app iterates; azure-ai-projects 1.0.0bX returns one page model (``data``, ``has_more``, ``last_id``).

Our own listing runs in the fetcher (off the app's path). It calls the SDK's *undecorated* method
(``inspect.unwrap``: past our wrapper, other instrumentations' wrappers and azure-core's ``distributed_trace``),
with azure-core's per-request options: no retries, its own connection and read timeouts, and
``tracing_options={"enabled": False}`` (azure-core >= 1.31) so that azure-core's ``DistributedTracingPolicy``
makes no HTTP span for it.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any, Callable, Optional

import wrapt

from ..core import attributes as attrs
from .run_state import MAX_STEPS_PER_RUN

_log = logging.getLogger(__name__)

MAX_PAGES = 10
PAGE_SIZE = 100

Observer = Callable[[list], None]
_Items = list  # ``list`` inside the listers' class bodies names their method


def request_options(timeout_s: float) -> dict[str, Any]:
    """azure-core per-request keyword arguments for our own requests."""
    options: dict[str, Any] = {"retry_total": 0, "connection_timeout": timeout_s, "read_timeout": timeout_s}
    if _CORE_TRACING_OPTIONS:
        options["tracing_options"] = {"enabled": False}
    return options


def _core_has_tracing_options() -> bool:
    try:
        from azure.core import tracing

        return hasattr(tracing, "TracingOptions")
    except Exception:  # noqa: BLE001 - no azure-core: nothing to switch off
        return False


_CORE_TRACING_OPTIONS = _core_has_tracing_options()


def undecorated(owner: Any, method: str) -> Callable[..., Any]:
    """The SDK's own function behind every wrapper (ours, other instrumentations', ``distributed_trace``)."""
    return inspect.unwrap(getattr(type(owner), method))


class StepLister:
    """Lists the steps of one run through the SDK (bounded): at most MAX_STEPS_PER_RUN steps are returned;
    ``seen`` counts every step listed (more than returned when the run has more steps than the bound)."""

    def list(self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float) -> "Listing":
        raise NotImplementedError

    async def list_async(
        self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float
    ) -> "Listing":
        raise NotImplementedError

    @staticmethod
    def owner(instance: Any) -> Any:
        """The client pipeline the listing goes through (closing it ends the listing)."""
        return getattr(instance, "_client", None)


class Listing:
    """Steps listed for one run, and how many the bound left out."""

    __slots__ = ("steps", "dropped")

    def __init__(self) -> None:
        self.steps: list = []
        self.dropped = 0

    def add(self, items: Any) -> int:
        count = 0
        for item in items:
            count += 1
            if len(self.steps) < MAX_STEPS_PER_RUN:
                self.steps.append(item)
            else:
                self.dropped += 1
        return count


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

    def _pages(self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float) -> Any:
        """Page by page, so that a short page ends the listing (saving the empty page the SDK would fetch)."""
        operations = self._operations(instance)
        listing = undecorated(operations, self._method)
        items = listing(
            operations, thread_id=thread_id, run_id=run_id, limit=PAGE_SIZE, **request_options(timeout_s)
        )
        try:
            return items.by_page()
        except (AttributeError, TypeError):  # a wrapper whose by_page() is missing or broken
            return _single_page(items)

    def list(self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float) -> Listing:
        listing = Listing()
        for index, page in enumerate(self._pages(instance, thread_id, run_id, timeout_s)):
            if listing.add(page) < PAGE_SIZE or index + 1 >= MAX_PAGES:
                break
        return listing

    async def list_async(
        self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float
    ) -> Listing:
        listing = Listing()
        index = 0
        async for page in self._pages(instance, thread_id, run_id, timeout_s):
            index += 1
            if listing.add([item async for item in page]) < PAGE_SIZE or index >= MAX_PAGES:
                break
        return listing


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

    def list(self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float) -> Listing:
        listing = Listing()
        list_page = undecorated(instance, self._method)
        after = None
        for _ in range(MAX_PAGES):
            options = request_options(timeout_s)
            page = list_page(instance, thread_id, run_id, limit=PAGE_SIZE, **options, **_after(after))
            after = _collect(page, listing)
            if after is None:
                break
        return listing

    async def list_async(
        self, instance: Any, thread_id: Optional[str], run_id: Optional[str], timeout_s: float
    ) -> Listing:
        listing = Listing()
        list_page = undecorated(instance, self._method)
        after = None
        for _ in range(MAX_PAGES):
            page = await list_page(
                instance, thread_id, run_id, limit=PAGE_SIZE, **request_options(timeout_s), **_after(after)
            )
            after = _collect(page, listing)
            if after is None:
                break
        return listing


def _after(cursor: Optional[str]) -> dict:
    return {"after": cursor} if cursor else {}


def _collect(page: Any, listing: Listing) -> Optional[str]:
    """Adds a page's steps to ``listing``; returns the cursor of the next page, or None when done."""
    data = attrs.field(page, "data")
    if not isinstance(data, list) or not data:
        return None
    listing.add(data)
    if not attrs.field(page, "has_more"):
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
