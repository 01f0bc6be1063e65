"""Bursts at real round trips (issue 18): the step listing scales with the backlog.

Reads wait on the network, so the fetcher's worker pool grows while listings are waiting (up to 32 workers, at
most 8 at once through one client: its connection pool holds 10), and shrinks back when idle. Checked against the
emulator with meetings instead of timings: the listings of 16 runs ending together (two clients) must all be in
flight at once; one client never has more than 8 in flight; idle workers end. The backlog stays bounded: a
listing refused because it is full ends its run saying ``queue_full``, counted and logged.

The throughput at 100 ms per request (400 runs ending within 4 s) is measured by ``benchmarks/burst.py``.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from azure_ai_agents_emulator import AgentsEmulator, agents_client
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
from tests.fakes.gated_service import GatedService
from tests.helpers import ACTIVE, metadata

UNAVAILABLE = "azure.ai.agents.run.steps_unavailable"


@pytest.fixture
def gated() -> Iterator[tuple[GatedService, AgentsEmulator]]:
    service = GatedService()
    with AgentsEmulator(service=service) as emulator:
        yield service, emulator


def _fetcher() -> Any:
    return AzureAgentInstrumentor()._tracker.fetcher  # noqa: SLF001 - the instrumented one (a singleton)


def _end_runs(client: Any, agent_id: str, count: int) -> list[str]:
    """``count`` runs, each polled to its end (the terminal poll submits its listing and returns at once)."""
    ids = []
    for _ in range(count):
        thread = client.threads.create()
        run = client.runs.create(thread_id=thread.id, agent_id=agent_id, metadata=metadata("message"))
        while run.status in ACTIVE:
            run = client.runs.get(thread_id=thread.id, run_id=run.id)
        ids.append(run.id)
    return ids


def _check_runs_have_steps(telemetry: Any, run_ids: list[str]) -> None:
    runs = {s.attributes["azure.ai.agents.run.id"]: s for s in telemetry.run_spans()}
    assert sorted(runs) == sorted(run_ids)
    for span in runs.values():
        assert UNAVAILABLE not in span.attributes
        assert [c.name for c in telemetry.children(span)] == ["chat gpt-4o"]


def test_listings_of_runs_ending_together_run_concurrently_and_idle_workers_end(gated, instrument):
    service, emulator = gated
    telemetry = instrument()
    fetcher = _fetcher()
    fetcher.idle_s = 0.3
    clients = [agents_client(emulator), agents_client(emulator)]
    agent_id = clients[0].create_agent(model="gpt-4o", name="burst-agent").id
    service.meet(16, "list", timeout=10)  # every listing waits until all 16 are in flight
    run_ids = [run_id for client in clients for run_id in _end_runs(client, agent_id, 8)]
    assert telemetry.tracer_provider.force_flush(20_000)
    assert service.broken == 0  # all 16 listings were in flight at once (two workers could not)
    _check_runs_have_steps(telemetry, run_ids)
    assert fetcher.peak_workers >= 16
    deadline = time.monotonic() + 10
    while fetcher.workers and time.monotonic() < deadline:  # idle workers end after idle_s
        time.sleep(0.05)
    assert fetcher.workers == 0


def test_one_client_has_at_most_eight_listings_in_flight(gated, instrument):
    service, emulator = gated
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id = client.create_agent(model="gpt-4o", name="burst-agent").id
    service.meet(8, "list", timeout=10)
    run_ids = _end_runs(client, agent_id, 12)
    assert telemetry.tracer_provider.force_flush(20_000)
    assert service.broken == 0 and service.max_listings == 8
    _check_runs_have_steps(telemetry, run_ids)


def test_a_full_backlog_ends_runs_saying_queue_full_counted_and_logged(gated, instrument, caplog):
    service, emulator = gated
    telemetry = instrument()
    fetcher = _fetcher()
    fetcher.max_pending = 2
    client = agents_client(emulator)
    agent_id = client.create_agent(model="gpt-4o", name="burst-agent").id
    service.hold_next_listing(count=4)
    run_ids = _end_runs(client, agent_id, 4)  # listings held: the backlog is full after two
    assert service.listing_held.wait(10)
    service.release()
    assert telemetry.tracer_provider.force_flush(20_000)
    runs = {s.attributes["azure.ai.agents.run.id"]: s for s in telemetry.run_spans()}
    assert sorted(runs) == sorted(run_ids)
    assert [runs[r].attributes.get(UNAVAILABLE) for r in run_ids] == [None, None, "queue_full", "queue_full"]
    assert fetcher.failures[("steps", "queue_full")] == 2
    assert fetcher.stats()["failures"] == {"steps:queue_full": 2}
    assert len([r for r in caplog.records if "queue_full" in r.getMessage()]) == 1
