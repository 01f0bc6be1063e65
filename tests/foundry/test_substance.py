"""New Foundry agents: the same substance as a classic run. Tokens where backends count them (one ``chat`` span per
invocation, counted once), agent lifecycle spans, the response a request continues, output types, image and file
parts, tool values as objects; and a stream dropped while the instrumentation holds its lock.

Real ``azure-ai-projects`` >= 2 and ``openai`` clients over HTTP against the emulator.
"""

from __future__ import annotations

import gc
import json
import threading
from collections import defaultdict
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .helpers import agent_ref, attributes, require_new_foundry_sdk

require_new_foundry_sdk()

USAGE = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")


def _phoenix_tokens(spans: list[Any]) -> int:
    """Arize Phoenix 20.26: tokens (and cost) only on LLM-kind spans (``gen_ai.operation.name`` chat)."""
    return sum(
        attributes(s).get(USAGE[0], 0) + attributes(s).get(USAGE[1], 0)
        for s in spans
        if attributes(s).get("gen_ai.operation.name") == "chat"
    )


def _mlflow_tokens(spans: list[Any]) -> int:
    """MLflow 3.17 (``mlflow.tracing.utils.aggregate_usage_from_spans``): a span's usage counts unless one of its
    ancestors has usage (a depth-first walk from the roots)."""
    ids = {s.context.span_id for s in spans}
    children: dict[Any, list[Any]] = defaultdict(list)
    roots = []
    for span in spans:
        if span.parent is not None and span.parent.span_id in ids:
            children[span.parent.span_id].append(span)
        else:
            roots.append(span)
    total = 0
    stack = [(root, False) for root in roots]
    while stack:
        span, ancestor_has = stack.pop()
        has = any(key in attributes(span) for key in USAGE)
        if has and not ancestor_has:
            total += sum(attributes(span).get(key, 0) for key in USAGE)
        stack += [(child, ancestor_has or has) for child in children[span.context.span_id]]
    return total


def _token_metric_sum(telemetry: Any) -> int:
    telemetry.tracer_provider.force_flush()
    total = 0
    for resource in telemetry.metric_reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "gen_ai.client.token.usage":
                    total += sum(int(point.sum) for point in metric.data.data_points)
    return total


def test_one_chat_span_per_invocation_carries_its_tokens_counted_once(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    response = openai_client.responses.create(input="Compute", extra_body=agent_ref("code_interpreter"))

    (invocation,) = telemetry.run_spans()
    (chat,) = telemetry.named("chat ")
    attrs = attributes(chat)
    assert chat.name == "chat gpt-4o" and chat.kind is SpanKind.CLIENT
    assert chat.parent is not None and chat.parent.span_id == invocation.context.span_id
    assert invocation.start_time <= chat.start_time <= chat.end_time <= invocation.end_time
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "microsoft.foundry"
    assert attrs["gen_ai.request.model"] == "gpt-4o" and attrs["gen_ai.response.id"] == response.id
    assert (attrs[USAGE[0]], attrs[USAGE[1]]) == (response.usage.input_tokens, response.usage.output_tokens)
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes(invocation)["gen_ai.response.finish_reasons"] == ("stop",)
    # The invocation keeps its usage (conventions, Application Insights); each backend counts it once.
    assert attributes(invocation)[USAGE[0]] == response.usage.input_tokens
    total = response.usage.input_tokens + response.usage.output_tokens
    assert _phoenix_tokens(telemetry.spans) == total
    assert _mlflow_tokens(telemetry.spans) == total
    assert _token_metric_sum(telemetry) == total


def test_a_response_without_usage_has_no_chat_span(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    response = openai_client.responses.create(input="Try", extra_body=agent_ref("failed"))

    assert response.usage is None
    (invocation,) = telemetry.run_spans()
    assert telemetry.named("chat ") == [] and attributes(invocation)["gen_ai.response.finish_reasons"] == ("error",)


def test_function_calls_finish_with_tool_call_and_chain_by_previous_response(
    instrument: Any, openai_client: Any
) -> None:
    telemetry = instrument(capture_content=True)
    first = openai_client.responses.create(input="Weather in Paris?", extra_body=agent_ref("function_call"))
    call = first.output[0]
    answer = [{"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"temp": 21})}]
    openai_client.responses.create(input=answer, previous_response_id=first.id, extra_body=agent_ref("function_call"))

    asking, answering = sorted(telemetry.run_spans(), key=lambda s: s.start_time)
    assert attributes(asking)["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert "gen_ai.request.previous_response.id" not in attributes(asking)
    assert attributes(answering)["gen_ai.request.previous_response.id"] == first.id
    # Arguments and results are objects in the recorded messages (the conventions' SHOULD), not JSON strings.
    (asked,) = json.loads(attributes(asking)["gen_ai.output.messages"])
    assert asked["parts"] == [
        {"type": "tool_call", "id": call.call_id, "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    (answered,) = json.loads(attributes(answering)["gen_ai.input.messages"])
    assert answered == {"role": "tool", "parts": [{"type": "tool_call_response", "id": call.call_id, "response": {"temp": 21}}]}
    # The chat span holds the model's view: the same input and output.
    chat = next(s for s in telemetry.named("chat ") if s.parent.span_id == answering.context.span_id)
    assert json.loads(attributes(chat)["gen_ai.input.messages"]) == [answered]


def test_structured_output_requests_record_the_json_output_type(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    text_format = {"format": {"type": "json_schema", "name": "Event", "schema": schema}}
    openai_client.responses.create(input="Extract", text=text_format, extra_body=agent_ref("message"))
    openai_client.responses.create(input="Plain", extra_body=agent_ref("message"))

    structured, plain = sorted(telemetry.run_spans(), key=lambda s: s.start_time)
    assert attributes(structured)["gen_ai.output.type"] == "json"
    assert "gen_ai.output.type" not in attributes(plain)  # nothing asked for: nothing claimed


def test_image_and_file_inputs_are_the_conventions_part_types(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument(capture_content=True)
    content = [
        {"type": "input_text", "text": "What is in these?"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
        {"type": "input_image", "file_id": "file-img1"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
        {"type": "input_file", "file_id": "file-doc1"},
        {"type": "input_file", "file_url": "https://example.com/report.pdf"},
    ]
    openai_client.responses.create(
        input=[{"type": "message", "role": "user", "content": content}], extra_body=agent_ref("message")
    )

    (span,) = telemetry.run_spans()
    (message,) = json.loads(attributes(span)["gen_ai.input.messages"])
    assert message == {
        "role": "user",
        "parts": [
            {"type": "text", "content": "What is in these?"},
            {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
            {"type": "file", "modality": "image", "file_id": "file-img1"},
            {"type": "blob", "modality": "image", "content": "iVBORw0KGgo=", "mime_type": "image/png"},
            {"type": "file", "modality": "document", "file_id": "file-doc1"},
            {"type": "uri", "modality": "document", "uri": "https://example.com/report.pdf"},
        ],
    }


def test_create_version_and_delete_version_are_agent_spans(instrument: Any, project: Any) -> None:
    from azure.ai.projects.models import FunctionTool, PromptAgentDefinition

    telemetry = instrument(capture_content=True)
    tool = FunctionTool(name="lookup", description="looks up", parameters={"type": "object"}, strict=False)
    definition = PromptAgentDefinition(model="gpt-4o", instructions="Be brief (secret-instr).", tools=[tool])
    created = project.agents.create_version(agent_name="lifecycle-agent", definition=definition, description="d")

    spans = [s for s in telemetry.all_spans if s.name.startswith("create_agent")]
    (span,) = spans
    attrs = attributes(span)
    assert span.name == "create_agent lifecycle-agent" and span.kind is SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == "create_agent" and attrs["gen_ai.provider.name"] == "microsoft.foundry"
    assert attrs["gen_ai.agent.name"] == "lifecycle-agent" and attrs["gen_ai.agent.id"] == created.id
    assert attrs["gen_ai.agent.version"] == created.version and attrs["gen_ai.agent.description"] == "d"
    assert attrs["gen_ai.request.model"] == "gpt-4o" and attrs["server.address"] == "127.0.0.1"
    assert json.loads(attrs["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief (secret-instr)."}]
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "lookup", "description": "looks up", "parameters": {"type": "object"}}
    ]


def test_a_stream_dropped_while_the_instrumentation_holds_its_lock_ends_later(
    instrument: Any, openai_client: Any
) -> None:
    """A dropped stream's finalizer runs inside a garbage collection, which may happen on a thread that holds the
    registry's (non-reentrant) lock or the invocation's own: it must only queue the end, never take a lock."""
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    telemetry = instrument()
    invocations = AzureAgentInstrumentor()._invocations
    stream = openai_client.responses.create(input="Go", stream=True, extra_body=agent_ref("message"))
    next(stream)  # read one event (its response id registers the invocation), then drop the stream unclosed
    (invocation,) = invocations.registry.open_items()
    cycle: list[Any] = [stream]
    cycle.append(cycle)  # only a collection frees it
    del stream, cycle  # (the invocation does not hold its stream)
    collected = threading.Event()

    def collect_inside_the_locks() -> None:
        with invocations.registry._lock, invocation.lock:
            gc.collect()
        collected.set()

    worker = threading.Thread(target=collect_inside_the_locks, daemon=True)
    worker.start()
    assert collected.wait(30), "a finalizer took a lock inside a collection (deadlock)"
    assert len(invocations.registry.deferred) == 1  # the end is queued, not done
    assert telemetry.exporter.get_finished_spans() == ()
    openai_client.responses.create(model="gpt-4o", input="any next call runs the queued work")

    (span,) = telemetry.exporter.get_finished_spans()
    assert attributes(span)["azure.ai.agents.run.unfinished"] == "stream_abandoned"
    assert span.status.status_code is StatusCode.UNSET and not invocations.registry.deferred


def test_plain_calls_on_a_project_client_stay_untraced(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument(capture_content=True)
    conversation = openai_client.conversations.create(items=[{"type": "message", "role": "user", "content": "x"}])
    openai_client.responses.create(model="gpt-4o", input="plain", conversation=conversation.id)

    assert telemetry.all_spans == []


@pytest.mark.parametrize("capture", [True, False])
def test_posted_items_are_kept_only_with_capture_on(instrument: Any, openai_client: Any, capture: bool) -> None:
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    instrument(capture_content=capture)
    invocations = AzureAgentInstrumentor()._invocations
    openai_client.conversations.create(items=[{"type": "message", "role": "user", "content": "kept?"}])

    assert len(invocations.posted) == (1 if capture else 0)


PROJECT_ID = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a/projects/p"


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_the_project_id_is_recorded_when_configured(
    instrument: Any, openai_client: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "argument":
        telemetry = instrument(foundry_project_id=PROJECT_ID)
    else:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_FOUNDRY_PROJECT_ID", PROJECT_ID)
        telemetry = instrument()
    openai_client.responses.create(input="Hi", extra_body=agent_ref("message"))

    (span,) = telemetry.run_spans()
    assert attributes(span)["microsoft.foundry.project.id"] == PROJECT_ID


def test_the_project_id_is_absent_unless_configured(instrument: Any, openai_client: Any) -> None:
    telemetry = instrument()
    openai_client.responses.create(input="Hi", extra_body=agent_ref("message"))

    (span,) = telemetry.run_spans()
    assert "microsoft.foundry.project.id" not in attributes(span)


def test_posted_items_beyond_the_bounds_are_counted():
    """Content capture keeps a bounded number of posted items: what the bounds drop is counted, never silent."""
    from opentelemetry.instrumentation.azure_ai_agents.foundry.conversations import PostedItems

    posted = PostedItems(max_conversations=2, max_items=3)
    posted.posted("conv_1", [{"n": i} for i in range(5)])
    assert posted.cut == 2 and posted.take("conv_1") == ({"n": 2}, {"n": 3}, {"n": 4})
    for conversation in ("conv_a", "conv_b", "conv_c"):
        posted.posted(conversation, [{"n": 0}])
    assert posted.forgotten == 1 and posted.take("conv_a") == ()
