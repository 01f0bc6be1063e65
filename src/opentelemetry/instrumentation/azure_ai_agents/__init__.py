"""OpenTelemetry instrumentation for Azure AI Agent Service: one trace per agent run.

Usage::

    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

    AzureAgentInstrumentor().instrument()

or zero-code: ``OTEL_METRICS_EXPORTER=none opentelemetry-instrument python app.py`` (entry point
``azure_ai_agents``; name a metrics exporter, or none: the distro's default OTLP one waits for localhost:4317).
Works with ``azure-ai-agents`` 1.x and the legacy ``azure-ai-projects`` 1.0.0bX (classic runs), and with the new
Foundry agents of ``azure-ai-projects`` >= 2 (agent invocations on the Responses API), whichever is installed.
"""

from __future__ import annotations

import atexit
import logging
import os
from typing import Any, Collection, Optional

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.instrumentation.dependencies import (
    DependencyConflict,
    get_dependency_conflicts,
)
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from .classic.run_state import TrackerConfig
from .classic.tracker import RunTracker
from .core.content import ContentPolicy, RedactHook
from .core.conventions import SCHEMA_URL
from .core.metrics import RunMetrics
from .core.provider_hook import hook_provider
from .foundry.invocations import Invocations
from .package import _instruments, _instruments_any
from .patch import Installed, install
from .surfaces import RESPONSES_SURFACES, SURFACES
from .version import __version__

__all__ = ["AzureAgentInstrumentor", "RedactHook", "__version__"]

_log = logging.getLogger(__name__)

ENV_MAX_OPEN_RUNS = "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_MAX_OPEN_RUNS"
ENV_IDLE_TIMEOUT = "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_RUN_IDLE_TIMEOUT"
ENV_LIST_STEPS = "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_LIST_STEPS_ON_COMPLETION"
ENV_METADATA_KEYS = "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_METADATA_KEYS"
ENV_FETCH_TIMEOUT = "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_FETCH_TIMEOUT"
ENV_FOUNDRY_PROJECT_ID = "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_FOUNDRY_PROJECT_ID"


class AzureAgentInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the Azure AI Agents SDKs (both generations, sync and async).

    ``instrument()`` keyword arguments (all optional):

    * ``tracer_provider`` / ``meter_provider``: default to the global providers;
    * ``capture_content``: record prompts, tool arguments and results (default: from the environment, off);
    * ``redact_content``: ``(kind, text) -> text | None`` applied to captured content before it is recorded;
    * ``list_steps_on_completion``: list a finished run's steps to emit step and tool spans (default True);
    * ``max_open_runs`` / ``run_idle_timeout``: bounds of the open-run registry (5,000 runs / 1,800 s);
    * ``metadata_keys``: run / agent metadata keys recorded as ``azure.ai.agents.run.metadata.<key>`` (none by
      default: metadata can hold user data).
    * ``fetch_timeout``: seconds allowed to each request the instrumentation makes for itself, off the app's
      path (step listings, agent reads; default 5). ``TracerProvider.force_flush()`` waits for those still pending,
      and ``TracerProvider.shutdown()`` too (at most ``fetch_timeout``) before its span processors shut down.
    * ``foundry_project_id``: the Foundry project's Azure Resource Manager id, recorded as
      ``microsoft.foundry.project.id`` on new-agent invocations (the client cannot know it; default: none).
    """

    _tracker: Optional[RunTracker] = None
    _invocations: Optional[Invocations] = None
    _installed: list[Installed] = []
    _provider: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _check_dependency_conflicts(self) -> Optional[DependencyConflict]:
        # Either SDK generation is enough; BaseInstrumentor only knows "all of".
        return get_dependency_conflicts(_instruments, _instruments_any)

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(
            __name__, __version__, kwargs.get("tracer_provider"), schema_url=SCHEMA_URL
        )
        meter = otel_metrics.get_meter(
            __name__, __version__, kwargs.get("meter_provider"), schema_url=SCHEMA_URL
        )
        content = ContentPolicy.resolve(kwargs.get("capture_content"), kwargs.get("redact_content"))
        config = TrackerConfig(
            max_open_runs=int(_number_setting(kwargs.get("max_open_runs"), ENV_MAX_OPEN_RUNS, 5_000, minimum=1)),
            idle_timeout_s=_number_setting(kwargs.get("run_idle_timeout"), ENV_IDLE_TIMEOUT, 1800.0, minimum=0),
            list_steps_on_completion=_bool_setting(kwargs.get("list_steps_on_completion"), ENV_LIST_STEPS, True),
            metadata_keys=_keys_setting(kwargs.get("metadata_keys"), ENV_METADATA_KEYS),
            fetch_timeout_s=_number_setting(kwargs.get("fetch_timeout"), ENV_FETCH_TIMEOUT, 5.0, minimum=0.01),
        )
        metrics = RunMetrics(meter)
        tracker = RunTracker(tracer, content, config, metrics)
        self._provider = kwargs.get("tracer_provider") or trace.get_tracer_provider()
        hook_provider(self._provider, tracker.fetcher)
        installed = [i for i in (install(s, tracker) for s in SURFACES) if i is not None]
        # The new Foundry agents: their own tracker (agent invocations), same providers, content policy, bounds.
        project_id = kwargs.get("foundry_project_id") or os.environ.get(ENV_FOUNDRY_PROJECT_ID) or None
        invocations = Invocations(
            tracer, content, metrics, config.max_open_runs, config.idle_timeout_s, tracker.fetcher, project_id
        )
        # One fetcher for both generations: a flush first runs the work both generations' finalizers queued.
        tracker.fetcher.on_flush = _drain_both(tracker, invocations)
        installed += [i for i in (install(s, invocations) for s in RESPONSES_SURFACES) if i is not None]
        if not installed:
            _log.debug("azure-ai-agents instrumentation: no supported Azure AI Agents SDK found")
        self._tracker, self._invocations, self._installed = tracker, invocations, installed
        atexit.register(tracker.shutdown)
        atexit.register(invocations.shutdown)

    def _uninstrument(self, **kwargs: Any) -> None:
        for item in reversed(self._installed):
            item.remove()
        self._installed = []
        if self._tracker is not None:
            atexit.unregister(self._tracker.shutdown)
            self._tracker.shutdown()
            self._tracker = None
        if self._invocations is not None:
            atexit.unregister(self._invocations.shutdown)
            self._invocations.shutdown()
            self._invocations = None
        hook_provider(self._provider, None)
        self._provider = None


def _drain_both(tracker: RunTracker, invocations: Invocations) -> Any:
    def drain() -> None:
        tracker.registry.drain_deferred()
        invocations.registry.drain_deferred()

    return drain


def _number_setting(value: Any, env: str, default: float, minimum: float) -> float:
    if value is None:
        value = os.environ.get(env)
    try:
        return max(minimum, float(value)) if value is not None else default
    except (TypeError, ValueError):
        _log.warning("%s must be a number; using %s", env, default)
        return default


def _keys_setting(value: Any, env: str) -> tuple[str, ...]:
    """Metadata keys from a list argument or a comma-separated variable; none by default."""
    if value is None:
        value = os.environ.get(env, "")
    if isinstance(value, str):
        value = value.split(",")
    try:
        return tuple(dict.fromkeys(k.strip() for k in value if isinstance(k, str) and k.strip()))
    except TypeError:
        _log.warning("%s must be a list of metadata keys; recording none", env)
        return ()


def _bool_setting(value: Any, env: str, default: bool) -> bool:
    if value is None:
        raw = os.environ.get(env)
        return default if raw is None else raw.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)
