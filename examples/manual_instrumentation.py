"""Manual instrumentation: your own providers and processors, then AzureAgentInstrumentor().instrument().

    python examples/manual_instrumentation.py

This is the lower-level path ``configure_telemetry()`` wraps: build a TracerProvider and a MeterProvider with the
exporters you want, instrument, run, shut down. Here spans print as trees and metrics print once at exit.
"""

from __future__ import annotations

from contextlib import ExitStack

from agent_app import make_client, run_all
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
from opentelemetry.instrumentation.azure_ai_agents.exporters import RunTreeSpanExporter


def main() -> None:
    resource = Resource.create({"service.name": "manual-instrumentation-example"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(RunTreeSpanExporter()))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[metrics])

    instrumentor = AzureAgentInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, capture_content=False)
    try:
        tracer = tracer_provider.get_tracer("example-app")
        with ExitStack() as stack, tracer.start_as_current_span("nightly batch"):
            client, emulated = make_client(stack)
            run_all(client, emulated)  # the three run spans are children of "nightly batch"
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()

    print("Metrics:")
    data = metrics.get_metrics_data()
    for scope_metrics in data.resource_metrics[0].scope_metrics:
        for metric in scope_metrics.metrics:
            for point in metric.data.data_points:
                labels = {k: v for k, v in point.attributes.items() if k != "gen_ai.provider.name"}
                print(f"  {metric.name} [{metric.unit}] count={point.count} sum={point.sum:.4g} {labels}")


if __name__ == "__main__":
    main()
