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

import os
from contextlib import ExitStack
from typing import Any

from agent_app import make_client, use_test_fakes, weather_run

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


def start_local_receiver(stack: ExitStack) -> Any:
    """A local OTLP receiver for the configured protocol; points OTEL_EXPORTER_OTLP_ENDPOINT at it."""
    use_test_fakes()
    from tests.fakes.otlp_server import OtlpGrpcReceiver, OtlpHttpReceiver

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
                attributes = span.attributes
                extra = attributes.get("azure.ai.agents.run.id") or attributes.get("gen_ai.tool.call.id") or ""
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
        try:
            with client:
                weather_run(client, emulated, "multi_function")
        finally:
            telemetry.shutdown()  # flushes spans and the last metrics before the receiver stops
        if receiver is not None:
            show(receiver)


if __name__ == "__main__":
    main()
