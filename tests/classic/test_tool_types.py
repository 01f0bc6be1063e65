"""Every tool type the service reports becomes an ``execute_tool`` span typed by the conventions; required
actions other than ``submit_tool_outputs`` (MCP approvals, types not invented yet) never break anything."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from azure_ai_agents_emulator import agents_client
from tests.helpers import agents_run, agents_setup, metadata

#: raw type -> (span name suffix, gen_ai.tool.type)
EXPECTED = {
    "code_interpreter": ("code_interpreter", "extension"),
    "file_search": ("file_search", "datastore"),
    "bing_grounding": ("bing_grounding", "datastore"),
    "bing_custom_search": ("bing_custom_search", "datastore"),
    "azure_ai_search": ("azure_ai_search", "datastore"),
    "sharepoint_grounding": ("sharepoint_grounding", "datastore"),
    "fabric_dataagent": ("fabric_dataagent", "datastore"),
    "openapi": ("weather_GetCurrentWeather", "extension"),
    "mcp": ("search_docs", "extension"),
    "azure_function": ("foo", "extension"),
    "connected_agent": ("stock_price_bot", "extension"),
    "deep_research": ("deep_research", "extension"),
    "function": ("lookup_order", "function"),
}


def _tools_by_raw_type(telemetry) -> dict[str, Any]:
    tools = {}
    for span in telemetry.named("execute_tool"):
        raw = span.attributes["azure.ai.agents.tool.type"]
        assert raw not in tools, raw
        tools[raw] = span
    return tools


def test_every_service_tool_type_gets_a_typed_span(emulator, instrument):
    telemetry = instrument(capture_content=True)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    run = agents_run(client, agent_id, thread_id, "all_tools")
    assert run.status == "completed"
    tools = _tools_by_raw_type(telemetry)
    assert set(tools) == set(EXPECTED)
    [step] = [s for s in telemetry.named("chat ") if s.attributes["azure.ai.agents.run_step.type"] == "tool_calls"]
    call_ids = set()
    for raw, span in tools.items():
        name, semconv_type = EXPECTED[raw]
        assert span.name == f"execute_tool {name}", raw
        assert span.attributes["gen_ai.tool.name"] == name
        assert span.attributes["gen_ai.tool.type"] == semconv_type, raw
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert span.parent.span_id == step.parent.span_id  # the step's sibling under the run
        assert span.attributes["azure.ai.agents.run_step.id"] == step.attributes["azure.ai.agents.run_step.id"]
        assert span.status.status_code is StatusCode.UNSET
        call_ids.add(span.attributes["gen_ai.tool.call.id"])
    assert len(call_ids) == len(EXPECTED)
    assert tools["mcp"].attributes["azure.ai.agents.mcp.server_label"] == "docs"
    assert "azure.ai.agents.mcp.server_label" not in tools["openapi"].attributes
    # Captured content is JSON, also where the SDK hands back nested models.
    outputs = json.loads(tools["code_interpreter"].attributes["gen_ai.tool.call.result"])
    assert outputs == [{"type": "logs", "logs": "4\n"}]
    assert json.loads(tools["connected_agent"].attributes["gen_ai.tool.call.arguments"]) == {"query": "MSFT"}
    # A connected agent's call names its sub-run: agent, thread and run.
    connected = tools["connected_agent"].attributes
    assert connected["azure.ai.agents.connected_agent.run.id"] == "run_connectedemulated0001"
    assert connected["azure.ai.agents.connected_agent.thread.id"] == "thread_connectedemulated01"
    assert connected["azure.ai.agents.connected_agent.agent.id"] == "asst_connectedemulated001"
    assert tools["bing_grounding"].attributes["gen_ai.tool.call.arguments"].startswith("https://api.bing")


def test_streamed_tool_calls_give_the_same_tool_spans(emulator, instrument):
    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "all_tools")
    polled = {raw: (s.name, dict(s.attributes)) for raw, s in _tools_by_raw_type(telemetry).items()}
    telemetry.exporter.clear()
    with client.runs.stream(thread_id=thread_id, agent_id=agent_id, metadata=metadata("all_tools")) as stream:
        stream.until_done()
    streamed = {raw: (s.name, dict(s.attributes)) for raw, s in _tools_by_raw_type(telemetry).items()}
    for attributes in [a for _n, a in polled.values()] + [a for _n, a in streamed.values()]:
        del attributes["gen_ai.tool.call.id"]  # per run
        del attributes["azure.ai.agents.run_step.id"]
    assert streamed == polled


def _rewrite_required_action(action_type: str, call_type: str):
    """A response hook: the service asks for ``action_type`` (tool calls under the key of that name)."""

    def hook(method: str, kind: str, payload: Any) -> Any:
        if kind == "run" and isinstance(payload, dict) and payload.get("status") == "requires_action":
            calls = payload["required_action"]["submit_tool_outputs"]["tool_calls"]
            payload["required_action"] = {
                "type": action_type,
                action_type: {
                    "tool_calls": [
                        {"id": c["id"], "type": call_type, "name": "search", "arguments": "{}", "server_label": "docs"}
                        for c in calls
                    ]
                },
            }
        return payload

    return hook


@pytest.mark.parametrize(
    "action_type, call_type", [("submit_tool_approval", "mcp"), ("negotiate_with_the_service", "unheard_of")]
)
def test_other_required_actions_are_recorded_and_never_break(emulator, instrument, action_type, call_type):
    from azure.ai.agents.models import ToolOutput

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    emulator.service.response_hook = _rewrite_required_action(action_type, call_type)
    try:
        run = client.runs.create(thread_id=thread_id, agent_id=agent_id, metadata=metadata("function_call"))
        while run.status in ("queued", "in_progress", "requires_action"):
            if run.status == "requires_action":
                calls = run["required_action"][action_type]["tool_calls"]
                approvals = [ToolOutput(tool_call_id=c["id"], output="approved") for c in calls]
                run = client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run.id, tool_outputs=approvals)
            else:
                run = client.runs.get(thread_id=thread_id, run_id=run.id)
    finally:
        emulator.service.response_hook = None
    assert run.status == "completed"
    [run_span] = telemetry.run_spans()
    assert run_span.attributes["azure.ai.agents.run.status"] == "completed"
    [required] = [e for e in run_span.events if e.attributes["azure.ai.agents.run.status"] == "requires_action"]
    assert required.attributes["azure.ai.agents.run.required_action.type"] == action_type
    assert required.attributes["azure.ai.agents.run.required_tool_calls"] == 1
    # The step the service ran is still traced once, as its step's sibling (carrying the step's id).
    [tool] = telemetry.named("execute_tool")
    step_ids = {s.attributes["azure.ai.agents.run_step.id"] for s in telemetry.named("chat ")}
    assert tool.parent.span_id == run_span.context.span_id and tool.attributes["azure.ai.agents.run_step.id"] in step_ids
