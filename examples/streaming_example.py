"""Streaming: a run streamed with an event handler; the handler answers the function call itself.

    python examples/streaming_example.py

The run span ends when the stream ends; step and tool spans come from the stream's own events, and the
time to the first event is recorded as gen_ai.response.time_to_first_chunk.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any

from agent_app import get_weather, make_client, model
from azure.ai.agents.models import AgentEventHandler, FunctionTool, RunStep, ThreadRun, ToolOutput

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


class Handler(AgentEventHandler):
    """Prints the events the app cares about and answers requires_action by streaming the tool outputs."""

    def __init__(self, client: Any, functions: FunctionTool) -> None:
        super().__init__()
        self.client, self.functions = client, functions

    def on_thread_run(self, run: ThreadRun) -> None:
        print(f"  run {run.status}")
        if run.status == "requires_action":
            calls = run.required_action.submit_tool_outputs.tool_calls
            outputs = [ToolOutput(tool_call_id=c.id, output=self.functions.execute(c)) for c in calls]
            self.client.runs.submit_tool_outputs_stream(
                thread_id=run.thread_id, run_id=run.id, tool_outputs=outputs, event_handler=self
            )

    def on_run_step(self, step: RunStep) -> None:
        print(f"  step {step.type} {step.status}")


def main() -> None:
    with configure_telemetry(service_name="streaming-example"), ExitStack() as stack:
        client, emulated = make_client(stack)
        functions = FunctionTool({get_weather})
        with client:
            agent = client.create_agent(
                model=model(),
                name="weather-agent",
                instructions="Answer with the weather.",
                tools=functions.definitions,
            )
            thread = client.threads.create()
            client.messages.create(thread_id=thread.id, role="user", content="What's the weather in Seattle?")
            metadata = {"scenario": "function_call"} if emulated else None
            with client.runs.stream(
                thread_id=thread.id, agent_id=agent.id, metadata=metadata, event_handler=Handler(client, functions)
            ) as stream:
                stream.until_done()
            client.delete_agent(agent.id)
    print(json.dumps({"example": "streaming", "emulated": emulated}))


if __name__ == "__main__":
    main()
