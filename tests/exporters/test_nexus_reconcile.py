"""A Nexus answer lost after the object was created: the lookup that settles it reads every list shape, and an
answer it cannot read means "unknown" (looked up again later, then given up, counted), never "not found"."""

from __future__ import annotations

import logging
from typing import Any, Iterator

import pytest

from opentelemetry.exporter.nexus.client import read_list
from opentelemetry.exporter.nexus.sender import MAX_UNKNOWN_LOOKUPS
from tests.exporters.test_nexus_faults import nexus_warnings, pipeline, run
from tests.fakes.nexus_server import CREATE_SPAN, CREATE_TRACE, GET_TRACE, LIST_TRACES, NexusServer

#: Rounds only when the test asks (force_flush): the exporter's own retry timer waits 30 s.
NO_TIMER = dict(backoff_base=30.0, backoff_max=30.0)


@pytest.fixture
def server() -> Iterator[NexusServer]:
    with NexusServer() as nexus:
        yield nexus


@pytest.mark.parametrize(
    ("shape", "key"),
    [("array", ""), ("object", "traces"), ("object", "data"), ("object", "items")],
)
def test_lost_answer_gives_exactly_one_trace_whatever_the_list_shape(server: NexusServer, shape: str, key: str) -> None:
    server.list_shape, server.list_key = shape, key
    server.fail_next(CREATE_TRACE, 0, after_processing=True)  # created, then the connection drops
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)
    assert server.count(CREATE_TRACE) == 1 and server.count(LIST_TRACES) == 1
    (trace,) = server.traces
    assert len(trace["spans"]) == 2 and exporter.stats["reconciled"] == 1
    assert "reconcile_unknown" not in exporter.stats
    provider.shutdown()


def test_lost_answer_with_a_list_without_metadata_reads_the_candidates(server: NexusServer) -> None:
    server.list_metadata = False  # the listed trace cannot be compared: it is fetched
    server.fail_next(CREATE_TRACE, 0, after_processing=True)
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)
    assert server.count(CREATE_TRACE) == 1 and server.count(GET_TRACE) == 1
    (trace,) = server.traces
    assert len(trace["spans"]) == 2 and exporter.stats["reconciled"] == 1
    provider.shutdown()


def test_unreadable_list_is_never_taken_for_not_found(server: NexusServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    server.list_shape = "unreadable"  # a 200 with an HTML page
    server.fail_next(CREATE_TRACE, 0, after_processing=True)
    exporter, provider, tracer = pipeline(server, **NO_TIMER)
    run(tracer)  # the export posts (answer lost), looks up (unreadable), keeps the run
    assert not exporter.force_flush(5000)  # looked up again: still unknown, not delivered, not posted again
    assert server.count(CREATE_TRACE) == 1 and len(server.traces) == 1
    assert exporter.stats["reconcile_unknown"] == 2 and exporter.backlog_spans == 2
    assert any("cannot tell whether Nexus created a trace" in m for m in nexus_warnings(caplog))
    server.list_shape = "object"  # the lookup can be read again: the run is settled, once
    assert exporter.force_flush(5000)
    assert server.count(CREATE_TRACE) == 1
    (trace,) = server.traces
    assert len(trace["spans"]) == 2 and exporter.stats["reconciled"] == 1 and exporter.backlog_spans == 0
    provider.shutdown()


def test_a_list_that_stays_unreadable_gives_the_run_up_counted_without_a_duplicate(
    server: NexusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.list_shape = "unreadable"
    server.fail_next(CREATE_TRACE, 0, after_processing=True)
    exporter, provider, tracer = pipeline(server, **NO_TIMER)
    run(tracer)
    for _ in range(MAX_UNKNOWN_LOOKUPS):  # one lookup per round
        if "spans_dropped_reconcile_unknown" in exporter.stats:
            break
        assert not exporter.force_flush(5000)
    assert exporter.stats["spans_dropped_reconcile_unknown"] == 2
    assert exporter.stats["reconcile_unknown"] == MAX_UNKNOWN_LOOKUPS
    assert exporter.backlog_spans == 0 and exporter.force_flush(5000)  # nothing left to try
    assert server.count(CREATE_TRACE) == 1 and len(server.traces) == 1  # never posted blindly
    warnings = nexus_warnings(caplog)
    assert any("gave up a trace whose answer was lost" in m for m in warnings)
    assert any("dropped spans: reconcile_unknown=2" in m for m in warnings)
    provider.shutdown()


def test_lost_span_answer_with_an_unreadable_trace_is_not_posted_again(server: NexusServer) -> None:
    server.fail_next(CREATE_SPAN, 0, after_processing=True)  # the first span is stored, its answer lost
    server.fail_next(GET_TRACE, 200, body={"ok": True})  # the lookup's answer has no spans to compare
    exporter, provider, tracer = pipeline(server)
    run(tracer)
    assert exporter.force_flush(5000)  # the next lookup can be read: the span is found, not posted again
    (trace,) = server.traces
    assert len(trace["spans"]) == 2 and server.count(CREATE_SPAN) == 2
    assert exporter.stats["reconcile_unknown"] == 1 and exporter.stats["reconciled"] == 1
    ids = {s["id"] for s in trace["spans"]}
    assert all(s["parent_span_id"] in ids for s in trace["spans"] if s["parent_span_id"])
    provider.shutdown()


@pytest.mark.parametrize(
    ("body", "items"),
    [
        ([{"id": "a"}], [{"id": "a"}]),
        ([], []),
        ({"traces": [{"id": "a"}], "total": 1}, [{"id": "a"}]),
        ({"data": [], "next_cursor": None}, []),
        ({"items": [{"id": "b"}]}, [{"id": "b"}]),
        ({"rows": [{"id": "c"}], "total": 1}, [{"id": "c"}]),  # the object's only array
        ({"traces": None}, None),
        ({"a": [], "b": []}, None),  # two arrays: which one is the list is unknown
        ({"error": "nope"}, None),
        ("<html>", None),
        (None, None),  # an empty or non-JSON body
    ],
)
def test_read_list_accepts_both_shapes_and_nothing_else(body: Any, items: Any) -> None:
    assert read_list(body) == items
