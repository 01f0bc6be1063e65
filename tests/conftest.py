"""Shared fixtures: the Agents emulator, in-memory span/metric capture and an instrumentor per test."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from azure_ai_agents_emulator import AgentsEmulator
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

_CONTENT_ENV = (
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED",
    "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_LIST_STEPS_ON_COMPLETION",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CONTENT_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def emulator() -> Iterator[AgentsEmulator]:
    with AgentsEmulator() as emu:
        yield emu


_AGENT_OPS = ("create_agent", "update_agent", "delete_agent")


class Telemetry:
    """What one instrumented test produced."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.tracer = self.tracer_provider.get_tracer("tests")

    @property
    def all_spans(self) -> list[ReadableSpan]:
        """Everything exported, after ``force_flush()`` (which waits for the instrumentation's own fetches)."""
        self.tracer_provider.force_flush()
        return list(self.exporter.get_finished_spans())

    @property
    def spans(self) -> list[ReadableSpan]:
        """The run traces' spans: everything but the agent lifecycle spans (``create_agent`` / ``update_agent`` /
        ``delete_agent``, separate traces of their own, checked in test_substance)."""
        return [s for s in self.all_spans if (s.attributes or {}).get("gen_ai.operation.name") not in _AGENT_OPS]

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def run_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans if (s.attributes or {}).get("gen_ai.operation.name") == "invoke_agent"]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is not None and s.parent.span_id == parent.context.span_id]

    def shape(self) -> list[str]:
        """The trace as sorted 'parent > child' names: a compact, order-free picture of the tree."""
        by_id = {s.context.span_id: s for s in self.spans}
        rows = []
        for span in self.spans:
            parent = by_id.get(span.parent.span_id) if span.parent else None
            rows.append(f"{parent.name if parent else '-'} > {span.name}")
        return sorted(rows)


@pytest.fixture
def instrument() -> Iterator[Callable[..., Telemetry]]:
    """``instrument(**kwargs)`` instruments with fresh in-memory providers; uninstrumented after the test."""
    instrumentor = AzureAgentInstrumentor()

    def _instrument(**kwargs: Any) -> Telemetry:
        telemetry = Telemetry()
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, **kwargs
        )
        return telemetry

    yield _instrument
    instrumentor.uninstrument()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests (marked ``heavy``) first: the xdist scheduler hands them out before the short ones, so no
    worker starts a 30-second test at the end while the other one sits idle."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
