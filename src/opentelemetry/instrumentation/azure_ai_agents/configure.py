"""One call to get agent-run traces out of an application: providers, exporters and the instrumentation.

    from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry

    telemetry = configure_telemetry()                       # exporters picked from the environment
    telemetry = configure_telemetry("otlp", service_name="trip-planner")
    telemetry = configure_telemetry(["azure_monitor", "agent_tree"], capture_content=True)
    ...
    telemetry.shutdown()                                    # or: with configure_telemetry(...) as telemetry:

Exporters are the OpenTelemetry SDK's: a name is an ``opentelemetry_traces_exporter`` entry point, resolved and
loaded by the SDK's own configuration code (``opentelemetry.sdk._configuration``, what ``opentelemetry-instrument``
uses), and built without arguments so that each reads its standard environment (``OTEL_EXPORTER_OTLP_*``,
``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_TRACES_SAMPLER``, ``APPLICATIONINSIGHTS_CONNECTION_STRING``,
``NEXUS_*``...). What is ours here: choosing names when none is given, the ``azure_monitor`` and ``tree`` short
names, the terminal tree (``agent_tree``, printed as each run ends), and the instrumentation options.

* ``nexus``: ``NEXUS_API_KEY``, ``NEXUS_ENDPOINT``, ``NEXUS_AGENT_ID`` (extra ``[nexus]``);
* ``azure_monitor`` (entry point ``azure_monitor_opentelemetry_exporter``): ``APPLICATIONINSIGHTS_CONNECTION_STRING``
  (extra ``[azure-monitor]``);
* ``otlp`` (``otlp_proto_http`` / ``otlp_proto_grpc`` force the protocol): ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``
  chooses, http/protobuf when unset as the specification says (extra ``[otlp]``);
* ``console``: the SDK's ``ConsoleSpanExporter``; ``agent_tree``: a tree per run on stdout.

With ``exporters=None`` the names come from ``OTEL_TRACES_EXPORTER``; when that is unset, from what is configured:
``NEXUS_API_KEY`` -> ``nexus``, ``APPLICATIONINSIGHTS_CONNECTION_STRING`` -> ``azure_monitor``,
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` -> ``otlp``; with nothing configured, ``agent_tree``.

Metrics follow ``OTEL_METRICS_EXPORTER`` (``none`` means none); when it is unset, the chosen trace exporters that
also export metrics (OTLP, Azure Monitor) get them.

The SDKs can be instrumented once: a second ``configure_telemetry()`` that would instrument them again raises
(shut the first handle down first, or pass ``instrument=False``).
"""

from __future__ import annotations

import atexit
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
#: The documented exporter names.
EXPORTER_NAMES = ("nexus", "azure_monitor", "otlp", "console", "agent_tree")
#: Our short names for entry points.
_ALIASES = {"azure_monitor": "azure_monitor_opentelemetry_exporter", "tree": "agent_tree"}
#: Extras that install an entry point's distribution.
_EXTRAS = {
    "nexus": "nexus",
    "azure_monitor_opentelemetry_exporter": "azure-monitor",
    "otlp_proto_http": "otlp",
    "otlp_proto_grpc": "otlp",
}
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
    """The exporter names ``configure_telemetry(exporters)`` would use, as given (before entry point lookup).

    ``None`` reads ``OTEL_TRACES_EXPORTER``, else detects what the environment configures, else
    ``["agent_tree"]``. ``"none"`` (alone) means no exporter. Duplicates are dropped.
    """
    if exporters is None:
        raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
        names = _split(raw) if raw else _detected()
    else:
        names = _split(exporters)
    if names == ["none"]:
        return []
    if "none" in names:
        raise ValueError("exporter 'none' cannot be combined with other exporters")
    unique: list[str] = []
    for name in names:
        if name not in unique and _ALIASES.get(name, name) not in [_ALIASES.get(u, u) for u in unique]:
            unique.append(name)
    return unique


def _entry_point_name(name: str, signal: str) -> str:
    """The SDK's own resolution (``otlp`` -> ``otlp_proto_grpc`` / ``otlp_proto_http`` by protocol variables),
    except that an unset protocol means http/protobuf, as the specification and the other SDKs say."""
    from opentelemetry.sdk._configuration import _get_exporter_entry_point

    name = _ALIASES.get(name, name)
    protocol_env = (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if name == "otlp" and not any(os.environ.get(env, "").strip() for env in protocol_env):
        return "otlp_proto_http"
    try:
        return str(_get_exporter_entry_point(name, signal))  # type: ignore[arg-type]
    except RuntimeError as error:  # an unsupported OTEL_EXPORTER_OTLP_*PROTOCOL
        raise ValueError(
            f"{error} (OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL)"
        ) from None


def _load(names: Sequence[str], signal: str) -> dict[str, type]:
    """Entry point classes by name, through the SDK's loader; clear errors for unknown or uninstalled ones."""
    from opentelemetry.sdk._configuration import _import_exporters

    loaded: dict[str, type] = {}
    for name in names:
        try:
            traces, metrics, _ = _import_exporters(
                [name] if signal == "traces" else [], [name] if signal == "metrics" else [], []
            )
        except ImportError as error:
            hint = f"pip install '{PACKAGE}[{_EXTRAS.get(name, 'all')}]'"
            raise ImportError(
                f"The {name!r} exporter is not installed ({error}). Install it with: {hint}", name=error.name
            ) from error
        except RuntimeError:
            known = ", ".join(EXPORTER_NAMES)
            raise ValueError(
                f"unknown exporter {name!r} ({signal}): use one of {known}, 'none', or an "
                f"opentelemetry_{signal}_exporter entry point name"
            ) from None
        loaded.update(traces or metrics)
    return loaded


def _metric_names(trace_entry_points: Sequence[str]) -> list[str]:
    """``OTEL_METRICS_EXPORTER`` when set (``none``: no metrics); else the trace exporters that have metrics."""
    raw = os.environ.get("OTEL_METRICS_EXPORTER", "").strip()
    if raw:
        names = _split(raw)
        return [] if names == ["none"] else [_entry_point_name(n, "metrics") for n in names]
    with_metrics = ("otlp_proto_http", "otlp_proto_grpc", "azure_monitor_opentelemetry_exporter")
    return [
        _entry_point_name(n, "metrics") if n.startswith("otlp") else n for n in trace_entry_points if n in with_metrics
    ]


def _check_required(entry_point: str, options: Mapping[str, Any]) -> None:
    """Configuration without which an exporter would only drop spans: say so now, not at the first export."""
    env = os.environ
    if entry_point == "nexus" and not options.get("api_key") and not env.get("NEXUS_API_KEY", "").strip():
        raise ValueError(
            "the 'nexus' exporter needs an API key: set NEXUS_API_KEY or pass "
            "exporter_options={'nexus': {'api_key': 'nxs_...'}}"
        )
    if (
        entry_point == "azure_monitor_opentelemetry_exporter"
        and not options.get("connection_string")
        and not env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    ):
        raise ValueError(
            "the 'azure_monitor' exporter needs a connection string: set APPLICATIONINSIGHTS_CONNECTION_STRING or "
            "pass exporter_options={'azure_monitor': {'connection_string': ...}}"
        )


# ---- the handle ------------------------------------------------------------------------------------------
@dataclass
class TelemetryHandle:
    """What :func:`configure_telemetry` set up. ``shutdown()`` (or leaving the ``with`` block) undoes it."""

    tracer_provider: "TracerProvider"
    meter_provider: Optional["MeterProvider"]
    exporters: tuple[str, ...]
    metric_exporters: tuple[str, ...] = ()  #: entry point names of the metric exporters (OTEL_METRICS_EXPORTER)
    is_global: bool = False  #: whether these providers were installed as the global ones
    instrumented: bool = False  #: whether this call instrumented the SDKs
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
#: What installs the OpenTelemetry SDK, which this package does not depend on (the instrumentation needs only the
#: API); every exporter extra brings it.
SDK_HINT = f'pip install opentelemetry-sdk  (or an exporter extra, e.g. pip install "{PACKAGE}[otlp]")'


def _require_sdk() -> None:
    """Raises an ImportError naming the ``pip install`` that fixes it when the OpenTelemetry SDK is missing."""
    try:
        import opentelemetry.sdk.metrics  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"configure_telemetry() needs the OpenTelemetry SDK, which {PACKAGE} does not install by itself "
            f"({error}). Install it with: {SDK_HINT}",
            name=error.name,
        ) from error


def _resource(service_name: Optional[str]) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create({SERVICE_NAME: service_name} if service_name else {})
    current = str(resource.attributes.get(SERVICE_NAME) or "")
    if not current or current.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


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
        ImportError: the OpenTelemetry SDK or a chosen exporter is not installed (the message names the
            ``pip install``).
        ValueError: an unknown exporter name, an unsupported OTLP protocol, or a missing key / connection string.
        RuntimeError: the SDKs are already instrumented (by an earlier call or ``opentelemetry-instrument``).
    """
    _require_sdk()
    from . import AzureAgentInstrumentor

    if not instrument and instrument_kwargs:
        raise TypeError(f"instrument=False takes no instrumentation options: {', '.join(sorted(instrument_kwargs))}")
    if instrument and AzureAgentInstrumentor().is_instrumented_by_opentelemetry:
        raise RuntimeError(
            "configure_telemetry: the Azure AI Agents SDKs are already instrumented (by an earlier "
            "configure_telemetry() whose handle is still open, or by opentelemetry-instrument), so this call's "
            "exporters would receive no agent spans. Shut the earlier handle down first, configure the exporters "
            "there (OTEL_TRACES_EXPORTER for opentelemetry-instrument), or pass instrument=False."
        )
    names = resolve_exporter_names(exporters)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    entry_points = {name: _entry_point_name(name, "traces") for name in names}
    options = {_ALIASES.get(k, k): dict(v) for k, v in (exporter_options or {}).items()}
    unknown = set(options) - {_ALIASES.get(n, n) for n in [*EXPORTER_NAMES, *names]}
    if unknown:
        raise ValueError(f"exporter_options for unknown exporter(s): {', '.join(sorted(unknown))}")

    def options_for(entry_point: str, name: str) -> dict[str, Any]:
        return dict(options.get(_ALIASES.get(name, name), options.get(entry_point, {})))

    span_classes = _load(list(entry_points.values()), "traces")
    metric_names = _metric_names(list(entry_points.values()))
    metric_classes = _load(metric_names, "metrics")
    for name, entry_point in entry_points.items():
        _check_required(entry_point, options_for(entry_point, name))

    resource = _resource(service_name)
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    span_exporters = []
    for name, entry_point in entry_points.items():
        kwargs = options_for(entry_point, name)
        if entry_point == "azure_monitor_opentelemetry_exporter":
            kwargs.setdefault("tracer_provider", tracer_provider)  # its resource (cloud role) comes from here
        exporter = span_classes[entry_point](**kwargs)
        span_exporters.append(exporter)
        # The terminal tree prints each run as it ends; everything else is sent in batches off the app's threads.
        if entry_point == "agent_tree":
            tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter, **_batch_options(entry_point)))
    readers = []
    for entry_point in metric_names:
        # Only Azure Monitor takes the same options for its metrics (connection string, storage...).
        kwargs = dict(options.get(entry_point, {})) if entry_point == "azure_monitor_opentelemetry_exporter" else {}
        metric: Any = metric_classes[entry_point](**kwargs)
        readers.append(metric if isinstance(metric, MetricReader) else PeriodicExportingMetricReader(metric))
    meter_provider = (
        MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False) if readers else None
    )

    is_global = False
    if set_global:
        from opentelemetry import metrics, trace

        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(tracer_provider)
            is_global = True
        else:
            _log.info("configure_telemetry: a global tracer provider is already set; leaving it in place")
        if meter_provider is not None and type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
            metrics.set_meter_provider(meter_provider)

    handle = TelemetryHandle(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        exporters=tuple(names),
        metric_exporters=tuple(metric_names),
        is_global=is_global,
        shutdown_timeout_s=shutdown_timeout_s,
        _span_exporters=tuple(span_exporters),
    )
    if instrument:
        instrumentor = AzureAgentInstrumentor()
        kwargs = dict(instrument_kwargs)
        kwargs.setdefault("tracer_provider", tracer_provider)
        if meter_provider is not None:
            kwargs.setdefault("meter_provider", meter_provider)
        instrumentor.instrument(capture_content=capture_content, **kwargs)
        handle.instrumented = instrumentor.is_instrumented_by_opentelemetry
        handle._instrumentor = instrumentor
    atexit.register(handle._at_exit)
    return handle


def _quietly(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception:  # noqa: BLE001
        pass


#: Nexus costs one request per span at 50-200 ms round trips: a burst of runs outlives the SDK's default queue
#: of 2,048 spans (888 runs ending at once lost 267 at 100 ms; none with 16,384, about 3 KB a span).
NEXUS_QUEUE_SIZE = 16_384


def _batch_options(entry_point: str) -> dict[str, Any]:
    """The batch processor's options where ours differ from the SDK's defaults; the ``OTEL_BSP_*`` variables,
    when set, win (the SDK reads them)."""
    if entry_point == "nexus" and not os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE"):
        return {"max_queue_size": NEXUS_QUEUE_SIZE}
    return {}
