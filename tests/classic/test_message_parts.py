"""Classic runs: an image given by URL or by uploaded file is recorded in the conventions' part types (``uri`` /
``file``), not as a text part holding JSON; function tool results are objects in the recorded messages."""

from __future__ import annotations

import json

from azure_ai_agents_emulator import agents_client
from tests.helpers import agents_run, agents_setup


def test_a_posted_image_url_and_image_file_are_uri_and_file_parts(emulator, instrument):
    from azure.ai.agents.models import (
        MessageImageFileParam,
        MessageImageUrlParam,
        MessageInputImageFileBlock,
        MessageInputImageUrlBlock,
        MessageInputTextBlock,
    )

    telemetry = instrument(capture_content=True)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    client.messages.create(
        thread_id=thread_id,
        role="user",
        content=[
            MessageInputTextBlock(text="What is in this picture?"),
            MessageInputImageUrlBlock(image_url=MessageImageUrlParam(url="https://example.com/cat.png")),
            MessageInputImageFileBlock(image_file=MessageImageFileParam(file_id="assistant-img1")),
        ],
    )
    agents_run(client, agent_id, thread_id, "message")

    (run,) = telemetry.run_spans()
    messages = json.loads(run.attributes["gen_ai.input.messages"])
    posted = next(m for m in messages if any(p["type"] == "uri" for p in m["parts"]))
    assert posted == {
        "role": "user",
        "parts": [
            {"type": "text", "content": "What is in this picture?"},
            {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
            {"type": "file", "modality": "image", "file_id": "assistant-img1"},
        ],
    }
    assert not any("image_url" in p.get("content", "") for m in messages for p in m["parts"] if p["type"] == "text")


def test_function_results_are_objects_in_recorded_messages(emulator, instrument):
    telemetry = instrument(capture_content=True)
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "function_call")

    responses = [
        part
        for span in telemetry.spans
        for key in ("gen_ai.input.messages", "gen_ai.output.messages")
        if key in span.attributes
        for message in json.loads(span.attributes[key])
        for part in message["parts"]
        if part["type"] in ("tool_call", "tool_call_response")
    ]
    assert responses, "no tool call was recorded"
    for part in responses:
        value = part.get("arguments", part.get("response"))
        assert isinstance(value, dict), part
    (tool,) = telemetry.named("execute_tool")
    assert isinstance(json.loads(tool.attributes["gen_ai.tool.call.arguments"]), dict)
    assert isinstance(json.loads(tool.attributes["gen_ai.tool.call.result"]), dict)
