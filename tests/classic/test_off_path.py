"""Production manners: nothing of ours on the app's call path, every run span ends, bounds are marked.

* the terminal ``runs.get`` does not wait for our step listing (a steps endpoint taking 0.4 s), sync and async;
  the step spans are there after ``force_flush()``;
* ``asyncio.wait_for``-bounded polls, ``create_and_process`` handing back ``cancelling``, a create in flight
  during ``uninstrument()``, a client closed right after its run: every run span ends;
* late step listings do not keep step objects; runs with more steps than the bound say so;
* two threads polling one run give one run span with each status change once.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import threading
import time
from typing import Any, Iterator

import pytest

from azure_ai_agents_emulator import AgentsEmulator, agents_client, async_agents_client
from azure_ai_agents_emulator.scenarios import MessageStep, Scenario
from tests.helpers import ACTIVE, agents_run, agents_setup, metadata
from tests.helpers_async import agents_setup_async

STEPS_DELAY = 0.4


@pytest.fixture
def slow_steps() -> Iterator[AgentsEmulator]:
    """An emulator whose steps endpoint takes 0.4 s."""
    with AgentsEmulator() as emu:
        emu.service.delays = {"list_run_steps": STEPS_DELAY}
        yield emu


def _timed_polls(client: Any, thread_id: str, run: Any) -> tuple[Any, list[float]]:
    times = []
    while run.status in ACTIVE:
        started = time.perf_counter()
        run = client.runs.get(thread_id=thread_id, run_id=run.id)
        times.append(time.perf_counter() - started)
    return run, times


def _assert_fast_end(times: list[float]) -> None:
    """The poll that saw the terminal status took about as long as the others: far less than the listing."""
    normal = statistics.median(times[:-1])
    assert times[-1] < normal + STEPS_DELAY / 4, (times[-1], normal)


def test_terminal_poll_does_not_wait_for_the_step_listing(slow_steps, instrument):
    telemetry = instrument()
    client = agents_client(slow_steps)
    agent_id, thread_id = agents_setup(client)
    run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("code_interpreter", 2))
    run, times = _timed_polls(client, thread_id, run)
    assert run.status == "completed" and len(times) >= 3
    _assert_fast_end(times)
    assert telemetry.tracer_provider.force_flush(10_000)
    [run_span] = telemetry.run_spans()
    steps = telemetry.named("chat")
    assert len(steps) == 2 and all(s.parent.span_id == run_span.context.span_id for s in steps)
    assert "azure.ai.agents.run.steps_unavailable" not in run_span.attributes
    # The run span ends when the terminal status was seen, not when the listing came back.
    last_event = run_span.events[-1]
    assert run_span.end_time - last_event.timestamp < int(STEPS_DELAY * 1e9 / 2)


def test_terminal_poll_does_not_wait_for_the_step_listing_async(slow_steps, instrument):
    telemetry = instrument()

    async def main() -> tuple[Any, list[float]]:
        async with async_agents_client(slow_steps) as client:
            agent_id, thread_id = await agents_setup_async(client)
            run = await client.runs.create(
                thread_id=thread_id, agent_id=agent_id, metadata=metadata("code_interpreter", 2)
            )
            times = []
            while run.status in ACTIVE:
                started = time.perf_counter()
                run = await client.runs.get(thread_id=thread_id, run_id=run.id)
                times.append(time.perf_counter() - started)
            await asyncio.sleep(STEPS_DELAY + 0.2)  # the app goes on; the listing finishes on its loop meanwhile
            return run, times

    run, times = asyncio.run(main())
    assert run.status == "completed"
    _assert_fast_end(times)
    assert telemetry.tracer_provider.force_flush(10_000)
    [run_span] = telemetry.run_spans()
    assert len(telemetry.named("chat")) == 2
    assert "azure.ai.agents.run.steps_unavailable" not in run_span.attributes


def test_closing_the_client_right_after_the_run_keeps_its_steps(slow_steps, instrument):
    """A closed client cannot list: closing waits for the listings still going through it (bounded)."""
    telemetry = instrument()

    async def main() -> None:
        async with async_agents_client(slow_steps) as client:
            agent_id, thread_id = await agents_setup_async(client)
            run = await client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
            while run.status in ACTIVE:
                run = await client.runs.get(thread_id=thread_id, run_id=run.id)

    asyncio.run(main())
    with agents_client(slow_steps) as client:
        agents_run(client, *agents_setup(client), "message")
    assert telemetry.tracer_provider.force_flush(10_000)
    assert len(telemetry.run_spans()) == 2
    assert len(telemetry.named("chat")) == 2
    for span in telemetry.run_spans():
        assert "azure.ai.agents.run.steps_unavailable" not in span.attributes


def test_a_listing_that_cannot_finish_ends_the_run_without_steps_and_says_why(emulator, instrument, caplog):
    telemetry = instrument(fetch_timeout=0.2)
    emulator.service.delays = {"list_run_steps": 1.0}
    try:
        client = agents_client(emulator)
        for _ in range(2):
            agents_run(client, *agents_setup(client), "message")
        assert telemetry.tracer_provider.force_flush(10_000)
    finally:
        emulator.service.delays = {}
    runs = telemetry.run_spans()
    assert len(runs) == 2 and telemetry.named("chat") == []
    assert {s.attributes["azure.ai.agents.run.steps_unavailable"] for s in runs} == {"timeout"}
    assert all(s.attributes["azure.ai.agents.run.status"] == "completed" for s in runs)
    warnings = [r for r in caplog.records if "could not finish" in r.getMessage()]
    assert len(warnings) == 1  # counted every time, logged once


def test_wait_for_bounded_polls_end_every_run(emulator, instrument):
    """``asyncio.wait_for`` around each poll: the app's bound may cancel a poll, never our listing."""
    telemetry = instrument()
    emulator.service.delays = {"list_run_steps": 0.3}

    async def main() -> list[str]:
        statuses = []
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            for scenario in ("message", "code_interpreter", "failed"):
                run = await client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata(scenario))
                while run.status in ACTIVE:
                    run = await asyncio.wait_for(client.runs.get(thread_id=thread_id, run_id=run.id), 0.15)
                statuses.append(run.status)
        return statuses

    try:
        assert asyncio.run(main()) == ["completed", "completed", "failed"]
    finally:
        emulator.service.delays = {}
    assert telemetry.tracer_provider.force_flush(10_000)
    runs = telemetry.run_spans()
    assert len(runs) == 3
    assert all("azure.ai.agents.run.unfinished" not in s.attributes for s in runs)
    assert len(telemetry.named("chat")) >= 4


def test_a_poll_cancelled_by_wait_for_leaves_the_run_open_and_polling_goes_on(emulator, instrument):
    telemetry = instrument()

    async def main() -> Any:
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            run = await client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
            emulator.service.delays = {"get_run": 0.5}
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.runs.get(thread_id=thread_id, run_id=run.id), 0.05)
            emulator.service.delays = {}
            while run.status in ACTIVE:
                run = await asyncio.wait_for(client.runs.get(thread_id=thread_id, run_id=run.id), 2.0)
            return run

    try:
        assert asyncio.run(main()).status == "completed"
    finally:
        emulator.service.delays = {}
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert "azure.ai.agents.run.unfinished" not in run_span.attributes


def test_create_and_process_handing_back_cancelling_ends_the_run(emulator, instrument):
    """A function that keeps failing past ``max_retry``: the SDK cancels the run and returns it ``cancelling``."""
    telemetry = instrument()
    client = agents_client(emulator)

    def get_weather(city: str) -> str:
        """Gets the weather.

        :param city: The city.
        """
        raise LookupError(city)

    client.enable_auto_function_calls({get_weather}, max_retry=0)
    agent_id, thread_id = agents_setup(client)
    run = client.runs.create_and_process(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0.01
    )
    assert run.status == "cancelling"
    [run_span] = telemetry.run_spans()  # ended when the helper returned, not 30 minutes later
    assert run_span.attributes["azure.ai.agents.run.status"] == "cancelling"
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "helper_returned"
    assert [s.name for s in telemetry.named("execute_tool")] == ["execute_tool get_weather"]


def test_uninstrument_during_a_create_does_not_register_an_ended_run(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    entered, release = threading.Event(), threading.Event()

    def hold_create(method: str, kind: str, payload: Any) -> Any:
        if kind == "run" and method == "POST" and not release.is_set():
            entered.set()
            release.wait(5)
        return None

    emulator.service.response_hook = hold_create
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    result: dict[str, Any] = {}
    creating = threading.Thread(
        target=lambda: result.setdefault("run", client.runs.create(thread_id=thread_id, agent_id=agent_id))
    )
    creating.start()
    try:
        assert entered.wait(5)
        AzureAgentInstrumentor().uninstrument()
    finally:
        release.set()
        creating.join(5)
        emulator.service.response_hook = None
    assert result["run"].status == "queued"
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "shutdown"
    client.runs.get(thread_id=thread_id, run_id=result["run"].id)  # not tracked: nothing more
    assert len(telemetry.run_spans()) == 1
    AzureAgentInstrumentor().instrument(tracer_provider=telemetry.tracer_provider)  # the fixture uninstruments


def test_late_step_listings_release_step_objects(emulator, instrument):
    """Steps the app lists after its run ended become spans at once; the tracker keeps only their ids."""
    telemetry = instrument(list_steps_on_completion=False)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    runs = [agents_run(client, agent_id, thread_id, "code_interpreter") for _ in range(3)]
    for run in runs:
        assert len(list(client.run_steps.list(thread_id=thread_id, run_id=run.id))) == 2
    assert len(telemetry.named("chat")) == 6
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    tracker = AzureAgentInstrumentor()._tracker  # noqa: SLF001 - what the registry still holds
    assert tracker is not None
    for run in runs:
        kept = tracker.registry.known_item(run.id)
        assert kept is not None and kept.state.steps == {} and kept.state.calls == {}
        assert len(kept.state.emitted) >= 2
    gc.collect()
    live = [o for o in gc.get_objects() if type(o).__name__ == "RunStep"]
    assert live == []


def test_runs_with_more_steps_than_the_bound_say_how_many_were_dropped(emulator, instrument):
    telemetry = instrument()
    emulator.service.scenarios["long"] = Scenario("long", "300 replies.", tuple(MessageStep("ok") for _ in range(300)))
    client = agents_client(emulator)
    run = agents_run(client, *agents_setup(client), "long")
    assert run.status == "completed"
    [run_span] = telemetry.run_spans()
    assert len(telemetry.named("chat")) == 256
    assert run_span.attributes["azure.ai.agents.run.steps_dropped"] == 44


def test_two_threads_polling_one_run_give_one_span_and_each_change_once(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("code_interpreter", polls=3))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            start.wait(5)
            current = run
            while current.status in ACTIVE:
                current = client.runs.get(thread_id=thread_id, run_id=run.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    [run_span] = telemetry.run_spans()
    statuses = [e.attributes["azure.ai.agents.run.status"] for e in run_span.events]
    assert statuses == ["queued", "in_progress", "completed"][-len(statuses) :] and statuses[-1] == "completed"
    assert len(statuses) == len(set(statuses))
    assert len(telemetry.named("chat")) == 2


def test_a_stream_dropped_while_locks_are_held_only_queues_its_ending(emulator, instrument):
    """The handler's finalizer may run on any thread, at any allocation: it takes no lock, it queues work."""
    from opentelemetry.instrumentation.azure_ai_agents.surfaces import STREAMS

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    stream = client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
    handler = stream.event_handler
    assert next(handler)[0] == "thread.run.created"
    finished = threading.Event()

    def drop_under_lock() -> None:
        nonlocal stream, handler
        with STREAMS._lock:  # noqa: SLF001 - the lock a finalizer taking locks would wait for forever
            del stream, handler
            gc.collect()
        finished.set()

    worker = threading.Thread(target=drop_under_lock, daemon=True)
    worker.start()
    assert finished.wait(5), "the finalizer blocked on a lock"
    [run_span] = telemetry.run_spans()  # force_flush runs the queued work
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "stream_abandoned"


def test_create_and_process_giving_up_on_requires_action_without_tool_calls_ends_the_run(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)

    def no_tool_calls(method: str, kind: str, payload: Any) -> Any:
        if kind == "run" and payload.get("status") == "requires_action":
            payload["required_action"]["submit_tool_outputs"]["tool_calls"] = []
        return payload

    emulator.service.response_hook = no_tool_calls
    try:
        run = client.runs.create_and_process(
            thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0.01
        )
        assert telemetry.tracer_provider.force_flush(10_000)
    finally:
        emulator.service.response_hook = None
    assert run.status == "requires_action"  # the SDK cancelled the run and broke out of its loop
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "cancelling"  # the last status seen: its cancel
    assert run_span.attributes["azure.ai.agents.run.unfinished"] == "helper_returned"


def test_an_event_loop_that_ends_before_the_listing_ends_the_run_without_steps(slow_steps, instrument):
    """``asyncio.run`` returning right after the run (client left open) cancels our listing task: the run still
    ends, at its observed end, saying why it has no steps."""
    telemetry = instrument()

    async def main() -> Any:
        client = async_agents_client(slow_steps)
        agent_id, thread_id = await agents_setup_async(client)
        run = await client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message"))
        while run.status in ACTIVE:
            run = await client.runs.get(thread_id=thread_id, run_id=run.id)
        return run

    assert asyncio.run(main()).status == "completed"
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.steps_unavailable"] == "cancelled"
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    assert telemetry.named("chat") == []


def test_an_answer_overtaken_on_its_way_never_moves_a_run_back():
    """Two threads poll one run: the request sent second may reach the service first, so the answer sent later can
    show an earlier stage. The run's state (pure) keeps the later stage and records each change once."""
    from opentelemetry.instrumentation.azure_ai_agents.classic.run_state import RunState

    state = RunState(start_ns=1, last_seen=0.0)
    snapshot = {"id": "run_1", "thread_id": "thread_1"}
    assert state.observe({**snapshot, "status": "queued"}, 10, 0.0, False, sent_ns=1).attributes is not None
    assert state.observe({**snapshot, "status": "in_progress"}, 20, 0.0, False, sent_ns=2).attributes is not None
    overtaken = state.observe({**snapshot, "status": "queued"}, 30, 0.0, False, sent_ns=3)  # sent later, older
    assert overtaken is not None and overtaken.attributes is None and state.status == "in_progress"
    waiting = state.observe({**snapshot, "status": "requires_action"}, 40, 0.0, False, sent_ns=4)
    assert waiting is not None and waiting.attributes is not None  # in_progress <-> requires_action: one stage
    assert state.observe({**snapshot, "status": "in_progress"}, 50, 0.0, False, sent_ns=5).attributes is not None
    done = state.observe({**snapshot, "status": "completed"}, 60, 0.0, False, sent_ns=6)
    assert done is not None and done.terminal
    assert [t[1] for t in state.transitions] == ["queued", "in_progress", "requires_action", "in_progress", "completed"]
