"""GenAI client metrics with the conventions' bucket boundaries (passed as explicit advisory boundaries):

* ``gen_ai.client.operation.duration`` (s): one per finished run (``gen_ai.operation.name=invoke_agent``, with
  ``error.type`` for runs that ended badly or whose driving call raised) and one per tool call
  (``execute_tool``, with ``gen_ai.tool.name`` / ``gen_ai.tool.type``);
* ``gen_ai.client.token.usage`` ({token}): a run's input and output tokens (``gen_ai.token.type``);
* ``gen_ai.client.operation.time_to_first_chunk`` (s): streamed runs, from the create call to the first event.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from opentelemetry.metrics import Meter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes

from . import attributes as attrs

#: gen_ai.client.operation.duration buckets (seconds), from the GenAI metric conventions.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
#: gen_ai.client.token.usage buckets ({token}), from the GenAI metric conventions.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


class RunMetrics:
    """Records one duration per finished run and per tool call, and the run's token usage."""

    def __init__(self, meter: Meter) -> None:
        self._duration = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._tokens = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Measures number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self._first_chunk = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of a streamed run",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    @staticmethod
    def _run_attributes(model: Optional[str]) -> dict[str, Any]:
        return attrs.without_none(
            {
                gen_ai.GEN_AI_OPERATION_NAME: attrs.INVOKE_AGENT,
                gen_ai.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_NAME,
                gen_ai.GEN_AI_REQUEST_MODEL: model,
            }
        )

    def record_time_to_first_chunk(self, seconds: float, model: Optional[str]) -> None:
        self._first_chunk.record(max(seconds, 0.0), self._run_attributes(model))

    def record_run(
        self, duration_s: float, model: Optional[str], error_type: Optional[str], usage: Mapping[str, Any]
    ) -> None:
        base = self._run_attributes(model)
        duration_attrs = dict(base)
        if error_type:
            duration_attrs[error_attributes.ERROR_TYPE] = error_type
        self._duration.record(max(duration_s, 0.0), duration_attrs)
        for token_type, key in (
            ("input", gen_ai.GEN_AI_USAGE_INPUT_TOKENS),
            ("output", gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS),
        ):
            value = usage.get(key)
            if isinstance(value, int):
                self._tokens.record(value, {**base, gen_ai.GEN_AI_TOKEN_TYPE: token_type})

    def record_tool(self, duration_s: float, tool_name: str, tool_type: str, error_type: Optional[str]) -> None:
        attributes = {
            gen_ai.GEN_AI_OPERATION_NAME: attrs.EXECUTE_TOOL,
            gen_ai.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_NAME,
            gen_ai.GEN_AI_TOOL_NAME: tool_name,
            gen_ai.GEN_AI_TOOL_TYPE: tool_type,
        }
        if error_type:
            attributes[error_attributes.ERROR_TYPE] = error_type
        self._duration.record(max(duration_s, 0.0), attributes)
