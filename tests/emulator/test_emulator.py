"""The Agents emulator against the REAL azure SDKs (no instrumentation involved).

Both SDK generations (azure-ai-agents 1.x and legacy azure-ai-projects 1.0.0b10), sync and async,
over real HTTP and through the in-process transports, for every scenario.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pytest

pytest.importorskip("azure.ai.agents")
pytest.importorskip("azure.ai.projects")

from azure.ai.agents import models as am  # noqa: E402
from azure.ai.projects import models as pm  # noqa: E402
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError  # noqa: E402

from azure_ai_agents_emulator import (  # noqa: E402
    SCENARIO_NAMES,
    AgentsEmulator,
    AgentsService,
    agents_client,
    async_agents_client,
    async_project_client,
    project_client,
)

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}

# scenario -> (final run status, [(step type, step status)] in creation order)
EXPECTED: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "message": ("completed", [("message_creation", "completed")]),
    "function_call": ("completed", [("tool_calls", "completed"), ("message_creation", "completed")]),
    "multi_function": (
        "completed",
        [("tool_calls", "completed"), ("tool_calls", "completed"), ("message_creation", "completed")],
    ),
    "code_interpreter": ("completed", [("tool_calls", "completed"), ("message_creation", "completed")]),
    "file_search": ("completed", [("tool_calls", "completed"), ("message_creation", "completed")]),
    "all_tools": ("completed", [("tool_calls", "completed"), ("message_creation", "completed")]),
    "unknown_tool": ("completed", [("tool_calls", "completed"), ("message_creation", "completed")]),
    "failed": ("failed", [("tool_calls", "failed")]),
    "failed_no_error": ("failed", [("tool_calls", "failed")]),
    "expired": ("expired", [("tool_calls", "expired")]),
    "incomplete": ("incomplete", [("message_creation", "completed")]),
    "cancel": ("cancelled", [("tool_calls", "cancelled")]),
}
FINISHING = [s for s in SCENARIO_NAMES if s != "cancel"]  # scenarios that end without help


def get_weather(city: str) -> str:
    """Get the weather of a city.

    :param city: The city.
    :return: The weather as JSON.
    """
    return json.dumps({"city": city, "weather": "sunny"})


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def _server() -> Iterator[AgentsEmulator]:
    with AgentsEmulator() as emulator:
        yield emulator


@pytest.fixture
def emulator(_server: AgentsEmulator) -> AgentsEmulator:
    _server.reset()
    return _server


@pytest.fixture
def client(emulator: AgentsEmulator) -> Iterator[Any]:
    with agents_client(emulator) as c:
        yield c


@pytest.fixture
def legacy(emulator: AgentsEmulator) -> Iterator[Any]:
    with project_client(emulator) as c:
        yield c


def _status(value: Any) -> str:
    return getattr(value, "value", value)


def _call(service: AgentsService, method: str, route: str, body: Any = None, **query: str) -> Any:
    payload = None if body is None else json.dumps(body).encode()
    response = service.handle(method, "/api/projects/p" + route, query, payload)
    return response.status, (b"".join(response.body).decode() if response.is_stream else response.json())


# ------------------------------------------------------------------------------- service (no SDK)


def test_import_needs_only_the_standard_library() -> None:
    code = (
        "import sys; import azure_ai_agents_emulator as e; "
        "e.AgentsService(); bad = [m for m in sys.modules if m.startswith('azure.')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_service_lists_end_with_an_empty_page_and_null_last_id() -> None:
    service = AgentsService(seed=7)
    messages = [{"role": "user", "content": f"m{i}"} for i in range(3)]
    _, thread = _call(service, "POST", "/threads", {"messages": messages})
    _, page = _call(service, "GET", f"/threads/{thread['id']}/messages", limit="2")
    assert [m["content"][0]["text"]["value"] for m in page["data"]] == ["m2", "m1"]  # default order desc
    assert page["has_more"] is True and page["last_id"] == page["data"][-1]["id"]
    _, page = _call(service, "GET", f"/threads/{thread['id']}/messages", limit="2", after=page["last_id"])
    assert [m["content"][0]["text"]["value"] for m in page["data"]] == ["m0"]
    _, page = _call(service, "GET", f"/threads/{thread['id']}/messages", after=page["last_id"])
    assert page == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    _, page = _call(service, "GET", f"/threads/{thread['id']}/messages", order="asc")
    assert [m["content"][0]["text"]["value"] for m in page["data"]] == ["m0", "m1", "m2"]


def test_service_errors_have_the_service_shape() -> None:
    service = AgentsService()
    assert _call(service, "GET", "/nowhere")[0] == 404
    status, body = _call(service, "GET", "/threads/thread_nope/runs/run_nope")
    assert status == 404 and body["error"]["code"] == "NotFound" and "message" in body["error"]
    legacy_path = (
        "/agents/v1.0/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w/threads"
    )
    assert service.handle("POST", legacy_path, {"api-version": "whatever"}, b"{}").status == 200
    assert service.handle("POST", "/api/projects/p/threads", {}, b"not json").status == 400


def test_service_ids_are_deterministic_with_a_seed() -> None:
    ids = []
    for _ in range(2):
        service = AgentsService(seed=42)
        _, agent = _call(service, "POST", "/assistants", {"model": "m"})
        _, thread = _call(service, "POST", "/threads", {})
        ids.append((agent["id"], thread["id"]))
    assert ids[0] == ids[1] and ids[0][0].startswith("asst_") and ids[0][1].startswith("thread_")


def test_service_polls_per_state_and_submit_validation() -> None:
    service = AgentsService(polls_per_state=2)
    _, agent = _call(service, "POST", "/assistants", {"model": "m", "metadata": {"scenario": "function_call"}})
    _, thread = _call(service, "POST", "/threads", {})
    _, run = _call(service, "POST", f"/threads/{thread['id']}/runs", {"assistant_id": agent["id"]})
    route = f"/threads/{thread['id']}/runs/{run['id']}"
    seen = [run["status"]] + [_call(service, "GET", route)[1]["status"] for _ in range(6)]
    assert seen == ["queued", "queued", "in_progress", "in_progress"] + ["requires_action"] * 3
    call_id = _call(service, "GET", route)[1]["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
    assert _call(service, "POST", route + "/submit_tool_outputs", {"tool_outputs": []})[0] == 400
    assert _call(service, "POST", route + "/submit_tool_outputs", {"tool_outputs": [{"tool_call_id": "x"}]})[0] == 400
    status, run = _call(
        service, "POST", route + "/submit_tool_outputs", {"tool_outputs": [{"tool_call_id": call_id, "output": "7"}]}
    )
    assert (status, run["status"]) == (200, "in_progress")
    assert [_call(service, "GET", route)[1]["status"] for _ in range(3)] == ["in_progress", "completed", "completed"]
    assert _call(service, "POST", route + "/cancel")[0] == 400  # terminal runs cannot be cancelled
    steps = service.get_steps(run["id"])
    assert steps[0]["step_details"]["tool_calls"][0]["function"]["output"] == "7"
    run = service.get_run(run["id"])
    assert run["created_at"] <= run["started_at"] <= run["completed_at"]
    assert run["usage"]["total_tokens"] == sum(s["usage"]["total_tokens"] for s in steps)


def test_service_per_run_metadata_overrides_agent_and_default() -> None:
    service = AgentsService(default_scenario="message")
    _, agent = _call(service, "POST", "/assistants", {"model": "m", "name": "code_interpreter"})
    _, thread = _call(service, "POST", "/threads", {})
    body = {"assistant_id": agent["id"], "metadata": {"scenario": "failed", "polls_per_state": "3"}}
    _, run = _call(service, "POST", f"/threads/{thread['id']}/runs", body)
    statuses = [_call(service, "GET", f"/threads/{thread['id']}/runs/{run['id']}")[1]["status"] for _ in range(6)]
    assert statuses == ["queued", "queued", "in_progress", "in_progress", "in_progress", "failed"]
    _, run = _call(service, "POST", f"/threads/{thread['id']}/runs", {"assistant_id": agent["id"], "stream": True})
    assert "thread.run.step.created" in run and '"code_interpreter"' in run  # chosen by the agent's name
    body = {"assistant_id": agent["id"], "metadata": {"scenario": "nope"}}
    assert _call(service, "POST", f"/threads/{thread['id']}/runs", body)[0] == 400


def test_service_fault_hooks() -> None:
    service = AgentsService(default_scenario="message")
    _, agent = _call(service, "POST", "/assistants", {"model": "m"})
    _, thread = _call(service, "POST", "/threads", {})
    _, run = _call(service, "POST", f"/threads/{thread['id']}/runs", {"assistant_id": agent["id"]})
    route = f"/threads/{thread['id']}/runs/{run['id']}"
    service.fail_next("get_run", 503, count=2)
    assert [_call(service, "GET", route)[0] for _ in range(3)] == [503, 503, 200]
    service.fail_next("step_list", 500, body="<html>oops</html>")
    response = service.handle("GET", "/api/projects/p" + route + "/steps", {}, None)
    assert (response.status, response.body) == (500, b"<html>oops</html>")

    def hook(method: str, kind: str, payload: Any) -> Any:
        if kind == "run":
            payload["status"] = "mystery"
            return payload
        if kind == "stream:thread.run.completed":
            return "{not json"
        return None

    service.response_hook = hook
    assert _call(service, "GET", route)[1]["status"] == "mystery"
    assert service.get_run(run["id"])["status"] != "mystery"  # the hook only changes what is sent
    _, frames = _call(service, "POST", f"/threads/{thread['id']}/runs", {"assistant_id": agent["id"], "stream": True})
    assert "event: thread.run.completed\ndata: {not json\n\n" in frames
    assert frames.endswith("event: done\ndata: [DONE]\n\n")


# --------------------------------------------------------------------- azure-ai-agents 1.x (HTTP)


def _drive(client: Any, thread_id: str, run: Any, scenario: str) -> Any:
    """Poll a run to its end like an application would: submit outputs, cancel the 'cancel' one."""
    polls = 0
    while _status(run.status) not in TERMINAL and polls < 50:
        polls += 1
        if _status(run.status) == "requires_action":
            outputs = [
                am.ToolOutput(tool_call_id=c.id, output=get_weather(**json.loads(c.function.arguments)))
                for c in run.required_action.submit_tool_outputs.tool_calls
            ]
            run = client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=outputs)
        elif scenario == "cancel" and polls > 3:
            run = client.runs.cancel(thread_id=thread_id, run_id=run.id)
        else:
            run = client.runs.get(thread_id=thread_id, run_id=run.id)
    return run


def _check_steps(steps: list[Any], run: Any, scenario: str) -> None:
    final, shape = EXPECTED[scenario]
    assert _status(run.status) == final
    assert [(_status(s.type), _status(s.status)) for s in steps] == shape
    assert all(s.run_id == run.id and s.thread_id == run.thread_id and s.agent_id == run.agent_id for s in steps)
    if final in ("completed", "incomplete"):
        assert run.usage.total_tokens == sum(s.usage.total_tokens for s in steps) > 0
    else:
        assert run.usage is None
    if final == "failed":
        assert run.failed_at is not None
        if scenario == "failed":
            assert run.last_error.code == "server_error" and steps[-1].last_error.code == "server_error"
        else:
            assert run.last_error is None
    if final == "expired":
        assert run.expires_at is not None and run.last_error is None
    if final == "incomplete":
        assert run.incomplete_details.reason == "max_completion_tokens"
    if final == "cancelled":
        assert run.cancelled_at is not None


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_agents_sdk_polling_every_scenario(client: Any, emulator: AgentsEmulator, scenario: str) -> None:
    agent = client.create_agent(model="gpt-4o", name=scenario, instructions="Be brief.")
    assert client.get_agent(agent.id).name == scenario
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="Hi")
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id, temperature=0.5, max_completion_tokens=100)
    assert _status(run.status) == "queued" and run.agent_id == agent.id and run.model == "gpt-4o"
    assert run.temperature == 0.5 and run.max_completion_tokens == 100 and run.instructions == "Be brief."
    run = _drive(client, thread.id, run, scenario)
    steps = list(client.run_steps.list(thread_id=thread.id, run_id=run.id))[::-1]
    _check_steps(steps, run, scenario)
    for step in steps:
        assert client.run_steps.get(thread_id=thread.id, run_id=run.id, step_id=step.id).id == step.id
    assert run.created_at <= run.started_at
    if scenario == "all_tools":
        calls = steps[0].step_details.tool_calls
        assert {c.type for c in calls} >= {"code_interpreter", "file_search", "bing_grounding", "mcp", "openapi"}
        assert isinstance(calls[0], am.RunStepCodeInterpreterToolCall)
        assert calls[0].code_interpreter.outputs[0].logs == "4\n"
        assert isinstance(calls[1], am.RunStepFileSearchToolCall) and calls[1].file_search.results[0].score > 0
        assert isinstance(calls[2], am.RunStepBingGroundingToolCall) and "requesturl" in calls[2].bing_grounding
        assert calls[-1]["function"]["output"]  # only reachable by dict access
    if scenario == "unknown_tool":
        assert steps[0].step_details.tool_calls[0].type == "quantum_entangler"
    if scenario == "function_call":
        call = steps[0].step_details.tool_calls[0]
        assert call.function.name == "get_weather" and json.loads(call["function"]["output"])["city"] == "Seattle"
        text = list(client.messages.list(thread_id=thread.id))[0].text_messages[0].text.value
        assert "sunny" in text
    step_lists = [r for r in emulator.requests if r[0] == "GET" and r[1].endswith("/steps")]
    assert len(step_lists) == 2  # the SDK asks for ?after=<last_id> until last_id is null


@pytest.mark.parametrize("scenario", FINISHING)
def test_agents_sdk_create_and_process(emulator: AgentsEmulator, scenario: str) -> None:
    with agents_client(emulator) as client:
        tools = am.FunctionTool({get_weather})
        client.enable_auto_function_calls(tools)
        agent = client.create_agent(model="gpt-4o", name=scenario, tools=tools.definitions)
        thread = client.threads.create()
        run = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)
        steps = list(client.run_steps.list(thread_id=thread.id, run_id=run.id, order="asc"))
        _check_steps(steps, run, scenario)
        if scenario in ("function_call", "multi_function"):
            outputs = [c["function"]["output"] for s in steps[:-1] for c in s.step_details.tool_calls]
            assert all(json.loads(o)["weather"] == "sunny" for o in outputs)


def test_agents_sdk_create_thread_and_run(client: Any) -> None:
    agent = client.create_agent(model="gpt-4o", name="message")
    run = client.create_thread_and_run(
        agent_id=agent.id,
        thread=am.AgentThreadCreationOptions(messages=[am.ThreadMessageOptions(role="user", content="Hi")]),
    )
    run = _drive(client, run.thread_id, run, "message")
    assert _status(run.status) == "completed"
    messages = list(client.messages.list(thread_id=run.thread_id))
    assert [_status(m.role) for m in messages] == ["assistant", "user"]
    run = client.create_thread_and_process_run(agent_id=agent.id, polling_interval=0)
    assert _status(run.status) == "completed"


def test_agents_sdk_agent_metadata_and_concurrent_clients(emulator: AgentsEmulator) -> None:
    def one_run(index: int) -> str:
        with agents_client(emulator) as client:
            metadata = {"scenario": "code_interpreter", "polls_per_state": "2"}
            agent = client.create_agent(model="gpt-4o", name=f"agent-{index}", metadata=metadata)
            thread = client.threads.create()
            run = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)
            gets = [p for m, p in emulator.requests if m == "GET" and p.endswith("/runs/" + run.id)]
            assert len(gets) == 4  # queued: create + 1 GET, in_progress: 2 GETs, then completed
            return _status(run.status)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(one_run, range(16))) == ["completed"] * 16


def test_agents_sdk_not_found_and_injected_faults(emulator: AgentsEmulator) -> None:
    with agents_client(emulator, retry_total=0) as client:
        thread = client.threads.create()
        with pytest.raises(ResourceNotFoundError):
            client.runs.get(thread_id=thread.id, run_id="run_missing")
        emulator.service.fail_next("create_thread", 500)
        with pytest.raises(HttpResponseError) as err:
            client.threads.create()
        assert err.value.status_code == 500
        assert client.threads.create().id.startswith("thread_")


class _Recorder(am.AgentEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def _process_event(self, event_data_str: str) -> Any:
        result = super()._process_event(event_data_str)
        self.events.append(result[0])
        return result


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_agents_sdk_stream_every_scenario(emulator: AgentsEmulator, scenario: str) -> None:
    with agents_client(emulator) as client:
        client.enable_auto_function_calls({get_weather})
        agent = client.create_agent(model="gpt-4o", name=scenario)
        thread = client.threads.create()
        handler = _Recorder()
        with client.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=handler) as stream:
            stream.until_done()
        events = handler.events
        assert events[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
        assert events[-1] == "done"
        final, _ = EXPECTED[scenario]
        if scenario == "cancel":
            assert events[-2] == "thread.run.step.delta"  # the stream stops while the run works on
            assert not [e for e in events if e.startswith("thread.run.") and e.endswith(("completed", "cancelled"))]
            run_id = client.runs.list(thread_id=thread.id).next().id
            client.runs.cancel(thread_id=thread.id, run_id=run_id)
        else:
            assert f"thread.run.{final}" in events
        if scenario == "function_call":
            assert events.count("done") == 2 and "thread.run.requires_action" in events
        if scenario == "message":
            assert "thread.message.delta" in events and "thread.message.completed" in events
        run = list(client.runs.list(thread_id=thread.id))[0]
        run = client.runs.get(thread_id=thread.id, run_id=run.id)
        steps = list(client.run_steps.list(thread_id=thread.id, run_id=run.id))[::-1]
        _check_steps(steps, run, scenario)


def test_agents_sdk_stream_manual_submit(client: Any) -> None:
    agent = client.create_agent(model="gpt-4o", name="function_call")
    thread = client.threads.create()
    handler = _Recorder()
    with client.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=handler) as stream:
        stream.until_done()
    assert handler.events[-2:] == ["thread.run.requires_action", "done"]
    run = client.runs.get(thread_id=thread.id, run_id=list(client.runs.list(thread_id=thread.id))[0].id)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    handler2 = _Recorder()
    client.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[am.ToolOutput(tool_call_id=call.id, output="cloudy")],
        event_handler=handler2,
    )
    handler2.until_done()
    assert handler2.events[0] == "thread.run.step.completed"
    assert handler2.events[-2:] == ["thread.run.completed", "done"]


def test_agents_sdk_async(emulator: AgentsEmulator) -> None:
    class Handler(am.AsyncAgentEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.events: list[str] = []

        async def _process_event(self, event_data_str: str) -> Any:
            result = await super()._process_event(event_data_str)
            self.events.append(result[0])
            return result

    async def main() -> None:
        async with async_agents_client(emulator) as client:
            client.enable_auto_function_calls({get_weather})
            agent = await client.create_agent(model="gpt-4o", name="multi_function")
            thread = await client.threads.create()
            run = await client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)
            steps = [s async for s in client.run_steps.list(thread_id=thread.id, run_id=run.id)][::-1]
            _check_steps(steps, run, "multi_function")
            handler = Handler()
            async with await client.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=handler) as s:
                await s.until_done()
            assert handler.events.count("thread.run.requires_action") == 2 and handler.events[-1] == "done"
            assert "thread.run.completed" in handler.events
            run = await client.runs.create(thread_id=thread.id, agent_id=agent.id, metadata={"scenario": "cancel"})
            run = await client.runs.get(thread_id=thread.id, run_id=run.id)
            run = await client.runs.cancel(thread_id=thread.id, run_id=run.id)
            assert _status(run.status) == "cancelling"
            run = await client.runs.get(thread_id=thread.id, run_id=run.id)
            assert _status(run.status) == "cancelled"

    asyncio.run(main())


# ------------------------------------------------------------- legacy azure-ai-projects 1.0.0b10


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_legacy_sdk_every_scenario(legacy: Any, emulator: AgentsEmulator, scenario: str) -> None:
    agents = legacy.agents
    agent = agents.create_agent(model="gpt-4o", name=scenario)
    assert agents.get_agent(agent.id).name == scenario
    thread = agents.create_thread()
    agents.create_message(thread_id=thread.id, role="user", content="Hi")
    run = agents.create_run(thread_id=thread.id, agent_id=agent.id)
    polls = 0
    while _status(run.status) not in TERMINAL and polls < 50:
        polls += 1
        if _status(run.status) == "requires_action":
            calls = run.required_action.submit_tool_outputs.tool_calls
            outputs = [pm.ToolOutput(tool_call_id=c.id, output="42") for c in calls]
            run = agents.submit_tool_outputs_to_run(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)
        elif scenario == "cancel" and polls > 3:
            run = agents.cancel_run(thread_id=thread.id, run_id=run.id)
        else:
            run = agents.get_run(thread_id=thread.id, run_id=run.id)
    steps = agents.list_run_steps(thread_id=thread.id, run_id=run.id).data[::-1]
    _check_steps(steps, run, scenario)
    for step in steps:
        assert agents.get_run_step(thread_id=thread.id, run_id=run.id, step_id=step.id).id == step.id
    assert all(path.startswith("/agents/v1.0/subscriptions/") for _, path in emulator.requests)
    if scenario == "function_call":
        assert steps[0].step_details.tool_calls[0].function.output == "42"  # a model field in the legacy SDK
    if scenario == "all_tools":
        types = {type(c).__name__ for c in steps[0].step_details.tool_calls}
        assert {"RunStepSharepointToolCall", "RunStepMicrosoftFabricToolCall", "RunStepCustomSearchToolCall"} <= types


def test_legacy_sdk_stream_and_process(legacy: Any) -> None:
    agents = legacy.agents
    agent = agents.create_agent(model="gpt-4o", name="function_call")
    thread = agents.create_thread()
    agents.enable_auto_function_calls(functions={get_weather})
    run = agents.create_and_process_run(thread_id=thread.id, agent_id=agent.id, sleep_interval=0)
    assert _status(run.status) == "completed"
    events: list[str] = []

    class Handler(pm.AgentEventHandler):
        def on_thread_run(self, run: Any) -> None:
            events.append(_status(run.status))

    with agents.create_stream(thread_id=thread.id, agent_id=agent.id, event_handler=Handler()) as stream:
        stream.until_done()
    assert events[-1] == "completed" and "requires_action" in events


def test_legacy_sdk_async(emulator: AgentsEmulator) -> None:
    async def main() -> None:
        async with async_project_client(emulator) as client:
            agent = await client.agents.create_agent(model="gpt-4o", name="function_call")
            thread = await client.agents.create_thread()
            run = await client.agents.create_run(thread_id=thread.id, agent_id=agent.id)
            while _status(run.status) in ("queued", "in_progress"):
                run = await client.agents.get_run(thread_id=thread.id, run_id=run.id)
            call = run.required_action.submit_tool_outputs.tool_calls[0]
            run = await client.agents.submit_tool_outputs_to_run(
                thread_id=thread.id, run_id=run.id, tool_outputs=[pm.ToolOutput(tool_call_id=call.id, output="1")]
            )
            while _status(run.status) not in TERMINAL:
                run = await client.agents.get_run(thread_id=thread.id, run_id=run.id)
            steps = (await client.agents.list_run_steps(thread_id=thread.id, run_id=run.id)).data[::-1]
            _check_steps(steps, run, "function_call")

    asyncio.run(main())


# ------------------------------------------------------------------------ in-process transports


def test_in_process_transport_sync() -> None:
    service = AgentsService(default_scenario="function_call")
    with agents_client(service, in_process=True) as client:
        client.enable_auto_function_calls({get_weather})
        agent = client.create_agent(model="gpt-4o")
        thread = client.threads.create()
        run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
        assert _status(client.runs.get(thread_id=thread.id, run_id=run.id).status) == "in_progress"
        run = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)
        _check_steps(list(client.run_steps.list(thread_id=thread.id, run_id=run.id))[::-1], run, "function_call")
        handler = _Recorder()
        with client.runs.stream(thread_id=thread.id, agent_id=agent.id, event_handler=handler) as stream:
            stream.until_done()
        assert handler.events[-2:] == ["thread.run.completed", "done"]
        with pytest.raises(ResourceNotFoundError):
            client.runs.get(thread_id=thread.id, run_id="run_missing")
    assert service.requests and service.operations.count("create_run") == 3


def test_in_process_transport_legacy_and_async() -> None:
    from azure.ai.projects import AIProjectClient

    from azure_ai_agents_emulator import InProcessTransport
    from azure_ai_agents_emulator.clients import FakeCredential, auth_policy

    service = AgentsService(default_scenario="code_interpreter")
    conn = "emulated.example;sub;rg;proj"  # from_connection_string forces https: fine in process
    with AIProjectClient.from_connection_string(
        conn, FakeCredential(), transport=InProcessTransport(service), authentication_policy=auth_policy()
    ) as legacy:
        agent = legacy.agents.create_agent(model="gpt-4o")
        thread = legacy.agents.create_thread()
        run = legacy.agents.create_and_process_run(thread_id=thread.id, agent_id=agent.id, sleep_interval=0)
        assert _status(run.status) == "completed"

    async def main() -> None:
        async with async_agents_client(service, in_process=True) as client:
            agent = await client.create_agent(model="gpt-4o", name="message")
            run = await client.create_thread_and_process_run(agent_id=agent.id, polling_interval=0)
            assert _status(run.status) == "completed"
            handler = am.AsyncAgentEventHandler()
            async with await client.runs.stream(thread_id=run.thread_id, agent_id=agent.id, event_handler=handler) as s:
                await s.until_done()
            assert len([s async for s in client.run_steps.list(thread_id=run.thread_id, run_id=run.id)]) == 1
        async with async_project_client(service, in_process=True) as legacy_async:
            thread = await legacy_async.agents.create_thread()
            run = await legacy_async.agents.create_run(thread_id=thread.id, agent_id=agent.id)
            assert _status(run.status) == "queued"

    asyncio.run(main())


# --------------------------------------------------------------------------------------- misc


def test_emulator_addresses_and_reset(emulator: AgentsEmulator, client: Any) -> None:
    assert emulator.endpoint == f"http://127.0.0.1:{emulator.port}/api/projects/emulated"
    assert emulator.legacy_kwargs["endpoint"] == f"http://127.0.0.1:{emulator.port}"
    assert emulator.legacy_connection_string.startswith(f"127.0.0.1:{emulator.port};")
    client.threads.create()
    assert emulator.requests == [("POST", "/api/projects/emulated/threads")]
    emulator.reset()
    assert emulator.requests == []


def test_module_main_serves_https_and_prints_the_environment(tmp_path: Any) -> None:
    """``python -m azure_ai_agents_emulator`` prints the app's environment, then serves it over HTTPS."""
    import json as _json
    import ssl
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "azure_ai_agents_emulator", "--port", "0", "--json", "--cert-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        env = _json.loads(proc.stdout.readline())
        assert env["PROJECT_ENDPOINT"].startswith("https://127.0.0.1:") and env["PROJECT_ENDPOINT"].endswith(
            "/api/projects/emulated"
        )
        assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == str(tmp_path / "ca-bundle.pem")
        context = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
        token_url = env["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://ai.azure.com"
        request = urllib.request.Request(token_url, headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]})
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            assert _json.loads(answer.read())["token_type"] == "Bearer"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_env_file_is_read_by_a_posix_shell_with_the_printed_values(tmp_path: Any) -> None:
    """``--env-file`` quotes what needs quoting: the legacy connection string's ``;`` used to end the line's command
    when the file was sourced (``set -a; . ./.env.emulator; set +a``, as the README shows)."""
    import json as _json
    import shutil

    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    env_file = tmp_path / ".env.emulator"
    proc = subprocess.Popen(
        [sys.executable, "-m", "azure_ai_agents_emulator", "--port", "0", "--json", "--cert-dir", str(tmp_path),
         "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = _json.loads(proc.stdout.readline())  # printed after the file is written
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert ";" in printed["PROJECT_CONNECTION_STRING"]
    clean = {k: v for k, v in os.environ.items() if k not in printed}
    read_back = subprocess.run(
        [bash, "-c", 'set -a; . "$0"; set +a; exec "$1" -c "$2" "${@:3}"', str(env_file), sys.executable,
         "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))", *printed],
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert read_back.returncode == 0, read_back.stderr
    assert read_back.stderr == ""  # no "command not found" from a split line
    assert _json.loads(read_back.stdout) == printed
