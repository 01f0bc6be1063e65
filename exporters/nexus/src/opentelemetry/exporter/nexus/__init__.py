"""OpenTelemetry span exporter for Nexus (Keylight Digital): one Nexus trace per agent run.

    from opentelemetry.exporter.nexus import NexusSpanExporter

Zero-code: ``OTEL_TRACES_EXPORTER=nexus`` (entry point ``opentelemetry_traces_exporter: nexus``).
"""

from .exporter import NexusSpanExporter
from .version import __version__

__all__ = ["NexusSpanExporter", "__version__"]
