"""The names and formats we emit: one conventions module, our own names only under azure.ai.agents.*, the
conventions' JSON message formats (valid JSON even when cut)."""

from __future__ import annotations

import json

import pytest

from azure_ai_agents_emulator import agents_client
from opentelemetry.instrumentation.azure_ai_agents.classic.attributes import tool_call
from opentelemetry.instrumentation.azure_ai_agents.core import conventions as conv
from opentelemetry.instrumentation.azure_ai_agents.core import messages
from opentelemetry.instrumentation.azure_ai_agents.core.attributes import output_type
from opentelemetry.instrumentation.azure_ai_agents.core.content import ContentPolicy
from tests.helpers import agents_run, agents_setup

#: Names the conventions own that we may emit; anything else must be ours (azure.ai.agents.*) or standard.
_STANDARD_PREFIXES = ("gen_ai.", "server.", "error.", "exception.", "azure.ai.agents.", "http.", "url.")


def test_every_emitted_name_is_a_convention_or_ours(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "function_call")
    names = {k for s in telemetry.spans for k in (s.attributes or {})}
    names |= {k for s in telemetry.spans for e in s.events for k in (e.attributes or {})}
    assert names and all(n.startswith(_STANDARD_PREFIXES) for n in names), names
    assert not {n for n in names if n.startswith("gen_ai.thread")}  # moved out of the OTel namespace
    own = {n for n in names if n.startswith("azure.ai.agents.")}
    declared = {v for k, v in vars(conv).items() if k.isupper() and isinstance(v, str)}
    assert own <= declared, own - declared  # every name of ours is declared in the conventions module
    for span in telemetry.spans:
        assert span.instrumentation_scope.schema_url == conv.SCHEMA_URL
        assert span.attributes["gen_ai.provider.name"] == "microsoft.foundry"
        assert span.attributes["gen_ai.system"] == "az.ai.agents"


def test_legacy_names_map_to_their_replacements():
    legacy = conv.with_legacy_names({conv.RUN_ID: "run_1", conv.CONVERSATION_ID: "thread_1", "x": 1})
    assert legacy["gen_ai.thread.run.id"] == "run_1" and legacy["gen_ai.thread.id"] == "thread_1"
    assert legacy["x"] == 1 and "gen_ai.thread.run.status" not in legacy


def test_message_formats_follow_the_conventions_json_schemas():
    service_message = {
        "role": "user",
        "content": [
            {"type": "text", "text": {"value": "Hi", "annotations": []}},
            {"type": "image_file", "image_file": {"file_id": "assistant-1"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "audio_future", "audio_future": {}},
        ],
    }
    assert messages.input_messages([service_message, {"role": "user", "content": "plain"}]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Hi"},
                {"type": "file", "modality": "image", "file_id": "assistant-1"},
                {"type": "uri", "modality": "image", "uri": "https://example.com/a.png"},
                {"type": "audio_future"},
            ],
        },
        {"role": "user", "parts": [{"type": "text", "content": "plain"}]},
    ]
    assert messages.output_messages([{"role": "assistant", "content": [{"type": "text", "text": {"value": "4"}}]}]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "4"}], "finish_reason": "stop"}
    ]
    function = tool_call({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}})
    code = tool_call({"id": "call_2", "type": "code_interpreter", "code_interpreter": {"input": "1+1", "outputs": []}})
    assert messages.tool_calls_message([function, code]) == {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_1", "name": "f", "arguments": {"a": 1}},
            {
                "type": "server_tool_call",
                "id": "call_2",
                "name": "code_interpreter",
                "server_tool_call": {"type": "code_interpreter", "arguments": "1+1"},
            },
        ],
        "finish_reason": "tool_call",
    }
    assert messages.tool_results_message([(function, '{"ok": true}')]) == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"ok": True}}],
    }
    tools = [
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
        {"type": "code_interpreter"},
    ]
    assert messages.tool_definitions(tools) == [
        {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}},
        {"type": "code_interpreter", "name": "code_interpreter"},
    ]
    assert messages.system_instructions("a", None, "", "b") == [
        {"type": "text", "content": "a"},
        {"type": "text", "content": "b"},
    ]


def test_output_type_from_response_format():
    assert output_type("auto") is None and output_type(None) is None and output_type("none") is None
    assert output_type({"type": "text"}) == "text"
    assert output_type({"type": "json_object"}) == output_type({"type": "json_schema"}) == "json"


def test_cut_structured_content_stays_valid_json():
    policy = ContentPolicy(enabled=True, max_length=300)
    value = [{"role": "user", "parts": [{"type": "text", "content": "x" * 5000}]}] * 2
    text = policy.text("input.messages", value)
    assert text is not None and len(text) <= 300
    parsed = json.loads(text)
    assert parsed[0]["parts"][0]["content"].endswith("…[truncated]")


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [("function_call", "stop"), ("failed", "error"), ("incomplete", "length"), ("expired", "expired")],
)
def test_the_run_span_says_why_the_run_stopped(emulator, instrument, scenario, reason):
    """``gen_ai.response.finish_reasons`` on ``invoke_agent`` (the conventions' Foundry refinement has it), in the
    chat spans' vocabulary: a completed run stopped, a failed one errored, an incomplete one hit a token limit."""
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, scenario)
    [run] = telemetry.run_spans()
    assert run.attributes["gen_ai.response.finish_reasons"] == (reason,)
