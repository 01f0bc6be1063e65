"""New Foundry agents: the async client (concurrent invocations, streams, polling) and unrecorded spans.

With an unsampled parent or a ratio sampler, every call must return exactly what it returns uninstrumented
(Microsoft's instrumentor raises ``AttributeError`` from a non-streaming ``responses.create`` there).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from .helpers import agent_ref, attributes, require_new_foundry_sdk

require_new_foundry_sdk()

from opentelemetry import context as otel_context  # noqa: E402

from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor  # noqa: E402

AGENTS = ("message", "function_call", "code_interpreter", "failed", "all_tools")


async def _invoke(client: Any, telemetry: Any, index: int) -> tuple[str, str, str, str]:
    """One app task: its own parent span and conversation; streams every other call."""
    agent = AGENTS[index % len(AGENTS)]
    with telemetry.tracer.start_as_current_span(f"task-{index}") as parent:
        conversation = await client.conversations.create()
        if index % 2:
            stream = await client.responses.create(
                conversation=conversation.id, input=f"task {index}", stream=True, extra_body=agent_ref(agent)
            )
            async for event in stream:
                last = event
            response_id = last.response.id
        else:
            response = await client.responses.create(
                conversation=conversation.id, input=f"task {index}", extra_body=agent_ref(agent)
            )
            response_id = response.id
    return format(parent.get_span_context().span_id, "016x"), agent, conversation.id, response_id


def test_ten_concurrent_async_invocations_do_not_cross_talk(instrument: Any, emulator: Any, project: Any) -> None:
    from azure_ai_agents_emulator import async_foundry_project_client

    telemetry = instrument()

    async def main() -> list[tuple[str, str, str, str]]:
        async with async_foundry_project_client(emulator) as project:
            client = project.get_openai_client()
            try:
                return await asyncio.gather(*(_invoke(client, telemetry, i) for i in range(10)))
            finally:
                await client.close()

    results = asyncio.run(main())

    spans = telemetry.run_spans()
    assert len(spans) == 10
    by_parent = {format(s.parent.span_id, "016x"): s for s in spans if s.parent is not None}
    for parent_id, agent, conversation_id, response_id in results:
        span = by_parent[parent_id]
        attrs = attributes(span)
        assert span.name == f"invoke_agent {agent}"
        assert attrs["gen_ai.conversation.id"] == conversation_id and attrs["azure.ai.agents.run.id"] == response_id
        assert ("error.type" in attrs) == (agent == "failed")
        assert "azure.ai.agents.run.unfinished" not in attrs
        expected_tools = {"code_interpreter": 1, "all_tools": 4}.get(agent, 0)
        children = [c.name for c in telemetry.children(span)]
        assert len([n for n in children if n.startswith("execute_tool")]) == expected_tools
        assert children.count("chat gpt-4o") == (0 if agent == "failed" else 1)  # a failed response has no usage


def test_async_background_polling_and_stream_helper(instrument: Any, emulator: Any, project: Any) -> None:
    from azure_ai_agents_emulator import async_foundry_project_client

    telemetry = instrument()

    async def main() -> tuple[Any, str]:
        async with async_foundry_project_client(emulator) as project:
            client = project.get_openai_client()
            try:
                response = await client.responses.create(
                    input="job", background=True, metadata={"polls_per_state": "3"}, extra_body=agent_ref("failed")
                )
                while response.status in ("queued", "in_progress"):
                    response = await client.responses.retrieve(response.id)
                async with client.responses.stream(
                    model="gpt-4o", input="go", extra_body=agent_ref("code_interpreter")
                ) as stream:
                    async for _ in stream:
                        pass
                    final = await stream.get_final_response()
                return response, final.output_text
            finally:
                await client.close()

    response, text = asyncio.run(main())

    assert response.status == "failed" and text == "Hello from the emulated agent."
    background, streamed = sorted(telemetry.run_spans(), key=lambda s: s.start_time)
    assert attributes(background)["error.type"] == "server_error"
    assert len(background.events) == 3  # queued, in_progress, failed: not one per poll
    assert attributes(streamed)["azure.ai.agents.run.status"] == "completed"
    assert sorted(s.name for s in telemetry.children(streamed)) == ["chat gpt-4o", "execute_tool code_interpreter"]


def _exercise(client: Any) -> list[Any]:
    """Every instrumented call shape; returns what the app got."""
    got: list[Any] = []
    got.append(client.responses.create(input="a", extra_body=agent_ref("code_interpreter")))
    got.append(client.responses.create(input="b", extra_body=agent_ref("failed")))
    background = client.responses.create(input="c", background=True, extra_body=agent_ref("message"))
    got.append(background)
    while background.status in ("queued", "in_progress"):
        background = client.responses.retrieve(background.id)
        got.append(background)
    got.append([e.type for e in client.responses.create(input="d", stream=True, extra_body=agent_ref("all_tools"))])
    return got


def _strip(values: list[Any]) -> list[Any]:
    """What an app can observe of each result, without the ids the emulator makes up per call."""
    out = []
    for value in values:
        if isinstance(value, list):
            out.append(value)
        else:
            out.append((type(value).__name__, value.status, [item.type for item in value.output], value.output_text))
    return out


@pytest.mark.parametrize("mode", ["unsampled_parent", "ratio_sampler"])
def test_unrecorded_invocations_return_results_unchanged(openai_client: Any, mode: str) -> None:
    reference = _strip(_exercise(openai_client))  # uninstrumented
    exporter = InMemorySpanExporter()
    sampler = ParentBased(TraceIdRatioBased(0.5)) if mode == "ratio_sampler" else None
    provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = AzureAgentInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        if mode == "unsampled_parent":
            parent = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0)))
            token = otel_context.attach(set_span_in_context(parent))
            try:
                results = [_strip(_exercise(openai_client))]
            finally:
                otel_context.detach(token)
        else:
            results = [_strip(_exercise(openai_client)) for _ in range(6)]
    finally:
        instrumentor.uninstrument()

    assert all(result == reference for result in results)
    recorded = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
    if mode == "unsampled_parent":
        assert recorded == []
    else:  # 24 invocations at ratio 0.5: some recorded and complete, some not (probability of 0 or 24: ~1e-7)
        assert 0 < len(recorded) < 24
        assert all("azure.ai.agents.run.unfinished" not in attributes(s) for s in recorded)


def test_async_calls_under_an_unsampled_parent_return_results_unchanged(
    instrument: Any, emulator: Any, project: Any
) -> None:
    from azure_ai_agents_emulator import async_foundry_project_client

    telemetry = instrument()

    async def calls() -> list[Any]:
        async with async_foundry_project_client(emulator) as aio_project:
            client = aio_project.get_openai_client()
            try:
                got: list[Any] = []
                response = await client.responses.create(input="a", extra_body=agent_ref("failed"))
                got.append((response.status, response.error.code if response.error else None))
                stream = await client.responses.create(input="b", stream=True, extra_body=agent_ref("code_interpreter"))
                got.append([event.type async for event in stream])
                background = await client.responses.create(input="c", background=True, extra_body=agent_ref("message"))
                while background.status in ("queued", "in_progress"):
                    background = await client.responses.retrieve(background.id)
                got.append((background.status, background.output_text))
                return got
            finally:
                await client.close()

    parent = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0)))

    async def under_unsampled_parent() -> list[Any]:
        token = otel_context.attach(set_span_in_context(parent))
        try:
            return await calls()
        finally:
            otel_context.detach(token)

    unsampled = asyncio.run(under_unsampled_parent())
    assert telemetry.run_spans() == []
    sampled = asyncio.run(calls())
    assert unsampled == sampled and len(telemetry.run_spans()) == 3
    assert unsampled[0] == ("failed", "server_error") and unsampled[1][-1] == "response.completed"
