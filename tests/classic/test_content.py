"""Private by default: no prompt, argument, output or code text is recorded unless the user opts in."""

from __future__ import annotations

import json

import pytest

from azure_ai_agents_emulator import agents_client
from tests.helpers import INSTRUCTIONS, TOOL_OUTPUT, USER_MESSAGE, agents_run, agents_setup

SECRETS = ("secret-user-message", "secret-instructions", "sunny-secret-output", "Seattle", "print(2+2)")
CONTENT_KEYS = (
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.input.messages",
    "gen_ai.system_instructions",
    "gen_ai.output.messages",
    "gen_ai.tool.definitions",
)


def _everything_recorded(telemetry) -> str:
    parts = []
    for span in telemetry.all_spans:  # agent lifecycle spans included
        parts.append(span.name)
        parts.extend(f"{k}={v}" for k, v in span.attributes.items())
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    return "\n".join(parts)


def _run_all(emulator, telemetry) -> None:
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "function_call")
    agents_run(client, agent_id, thread_id, "code_interpreter")
    assert len(telemetry.named("execute_tool")) == 2


def test_content_is_off_by_default(emulator, instrument):
    telemetry = instrument()
    _run_all(emulator, telemetry)
    recorded = _everything_recorded(telemetry)
    for secret in SECRETS:
        assert secret not in recorded
    for key in CONTENT_KEYS:
        assert key not in recorded


@pytest.mark.parametrize(
    "env, value",
    [
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"),
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY"),
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT"),
        ("AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED", "true"),
        (None, None),  # capture_content=True
    ],
)
def test_content_capture_on_records_arguments_and_results(emulator, instrument, monkeypatch, env, value):
    if env:
        monkeypatch.setenv(env, value)
        telemetry = instrument()
    else:
        telemetry = instrument(capture_content=True)
    _run_all(emulator, telemetry)
    tools = {s.attributes["gen_ai.tool.name"]: s.attributes for s in telemetry.named("execute_tool")}
    assert json.loads(tools["get_weather"]["gen_ai.tool.call.arguments"]) == {"city": "Seattle"}
    assert tools["get_weather"]["gen_ai.tool.call.result"] == TOOL_OUTPUT
    assert tools["code_interpreter"]["gen_ai.tool.call.arguments"] == "print(2+2)"
    assert "4" in tools["code_interpreter"]["gen_ai.tool.call.result"]
    run_span = min(telemetry.run_spans(), key=lambda s: s.start_time)  # the first run (runs end off the app's path)
    # The run's effective instructions, as the run object reports them: the agent's plus the additional ones.
    instructions = json.loads(run_span.attributes["gen_ai.system_instructions"])
    assert instructions == [{"type": "text", "content": INSTRUCTIONS + "\n" + INSTRUCTIONS}]
    # Input: the message posted with messages.create before the run, then additional_messages.
    user = {"role": "user", "parts": [{"type": "text", "content": USER_MESSAGE}]}
    assert json.loads(run_span.attributes["gen_ai.input.messages"]) == [user, user]
    [answer] = json.loads(run_span.attributes["gen_ai.output.messages"])
    assert answer["role"] == "assistant" and answer["parts"][0]["type"] == "text" and answer["parts"][0]["content"]
    [definition] = json.loads(run_span.attributes["gen_ai.tool.definitions"])
    assert definition["type"] == "function" and definition["name"] == "get_weather" and definition["parameters"]


def test_event_only_mode_keeps_content_off_span_attributes(emulator, instrument, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVENT_ONLY")
    telemetry = instrument()
    _run_all(emulator, telemetry)
    for span in telemetry.spans:
        assert not set(CONTENT_KEYS) & set(span.attributes)
    [tool] = [s for s in telemetry.named("execute_tool") if s.attributes["gen_ai.tool.name"] == "get_weather"]
    [event] = [e for e in tool.events if e.name == "gen_ai.content"]
    assert event.attributes["gen_ai.tool.call.result"] == TOOL_OUTPUT


def test_capture_argument_overrides_the_environment(emulator, instrument, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    telemetry = instrument(capture_content=False)
    _run_all(emulator, telemetry)
    assert "sunny-secret-output" not in _everything_recorded(telemetry)


def test_long_content_is_truncated_and_redaction_hook_applies(emulator, instrument, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_CONTENT_MAX_LENGTH", "40")
    seen = []

    def redact(kind: str, text: str) -> str:
        seen.append(kind)
        return text.replace("Seattle", "<city>")

    telemetry = instrument(capture_content=True, redact_content=redact)
    _run_all(emulator, telemetry)
    for span in telemetry.spans:
        for key in CONTENT_KEYS:
            if key in span.attributes:
                assert len(span.attributes[key]) <= 40
    recorded = _everything_recorded(telemetry)
    assert "Seattle" not in recorded and "<city>" in recorded
    assert "…[truncated]" in recorded
    assert {"tool.arguments", "tool.result", "system_instructions", "input.messages"} <= set(seen)
