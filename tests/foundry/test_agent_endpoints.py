"""New Foundry agents invoked the way azure-ai-projects 2.10's own samples invoke them: through the agent's
endpoint (``project.get_openai_client(agent_name=N)``: the request names no agent), with the question posted as
conversation items and ``responses.create(conversation=...)`` without input; sync, async, streamed, background;
a function round trip; a workflow agent; an agent made before the instrumentation was on.

Each way is one ``invoke_agent {name}`` span with the agent's name and version and a ``chat`` span with the tokens.
Real ``azure-ai-projects`` >= 2 and ``openai`` clients over HTTP against the emulator.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .helpers import attributes, require_new_foundry_sdk

require_new_foundry_sdk()

models = importlib.import_module("azure.ai.projects.models")

INSTRUCTIONS = "You are a helpful assistant that answers general questions (secret-instructions)."
FIRST = "What is the size of France in square miles? (secret-question-1)"
SECOND = "And what is the capital city? (secret-question-2)"
HOROSCOPE = models.FunctionTool(
    name="get_horoscope",
    description="Get today's horoscope for an astrological sign.",
    parameters={
        "type": "object",
        "properties": {"sign": {"type": "string", "description": "An astrological sign like Taurus or Aquarius"}},
        "required": ["sign"],
        "additionalProperties": False,
    },
    strict=True,
)
CONTENT_KEYS = (
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)


def _with_endpoint(project: Any, name: str, *tools: Any, instructions: str = INSTRUCTIONS) -> str:
    """What the samples' ``create_version_with_endpoint`` does: a version, and the endpoint's traffic to it."""
    created = project.agents.create_version(
        agent_name=name,
        definition=models.PromptAgentDefinition(model="gpt-4o", instructions=instructions, tools=list(tools)),
    )
    endpoint = models.AgentEndpointConfig(
        version_selector=models.VersionSelector(
            version_selection_rules=[
                models.FixedRatioVersionSelectionRule(agent_version=created.version, traffic_percentage=100)
            ]
        ),
        protocol_configuration=models.ProtocolConfiguration(responses=models.ResponsesProtocolConfiguration()),
    )
    project.agents.update_details(agent_name=name, agent_endpoint=endpoint)
    return str(created.version)


def _invocations(telemetry: Any, name: str) -> list[Any]:
    return sorted((s for s in telemetry.run_spans() if s.name == f"invoke_agent {name}"), key=lambda s: s.start_time)


def _chat_of(telemetry: Any, span: Any) -> Any:
    (chat,) = [c for c in telemetry.children(span) if c.name.startswith("chat ")]
    return chat


def _assert_invocation(telemetry: Any, span: Any, name: str, version: str, response_id: str) -> None:
    attrs = attributes(span)
    assert span.kind is SpanKind.CLIENT and span.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.operation.name"] == "invoke_agent" and attrs["gen_ai.provider.name"] == "microsoft.foundry"
    assert attrs["gen_ai.agent.name"] == name and attrs["gen_ai.agent.version"] == version
    assert attrs["azure.ai.agents.run.id"] == response_id and attrs["azure.ai.agents.run.status"] == "completed"
    assert attrs["server.address"] == "127.0.0.1" and attrs["gen_ai.request.model"] == "gpt-4o"
    chat = _chat_of(telemetry, span)
    assert attributes(chat)["gen_ai.usage.input_tokens"] == attrs["gen_ai.usage.input_tokens"] > 0
    assert attributes(chat)["gen_ai.response.id"] == response_id


@pytest.mark.parametrize("capture", [True, False], ids=["capture_on", "capture_off"])
def test_conversation_items_then_responses_without_input(instrument: Any, project: Any, capture: bool) -> None:
    """sample_agent_basic.py: the question is posted as conversation items; responses.create has no input."""
    version = _with_endpoint(project, "ep-basic")
    telemetry = instrument(capture_content=capture)
    with project.get_openai_client(agent_name="ep-basic") as openai_client:
        conversation = openai_client.conversations.create(items=[{"type": "message", "role": "user", "content": FIRST}])
        first = openai_client.responses.create(conversation=conversation.id)
        openai_client.conversations.items.create(
            conversation_id=conversation.id, items=[{"type": "message", "role": "user", "content": SECOND}]
        )
        second = openai_client.responses.create(conversation=conversation.id)
        openai_client.conversations.delete(conversation_id=conversation.id)

    spans = _invocations(telemetry, "ep-basic")
    assert len(spans) == 2 and len(telemetry.run_spans()) == 2
    for span, response in zip(spans, (first, second), strict=True):
        _assert_invocation(telemetry, span, "ep-basic", version, response.id)
        assert attributes(span)["gen_ai.conversation.id"] == conversation.id
    recorded = [(k, attributes(s).get(k)) for s in telemetry.spans for k in CONTENT_KEYS if k in attributes(s)]
    if not capture:
        assert recorded == [] and "secret" not in repr([attributes(s) for s in telemetry.all_spans])
        return
    # Each invocation's input is what was posted since the conversation's previous invocation.
    for span, question in zip(spans, (FIRST, SECOND), strict=True):
        expected = [{"role": "user", "parts": [{"type": "text", "content": question}]}]
        assert json.loads(attributes(span)["gen_ai.input.messages"]) == expected
        assert json.loads(attributes(_chat_of(telemetry, span))["gen_ai.input.messages"]) == expected
        assert json.loads(attributes(span)["gen_ai.system_instructions"]) == [{"type": "text", "content": INSTRUCTIONS}]
    output = json.loads(attributes(spans[1])["gen_ai.output.messages"])
    assert output == [
        {"role": "assistant", "parts": [{"type": "text", "content": second.output_text}], "finish_reason": "stop"}
    ]


def test_streamed_and_background_invocations_through_an_endpoint_client(instrument: Any, project: Any) -> None:
    """sample_agent_stream_events.py (``with responses.create(stream=True) as events``), and background polling."""
    version = _with_endpoint(project, "ep-stream")
    telemetry = instrument()
    with project.get_openai_client(agent_name="ep-stream") as openai_client:
        conversation = openai_client.conversations.create(items=[{"type": "message", "role": "user", "content": "Hi"}])
        with openai_client.responses.create(conversation=conversation.id, stream=True) as events:
            streamed = [event.type for event in events]
        background = openai_client.responses.create(input="Slow job", background=True)
        polls = 0
        while background.status in ("queued", "in_progress"):
            background = openai_client.responses.retrieve(background.id)
            polls += 1

    assert streamed[-1] == "response.completed" and polls >= 2
    stream_span, background_span = _invocations(telemetry, "ep-stream")
    assert attributes(stream_span)["gen_ai.response.time_to_first_chunk"] > 0
    assert "azure.ai.agents.run.unfinished" not in attributes(stream_span)
    _assert_invocation(telemetry, background_span, "ep-stream", version, background.id)
    assert len(telemetry.run_spans()) == 2  # polls make no spans


def test_async_endpoint_client_sync_and_streamed(instrument: Any, emulator: Any, project: Any) -> None:
    """sample_agent_basic_async.py: the aio project client's ``get_openai_client(agent_name=...)``."""
    from azure_ai_agents_emulator import async_foundry_project_client

    version = _with_endpoint(project, "ep-async")
    telemetry = instrument(capture_content=True)

    async def main() -> tuple[Any, str]:
        async with async_foundry_project_client(emulator) as aio_project:
            async with aio_project.get_openai_client(agent_name="ep-async") as openai_client:
                conversation = await openai_client.conversations.create(
                    items=[{"type": "message", "role": "user", "content": FIRST}]
                )
                response = await openai_client.responses.create(conversation=conversation.id)
                await openai_client.conversations.items.create(
                    conversation_id=conversation.id, items=[{"type": "message", "role": "user", "content": SECOND}]
                )
                stream = await openai_client.responses.create(conversation=conversation.id, stream=True)
                async for event in stream:
                    last = event
                return response, last.response.id

    response, streamed_id = asyncio.run(main())

    plain, streamed = _invocations(telemetry, "ep-async")
    _assert_invocation(telemetry, plain, "ep-async", version, response.id)
    _assert_invocation(telemetry, streamed, "ep-async", version, streamed_id)
    assert json.loads(attributes(streamed)["gen_ai.input.messages"])[0]["parts"][0]["content"] == SECOND


def test_function_round_trip_through_an_endpoint_client(instrument: Any, project: Any) -> None:
    """sample_agent_function_tool.py: ``input`` then ``function_call_output`` items with ``previous_response_id``."""
    version = _with_endpoint(project, "ep-function", HOROSCOPE, instructions="Use function tools.")
    telemetry = instrument(capture_content=True)
    with project.get_openai_client(agent_name="ep-function") as openai_client:
        asked = openai_client.responses.create(input="What is my horoscope? I am an Aquarius.")
        call = next(item for item in asked.output if item.type == "function_call")
        horoscope = {"horoscope": f"{json.loads(call.arguments)['sign']}: you will befriend a baby otter."}
        answer = [{"type": "function_call_output", "call_id": call.call_id, "output": json.dumps(horoscope)}]
        answered = openai_client.responses.create(input=answer, previous_response_id=asked.id)

    asking, answering = _invocations(telemetry, "ep-function")
    _assert_invocation(telemetry, asking, "ep-function", version, asked.id)
    _assert_invocation(telemetry, answering, "ep-function", version, answered.id)
    assert attributes(asking)["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert attributes(asking)["azure.ai.agents.run.required_tool_calls"] == 1
    assert attributes(answering)["gen_ai.request.previous_response.id"] == asked.id
    assert attributes(answering)["gen_ai.response.finish_reasons"] == ("stop",)
    assert [link.context.span_id for link in answering.links] == [asking.context.span_id]
    (tool_call,) = json.loads(attributes(asking)["gen_ai.output.messages"])[0]["parts"]
    assert tool_call["name"] == "get_horoscope" and tool_call["arguments"] == json.loads(call.arguments)
    (response,) = json.loads(attributes(answering)["gen_ai.input.messages"])[0]["parts"]
    assert response == {"type": "tool_call_response", "id": call.call_id, "response": horoscope}
    definitions = json.loads(attributes(asking)["gen_ai.tool.definitions"])
    assert [(d["type"], d["name"]) for d in definitions] == [("function", "get_horoscope")]


WORKFLOW = """
kind: workflow
trigger:
  kind: OnConversationStart
  id: my_workflow
  actions:
    - kind: SetVariable
      id: set_variable_input_task
      variable: Local.LatestMessage
      value: "=UserMessage(System.LastMessageText)"
    - kind: InvokeAzureAgent
      id: student_agent
      agent:
        name: ep-student
      input:
        messages: "=Local.LatestMessage"
      output:
        messages: Local.LatestMessage
    - kind: InvokeAzureAgent
      id: teacher_agent
      agent:
        name: ep-teacher
      input:
        messages: "=Local.LatestMessage"
      output:
        messages: Local.LatestMessage
"""


def test_a_workflow_agent_is_one_invocation(instrument: Any, project: Any) -> None:
    """sample_workflow_multi_agent.py: an agent reference to a workflow, streamed; its actions are not tools."""
    for name in ("ep-student", "ep-teacher"):
        project.agents.create_version(agent_name=name, definition=models.PromptAgentDefinition(model="gpt-4o"))
    workflow = project.agents.create_version(
        agent_name="ep-workflow", definition=models.WorkflowAgentDefinition(workflow=WORKFLOW)
    )
    telemetry = instrument(capture_content=True)
    with project.get_openai_client() as openai_client:
        conversation = openai_client.conversations.create()
        stream = openai_client.responses.create(
            conversation=conversation.id,
            extra_body={"agent_reference": {"name": workflow.name, "type": "agent_reference"}},
            input="1 + 1 = ?",
            stream=True,
        )
        for event in stream:
            if event.type == "response.completed":
                final = openai_client.responses.retrieve(event.response.id)

    (span,) = telemetry.run_spans()
    attrs = attributes(span)
    assert span.name == "invoke_agent ep-workflow" and attrs["gen_ai.agent.version"] == workflow.version
    assert attrs["azure.ai.agents.run.id"] == final.id and attrs["azure.ai.agents.run.status"] == "completed"
    assert telemetry.named("execute_tool") == []  # workflow actions are the workflow's steps, not tool calls
    chat = _chat_of(telemetry, span)
    assert attributes(chat)["gen_ai.usage.input_tokens"] == final.usage.input_tokens  # both agents' turns
    output = json.loads(attrs["gen_ai.output.messages"])
    assert [p["content"] for p in output[0]["parts"]] == [
        item.content[0].text for item in final.output if item.type == "message"
    ]


def test_an_agent_made_before_instrumentation_is_read_once_off_the_path(
    instrument: Any, emulator: Any, project: Any
) -> None:
    """An agent made elsewhere (portal, deploy script) whose responses echo neither its version nor its
    definition: both are read once, on the instrumentation's own thread, and cached."""
    import httpx2

    version = _with_endpoint(project, "ep-elsewhere", HOROSCOPE)  # uninstrumented: nothing learned
    threads: list[tuple[str, str]] = []

    def record(request: Any) -> None:
        threads.append((request.method + " " + request.url.path, threading.current_thread().name))

    emulator.service.echo_agent_reference = False
    emulator.service.echo_agent_definition = False
    telemetry = instrument(capture_content=True)
    try:
        http_client = httpx2.Client(event_hooks={"request": [record]})
        with project.get_openai_client(agent_name="ep-elsewhere", http_client=http_client) as openai_client:
            responses = [openai_client.responses.create(input=f"Question {i}") for i in range(2)]
            app_thread = threading.current_thread().name
    finally:
        emulator.service.echo_agent_reference = True
        emulator.service.echo_agent_definition = True

    assert all("agent_reference" not in (r.model_extra or {}) and r.instructions is None for r in responses)
    spans = _invocations(telemetry, "ep-elsewhere")
    for span, response in zip(spans, responses, strict=True):
        _assert_invocation(telemetry, span, "ep-elsewhere", version, response.id)
        assert json.loads(attributes(span)["gen_ai.system_instructions"]) == [{"type": "text", "content": INSTRUCTIONS}]
        assert [d["name"] for d in json.loads(attributes(span)["gen_ai.tool.definitions"])] == ["get_horoscope"]
    reads = [(path, thread) for path, thread in threads if path.startswith("GET ") and "/agents/ep-elsewhere" in path]
    assert [path.rsplit("/", 1)[-1] for path, _ in reads] == ["ep-elsewhere"]  # read once, cached after
    assert all(thread != app_thread for _, thread in reads)  # never on the app's call path


def test_update_and_delete_are_agent_spans(instrument: Any, project: Any) -> None:
    """The samples' cleanup: update_details, delete_version, delete."""
    version = _with_endpoint(project, "ep-cleanup")
    telemetry = instrument()
    project.agents.update_details(agent_name="ep-cleanup", agent_endpoint=None)
    project.agents.delete_version(agent_name="ep-cleanup", agent_version=version, force=True)

    names = [(s.name, attributes(s).get("gen_ai.operation.name"), attributes(s).get("gen_ai.agent.version"))
             for s in sorted(telemetry.all_spans, key=lambda s: s.start_time)]
    assert names == [
        ("update_agent ep-cleanup", "update_agent", None),
        ("delete_agent ep-cleanup", "delete_agent", version),
    ]
    assert all(attributes(s)["gen_ai.agent.name"] == "ep-cleanup" for s in telemetry.all_spans)


def test_a_hosted_agent_is_reached_through_its_endpoint_the_same_way(instrument: Any, project: Any) -> None:
    """sample_create_hosted_agent_from_image.py: a container agent, its endpoint routed, then ``input``."""
    telemetry = instrument()
    created = project.agents.create_version(
        agent_name="ep-hosted",
        definition=models.HostedAgentDefinition(
            cpu="0.5",
            memory="1Gi",
            container_configuration=models.ContainerConfiguration(image="example.azurecr.io/agent:1"),
            protocol_versions=[models.ProtocolVersionRecord(protocol="responses", version="1.0.0")],
        ),
        metadata={"enableVnextExperience": "true"},
    )
    project.agents.update_details(
        agent_name="ep-hosted",
        agent_endpoint=models.AgentEndpointConfig(
            version_selector=models.VersionSelector(
                version_selection_rules=[
                    models.FixedRatioVersionSelectionRule(agent_version=created.version, traffic_percentage=100)
                ]
            ),
            protocol_configuration=models.ProtocolConfiguration(responses=models.ResponsesProtocolConfiguration()),
        ),
    )
    project.agents.get_version(agent_name="ep-hosted", agent_version=created.version)
    with project.get_openai_client(agent_name="ep-hosted") as openai_client:
        response = openai_client.responses.create(input="Good morning!")

    (span,) = _invocations(telemetry, "ep-hosted")
    _assert_invocation(telemetry, span, "ep-hosted", str(created.version), response.id)
    lifecycle = sorted(s.name for s in telemetry.all_spans if s.name.split()[0] in ("create_agent", "update_agent"))
    assert lifecycle == ["create_agent ep-hosted", "update_agent ep-hosted"]


def test_foundry_tools_report_their_output_in_an_item_of_its_own(instrument: Any, project: Any) -> None:
    """sample_agent_bing_grounding.py: Foundry's own tools answer with a ``T_call`` and a ``T_call_output`` item;
    the tool span holds the call's arguments and, from the output item, its result (capture on)."""
    tool = models.BingGroundingTool(
        bing_grounding=models.BingGroundingSearchToolParameters(
            search_configurations=[
                models.BingGroundingSearchConfiguration(project_connection_id="/subscriptions/0/connections/bing")
            ]
        )
    )
    _with_endpoint(project, "ep-bing", tool, instructions="Search the web.")
    telemetry = instrument(capture_content=True)
    with project.get_openai_client(agent_name="ep-bing") as openai_client:
        response = openai_client.responses.create(input="What is the weather in Seattle today?")

    call = next(item for item in response.output if item.type == "bing_grounding_call")
    output = next(item for item in response.output if item.type == "bing_grounding_call_output")
    (span,) = _invocations(telemetry, "ep-bing")
    (tool_span,) = [c for c in telemetry.children(span) if c.name.startswith("execute_tool")]
    attrs = attributes(tool_span)
    assert tool_span.name == "execute_tool bing_grounding" and attrs["gen_ai.tool.type"] == "datastore"
    assert attrs["gen_ai.tool.call.id"] == call.id
    assert json.loads(attrs["gen_ai.tool.call.arguments"]) == json.loads(call.model_extra["arguments"])
    assert json.loads(attrs["gen_ai.tool.call.result"]) == json.loads(output.model_extra["output"])


def test_closing_the_client_waits_for_a_read_of_its_agent(instrument: Any, emulator: Any, project: Any) -> None:
    """The samples close their endpoint client right after the last invocation (``with ... as openai_client``):
    a read of the agent still going through it (here slowed to 0.3 s) is waited for, not cut off."""
    version = _with_endpoint(project, "ep-closing")
    emulator.service.echo_agent_reference = False
    emulator.service.delays = {"get_foundry_agent": 0.3}
    telemetry = instrument()
    try:
        with project.get_openai_client(agent_name="ep-closing") as openai_client:
            response = openai_client.responses.create(input="Hi")
        finished = list(telemetry.exporter.get_finished_spans())  # no flush: what the close waited for
    finally:
        emulator.service.echo_agent_reference = True
        emulator.service.delays = {}

    (span,) = [s for s in finished if s.name == "invoke_agent ep-closing"]
    assert attributes(span)["azure.ai.agents.run.id"] == response.id
    assert attributes(span)["gen_ai.agent.version"] == version
