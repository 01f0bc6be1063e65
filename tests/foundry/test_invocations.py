"""New Foundry agents, sync: one ``invoke_agent`` span per agent invocation, same shape as classic runs.

Real ``azure-ai-projects`` >= 2 and ``openai`` clients over HTTP against the emulator (requirements-foundry.txt).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .helpers import agent_ref, attributes, require_new_foundry_sdk

require_new_foundry_sdk()

SECRET_INPUT = "Weather in Paris? (secret-user-input)"
SECRET_OUTPUT = json.dumps({"sky": "sunny-secret-output"})


def _round_trip(client: Any) -> tuple[Any, Any, Any]:
    conversation = client.conversations.create()
    first = client.responses.create(
        conversation=conversation.id, input=SECRET_INPUT, extra_body=agent_ref("function_call")
    )
    call = next(item for item in first.output if item.type == "function_call")
    answer = [{"type": "function_call_output", "call_id": call.call_id, "output": SECRET_OUTPUT}]
    second = client.responses.create(conversation=conversation.id, input=answer, extra_body=agent_ref("function_call"))
    return conversation, first, second


def test_function_call_round_trip_is_two_linked_invocations(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    conversation, first, second = _round_trip(openai_client)

    assert second.output_text == f"Done: {SECRET_OUTPUT}"  # the app's results are untouched
    asking, answering = sorted(telemetry.run_spans(), key=lambda s: s.start_time)
    for span, response in ((asking, first), (answering, second)):
        attrs = attributes(span)
        assert span.name == "invoke_agent function_call" and span.kind is SpanKind.CLIENT
        assert span.parent is None and span.status.status_code is StatusCode.UNSET
        assert attrs["gen_ai.provider.name"] == "microsoft.foundry" and attrs["gen_ai.system"] == "az.ai.agents"
        assert attrs["gen_ai.agent.name"] == "function_call" and attrs["gen_ai.agent.version"] == "1"
        assert attrs["gen_ai.conversation.id"] == conversation.id and "gen_ai.thread.id" not in attrs
        assert attrs["azure.ai.agents.run.id"] == response.id and "gen_ai.response.id" not in attrs
        assert attrs["azure.ai.agents.run.status"] == "completed" and "gen_ai.response.model" not in attrs
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (120, 30)
        assert attrs["gen_ai.request.model"] == "gpt-4o" and attrs["gen_ai.request.temperature"] == 1.0
        assert attrs["server.address"] == "127.0.0.1" and isinstance(attrs["server.port"], int)
    assert attributes(asking)["azure.ai.agents.run.required_tool_calls"] == 1
    assert "azure.ai.agents.run.required_tool_calls" not in attributes(answering)
    # The answering invocation links to the asking one, naming the call it answers.
    assert [(link.context.span_id, dict(link.attributes or {})) for link in answering.links] == [
        (asking.context.span_id, {"gen_ai.tool.call.id": first.output[0].call_id})
    ]
    assert not asking.links
    # Content is off by default: nothing the user or the tool said is on any span.
    dumped = repr([attributes(s) for s in telemetry.spans]) + repr([e.attributes for s in telemetry.spans for e in s.events])
    assert "secret" not in dumped
    assert telemetry.named("execute_tool") == []  # the app ran the function: no server-side tool span


def test_content_capture_on_records_messages_tools_and_instructions(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument(capture_content=True)
    _round_trip(openai_client)
    openai_client.responses.create(
        input="Compute (secret-code-request)", instructions="Be exact (secret-instructions)",
        extra_body=agent_ref("code_interpreter"),
    )

    asking, answering, coding = sorted(telemetry.run_spans(), key=lambda s: s.start_time)
    assert json.loads(attributes(asking)["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": SECRET_INPUT}]}
    ]
    output = json.loads(attributes(asking)["gen_ai.output.messages"])
    assert output[0]["finish_reason"] == "tool_call" and output[0]["parts"][0]["name"] == "get_weather"
    answered = json.loads(attributes(answering)["gen_ai.input.messages"])
    # Tool results are recorded as objects where they parse (conventions: SHOULD be objects).
    assert answered[0]["role"] == "tool" and answered[0]["parts"][0]["response"] == json.loads(SECRET_OUTPUT)
    assert "sunny-secret-output" in attributes(answering)["gen_ai.output.messages"]
    assert json.loads(attributes(coding)["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be exact (secret-instructions)"}
    ]
    (tool,) = telemetry.named("execute_tool")
    assert attributes(tool)["gen_ai.tool.call.arguments"] == "print(6 * 7)"
    assert json.loads(attributes(tool)["gen_ai.tool.call.result"]) == [{"logs": "42\n", "type": "logs"}]


def test_code_interpreter_and_every_server_tool_are_tool_spans(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    coding = openai_client.responses.create(input="Compute", extra_body=agent_ref("code_interpreter"))
    openai_client.responses.create(input="Everything", extra_body=agent_ref("all_tools"))

    code_run, all_run = sorted(telemetry.run_spans(), key=lambda s: s.start_time)
    (ci,) = [c for c in telemetry.children(code_run) if c.name.startswith("execute_tool")]
    attrs = attributes(ci)
    assert ci.name == "execute_tool code_interpreter" and ci.kind is SpanKind.INTERNAL
    assert attrs["gen_ai.operation.name"] == "execute_tool" and attrs["gen_ai.tool.type"] == "extension"
    assert attrs["gen_ai.tool.call.id"] == coding.output[0].id and attrs["azure.ai.agents.tool.status"] == "completed"
    assert "gen_ai.tool.call.arguments" not in attrs and "gen_ai.tool.call.result" not in attrs
    assert code_run.start_time <= ci.start_time <= ci.end_time <= code_run.end_time
    tools = {s.name: attributes(s) for s in telemetry.children(all_run) if s.name.startswith("execute_tool")}
    assert set(tools) == {
        "execute_tool code_interpreter", "execute_tool file_search", "execute_tool web_search", "execute_tool lookup_docs"
    }
    assert tools["execute_tool file_search"]["gen_ai.tool.type"] == "datastore"
    assert tools["execute_tool lookup_docs"]["azure.ai.agents.tool.type"] == "mcp"
    assert tools["execute_tool lookup_docs"]["azure.ai.agents.mcp.server_label"] == "docs"


@pytest.mark.parametrize(
    ("agent", "status", "error_type"), [("failed", "failed", "server_error"), ("incomplete", "incomplete", "max_output_tokens")]
)
def test_failed_and_incomplete_responses_are_errors(
    instrument: Any, openai_client: Any, agent: str, status: str, error_type: str
) -> None:
    telemetry = instrument()
    response = openai_client.responses.create(input="Try", extra_body=agent_ref(agent))

    assert response.status == status
    (span,) = telemetry.run_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == error_type and attributes(span)["azure.ai.agents.run.status"] == status


@pytest.mark.parametrize("polls_per_state", [1, 5])
def test_background_polling_is_one_span_whatever_the_number_of_polls(
    instrument: Any, openai_client: Any, polls_per_state: int
) -> None:
    telemetry = instrument()
    response = openai_client.responses.create(
        input="Slow job", background=True, metadata={"polls_per_state": str(polls_per_state)},
        extra_body=agent_ref("code_interpreter"),
    )
    polls = 0
    assert response.status == "queued"
    assert telemetry.run_spans() == []  # not ended at the queued answer
    while response.status in ("queued", "in_progress"):
        response = openai_client.responses.retrieve(response.id)
        polls += 1
    openai_client.responses.retrieve(response.id)  # a poll after the end: not ours any more

    assert polls == 2 * polls_per_state
    (span,) = telemetry.run_spans()
    assert sorted(s.name for s in telemetry.spans) == [
        "chat gpt-4o", "execute_tool code_interpreter", "invoke_agent code_interpreter"
    ]
    attrs = attributes(span)
    assert attrs["azure.ai.agents.run.status"] == "completed" and attrs["gen_ai.usage.output_tokens"] == 30
    assert [dict(e.attributes or {}).get("azure.ai.agents.run.status") for e in span.events] == [
        "queued", "in_progress", "completed"
    ]


def test_failed_background_response_ends_as_an_error_at_the_poll_that_shows_it(
    instrument: Any, openai_client: Any
) -> None:
    telemetry = instrument()
    response = openai_client.responses.create(input="Job", background=True, extra_body=agent_ref("failed"))
    while response.status in ("queued", "in_progress"):
        response = openai_client.responses.retrieve(response.id)

    (span,) = telemetry.run_spans()
    assert span.status.status_code is StatusCode.ERROR and attributes(span)["error.type"] == "server_error"


def test_streaming_iteration_and_the_stream_helper(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    events = list(openai_client.responses.create(input="Go", stream=True, extra_body=agent_ref("code_interpreter")))
    with openai_client.responses.stream(model="gpt-4o", input="Go", extra_body=agent_ref("all_tools", "agent")) as s:
        helper_events = list(s)
        final = s.get_final_response()

    assert events[-1].type == "response.completed" and helper_events[-1].type == "response.completed"
    assert final.output_text == "Hello from the emulated agent."
    streamed, helper = sorted(telemetry.run_spans(), key=lambda s: s.start_time)
    assert helper.name == "invoke_agent all_tools"  # the early "agent" key names the span too
    for span, tools in ((streamed, 1), (helper, 4)):
        attrs = attributes(span)
        assert attrs["azure.ai.agents.run.status"] == "completed" and attrs["gen_ai.response.time_to_first_chunk"] > 0
        assert "azure.ai.agents.run.unfinished" not in attrs
        children = [c for c in telemetry.children(span) if c.name.startswith("execute_tool")]
        assert len(children) == tools
        for child in children:  # timed by their own stream events, inside the invocation
            assert span.start_time < child.start_time <= child.end_time <= span.end_time


def test_a_stream_left_early_ends_its_invocation(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    with openai_client.responses.create(input="Go", stream=True, extra_body=agent_ref("message")) as stream:
        next(iter(stream))

    (span,) = telemetry.run_spans()
    assert attributes(span)["azure.ai.agents.run.unfinished"] == "stream_closed"


def test_plain_model_calls_and_unknown_retrieves_are_untouched(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    plain = openai_client.responses.create(model="gpt-4o", input="no agent")
    openai_client.responses.retrieve(plain.id)

    assert plain.status == "completed" and telemetry.spans == []


def test_invocations_nest_under_the_current_span(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    with telemetry.tracer.start_as_current_span("app") as app:
        openai_client.responses.create(input="Hi", extra_body=agent_ref("message"))

    (span,) = telemetry.run_spans()
    assert span.parent is not None and span.parent.span_id == app.get_span_context().span_id


def test_uninstrument_restores_the_sdk(openai_client: Any) -> None:
    from openai.resources.responses.responses import AsyncResponses, Responses

    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    originals = {(c, m): c.__dict__[m] for c in (Responses, AsyncResponses) for m in ("create", "retrieve", "cancel")}
    instrumentor = AzureAgentInstrumentor()
    instrumentor.instrument()
    assert all(c.__dict__[m] is not f for (c, m), f in originals.items())
    background = openai_client.responses.create(input="x", background=True, extra_body=agent_ref("message"))
    instrumentor.uninstrument()

    assert all(c.__dict__[m] is f for (c, m), f in originals.items())
    assert openai_client.responses.retrieve(background.id).status == "in_progress"


def test_dependency_check_accepts_the_new_generation_alone() -> None:
    from importlib.metadata import distribution

    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts, get_dist_dependency_conflicts

    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
    from opentelemetry.instrumentation.azure_ai_agents.package import _instruments_any

    assert AzureAgentInstrumentor()._check_dependency_conflicts() is None
    # azure-ai-agents is installed here too (the examples show both): the new generation must suffice alone.
    new = [r for r in _instruments_any if r.replace(" ", "").startswith("azure-ai-projects>=2")]
    assert new and get_dependency_conflicts([], new) is None
    # What zero-code loading reads: the distribution's instruments-any extra names the new generation.
    dist = distribution("opentelemetry-instrumentation-azure-ai-agents")
    assert any("azure-ai-projects>=2" in r.replace(" ", "") and "instruments-any" in r for r in dist.requires or [])
    assert get_dist_dependency_conflicts(dist) is None


def test_cancelled_background_response_is_not_an_error(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    response = openai_client.responses.create(
        input="Long job", background=True, metadata={"polls_per_state": "100"}, extra_body=agent_ref("message")
    )
    cancelled = openai_client.responses.cancel(response.id)

    assert cancelled.status == "cancelled"
    (span,) = telemetry.run_spans()
    assert span.status.status_code is StatusCode.UNSET and "error.type" not in attributes(span)
    assert attributes(span)["azure.ai.agents.run.status"] == "cancelled"


def test_a_create_that_raises_reaches_the_app_unchanged_and_ends_its_span_as_an_error(
    instrument: Any, openai_client: Any
) -> None:
    import openai

    telemetry = instrument()
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.responses.create(input="Hi", extra_body=agent_ref("no-such-agent"))

    assert raised.value.status_code == 404
    (span,) = telemetry.run_spans()
    assert span.name == "invoke_agent no-such-agent" and span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == "NotFoundError"
    assert [e.name for e in span.events] == ["exception"]


def test_model_reads_match_getattr_for_fields_extras_absent_fields_and_properties() -> None:
    """The attribute reader takes a shortcut on the openai package's (pydantic) models: it must read exactly what
    ``getattr`` would: declared fields, extra fields (``agent_reference``), properties, None for anything else."""
    from openai.types.responses import Response

    from opentelemetry.instrumentation.azure_ai_agents.foundry import attributes as rattrs

    response = Response.construct(
        id="resp_1", object="response", created_at=0, model="gpt-4o", status="completed", output=[],
        parallel_tool_calls=False, tool_choice="auto", tools=[], agent_reference={"name": "a", "version": "2"},
    )
    for key in ("id", "model", "status", "conversation", "agent_reference", "output_text", "agent", "no_such"):
        assert rattrs.get(response, key) == getattr(response, key, None), key
    assert rattrs.get(response, "agent_reference") == {"name": "a", "version": "2"}
    assert rattrs.get(response, "output_text") == ""  # a property, not a field
    assert rattrs.get(response, "no_such") is None
