"""Agent runs over OTLP (http/protobuf or gRPC) to any OpenTelemetry collector or backend.

    python examples/otlp_example.py
    OTEL_EXPORTER_OTLP_PROTOCOL=grpc python examples/otlp_example.py

* With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, spans and metrics go there,
  configured only by the standard OTEL_EXPORTER_OTLP_* variables (protocol, headers, compression, timeout).
* Without it, a local OTLP receiver (``emulator.otlp_server``) is started for the chosen protocol and the
  example prints the traces it decoded.
* With PROJECT_ENDPOINT set (plus MODEL_DEPLOYMENT_NAME) the app talks to real Azure with
  DefaultAzureCredential; otherwise to the bundled Agents emulator.

Needs the ``otlp`` extra: ``pip install 'opentelemetry-instrumentation-azure-ai-agents[otlp]'``.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from typing import Any, Optional

from azure.ai.agents import AgentsClient
from azure.ai.agents.models import FunctionTool, ToolOutput

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


def get_weather(city: str) -> str:
    """Returns the current weather for a city.

    :param city: The city name, e.g. Seattle.
    :return: The weather as JSON.
    """
    return json.dumps({"city": city, "temperature_c": 14, "sky": "light rain"})


def make_client(stack: ExitStack) -> tuple[AgentsClient, bool]:
    endpoint = os.environ.get("PROJECT_ENDPOINT")
    if endpoint:
        from azure.identity import DefaultAzureCredential

        return AgentsClient(endpoint=endpoint, credential=DefaultAzureCredential()), False
    from opentelemetry.instrumentation.azure_ai_agents.emulator import AgentsEmulator, agents_client

    emulator = stack.enter_context(AgentsEmulator())
    return agents_client(emulator), True


def weather_run(client: AgentsClient, model: str, scenario: Optional[str]) -> Any:
    functions = FunctionTool({get_weather})
    agent = client.create_agent(
        model=model, name="weather-agent", instructions="Answer with the weather.", tools=functions.definitions
    )
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="Weather in Seattle and Paris?")
    metadata = {"scenario": scenario} if scenario else None
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id, metadata=metadata)
    while run.status in ("queued", "in_progress", "requires_action"):
        if run.status == "requires_action":
            outputs = [
                ToolOutput(tool_call_id=call.id, output=functions.execute(call))
                for call in run.required_action.submit_tool_outputs.tool_calls
            ]
            run = client.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)
        else:
            run = client.runs.get(thread_id=thread.id, run_id=run.id)
    client.delete_agent(agent.id)
    return run


def start_local_receiver(stack: ExitStack) -> Any:
    """A local OTLP receiver for the configured protocol; points OTEL_EXPORTER_OTLP_ENDPOINT at it."""
    from opentelemetry.instrumentation.azure_ai_agents.emulator.otlp_server import OtlpGrpcReceiver, OtlpHttpReceiver

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    receiver = stack.enter_context(OtlpGrpcReceiver() if protocol == "grpc" else OtlpHttpReceiver())
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    print(f"Local OTLP/{receiver.transport} receiver on {receiver.endpoint}")
    return receiver


def show(receiver: Any) -> None:
    print(f"\nThe receiver decoded {len(receiver.spans)} spans and metrics {sorted(receiver.metric_names)}:")
    for trace_id, spans in receiver.traces().items():
        if not any(s.attributes.get("gen_ai.operation.name") for s in spans):
            continue  # HTTP-only traces (if an HTTP instrumentation is active)
        tree: dict[str, list[Any]] = {}
        ids = {s.span_id for s in spans}
        for span in sorted(spans, key=lambda s: s.start_time_unix_nano):
            tree.setdefault(span.parent_span_id if span.parent_span_id in ids else "", []).append(span)

        def walk(parent_id: str, depth: int, tree: dict[str, list[Any]] = tree) -> None:
            for span in tree.get(parent_id, []):
                extra = span.attributes.get("gen_ai.thread.run.id") or span.attributes.get("gen_ai.tool.call.id") or ""
                print(f"    {'  ' * depth}{span.name}  [{span.kind}] {extra}")
                walk(span.span_id, depth + 1)

        print(f"  trace {trace_id}")
        walk("", 0)


def main() -> None:
    with ExitStack() as stack:
        configured = any(os.environ.get(f"OTEL_EXPORTER_OTLP_{kind}ENDPOINT") for kind in ("", "TRACES_"))
        receiver = None if configured else start_local_receiver(stack)
        telemetry = configure_telemetry("otlp", service_name="otlp-example")
        client, emulated = make_client(stack)
        model = os.environ.get("MODEL_DEPLOYMENT_NAME", "gpt-4o")
        try:
            with client:
                weather_run(client, model, "multi_function" if emulated else None)
        finally:
            telemetry.shutdown()  # flushes spans and the last metrics before the receiver stops
        if receiver is not None:
            show(receiver)


if __name__ == "__main__":
    main()
