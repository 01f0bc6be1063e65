"""A burst that overflows the SDK's BatchSpanProcessor queue: the spans it drops never reach the exporter, but
the exporter counts the SDK's report of it (``sdk_queue_full``) and warns with the fix at once."""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from opentelemetry.exporter.nexus import NexusSpanExporter
from opentelemetry.exporter.nexus.sdk_queue import SDK_LOGGER
from tests.exporters.test_nexus_faults import FAST, nexus_warnings, run
from tests.fakes.nexus_server import CREATE_TRACE, NexusServer

RUNS = 40  # 80 spans into a queue of 8 whose only consumer is stuck in export(): an overflow whatever the timing


@pytest.fixture
def server() -> Iterator[NexusServer]:
    with NexusServer() as nexus:
        yield nexus


def forget_sdk_duplicate_filter() -> None:
    """The SDK passes one "Queue full" record per 20 s per process: forget the last one so this test's is seen."""
    for sdk_filter in logging.getLogger(SDK_LOGGER).filters:
        if hasattr(sdk_filter, "last_log"):
            del sdk_filter.last_log


def test_sdk_queue_overflow_is_counted_and_logged_at_once(
    server: NexusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.fail_next(CREATE_TRACE, 504, count=10**6, hang=30.0)  # the SDK's worker is held inside export()
    exporter = NexusSpanExporter(api_key=server.api_key, endpoint=server.url, **FAST)
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=8, max_export_batch_size=2, schedule_delay_millis=60_000)
    )
    tracer = provider.get_tracer("burst")
    forget_sdk_duplicate_filter()
    assert "sdk_queue_full" not in exporter.stats
    for _ in range(RUNS):
        run(tracer)
    # No wait: the report arrives on the thread that ended the span the SDK dropped.
    assert exporter.stats["sdk_queue_full"] >= 1
    warnings = nexus_warnings(caplog)
    assert any("batch span queue is full" in m and "OTEL_BSP_MAX_QUEUE_SIZE" in m for m in warnings), warnings
    assert "Queue full, dropping Span." in caplog.text  # the SDK's own warning still gets through
    server.heal()
    provider.shutdown()
    assert 0 < len(server.traces) < RUNS  # what the SDK dropped is lost, the rest is delivered


def test_other_sdk_warnings_are_not_taken_for_span_drops(server: NexusServer) -> None:
    exporter = NexusSpanExporter(api_key=server.api_key, endpoint=server.url, **FAST)
    forget_sdk_duplicate_filter()
    logging.getLogger(SDK_LOGGER).warning("Queue full, dropping %s.", "Log")  # a log-record processor's queue
    logging.getLogger(SDK_LOGGER).warning("Exception while exporting %s.", "Span")
    assert "sdk_queue_full" not in exporter.stats
    exporter.shutdown()
