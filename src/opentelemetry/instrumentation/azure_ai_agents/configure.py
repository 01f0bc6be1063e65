"""One call to get agent-run traces out of an application: providers, exporters and the instrumentation.

    from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry

    telemetry = configure_telemetry()                       # exporters picked from the environment
    telemetry = configure_telemetry("otlp", service_name="trip-planner")
    telemetry = configure_telemetry(["azure_monitor", "agent_tree"], capture_content=True)
    ...
    telemetry.shutdown()                                    # or: with configure_telemetry(...) as telemetry:

Exporter names (several may be combined; one ``BatchSpanProcessor`` each, ``agent_tree`` uses a
``SimpleSpanProcessor``), the environment that configures them, and the extra that installs them:

* ``nexus``: ``NEXUS_API_KEY``, ``NEXUS_ENDPOINT``, ``NEXUS_AGENT_ID`` (extra ``[nexus]``);
* ``azure_monitor`` (alias ``azure_monitor_opentelemetry_exporter``): ``APPLICATIONINSIGHTS_CONNECTION_STRING``
  (extra ``[azure-monitor]``); also exports the instrumentation's metrics;
* ``otlp`` (``otlp_proto_http`` / ``otlp_proto_grpc`` force the protocol): ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``,
  ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (default ``http/protobuf``), ``..._HEADERS``, ``..._TIMEOUT``,
  ``..._COMPRESSION`` (extra ``[otlp]``); also exports metrics;
* ``console``: the SDK's ``ConsoleSpanExporter`` (one JSON document per span, stdout);
* ``agent_tree``: a tree per run on stdout (``NO_COLOR``, ``FORCE_COLOR``, ``COLUMNS``).

With ``exporters=None`` the names come from ``OTEL_TRACES_EXPORTER`` (comma-separated); when that is unset,
from what is configured: ``NEXUS_API_KEY`` -> ``nexus``, ``APPLICATIONINSIGHTS_CONNECTION_STRING`` ->
``azure_monitor``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` -> ``otlp``; and
with nothing configured, ``agent_tree`` (a tree per run on stdout). Any other name is looked up among the
``opentelemetry_traces_exporter`` entry points.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "configure_telemetry",
    "TelemetryHandle",
    "resolve_exporter_names",
    "EXPORTER_NAMES",
    "DEFAULT_SERVICE_NAME",
]

_log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "azure-ai-agents-app"
PACKAGE = "opentelemetry-instrumentation-azure-ai-agents"
#: Canonical exporter names, in the order they are documented.
EXPORTER_NAMES = ("nexus", "azure_monitor", "otlp", "console", "agent_tree")
_ALIASES = {
    "azure_monitor_opentelemetry_exporter": "azure_monitor",
    "azure-monitor": "azure_monitor",
    "azuremonitor": "azure_monitor",
    "appinsights": "azure_monitor",
    "application_insights": "azure_monitor",
    "otlp_proto_http": "otlp",
    "otlp_proto_grpc": "otlp",
    "agent-tree": "agent_tree",
    "tree": "agent_tree",
}
#: Names that force an OTLP protocol (the SDK's own exporter names).
_FORCED_PROTOCOL = {"otlp_proto_http": "http/protobuf", "otlp_proto_grpc": "grpc"}
_EXTRAS = {"nexus": "nexus", "azure_monitor": "azure-monitor", "otlp": "otlp"}
_ENV_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
_OTLP_ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0


# ---- choosing exporters ----------------------------------------------------------------------------------
def _split(names: Union[str, Sequence[str]]) -> list[str]:
    items = names.split(",") if isinstance(names, str) else [n for item in names for n in str(item).split(",")]
    return [n.strip().lower() for n in items if n.strip()]


def _detected() -> list[str]:
    env = os.environ
    found = []
    if env.get("NEXUS_API_KEY", "").strip():
        found.append("nexus")
    if env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        found.append("azure_monitor")
    if any(env.get(name, "").strip() for name in _OTLP_ENDPOINT_ENV):
        found.append("otlp")
    return found or ["agent_tree"]


def resolve_exporter_names(exporters: Union[str, Sequence[str], None] = None) -> list[str]:
    """The exporter names ``configure_telemetry(exporters)`` would use, as given (aliases not yet resolved).

    ``None`` reads ``OTEL_TRACES_EXPORTER``, else detects what the environment configures, else
    ``["agent_tree"]``. ``"none"`` (alone) means no exporter. Duplicates are dropped.
    """
    if exporters is None:
        raw = os.environ.get(_ENV_TRACES_EXPORTER, "").strip()
        names = _split(raw) if raw else _detected()
    else:
        names = _split(exporters)
    if names == ["none"]:
        return []
    if "none" in names:
        raise ValueError("exporter 'none' cannot be combined with other exporters")
    unique: list[str] = []
    seen: set[tuple[str, Optional[str]]] = set()
    for name in names:
        key = (_ALIASES.get(name, name), _FORCED_PROTOCOL.get(name))
        if key not in seen:
            seen.add(key)
            unique.append(name)
    return unique


# ---- optional dependencies -------------------------------------------------------------------------------
def _missing(exporter: str, what: str, error: ImportError) -> ImportError:
    extra = _EXTRAS.get(exporter)
    hint = f"pip install '{PACKAGE}[{extra}]'" if extra else f"pip install '{PACKAGE}[all]'"
    message = (
        f"The {exporter!r} exporter needs {what}, which is not installed ({error}). Install it with: {hint}"
        if exporter
        else f"configure_telemetry needs {what}, which is not installed ({error}). Install it with: {hint}"
    )
    exc = ImportError(message, name=getattr(error, "name", None))
    exc.__cause__ = error
    return exc


def _import(exporter: str, module: str, attribute: str, what: str) -> Any:
    import importlib

    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as error:
        raise _missing(exporter, what, error) from error


# ---- exporter factories ----------------------------------------------------------------------------------
@dataclass
class _Built:
    name: str
    span_exporter: Any
    simple: bool = False
    metric_exporter: Any = None


def _otlp_protocol(signal: str, forced: Optional[str]) -> str:
    protocol = (
        forced
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip().lower()
    if protocol not in ("http/protobuf", "grpc"):
        raise ValueError(
            f"unsupported OTLP protocol {protocol!r} for {signal}: use 'http/protobuf' or 'grpc' "
            "(OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)"
        )
    return protocol


def _build_otlp(options: Mapping[str, Any], forced: Optional[str], tracer_provider: Any) -> _Built:
    modules = {
        "http/protobuf": ("opentelemetry.exporter.otlp.proto.http", "opentelemetry-exporter-otlp-proto-http"),
        "grpc": ("opentelemetry.exporter.otlp.proto.grpc", "opentelemetry-exporter-otlp-proto-grpc"),
    }
    trace_module, trace_dist = modules[_otlp_protocol("traces", forced)]
    span_cls = _import("otlp", trace_module + ".trace_exporter", "OTLPSpanExporter", trace_dist)
    metric_module, metric_dist = modules[_otlp_protocol("metrics", forced)]
    metric_cls = _import("otlp", metric_module + ".metric_exporter", "OTLPMetricExporter", metric_dist)
    return _Built("otlp", span_cls(**options), metric_exporter=metric_cls())


def _build_azure_monitor(options: Mapping[str, Any], forced: Optional[str], tracer_provider: Any) -> _Built:
    what = "azure-monitor-opentelemetry-exporter"
    module = "azure.monitor.opentelemetry.exporter"
    span_cls = _import("azure_monitor", module, "AzureMonitorTraceExporter", what)
    metric_cls = _import("azure_monitor", module, "AzureMonitorMetricExporter", what)
    kwargs = dict(options)
    if not kwargs.get("connection_string") and not os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip():
        raise ValueError(
            "the 'azure_monitor' exporter needs a connection string: set APPLICATIONINSIGHTS_CONNECTION_STRING or pass "
            "exporter_options={'azure_monitor': {'connection_string': ...}}"
        )
    # The exporter reads the resource (cloud role) from this provider; by default it asks the global one.
    kwargs.setdefault("tracer_provider", tracer_provider)
    metric_kwargs = {k: v for k, v in kwargs.items() if k != "tracer_provider"}
    return _Built("azure_monitor", span_cls(**kwargs), metric_exporter=metric_cls(**metric_kwargs))


def _build_nexus(options: Mapping[str, Any], forced: Optional[str], tracer_provider: Any) -> _Built:
    _import("nexus", "urllib3", "PoolManager", "urllib3")  # the exporter would only warn and drop everything
    cls = _import(
        "nexus", "opentelemetry.exporter.nexus", "NexusSpanExporter", "urllib3"
    )
    if not options.get("api_key") and not os.environ.get("NEXUS_API_KEY", "").strip():
        raise ValueError(
            "the 'nexus' exporter needs an API key: set NEXUS_API_KEY or pass "
            "exporter_options={'nexus': {'api_key': 'nxs_...'}}"
        )
    return _Built("nexus", cls(**options))


def _build_console(options: Mapping[str, Any], forced: Optional[str], tracer_provider: Any) -> _Built:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return _Built("console", ConsoleSpanExporter(**options))


def _build_tree(options: Mapping[str, Any], forced: Optional[str], tracer_provider: Any) -> _Built:
    from .exporters.tree import RunTreeSpanExporter

    return _Built("agent_tree", RunTreeSpanExporter(**options), simple=True)


_FACTORIES: dict[str, Callable[[Mapping[str, Any], Optional[str], Any], _Built]] = {
    "nexus": _build_nexus,
    "azure_monitor": _build_azure_monitor,
    "otlp": _build_otlp,
    "console": _build_console,
    "agent_tree": _build_tree,
}


def _build_entry_point(name: str, options: Mapping[str, Any]) -> _Built:
    from opentelemetry.util._importlib_metadata import entry_points

    for entry_point in entry_points(group="opentelemetry_traces_exporter", name=name):
        return _Built(name, entry_point.load()(**options))
    known = ", ".join(EXPORTER_NAMES + tuple(sorted(_ALIASES)))
    raise ValueError(f"unknown exporter {name!r}: use one of {known}, 'none', or an opentelemetry_traces_exporter name")


# ---- the handle ------------------------------------------------------------------------------------------
@dataclass
class TelemetryHandle:
    """What :func:`configure_telemetry` set up. ``shutdown()`` (or leaving the ``with`` block) undoes it."""

    tracer_provider: "TracerProvider"
    meter_provider: Optional["MeterProvider"]
    exporters: tuple[str, ...]
    is_global: bool = False  #: whether these providers were installed as the global ones
    instrumented: bool = False  #: whether this call instrumented the SDKs (False if they already were)
    shutdown_timeout_s: float = _DEFAULT_SHUTDOWN_TIMEOUT_S  #: used at interpreter exit
    _instrumentor: Any = field(default=None, repr=False)
    _span_exporters: tuple[Any, ...] = field(default=(), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def closed(self) -> bool:
        return self._closed

    def force_flush(self, timeout_s: float = _DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Exports what is buffered; True if every provider finished within ``timeout_s``."""
        millis = int(timeout_s * 1000)
        calls: list[Callable[[], Any]] = [lambda: self.tracer_provider.force_flush(millis)]
        if self.meter_provider is not None:
            meter_provider = self.meter_provider
            calls.append(lambda: meter_provider.force_flush(millis))
        return _run_bounded(calls, time.monotonic() + timeout_s, "force_flush")

    def shutdown(self, timeout_s: float = _DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
        """Uninstruments, then flushes and shuts the providers down, waiting at most ``timeout_s`` in total.

        Never blocks much longer than ``timeout_s`` even if a backend is down or hangs: when time is up the
        exporters are told to stop (interrupting their retries) and whatever is still in flight is dropped
        in the background. Returns True when everything finished in time. Idempotent.
        """
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        atexit.unregister(self._at_exit)
        deadline = time.monotonic() + max(0.0, timeout_s)
        ok = True
        if self.instrumented and self._instrumentor is not None:
            try:
                self._instrumentor.uninstrument()  # ends open runs: their spans still get exported below
            except Exception:  # noqa: BLE001 - shutting down must not raise
                _log.exception("azure-ai-agents telemetry: uninstrument failed")
                ok = False
        calls: list[Callable[[], Any]] = [self.tracer_provider.shutdown]
        if self.meter_provider is not None:
            meter_provider = self.meter_provider
            calls.append(lambda: meter_provider.shutdown(timeout_millis=max(0.0, deadline - time.monotonic()) * 1000))
        if not _run_bounded(calls, deadline, "shutdown"):
            ok = False
            # Time is up: stop the exporters now so retry loops end instead of running on in the background.
            for exporter in self._span_exporters:
                threading.Thread(target=_quietly, args=(exporter.shutdown,), daemon=True).start()
        return ok

    def _at_exit(self) -> None:
        self.shutdown(self.shutdown_timeout_s)

    def __enter__(self) -> "TelemetryHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def _run_bounded(calls: Sequence[Callable[[], Any]], deadline: float, what: str) -> bool:
    """Runs ``calls`` concurrently on daemon threads, waiting until ``deadline``.

    True if all of them returned in time, without raising and without returning False.
    """
    outcomes: list[Any] = [None] * len(calls)
    workers = []

    def target(index: int, call: Callable[[], Any]) -> None:
        try:
            outcomes[index] = call() is not False
        except Exception:  # noqa: BLE001
            _log.exception("azure-ai-agents telemetry: %s failed", what)
            outcomes[index] = False

    for index, call in enumerate(calls):
        worker = threading.Thread(target=target, args=(index, call), name=f"azure-ai-agents-{what}", daemon=True)
        worker.start()
        workers.append(worker)
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    if any(worker.is_alive() for worker in workers):
        _log.warning("azure-ai-agents telemetry: %s did not finish in time; giving up on what is left", what)
        return False
    return all(outcomes)


# ---- configure_telemetry ---------------------------------------------------------------------------------
def _resource(service_name: Optional[str]) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create({SERVICE_NAME: service_name} if service_name else {})
    current = str(resource.attributes.get(SERVICE_NAME) or "")
    if not current or current.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _no_global_tracer_provider() -> bool:
    from opentelemetry import trace

    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _no_global_meter_provider() -> bool:
    from opentelemetry import metrics

    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - private name moved
        return type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    return isinstance(metrics.get_meter_provider(), _ProxyMeterProvider)


def configure_telemetry(
    exporters: Union[str, Sequence[str], None] = None,
    *,
    service_name: Optional[str] = None,
    capture_content: Optional[bool] = None,
    instrument: bool = True,
    set_global: bool = True,
    exporter_options: Optional[Mapping[str, Mapping[str, Any]]] = None,
    shutdown_timeout_s: float = _DEFAULT_SHUTDOWN_TIMEOUT_S,
    **instrument_kwargs: Any,
) -> TelemetryHandle:
    """Sets up tracing (and metrics) for Azure AI Agents runs in one call; returns a :class:`TelemetryHandle`.

    Args:
        exporters: exporter name(s) (``"otlp"``, ``"nexus,agent_tree"``, ``["azure_monitor", "console"]``);
            ``None`` reads ``OTEL_TRACES_EXPORTER``, else picks from the configured environment, else
            ``agent_tree``. ``"none"``: no exporter.
        service_name: ``service.name``; default ``OTEL_SERVICE_NAME`` (or ``OTEL_RESOURCE_ATTRIBUTES``), else
            ``azure-ai-agents-app``.
        capture_content: record prompts and tool arguments/results; ``None`` follows the environment.
        instrument: instrument the Azure AI Agents SDKs with the new providers (default True).
        set_global: also install the providers as the global ones, if none is installed yet (default True).
        exporter_options: constructor keyword arguments per exporter name, e.g.
            ``{"azure_monitor": {"connection_string": "...", "disable_offline_storage": True}}``.
        shutdown_timeout_s: how long the interpreter-exit shutdown may take.
        **instrument_kwargs: passed to ``AzureAgentInstrumentor().instrument()`` (``redact_content``,
            ``list_steps_on_completion``, ``max_open_runs``, ``run_idle_timeout``).

    Raises:
        ImportError: a chosen exporter's optional dependency is missing (the message names the extra).
        ValueError: an unknown exporter name, an unsupported OTLP protocol, or a missing connection string.
    """
    names = resolve_exporter_names(exporters)
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as error:
        first = next((n for n in (_ALIASES.get(n, n) for n in names) if n in _EXTRAS), "")
        raise _missing(first, "opentelemetry-sdk", error) from error

    options = {_ALIASES.get(k, k): v for k, v in (exporter_options or {}).items()}
    unknown_options = set(options) - set(EXPORTER_NAMES) - {_ALIASES.get(n, n) for n in names}
    if unknown_options:
        raise ValueError(f"exporter_options for unknown exporter(s): {', '.join(sorted(unknown_options))}")

    resource = _resource(service_name)
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    built: list[_Built] = []
    try:
        for name in names:
            canonical = _ALIASES.get(name, name)
            factory = _FACTORIES.get(canonical)
            kwargs = dict(options.get(canonical, {}))
            if factory is None:
                built.append(_build_entry_point(name, kwargs))
            else:
                built.append(factory(kwargs, _FORCED_PROTOCOL.get(name), tracer_provider))
    except BaseException:
        for item in built:  # do not leak sender threads of exporters already built
            _quietly(item.span_exporter.shutdown)
            if item.metric_exporter is not None:
                _quietly(functools.partial(item.metric_exporter.shutdown, timeout_millis=0))
        raise

    for item in built:
        processor = SimpleSpanProcessor if item.simple else BatchSpanProcessor
        tracer_provider.add_span_processor(processor(item.span_exporter))
    readers = [PeriodicExportingMetricReader(i.metric_exporter) for i in built if i.metric_exporter is not None]
    meter_provider = (
        MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False) if readers else None
    )

    is_global = False
    if set_global:
        from opentelemetry import metrics, trace

        if _no_global_tracer_provider():
            trace.set_tracer_provider(tracer_provider)
            is_global = True
        else:
            _log.info("configure_telemetry: a global tracer provider is already set; leaving it in place")
        if meter_provider is not None and _no_global_meter_provider():
            metrics.set_meter_provider(meter_provider)

    handle = TelemetryHandle(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        exporters=tuple(item.name for item in built),
        is_global=is_global,
        shutdown_timeout_s=shutdown_timeout_s,
        _span_exporters=tuple(item.span_exporter for item in built),
    )
    if instrument:
        from . import AzureAgentInstrumentor

        instrumentor = AzureAgentInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            _log.warning(
                "configure_telemetry: the Azure AI Agents SDKs are already instrumented (e.g. by "
                "opentelemetry-instrument); that instrumentation keeps its own providers"
            )
        else:
            kwargs = dict(instrument_kwargs)
            kwargs.setdefault("tracer_provider", tracer_provider)
            if meter_provider is not None:
                kwargs.setdefault("meter_provider", meter_provider)
            instrumentor.instrument(capture_content=capture_content, **kwargs)
            handle.instrumented = instrumentor.is_instrumented_by_opentelemetry
            handle._instrumentor = instrumentor
    elif instrument_kwargs:
        raise TypeError(f"instrument=False takes no instrumentation options: {', '.join(sorted(instrument_kwargs))}")
    atexit.register(handle._at_exit)
    return handle


def _quietly(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception:  # noqa: BLE001
        pass
