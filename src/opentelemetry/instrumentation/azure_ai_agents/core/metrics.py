"""GenAI client metrics with the conventions' bucket boundaries (passed as explicit advisory boundaries):

* ``gen_ai.client.operation.duration`` (s): one per finished run (``gen_ai.operation.name=invoke_agent``, with
  ``error.type`` for runs that ended badly or whose driving call raised) and one per tool call
  (``execute_tool``, with ``gen_ai.tool.name`` / ``gen_ai.tool.type``);
* ``gen_ai.client.token.usage`` ({token}): a run's input and output tokens (``gen_ai.token.type``);
* ``gen_ai.client.operation.time_to_first_chunk`` (s): streamed runs, from the create call to the first event;
* ``azure.ai.agents.run.queue_time`` / ``azure.ai.agents.run.tool_wait_time`` (s, our own; the duration buckets):
  where a classic run's time went, recorded with the run's duration (same runs, same attributes) when known.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from opentelemetry.metrics import Meter

from . import conventions as conv
from .attributes import without_none

#: Kept importable from here (older code and tests read them).
DURATION_BUCKETS = conv.DURATION_BUCKETS
TOKEN_BUCKETS = conv.TOKEN_BUCKETS


#: Models whose attribute sets are kept ready (an app uses a handful of models).
_MAX_MODELS = 64


class RunMetrics:
    """Records one duration per finished run and per tool call, and the run's token usage. The attribute sets of
    a run's records depend on its model only (and the error type): they are made once per model and reused."""

    def __init__(self, meter: Meter) -> None:
        self._by_model: dict[Optional[str], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
        self._duration = _seconds(meter, conv.METRIC_OPERATION_DURATION, "GenAI operation duration")
        self._tokens = meter.create_histogram(
            conv.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Measures number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(conv.TOKEN_BUCKETS),
        )
        self._first_chunk = _seconds(
            meter, conv.METRIC_TIME_TO_FIRST_CHUNK, "Time to receive the first chunk of a streamed run"
        )
        self._queue_time = _seconds(
            meter,
            conv.METRIC_RUN_QUEUE_TIME,
            "Time an agent run waited in the service's queue (created to started, service timestamps)",
        )
        self._tool_wait = _seconds(
            meter,
            conv.METRIC_RUN_TOOL_WAIT_TIME,
            "Time an agent run waited in requires_action for the app's tool outputs",
        )

    @staticmethod
    def _run_attributes(model: Optional[str]) -> dict[str, Any]:
        return without_none(
            {conv.OPERATION_NAME: conv.INVOKE_AGENT, conv.PROVIDER: conv.PROVIDER_NAME, conv.REQUEST_MODEL: model}
        )

    def record_time_to_first_chunk(self, seconds: float, model: Optional[str]) -> None:
        self._first_chunk.record(max(seconds, 0.0), self._run_attributes(model))

    def _model_attributes(self, model: Optional[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(run, input tokens, output tokens) attribute sets of ``model`` (never mutated once made)."""
        known = self._by_model.get(model)
        if known is None:
            base = self._run_attributes(model)
            known = (base, {**base, conv.TOKEN_TYPE: conv.TOKEN_INPUT}, {**base, conv.TOKEN_TYPE: conv.TOKEN_OUTPUT})
            if len(self._by_model) < _MAX_MODELS:
                self._by_model[model] = known
        return known

    def record_run_timings(
        self,
        queue_time_s: Optional[float],
        tool_wait_s: Optional[float],
        model: Optional[str],
        error_type: Optional[str],
    ) -> None:
        """Where one run's time went (each value only when known); recorded with the run's duration, with the
        same attributes, so that ratios of their sums are ratios over the same runs."""
        base = self._model_attributes(model)[0]
        attributes = {**base, conv.ERROR_TYPE: error_type} if error_type else base
        if queue_time_s is not None:
            self._queue_time.record(max(queue_time_s, 0.0), attributes)
        if tool_wait_s is not None:
            self._tool_wait.record(max(tool_wait_s, 0.0), attributes)

    def record_run(
        self, duration_s: float, model: Optional[str], error_type: Optional[str], usage: Mapping[str, Any]
    ) -> None:
        base, given, made = self._model_attributes(model)
        self._duration.record(max(duration_s, 0.0), {**base, conv.ERROR_TYPE: error_type} if error_type else base)
        value = usage.get(conv.USAGE_INPUT_TOKENS)
        if isinstance(value, int):
            self._tokens.record(value, given)
        value = usage.get(conv.USAGE_OUTPUT_TOKENS)
        if isinstance(value, int):
            self._tokens.record(value, made)

    def record_tool(self, duration_s: float, tool_name: str, tool_type: str, error_type: Optional[str]) -> None:
        attributes = {
            conv.OPERATION_NAME: conv.EXECUTE_TOOL,
            conv.PROVIDER: conv.PROVIDER_NAME,
            conv.TOOL_NAME: tool_name,
            conv.TOOL_TYPE: tool_type,
        }
        if error_type:
            attributes[conv.ERROR_TYPE] = error_type
        self._duration.record(max(duration_s, 0.0), attributes)


def _seconds(meter: Meter, name: str, description: str) -> Any:
    """A histogram of seconds with the conventions' duration buckets."""
    return meter.create_histogram(
        name, unit="s", description=description, explicit_bucket_boundaries_advisory=list(conv.DURATION_BUCKETS)
    )
