"""What the app's telemetry configuration is: read from the environment the way the app would read it.

Two readers: ``configure_telemetry()``'s (the default; its own exporter resolution from ``configure``) and
``opentelemetry-instrument``'s (``--zero-code``: the SDK's resolution, the distro's defaults). Nothing here
sends anything; secrets are never kept in what this module returns (keys are reported as set / not set).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from .. import configure

_log = logging.getLogger(__name__)

#: Exporters that print locally: configured output, but not a destination an operator can search later.
LOCAL_OUTPUTS = frozenset({"console", "agent_tree"})
#: The variables that configure our instrumentation (see ``AzureAgentInstrumentor``).
INSTRUMENTATION_PREFIX = "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_"
METADATA_KEYS_ENV = INSTRUMENTATION_PREFIX + "METADATA_KEYS"
DISABLED_INSTRUMENTATIONS_ENV = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
NEXUS_DEFAULT_ENDPOINT = "https://nexus.keylightdigital.dev"
AZURE_DEFAULT_INGESTION = "https://dc.services.visualstudio.com"
#: Distributions reported with their versions: the agent SDKs first, then the telemetry stack.
AGENT_SDKS = ("azure-ai-agents", "azure-ai-projects", "openai")
TELEMETRY_PACKAGES = (
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-semantic-conventions",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-otlp-proto-grpc",
    "azure-monitor-opentelemetry-exporter",
    "azure-monitor-opentelemetry",
    "opentelemetry-exporter-nexus",
    "opentelemetry-distro",
    "azure-core-tracing-opentelemetry",
)


@dataclass
class Destination:
    """One configured trace exporter."""

    name: str  #: as configured (``otlp``, ``azure_monitor``, ...)
    entry_point: str  #: the ``opentelemetry_traces_exporter`` entry point it resolves to
    endpoint: Optional[str] = None  #: where it sends, when known
    settings: dict[str, Any] = field(default_factory=dict)  #: what configures it, secrets redacted
    problem: Optional[str] = None  #: why it cannot be built (not installed, missing key, ...)
    exporter_class: Any = None  #: the loaded class (not reported)

    @property
    def local(self) -> bool:
        return self.entry_point in LOCAL_OUTPUTS

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entry_point": self.entry_point,
            "endpoint": self.endpoint,
            "settings": self.settings,
            "problem": self.problem,
        }


@dataclass
class Configuration:
    """What the doctor found; ``problems`` make it fail, ``warnings`` lose runs or spans, ``notes`` inform."""

    reader: str  #: "configure_telemetry" or "opentelemetry-instrument"
    exporters_from: str  #: how the exporter names were chosen
    exporters: list[Destination] = field(default_factory=list)
    service_name: str = ""
    sampler: dict[str, Any] = field(default_factory=dict)
    content_capture: dict[str, Any] = field(default_factory=dict)
    metadata_keys: list[str] = field(default_factory=list)
    instrumentation_settings: dict[str, str] = field(default_factory=dict)
    metrics: str = ""
    agent_sdks: dict[str, Optional[str]] = field(default_factory=dict)
    packages: dict[str, Optional[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def destinations(self) -> list[Destination]:
        return [d for d in self.exporters if not d.local]

    @property
    def local_outputs(self) -> list[Destination]:
        return [d for d in self.exporters if d.local]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reader": self.reader,
            "exporters_from": self.exporters_from,
            "destinations": [d.to_dict() for d in self.destinations],
            "local_outputs": [d.name for d in self.local_outputs],
            "service_name": self.service_name,
            "sampler": self.sampler,
            "content_capture": self.content_capture,
            "metadata_keys": self.metadata_keys,
            "instrumentation_settings": self.instrumentation_settings,
            "metrics": self.metrics,
            "agent_sdks": self.agent_sdks,
            "packages": self.packages,
            "problems": self.problems,
            "warnings": self.warnings,
            "notes": self.notes,
        }


# ---- reading ---------------------------------------------------------------------------------------------
def read(zero_code: bool = False) -> Configuration:
    """The configuration the app would use: ``configure_telemetry()``'s, or ``opentelemetry-instrument``'s."""
    config = Configuration(reader="opentelemetry-instrument" if zero_code else "configure_telemetry", exporters_from="")
    names = _exporter_names(config, zero_code)
    for name in names:
        config.exporters.append(_destination(config, name, zero_code))
    config.service_name = _service_name()
    config.sampler = _sampler(config, zero_code)
    config.content_capture = _content_capture()
    config.metadata_keys = _metadata_keys()
    config.instrumentation_settings = {
        k: v for k, v in sorted(os.environ.items()) if k.startswith(INSTRUMENTATION_PREFIX)
    }
    config.metrics = _metrics(config, zero_code)
    config.agent_sdks = {name: _version(name) for name in AGENT_SDKS}
    config.packages = {name: _version(name) for name in TELEMETRY_PACKAGES}
    _check_instrumentation(config, zero_code)
    _check_neighbours(config)
    return config


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _exporter_names(config: Configuration, zero_code: bool) -> list[str]:
    raw = _env("OTEL_TRACES_EXPORTER")
    if zero_code:
        if raw:
            config.exporters_from = f"OTEL_TRACES_EXPORTER={raw}"
        elif _version("opentelemetry-distro"):
            raw = "otlp"
            config.exporters_from = "opentelemetry-distro's default; OTEL_TRACES_EXPORTER is not set"
        else:
            config.exporters_from = "OTEL_TRACES_EXPORTER is not set"
            config.problems.append(
                "opentelemetry-instrument exports no traces: set OTEL_TRACES_EXPORTER (and install "
                "opentelemetry-distro for zero-code setup)"
            )
            return []
        names = [n.strip() for n in raw.split(",") if n.strip()]
        return [] if [n.lower() for n in names] == ["none"] else names
    if raw:
        config.exporters_from = f"OTEL_TRACES_EXPORTER={raw}"
    else:
        config.exporters_from = "detected from the environment; OTEL_TRACES_EXPORTER is not set"
    try:
        names = configure.resolve_exporter_names(None)
    except ValueError as error:
        config.problems.append(f"OTEL_TRACES_EXPORTER: {error}")
        return []
    if not raw and names == ["agent_tree"]:
        config.exporters_from = "the default when nothing is configured"
    return names


def _entry_point(name: str, zero_code: bool) -> str:
    if not zero_code:
        return configure._entry_point_name(name, "traces")
    from opentelemetry.sdk._configuration import _get_exporter_entry_point

    try:
        return str(_get_exporter_entry_point(name, "traces"))  # type: ignore[arg-type]
    except RuntimeError as error:  # an unsupported OTEL_EXPORTER_OTLP_*PROTOCOL
        raise ValueError(f"{error} (OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)") from None


def _destination(config: Configuration, name: str, zero_code: bool) -> Destination:
    try:
        entry_point = _entry_point(name, zero_code)
    except ValueError as error:
        return Destination(name, name, problem=str(error))
    destination = Destination(name, entry_point)
    _describe(destination)
    try:
        destination.exporter_class = configure._load([entry_point], "traces")[entry_point]
    except (ImportError, ValueError) as error:
        destination.problem = str(error)
        if zero_code and name in ("azure_monitor", "tree"):
            destination.problem = (
                f"opentelemetry-instrument does not know {name!r} (a configure_telemetry() short name): use "
                f"{'azure_monitor_opentelemetry_exporter' if name == 'azure_monitor' else 'agent_tree'}"
            )
        return destination
    try:
        configure._check_required(entry_point, {})
    except ValueError as error:
        destination.problem = str(error)
    return destination


# ---- per exporter: endpoint and settings (redacted) ------------------------------------------------------
def _describe(destination: Destination) -> None:
    entry_point = destination.entry_point
    if entry_point in ("otlp_proto_http", "otlp_proto_grpc"):
        _describe_otlp(destination, grpc=entry_point == "otlp_proto_grpc")
    elif entry_point == "azure_monitor_opentelemetry_exporter":
        _describe_azure_monitor(destination)
    elif entry_point == "nexus":
        _describe_nexus(destination)


def _describe_otlp(destination: Destination, grpc: bool) -> None:
    traces, base = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), _env("OTEL_EXPORTER_OTLP_ENDPOINT")
    if grpc:
        destination.endpoint = traces or base or "http://localhost:4317"
    elif traces:
        destination.endpoint = traces
    else:
        destination.endpoint = (base.rstrip("/") if base else "http://localhost:4318") + "/v1/traces"
    headers = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or _env("OTEL_EXPORTER_OTLP_HEADERS")
    settings: dict[str, Any] = {
        "protocol": "grpc" if grpc else "http/protobuf",
        # Header values are often credentials: names only.
        "headers": sorted({h.split("=", 1)[0].strip() for h in headers.split(",") if h.strip()}),
    }
    for suffix in ("TIMEOUT", "COMPRESSION", "INSECURE", "CERTIFICATE"):
        value = _env(f"OTEL_EXPORTER_OTLP_TRACES_{suffix}") or _env(f"OTEL_EXPORTER_OTLP_{suffix}")
        if value:
            settings[suffix.lower()] = value
    if not (traces or base):
        settings["endpoint_from"] = "the default (no OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT)"
    destination.settings = settings


def parse_connection_string(value: str) -> dict[str, str]:
    """``Key=Value;...`` pairs of an Application Insights connection string, keys lower-cased."""
    pairs = (item.split("=", 1) for item in value.split(";") if "=" in item)
    return {k.strip().lower(): v.strip() for k, v in pairs}


def _describe_azure_monitor(destination: Destination) -> None:
    raw = _env("APPLICATIONINSIGHTS_CONNECTION_STRING")
    parts = parse_connection_string(raw)
    ingestion = parts.get("ingestionendpoint") or AZURE_DEFAULT_INGESTION
    destination.endpoint = ingestion.rstrip("/") + "/v2.1/track"
    key = parts.get("instrumentationkey", "")
    destination.settings = {
        "connection_string": "set" if raw else "not set",
        # The instrumentation key identifies the resource; its start is enough to tell two resources apart.
        "instrumentation_key": (key[:8] + "…") if key else None,
        "ingestion_endpoint_from": "the connection string" if parts.get("ingestionendpoint") else "the default",
    }
    if raw and not key:
        destination.settings["instrumentation_key"] = "missing from the connection string"


def _describe_nexus(destination: Destination) -> None:
    key = _env("NEXUS_API_KEY")
    endpoint = (_env("NEXUS_ENDPOINT") or NEXUS_DEFAULT_ENDPOINT).rstrip("/")
    destination.endpoint = endpoint
    shape = "nxs_ + 64 hex digits" if key.startswith("nxs_") and len(key) == 68 else "not the nxs_ + 64 hex shape"
    destination.settings = {
        "api_key": f"set ({shape})" if key else "not set",
        "agent_id": _env("NEXUS_AGENT_ID") or "each run's agent name",
    }
    if _env("NEXUS_EXPORT_ALL"):
        destination.settings["export_all"] = _env("NEXUS_EXPORT_ALL")


# ---- the rest of the configuration -----------------------------------------------------------------------
def _service_name() -> str:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    name = str(Resource.create().attributes.get(SERVICE_NAME) or "")
    # configure_telemetry() replaces the SDK's unknown_service default with its own.
    return configure.DEFAULT_SERVICE_NAME if not name or name.startswith("unknown_service") else name


def _sampler(config: Configuration, zero_code: bool) -> dict[str, Any]:
    """The sampler the app gets: a ``TracerProvider()`` builds it from ``OTEL_TRACES_SAMPLER[_ARG]`` (the SDK's
    built-in names); ``opentelemetry-instrument`` also loads ``opentelemetry_traces_sampler`` entry points."""
    from opentelemetry.sdk.trace import TracerProvider, sampling

    name, arg = _env("OTEL_TRACES_SAMPLER"), _env("OTEL_TRACES_SAMPLER_ARG")
    sampler: Any = None
    if zero_code and name and name.lower() not in sampling._KNOWN_SAMPLERS:
        from opentelemetry.sdk._configuration import _import_sampler

        sampler = _import_sampler(name)
    if sampler is None:
        if name and name.lower() not in sampling._KNOWN_SAMPLERS:
            config.warnings.append(
                f"OTEL_TRACES_SAMPLER={name} is not a sampler the SDK knows here: parentbased_always_on is used"
            )
        disabled = os.environ.pop("OTEL_SDK_DISABLED", None)
        try:
            sampler = TracerProvider(shutdown_on_exit=False).sampler
        finally:
            if disabled is not None:
                os.environ["OTEL_SDK_DISABLED"] = disabled
    description = str(sampler.get_description())
    info: dict[str, Any] = {"OTEL_TRACES_SAMPLER": name or None, "OTEL_TRACES_SAMPLER_ARG": arg or None}
    info["sampler"] = description
    root = description.split("root:", 1)[1] if description.startswith("ParentBased") else description
    if root.startswith("AlwaysOffSampler"):
        info["keeps"] = "no runs"
        config.warnings.append(f"the sampler ({description}) records no runs: the app sends nothing")
    elif root.startswith("AlwaysOnSampler"):
        info["keeps"] = "every run, whole"
    elif root.startswith(("TraceIdRatioBased", "ApplicationInsightsSampler")):
        info["keeps"] = "a share of the runs, each one whole (decided by trace id)"
    elif root.startswith("RateLimitedSampler"):
        info["keeps"] = "runs up to a rate; above it, whole runs and parts of runs are dropped"
        config.warnings.append(
            f"the sampler ({description}) drops runs above its rate and re-decides child spans: use "
            "OTEL_TRACES_SAMPLER=parentbased_always_on (see docs/operate.md)"
        )
    else:
        info["keeps"] = "unknown (a custom sampler)"
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        config.problems.append("OTEL_SDK_DISABLED=true: the OpenTelemetry SDK records nothing")
    return info


def _content_capture() -> dict[str, Any]:
    from ..core.content import AZURE_CAPTURE_ENV, CAPTURE_ENV, ContentPolicy

    policy = ContentPolicy.resolve()
    sources = {env: os.environ[env] for env in (CAPTURE_ENV, AZURE_CAPTURE_ENV) if os.environ.get(env)}
    where = [w for w, on in (("span attributes", policy.on_span), ("span events", policy.as_event)) if on]
    return {
        "enabled": policy.enabled,
        "recorded_as": where if policy.enabled else [],
        "max_length": policy.max_length,
        "set_by": sources or None,
        "note": None if policy.enabled else "off: prompts, instructions, tool arguments and results are not recorded",
    }


def _metadata_keys() -> list[str]:
    return list(dict.fromkeys(k.strip() for k in os.environ.get(METADATA_KEYS_ENV, "").split(",") if k.strip()))


def _metrics(config: Configuration, zero_code: bool) -> str:
    raw = _env("OTEL_METRICS_EXPORTER")
    if raw:
        return f"OTEL_METRICS_EXPORTER={raw}"
    if zero_code:
        return "otlp (opentelemetry-distro's default)" if _version("opentelemetry-distro") else "none"
    with_metrics = [d.name for d in config.destinations if d.entry_point.startswith(("otlp", "azure_monitor"))]
    return ", ".join(with_metrics) + " (the trace exporters that export metrics)" if with_metrics else "none"


def _check_instrumentation(config: Configuration, zero_code: bool) -> None:
    disabled = {n.strip() for n in _env(DISABLED_INSTRUMENTATIONS_ENV).split(",") if n.strip()}
    if "azure_ai_agents" in disabled and zero_code:
        config.problems.append(f"{DISABLED_INSTRUMENTATIONS_ENV} lists azure_ai_agents: no agent runs are traced")
    if not any(config.agent_sdks.get(name) for name in ("azure-ai-agents", "azure-ai-projects")):
        config.warnings.append("no Azure AI Agents SDK is installed (azure-ai-agents or azure-ai-projects)")
        return
    try:
        from .. import AzureAgentInstrumentor

        conflict = AzureAgentInstrumentor()._check_dependency_conflicts()
    except Exception as error:  # noqa: BLE001 - a report, not a crash
        config.warnings.append(f"could not check the agent SDK versions: {error}")
        return
    if conflict is not None:
        config.warnings.append(f"no supported agent SDK version: {conflict}")


def _check_neighbours(config: Configuration) -> None:
    """Setups known to duplicate or lose runs (docs/operate.md explains each)."""
    if _version("azure-monitor-opentelemetry"):
        disabled = {n.strip() for n in _env(DISABLED_INSTRUMENTATIONS_ENV).split(",")}
        if "azure_sdk" not in disabled:
            config.notes.append(
                "azure-monitor-opentelemetry is installed: if the app calls configure_azure_monitor(), pass "
                "instrumentation_options={'azure_sdk': {'enabled': False}} (or set "
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=azure_sdk) so Microsoft's agents instrumentor does not add "
                "its own spans to every run, and OTEL_TRACES_SAMPLER=parentbased_always_on so runs are not sampled "
                "away"
            )
    if any(d.entry_point == "nexus" for d in config.destinations) and not _env("NEXUS_AGENT_ID"):
        config.notes.append(
            "Nexus names each trace's agent after the run's agent: the synthetic run appears as its own agent "
            "(the Free plan allows one; pass --agent-name or set NEXUS_AGENT_ID)"
        )


def _version(distribution: str) -> Optional[str]:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def host_port(endpoint: Optional[str]) -> Optional[tuple[str, int]]:
    """(host, port) of an endpoint URL (or ``host:port``), for the reachability probe."""
    if not endpoint:
        return None
    try:
        parts = urlsplit(endpoint if "://" in endpoint else "//" + endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host, port or (443 if parts.scheme == "https" else 80)
