"""The emulator serves the new Foundry agents the way azure-ai-projects 2.x's own samples call them.

No instrumentation here: the real ``AIProjectClient`` (sync and aio) and the ``openai`` clients it returns, over
HTTP, against the session's emulator. Agent endpoints (``get_openai_client(agent_name=...)``), conversation items
answered by ``responses.create(conversation=...)`` without input, function round trips, workflow agents, and the
output items an agent's tools produce.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
from typing import Any, Iterator

import pytest

from .helpers import require_new_foundry_sdk

require_new_foundry_sdk()

models = importlib.import_module("azure.ai.projects.models")

HOROSCOPE = models.FunctionTool(
    name="get_horoscope",
    description="Today's horoscope for an astrological sign.",
    parameters={
        "type": "object",
        "properties": {"sign": {"type": "string", "enum": ["Aquarius", "Taurus"]}},
        "required": ["sign"],
        "additionalProperties": False,
    },
    strict=True,
)


def _endpoint_config(version: str) -> Any:
    """What the SDK's samples send with ``update_details``: all traffic to ``version``."""
    return models.AgentEndpointConfig(
        version_selector=models.VersionSelector(
            version_selection_rules=[
                models.FixedRatioVersionSelectionRule(agent_version=version, traffic_percentage=100)
            ]
        ),
        protocol_configuration=models.ProtocolConfiguration(responses=models.ResponsesProtocolConfiguration()),
    )


@pytest.fixture(scope="module")
def foundry(emulator: Any) -> Iterator[Any]:
    from azure_ai_agents_emulator import foundry_project_client

    client = foundry_project_client(emulator)
    yield client
    client.close()


def _agent(project: Any, name: str, *tools: Any, instructions: str = "Answer briefly.", **definition: Any) -> str:
    """A new version of agent ``name``, which its endpoint then serves; returns the version."""
    created = project.agents.create_version(
        agent_name=name,
        definition=models.PromptAgentDefinition(
            model="gpt-4o", instructions=instructions, tools=list(tools), **definition
        ),
    )
    project.agents.update_details(agent_name=name, agent_endpoint=_endpoint_config(created.version))
    return str(created.version)


def test_endpoint_client_answers_as_the_version_its_endpoint_selects(foundry: Any, emulator: Any) -> None:
    first = _agent(foundry, "emu-endpoint", instructions="You are version one.")
    second = foundry.agents.create_version(
        agent_name="emu-endpoint",
        definition=models.PromptAgentDefinition(model="gpt-4o-mini", instructions="You are version two."),
    ).version
    with foundry.get_openai_client(agent_name="emu-endpoint") as client:
        assert str(client.base_url).endswith("/api/projects/emulated/agents/emu-endpoint/endpoint/protocols/openai/")
        pinned = client.responses.create(input="Who are you?")  # no agent named in the body
        foundry.agents.update_details(agent_name="emu-endpoint", agent_endpoint=_endpoint_config(second))
        moved = client.responses.create(input="And now?")

    for response, version, instructions, model in (
        (pinned, first, "You are version one.", "gpt-4o"),
        (moved, second, "You are version two.", "gpt-4o-mini"),
    ):
        assert response.model_extra["agent_reference"] == {
            "type": "agent_reference",
            "name": "emu-endpoint",
            "version": version,
        }
        assert (response.instructions, response.model, response.status) == (instructions, model, "completed")
        assert response.usage.input_tokens == 120 and response.usage.output_tokens == 30
    assert emulator.requests[-1] == (
        "POST",
        "/api/projects/emulated/agents/emu-endpoint/endpoint/protocols/openai/responses",
    )
    assert (
        foundry.agents.get(agent_name="emu-endpoint")
        .agent_endpoint.version_selector.version_selection_rules[0]
        .agent_version
        == second
    )


def test_conversation_items_then_a_response_without_input_answers_the_items(foundry: Any, emulator: Any) -> None:
    _agent(foundry, "emu-items")
    with foundry.get_openai_client(agent_name="emu-items") as client:
        conversation = client.conversations.create(
            items=[{"type": "message", "role": "user", "content": "What is the size of France?"}]
        )
        first = client.responses.create(conversation=conversation.id)
        client.conversations.items.create(
            conversation_id=conversation.id,
            items=[{"type": "message", "role": "user", "content": "And its capital?"}],
        )
        second = client.responses.create(conversation=conversation.id)
        items = list(client.conversations.items.list(conversation_id=conversation.id, order="asc"))

    assert first.output_text.endswith('You asked: "What is the size of France?"')
    assert second.output_text.endswith('You asked: "And its capital?"')
    assert first.conversation.id == conversation.id
    # The conversation holds the posted items and the answers, in order.
    assert [(item.type, item.role) for item in items] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert items[0].content[0].type == "input_text" and items[0].content[0].text == "What is the size of France?"
    assert items[3].id == second.output[0].id


def test_function_round_trip_through_an_endpoint_client(foundry: Any) -> None:
    _agent(foundry, "emu-functions", HOROSCOPE)
    with foundry.get_openai_client(agent_name="emu-functions") as client:
        asking = client.responses.create(input="What is my horoscope? I am an Aquarius.")
        (call,) = asking.output
        arguments = json.loads(call.arguments)
        answer = [{"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"h": "otters"})}]
        answered = client.responses.create(input=answer, previous_response_id=asking.id)
        inputs = list(client.responses.input_items.list(answered.id))

    assert call.type == "function_call" and call.name == "get_horoscope"
    assert arguments == {"sign": "Aquarius"}  # valid for the declared schema
    assert asking.output_text == "" and asking.status == "completed"
    assert answered.output_text == 'Done: {"h": "otters"}' and answered.previous_response_id == asking.id
    assert [(item.type, item.call_id) for item in inputs] == [("function_call_output", call.call_id)]


def test_async_and_streamed_endpoint_clients(foundry: Any, emulator: Any) -> None:
    from azure_ai_agents_emulator import async_foundry_project_client

    _agent(foundry, "emu-async")

    async def main() -> tuple[Any, list[Any], Any]:
        async with async_foundry_project_client(emulator) as project:
            async with project.get_openai_client(agent_name="emu-async") as client:
                conversation = await client.conversations.create(
                    items=[{"type": "message", "role": "user", "content": "Tell me about Paris"}]
                )
                answered = await client.responses.create(conversation=conversation.id)
                events = [event async for event in await client.responses.create(input="Stream it", stream=True)]
                background = await client.responses.create(input="Later", background=True)
                while background.status in ("queued", "in_progress"):
                    background = await client.responses.retrieve(background.id)
                return answered, events, background

    answered, events, background = asyncio.run(main())

    assert answered.output_text.endswith('You asked: "Tell me about Paris"')
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    streamed = events[-1].response
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == streamed.output_text
    assert streamed.model_extra["agent_reference"]["name"] == "emu-async" and streamed.usage.total_tokens == 150
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert background.status == "completed" and background.output_text == "Hello from the emulated agent."


def test_tools_produce_their_output_items(foundry: Any) -> None:
    with foundry.get_openai_client() as client:
        upload = client.files.create(purpose="assistants", file=("notes.md", io.BytesIO(b"# Contoso\n")))
        store = client.vector_stores.create(name="notes", file_ids=[upload.id])
        tools = [
            models.CodeInterpreterTool(container=models.AutoCodeInterpreterToolParam(file_ids=[upload.id])),
            models.FileSearchTool(vector_store_ids=[store.id]),
            models.WebSearchTool(),
            models.ImageGenTool(model="gpt-image-1"),
            models.BingGroundingTool(
                bing_grounding=models.BingGroundingSearchToolParameters(
                    search_configurations=[models.BingGroundingSearchConfiguration(project_connection_id="bing")]
                )
            ),
            models.MCPTool(server_label="docs", server_url="https://example.com/mcp", require_approval="never"),
        ]
        foundry.agents.create_version(
            agent_name="emu-tools", definition=models.PromptAgentDefinition(model="gpt-4o", tools=tools)
        )
        response = client.responses.create(
            input="Use everything", extra_body={"agent_reference": {"name": "emu-tools", "type": "agent_reference"}}
        )
        message = response.output[-1]
        (chart,) = [a for a in message.content[0].annotations if a.type == "container_file_citation"]
        chart_bytes = client.containers.files.content.retrieve(file_id=chart.file_id, container_id=chart.container_id)

    assert [item.type for item in response.output] == [
        "code_interpreter_call",
        "file_search_call",
        "web_search_call",
        "image_generation_call",
        "bing_grounding_call",
        "bing_grounding_call_output",
        "mcp_list_tools",
        "mcp_call",
        "message",
    ]
    by_type = {item.type: item for item in response.output}
    assert by_type["file_search_call"].results[0].filename == "notes.md"
    assert (
        by_type["bing_grounding_call_output"].model_extra["call_id"]
        == by_type["bing_grounding_call"].model_extra["call_id"]
    )
    assert by_type["mcp_call"].server_label == "docs" and by_type["mcp_call"].output
    assert by_type["image_generation_call"].result  # a base64 PNG
    citations = {a.type for a in message.content[0].annotations}
    assert citations == {"container_file_citation", "file_citation", "url_citation"}
    assert chart_bytes.read().startswith(b"\x89PNG")


def test_mcp_approval_and_computer_use_wait_for_the_app(foundry: Any) -> None:
    _agent(
        foundry,
        "emu-mcp",
        models.MCPTool(server_label="specs", server_url="https://example.com/mcp", require_approval="always"),
    )
    _agent(
        foundry,
        "emu-computer",
        models.ComputerUsePreviewTool(display_width=1024, display_height=768, environment="browser"),
    )
    with foundry.get_openai_client(agent_name="emu-mcp") as client:
        asking = client.responses.create(input="Summarize the specs")
        request = asking.output[-1]
        approval = [{"type": "mcp_approval_response", "approve": True, "approval_request_id": request.id}]
        approved = client.responses.create(input=approval, previous_response_id=asking.id)
    with foundry.get_openai_client(agent_name="emu-computer") as client:
        steps = [client.responses.create(input="Search for OpenAI news")]
        while steps[-1].output[0].type == "computer_call" and len(steps) < 5:
            call = steps[-1].output[0]
            screenshot = {"type": "computer_screenshot", "image_url": "data:image/png;base64,AA=="}
            steps.append(
                client.responses.create(
                    previous_response_id=steps[-1].id,
                    input=[{"type": "computer_call_output", "call_id": call.call_id, "output": screenshot}],
                )
            )

    assert [item.type for item in asking.output] == ["mcp_list_tools", "mcp_approval_request"]
    assert [item.type for item in approved.output] == ["mcp_call", "message"]
    assert approved.output[0].approval_request_id == request.id and approved.output[0].name == request.name
    actions = [step.output[0].action.type for step in steps[:-1]]
    assert actions == ["type", "keypress"] and steps[-1].output[0].type == "message"


def test_structured_output_follows_the_agent_json_schema(foundry: Any) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "participants": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "date", "participants"],
        "additionalProperties": False,
    }
    text = models.PromptAgentDefinitionTextOptions(
        format=models.TextResponseFormatJsonSchema(name="Event", schema=schema)
    )
    _agent(foundry, "emu-structured", text=text)
    with foundry.get_openai_client(agent_name="emu-structured") as client:
        response = client.responses.create(input="Alice and Bob meet on Friday.")

    answer = json.loads(response.output_text)
    assert set(answer) == {"name", "date", "participants"} and answer["date"] == "2025-01-01"
    assert response.text.format.type == "json_schema"


WORKFLOW = """
kind: workflow
trigger:
  kind: OnConversationStart
  id: my_workflow
  actions:
    - kind: SetVariable
      id: set_input
      variable: Local.LatestMessage
      value: "=UserMessage(System.LastMessageText)"
    - kind: InvokeAzureAgent
      id: student_agent
      agent:
        name: emu-student
    - kind: InvokeAzureAgent
      id: teacher_agent
      agent:
        name: emu-teacher
    - kind: SendActivity
      id: send_reply
      activity: "{Last(Local.LatestMessage).Text}"
"""


def test_workflow_agent_runs_its_actions_and_pauses_for_approvals(foundry: Any) -> None:
    foundry.agents.create_version(agent_name="emu-student", definition=models.PromptAgentDefinition(model="gpt-4o"))
    teacher_mcp = models.MCPTool(server_label="specs", server_url="https://example.com/mcp", require_approval="always")
    foundry.agents.create_version(
        agent_name="emu-teacher", definition=models.PromptAgentDefinition(model="gpt-4o", tools=[teacher_mcp])
    )
    workflow = foundry.agents.create_version(
        agent_name="emu-workflow", definition=models.WorkflowAgentDefinition(workflow=WORKFLOW)
    )
    reference = {"agent_reference": {"name": workflow.name, "type": "agent_reference"}}
    with foundry.get_openai_client() as client:
        conversation = client.conversations.create()
        events = list(
            client.responses.create(conversation=conversation.id, input="1 + 1 = ?", stream=True, extra_body=reference)
        )
        paused = events[-1].response
        request = paused.output[-1]
        approval = [{"type": "mcp_approval_response", "approve": True, "approval_request_id": request.id}]
        resumed = client.responses.create(input=approval, previous_response_id=paused.id, extra_body=reference)

    actions = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "workflow_action"]
    assert [(a.action_id, a.previous_action_id, a.status) for a in actions] == [
        ("set_input", None, "completed"),
        ("student_agent", "set_input", "completed"),
        ("teacher_agent", "student_agent", "completed"),
    ]
    added = [
        e.item.status for e in events if e.type == "response.output_item.added" and e.item.type == "workflow_action"
    ]
    assert added == ["in_progress"] * 3
    student_answer = paused.output[2]
    assert student_answer.type == "message" and student_answer.model_extra["agent_reference"]["name"] == "emu-student"
    assert request.type == "mcp_approval_request" and request.model_extra["agent_reference"]["name"] == "emu-teacher"
    assert paused.model_extra["agent_reference"] == {"type": "agent_reference", "name": "emu-workflow", "version": "1"}
    assert paused.usage.input_tokens == 240  # two agents' model turns
    # Resumed at the teacher, which calls the approved tool and answers; then the remaining actions run.
    assert [item.type for item in resumed.output] == [
        "workflow_action",
        "mcp_call",
        "message",
        "workflow_action",
        "message",
    ]
    assert resumed.output[0].action_id == "teacher_agent" and resumed.output[3].action_id == "send_reply"
    assert resumed.output_text.startswith("Hello from the emulated agent.")


def test_agent_definitions_crud_as_the_samples_use_it(foundry: Any) -> None:
    external = foundry.agents.create_version(
        agent_name="emu-external", definition=models.ExternalAgentDefinition(otel_agent_id="emu-external")
    )
    draft = foundry.agents.create_version(
        agent_name="emu-external", definition=models.ExternalAgentDefinition(otel_agent_id="emu-external"), draft=True
    )
    listed = [a.name for a in foundry.agents.list(kind="external")]
    released = [v.version for v in foundry.agents.list_versions(agent_name="emu-external")]
    everything = [v.version for v in foundry.agents.list_versions(agent_name="emu-external", include_drafts=True)]
    latest = foundry.agents.get(agent_name="emu-external").versions.latest.version
    foundry.agents.disable(agent_name="emu-external")
    state = foundry.agents.get(agent_name="emu-external").state
    deleted = foundry.agents.delete("emu-external", force=True)

    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        foundry.agents.get(agent_name="emu-external")
    assert listed == ["emu-external"] and released == [external.version] and latest == external.version
    assert sorted(everything) == sorted([external.version, draft.version]) and draft.version == "2"
    assert state == "disabled" and deleted.deleted and deleted.name == "emu-external"


def test_agent_reference_echo_can_be_switched_off(foundry: Any, emulator: Any) -> None:
    _agent(foundry, "emu-silent")
    emulator.service.echo_agent_reference = False
    try:
        with foundry.get_openai_client(agent_name="emu-silent") as client:
            response = client.responses.create(input="hi")
    finally:
        emulator.service.echo_agent_reference = True
    assert "agent_reference" not in (response.model_extra or {}) and response.status == "completed"
