"""Security: credentials never reach logs or spans; content capture off on every surface; the redaction hook is
applied to every captured value, and a failing (or misbehaving) hook drops the value instead of leaking it.

Surfaces (each runs a function-call run whose prompt, instructions, arguments and tool output carry markers):
manual polling (sync/async, both SDK generations), the polling helper with auto function calls, streams (sync,
async, legacy) with auto function calls, and the manual stream continuation (``submit_tool_outputs_stream``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from typing import Any, Callable, Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from azure_ai_agents_emulator import (
    agents_client,
    async_agents_client,
    async_project_client,
    project_client,
)
from azure_ai_agents_emulator.clients import TOKEN
from tests.helpers import (
    INSTRUCTIONS,
    TOOL_OUTPUT,
    USER_MESSAGE,
    agents_run,
    agents_setup,
    metadata,
    projects_run,
    projects_setup,
)
from tests.helpers_async import agents_run_async, agents_setup_async, projects_run_async, projects_setup_async

#: Markers of content: the user's prompt, the instructions, the function's output (helpers), the function's
#: arguments (the emulator asks for {"city": "Seattle"}), the assistant's reply, code interpreter input.
SECRETS = ("secret-user-message", "secret-instructions", "sunny-secret-output", "Seattle", "Here is what I found",
           "print(2+2)")
CONTENT_KEYS = (
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
)
LOGGER = "opentelemetry.instrumentation.azure_ai_agents"


def get_weather(city: str) -> str:
    """Gets the weather.

    :param city: The city.
    """
    return TOOL_OUTPUT


async def get_weather_async(city: str) -> str:
    """Gets the weather.

    :param city: The city.
    """
    return TOOL_OUTPUT


get_weather_async.__name__ = "get_weather"
RUN_KW = dict(additional_messages=[{"role": "user", "content": USER_MESSAGE}], additional_instructions=INSTRUCTIONS)


# ---- the surfaces -----------------------------------------------------------------------------------------
def polling(emulator: Any) -> None:
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "function_call")
    agents_run(client, agent_id, thread_id, "code_interpreter")


def polling_async(emulator: Any) -> None:
    async def main() -> None:
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            await agents_run_async(client, agent_id, thread_id, "function_call")

    asyncio.run(main())


def legacy_polling(emulator: Any) -> None:
    client = project_client(emulator)
    agent_id, thread_id = projects_setup(client)
    projects_run(client, agent_id, thread_id, "function_call", list_steps=True)


def legacy_polling_async(emulator: Any) -> None:
    async def main() -> None:
        async with async_project_client(emulator) as client:
            agent_id, thread_id = await projects_setup_async(client)
            await projects_run_async(client, agent_id, thread_id, "function_call")

    asyncio.run(main())


def helper_with_auto_functions(emulator: Any) -> None:
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    client.enable_auto_function_calls({get_weather})
    client.runs.create_and_process(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), polling_interval=0, **RUN_KW
    )


def stream_with_auto_functions(emulator: Any) -> None:
    from azure.ai.agents.models import AgentEventHandler

    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    client.enable_auto_function_calls({get_weather})
    with client.runs.stream(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), event_handler=AgentEventHandler(), **RUN_KW
    ) as stream:
        stream.until_done()


def stream_manual_continuation(emulator: Any) -> None:
    from azure.ai.agents.models import AgentEventHandler, ToolOutput

    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), **RUN_KW) as s:
        [run] = [data for event, data, _ in s if event == "thread.run.requires_action"]
    handler = AgentEventHandler()
    client.runs.submit_tool_outputs_stream(
        thread_id=thread_id,
        run_id=run.id,
        tool_outputs=[ToolOutput(tool_call_id=c.id, output=TOOL_OUTPUT) for c in run.required_action.submit_tool_outputs.tool_calls],
        event_handler=handler,
    )
    handler.until_done()


def stream_async_with_auto_functions(emulator: Any) -> None:
    from azure.ai.agents.models import AsyncAgentEventHandler

    async def main() -> None:
        async with async_agents_client(emulator) as client:
            agent_id, thread_id = await agents_setup_async(client)
            client.enable_auto_function_calls({get_weather_async})
            async with await client.runs.stream(
                thread_id=thread_id,
                agent_id=agent_id,
                metadata=metadata("function_call"),
                event_handler=AsyncAgentEventHandler(),
                **RUN_KW,
            ) as stream:
                await stream.until_done()

    asyncio.run(main())


def legacy_stream_with_auto_functions(emulator: Any) -> None:
    client = project_client(emulator)
    agent_id, thread_id = projects_setup(client)
    client.agents.enable_auto_function_calls(functions={get_weather})
    with client.agents.create_stream(
        thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"), **RUN_KW
    ) as stream:
        stream.until_done()


SURFACES: dict[str, Callable[[Any], None]] = {
    "polling": polling,
    "polling async": polling_async,
    "legacy polling": legacy_polling,
    "legacy polling async": legacy_polling_async,
    "create_and_process + auto functions": helper_with_auto_functions,
    "stream + auto functions": stream_with_auto_functions,
    "stream + submit_tool_outputs_stream": stream_manual_continuation,
    "async stream + auto functions": stream_async_with_auto_functions,
    "legacy create_stream + auto functions": legacy_stream_with_auto_functions,
}


# ---- what was recorded ------------------------------------------------------------------------------------
def recorded(telemetry: Any) -> list[tuple[str, str, Any]]:
    """(where, key, value) of everything the telemetry holds: span names, attributes, events, metric points."""
    out: list[tuple[str, str, Any]] = []
    for span in telemetry.spans:
        out.append((span.name, "<name>", span.name))
        out.append((span.name, "<status>", span.status.description))
        out.extend((span.name, k, v) for k, v in span.attributes.items())
        for event in span.events:
            out.extend((f"{span.name} / {event.name}", k, v) for k, v in (event.attributes or {}).items())
    data = telemetry.metric_reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    out.extend((metric.name, k, v) for k, v in (point.attributes or {}).items())
    return out


def leaks(items: list[tuple[str, str, Any]], secrets: tuple[str, ...] = SECRETS) -> list[tuple[str, str, str]]:
    found = []
    for where, key, value in items:
        text = str(value)
        for secret in secrets:
            if secret in text:
                found.append((where, key, secret))
    return found


def content(items: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    return [(w, k, v) for w, k, v in items if k in CONTENT_KEYS]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)  # everything, every logger (SDK, urllib3, exporters, ours)
    yield caplog


def log_text(caplog: pytest.LogCaptureFixture, prefix: str = "") -> str:
    """Every record (of loggers named ``prefix``...) as a handler would print it, tracebacks included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records if r.name.startswith(prefix))


#: Content in log records is checked for OpenTelemetry's loggers (ours, the SDK's, the exporters'): the Agents
#: SDK itself logs submitted tool outputs at INFO (``azure.ai.agents.operations._patch``: "Tool outputs: ..."),
#: with or without instrumentation.
OTEL_LOGGERS = "opentelemetry"


# ---- content capture off ----------------------------------------------------------------------------------
@pytest.mark.parametrize("surface", list(SURFACES))
def test_content_capture_is_off_on_every_surface(emulator, instrument, debug_logs, surface):
    telemetry = instrument()
    SURFACES[surface](emulator)
    items = recorded(telemetry)
    assert telemetry.named("execute_tool"), "the surface ran a tool call"  # the check below is not vacuous
    assert leaks(items) == []
    assert content(items) == []
    assert [s for s in SECRETS if s in log_text(debug_logs, OTEL_LOGGERS)] == []  # nothing in logs either


# ---- the redaction hook -----------------------------------------------------------------------------------
REDACTED = re.compile(r"^<redacted (tool\.arguments|tool\.result|input\.messages|output\.messages|system_instructions) \d+>$")
#: What each surface lets the app's content reach us as (every surface has a function call and a prompt).
EXPECTED_KINDS = {"tool.arguments", "tool.result", "input.messages", "system_instructions"}


@pytest.mark.parametrize("surface", list(SURFACES))
def test_the_redaction_hook_sees_and_replaces_every_captured_value(emulator, instrument, surface):
    calls: list[tuple[str, str]] = []

    def redact(kind: str, text: str) -> str:
        calls.append((kind, text))
        return f"<redacted {kind} {len(text)}>"

    telemetry = instrument(capture_content=True, redact_content=redact)
    SURFACES[surface](emulator)
    items = recorded(telemetry)
    captured = content(items)
    assert captured, "content capture is on: something was captured"
    for where, key, value in captured:
        assert REDACTED.match(value), (where, key, value)  # every captured value went through the hook
    assert leaks(items) == []
    assert EXPECTED_KINDS <= {kind for kind, _ in calls}, {kind for kind, _ in calls}
    # ...and the hook was shown the real text (so it can redact it), as text
    assert all(isinstance(text, str) for _, text in calls)
    seen_text = "\n".join(text for _, text in calls)
    assert "sunny-secret-output" in seen_text and "Seattle" in seen_text


class HookError(Exception):
    pass


@pytest.mark.parametrize("surface", ["polling", "stream + auto functions", "legacy polling async"])
def test_a_failing_redaction_hook_drops_the_value_without_leaking_it(emulator, instrument, debug_logs, surface):
    def redact(kind: str, text: str) -> str:
        raise HookError(f"cannot redact {kind}: {text}")  # a realistic hook error quoting its input

    telemetry = instrument(capture_content=True, redact_content=redact)
    SURFACES[surface](emulator)  # the app is not affected
    items = recorded(telemetry)
    assert content(items) == []  # dropped, every one of them
    assert leaks(items) == []
    assert telemetry.run_spans() and telemetry.named("execute_tool")  # the traces themselves are intact
    logged = log_text(debug_logs, OTEL_LOGGERS)
    assert "redaction" in logged  # the failure is reported...
    assert [s for s in SECRETS if s in logged] == []  # ...without the value, not even inside a traceback


@pytest.mark.parametrize("returned", [42, b"redacted", ["redacted"], {"redacted": True}], ids=["int", "bytes", "list", "dict"])
def test_a_hook_returning_something_else_than_text_loses_nothing_else(emulator, instrument, returned):
    """The contract is text or None; a hook returning anything else must not cost the traces, and no content
    attribute may end up with a non-text value."""
    telemetry = instrument(capture_content=True, redact_content=lambda kind, text: returned)
    polling(emulator)
    items = recorded(telemetry)
    assert leaks(items) == []
    assert len(telemetry.run_spans()) == 2 and len(telemetry.named("execute_tool")) == 2  # nothing lost
    for where, key, value in content(items):
        assert isinstance(value, str), (where, key, value)


# ---- credentials ------------------------------------------------------------------------------------------
NEXUS_KEY = "nxs_" + uuid.uuid4().hex + uuid.uuid4().hex


@pytest.fixture
def quiet_appinsights(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED", "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
                 "APPLICATIONINSIGHTS_SDKSTATS_DISABLED"):
        monkeypatch.setenv(name, "true")


@pytest.mark.parametrize("outcome", ["delivered", "rejected", "failing", "unreachable"])
def test_api_keys_never_reach_logs_or_spans(emulator, instrument, debug_logs, monkeypatch, quiet_appinsights, outcome):
    """NEXUS_API_KEY and the Application Insights instrumentation key, read from the environment by the
    exporters, while the app runs and the exports succeed, are refused (401 / 400), fail (5xx, dropped
    connections) or cannot connect: nowhere in any log record (DEBUG, every logger) or span."""
    pytest.importorskip("azure.monitor.opentelemetry.exporter")
    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

    from opentelemetry.exporter.nexus import NexusSpanExporter
    from tests.fakes.appinsights_server import AppInsightsReceiver
    from tests.fakes.nexus_server import NexusServer

    ikey = str(uuid.uuid4())
    with NexusServer(api_key=NEXUS_KEY) as nexus, AppInsightsReceiver(instrumentation_key=ikey) as ingestion:
        nexus_url, ingestion_url = nexus.url, ingestion.url
        if outcome == "unreachable":
            nexus.stop()
            ingestion.stop()
        monkeypatch.setenv("NEXUS_API_KEY", NEXUS_KEY)
        monkeypatch.setenv("NEXUS_ENDPOINT", nexus_url)
        monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", f"InstrumentationKey={ikey};IngestionEndpoint={ingestion_url}/")
        if outcome == "rejected":
            nexus.fail_next("*", 401, count=100, body={"error": "Invalid API key"})
            ingestion.fail_next(400, count=100)
        elif outcome == "failing":
            nexus.fail_next("*", 503, count=100)
            ingestion.fail_next(0, count=100)  # connection dropped without an answer

        telemetry = instrument(capture_content=True)  # even with content on: keys are not content
        nexus_exporter = NexusSpanExporter(backoff_base=0.01, backoff_max=0.02, export_timeout=1.0)
        monitor = AzureMonitorTraceExporter(disable_offline_storage=True, retry_total=1, retry_backoff_factor=0)
        telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(nexus_exporter))
        telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(monitor))
        polling(emulator)
        telemetry.tracer_provider.force_flush()  # runs end once their steps are listed, off the app's path
        nexus_exporter.force_flush(5_000)
        if outcome == "delivered":
            assert nexus.wait_for_traces(2) and ingestion.wait_for_envelopes(lambda envs: len(envs) >= 1)
        nexus_exporter.shutdown(timeout_millis=2_000)
        monitor.shutdown()
        reprs = repr(nexus_exporter) + repr(monitor.__dict__.get("_instrumentation_key", ""))

    secrets = (NEXUS_KEY, NEXUS_KEY[4:], ikey, TOKEN)
    assert leaks(recorded(telemetry), secrets) == []
    logged = log_text(debug_logs)
    found = [s[:12] for s in secrets if s in logged]
    assert found == [], [line for line in logged.splitlines() if any(s in line for s in secrets)][:5]
    assert NEXUS_KEY not in reprs
    if outcome != "delivered":
        assert any(r.levelno >= logging.WARNING for r in debug_logs.records)  # the failure was reported


def test_spans_never_carry_the_service_credential_or_request_headers(emulator, instrument):
    telemetry = instrument(capture_content=True)
    for surface in SURFACES.values():
        surface(emulator)
    items = recorded(telemetry)
    assert leaks(items, (TOKEN, "Bearer", "authorization", "Authorization")) == []
    assert not [k for _w, k, _v in items if k.startswith(("http.request.header", "http.response.header"))]


def test_content_policy_repr_and_json_dont_expose_the_hook_input() -> None:
    """The policy object itself carries no captured text (safe to log or print)."""
    from opentelemetry.instrumentation.azure_ai_agents.core.content import ContentPolicy

    policy = ContentPolicy.resolve(True, lambda kind, text: None)
    assert policy.text("tool.result", {"a": "sunny-secret-output"}) is None
    assert "sunny-secret-output" not in repr(policy) + json.dumps(str(policy))
