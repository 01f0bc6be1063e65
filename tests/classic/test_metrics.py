"""GenAI metrics through the meter provider: names, units, the conventions' bucket boundaries, attributes."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint

from azure_ai_agents_emulator import agents_client
from opentelemetry.instrumentation.azure_ai_agents.core.metrics import DURATION_BUCKETS, TOKEN_BUCKETS
from tests.helpers import agents_run, agents_setup, metadata

DURATION = "gen_ai.client.operation.duration"
TOKENS = "gen_ai.client.token.usage"
FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
QUEUE_TIME = "azure.ai.agents.run.queue_time"
TOOL_WAIT = "azure.ai.agents.run.tool_wait_time"
BASE = {"gen_ai.provider.name": "microsoft.foundry", "gen_ai.request.model": "gpt-4o"}


def _metrics(telemetry) -> dict[str, Any]:
    telemetry.tracer_provider.force_flush()  # runs end (and record their metrics) once their reads are done
    data = telemetry.metric_reader.get_metrics_data()
    found = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == "opentelemetry.instrumentation.azure_ai_agents"
            for metric in scope_metrics.metrics:
                found[metric.name] = metric
    return found


def _points(metric) -> dict[frozenset, HistogramDataPoint]:
    return {frozenset(p.attributes.items()): p for p in metric.data.data_points}


def _point(metric, **attributes: Any) -> HistogramDataPoint:
    wanted = {k.replace("__", "."): v for k, v in attributes.items()}
    [point] = [p for p in metric.data.data_points if dict(p.attributes) == wanted]
    return point


def test_run_and_tool_metrics(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    completed = [agents_run(client, agent_id, thread_id, "function_call") for _ in range(2)]
    agents_run(client, agent_id, thread_id, "failed")
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("message")) as stream:
        stream.until_done()

    metrics = _metrics(telemetry)
    assert set(metrics) == {DURATION, TOKENS, FIRST_CHUNK, QUEUE_TIME, TOOL_WAIT}
    # One queue time and one tool-wait time per run in the duration histogram, with the same attributes (ratios
    # of their sums are over the same runs); test_run_timings checks the values.
    runs = {k: p.count for k, p in _points(metrics[DURATION]).items() if dict(k)["gen_ai.operation.name"] == "invoke_agent"}
    assert sorted(runs.values()) == [1, 3]
    for name in (QUEUE_TIME, TOOL_WAIT):
        assert metrics[name].unit == "s"
        assert {k: p.count for k, p in _points(metrics[name]).items()} == runs
    duration, tokens, first_chunk = metrics[DURATION], metrics[TOKENS], metrics[FIRST_CHUNK]
    assert (duration.unit, tokens.unit, first_chunk.unit) == ("s", "{token}", "s")

    run_ok = _point(duration, gen_ai__operation__name="invoke_agent", **_dotted(BASE))
    assert run_ok.count == 3  # two function_call runs and the streamed run
    assert tuple(run_ok.explicit_bounds) == DURATION_BUCKETS
    [failed] = [
        p
        for p in duration.data.data_points
        if "error.type" in p.attributes and p.attributes["gen_ai.operation.name"] == "invoke_agent"
    ]
    assert dict(failed.attributes) == {**BASE, "gen_ai.operation.name": "invoke_agent", "error.type": "server_error"}
    assert failed.count == 1

    tool = _point(
        duration,
        gen_ai__operation__name="execute_tool",
        gen_ai__provider__name="microsoft.foundry",
        gen_ai__tool__name="get_weather",
        gen_ai__tool__type="function",
    )
    assert tool.count == 2
    code = _point(
        duration,
        gen_ai__operation__name="execute_tool",
        gen_ai__provider__name="microsoft.foundry",
        gen_ai__tool__name="code_interpreter",
        gen_ai__tool__type="extension",
        error__type="server_error",
    )
    assert code.count == 1  # from the failed run's failed step

    run = {"gen_ai__operation__name": "invoke_agent", **_dotted(BASE)}
    input_tokens = _point(tokens, gen_ai__token__type="input", **run)
    output_tokens = _point(tokens, gen_ai__token__type="output", **run)
    assert tuple(input_tokens.explicit_bounds) == TOKEN_BUCKETS
    assert input_tokens.sum == sum(r.usage.prompt_tokens for r in completed) + 120  # + the streamed message run
    assert output_tokens.sum == sum(r.usage.completion_tokens for r in completed) + 45
    assert input_tokens.count == output_tokens.count == 3  # the failed run reported no usage

    ttfc = _point(first_chunk, gen_ai__operation__name="invoke_agent", **_dotted(BASE))
    assert ttfc.count == 1 and tuple(ttfc.explicit_bounds) == DURATION_BUCKETS
    [run_span] = [s for s in telemetry.run_spans() if "gen_ai.response.time_to_first_chunk" in s.attributes]
    assert ttfc.sum == run_span.attributes["gen_ai.response.time_to_first_chunk"]


def test_a_create_that_raises_is_a_failed_operation(emulator, instrument):
    import pytest
    from azure.core.exceptions import ResourceNotFoundError

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, _ = agents_setup(client)
    with pytest.raises(ResourceNotFoundError):
        client.runs.create(thread_id="thread_missing", agent_id=agent_id, model="gpt-4o")
    metrics = _metrics(telemetry)
    [point] = metrics[DURATION].data.data_points
    expected = {**BASE, "gen_ai.operation.name": "invoke_agent", "error.type": "ResourceNotFoundError"}
    assert dict(point.attributes) == expected
    assert TOKENS not in metrics


def _dotted(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k.replace(".", "__"): v for k, v in attributes.items()}
