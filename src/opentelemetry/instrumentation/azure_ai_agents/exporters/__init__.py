"""Span exporters shipped with the instrumentation (the Nexus exporter is its own distribution,
``opentelemetry-exporter-nexus``).

Attributes are resolved lazily so that importing this package costs nothing until an exporter is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .tree import RunTreeSpanExporter

__all__ = ["RunTreeSpanExporter"]

_LAZY = {
    "RunTreeSpanExporter": ".tree",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
