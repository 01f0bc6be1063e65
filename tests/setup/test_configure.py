"""configure_telemetry(): exporter choice, providers, instrumentation, shutdown, and clear errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from azure_ai_agents_emulator import agents_client
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
from opentelemetry.instrumentation.azure_ai_agents.configure import (
    DEFAULT_SERVICE_NAME,
    TelemetryHandle,
    configure_telemetry,
    resolve_exporter_names,
)
from tests.fakes.appinsights_server import AppInsightsReceiver, base_data
from tests.fakes.nexus_server import NexusServer
from tests.fakes.otlp_server import OtlpGrpcReceiver, OtlpHttpReceiver
from tests.helpers import INSTRUCTIONS, agents_run, agents_setup

_ENV = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "NEXUS_API_KEY",
    "NEXUS_ENDPOINT",
    "NEXUS_AGENT_ID",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "OTEL_METRIC_EXPORT_INTERVAL",
)
ZERO_IKEY = "00000000-0000-0000-0000-000000000000"
AI_QUIET = {
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name in _ENV or name.startswith("OTEL_EXPORTER_OTLP_"):
            monkeypatch.delenv(name)
    for name, value in AI_QUIET.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def handles():
    """Collects handles and shuts them down after the test (so a failure never leaves the SDK instrumented)."""
    made: list[TelemetryHandle] = []
    yield made
    for handle in made:
        handle.shutdown(timeout_s=5)
    assert not AzureAgentInstrumentor().is_instrumented_by_opentelemetry


def _configure(handles: list[TelemetryHandle], *args: Any, **kwargs: Any) -> TelemetryHandle:
    kwargs.setdefault("set_global", False)  # globals are tested in a subprocess
    handle = configure_telemetry(*args, **kwargs)
    handles.append(handle)
    return handle


def _capture(handle: TelemetryHandle) -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    handle.tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


def _run_app(emulator, scenario: str = "function_call") -> Any:
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    return agents_run(client, agent_id, thread_id, scenario)


# ---- choosing exporters ----------------------------------------------------------------------------------
def test_default_without_configuration_is_agent_tree():
    assert resolve_exporter_names() == ["agent_tree"]


def test_otel_traces_exporter_is_read_comma_separated(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", " otlp, console ,otlp")
    monkeypatch.setenv("NEXUS_API_KEY", "nxs_" + "0" * 64)  # ignored: the variable decides
    assert resolve_exporter_names() == ["otlp", "console"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert resolve_exporter_names() == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NEXUS_API_KEY": "nxs_" + "1" * 64}, ["nexus"]),
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}, ["azure_monitor"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, ["otlp"]),
        (
            {
                "NEXUS_API_KEY": "nxs_" + "1" * 64,
                "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            },
            ["nexus", "azure_monitor", "otlp"],
        ),
    ],
)
def test_exporters_are_detected_from_what_is_configured(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert resolve_exporter_names() == expected


def test_names_aliases_and_errors():
    assert resolve_exporter_names("nexus,agent_tree") == ["nexus", "agent_tree"]
    assert resolve_exporter_names(["azure_monitor_opentelemetry_exporter", "azure_monitor"]) == [
        "azure_monitor_opentelemetry_exporter"
    ]
    assert resolve_exporter_names(["otlp_proto_grpc", "otlp_proto_http"]) == ["otlp_proto_grpc", "otlp_proto_http"]
    with pytest.raises(ValueError, match="cannot be combined"):
        resolve_exporter_names("none,otlp")
    with pytest.raises(ValueError, match="unknown exporter 'jaeger_thrift'"):
        configure_telemetry("jaeger_thrift", set_global=False, instrument=False)
    with pytest.raises(ValueError, match="APPLICATIONINSIGHTS_CONNECTION_STRING"):
        configure_telemetry("azure_monitor", set_global=False, instrument=False)
    with pytest.raises(ValueError, match="NEXUS_API_KEY"):
        configure_telemetry("nexus", set_global=False, instrument=False)


def test_unsupported_otlp_protocol_is_refused(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValueError, match="http/json"):
        configure_telemetry("otlp", set_global=False, instrument=False)


@pytest.mark.parametrize(
    ("exporter", "blocked", "extra"),
    [
        ("otlp", "opentelemetry.exporter.otlp.proto.http.trace_exporter", "otlp"),
        ("otlp_proto_grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "otlp"),
        ("azure_monitor", "azure.monitor.opentelemetry.exporter", "azure-monitor"),
        ("nexus", "opentelemetry.exporter.nexus", "nexus"),
    ],
)
def test_missing_optional_dependency_names_the_extra(monkeypatch, exporter, blocked, extra):
    monkeypatch.setitem(sys.modules, blocked, None)  # makes `import blocked` fail like an absent package
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", f"InstrumentationKey={ZERO_IKEY}")
    monkeypatch.setenv("NEXUS_API_KEY", "nxs_" + "2" * 64)
    with pytest.raises(ImportError) as caught:
        configure_telemetry(exporter, set_global=False, instrument=False)
    message = str(caught.value)
    assert f"pip install 'opentelemetry-instrumentation-azure-ai-agents[{extra}]'" in message
    assert repr(exporter.split("_proto")[0]) in message or exporter in message


NO_SDK_SCRIPT = textwrap.dedent(
    """
    import json, sys

    class NoSdk:  # the plain wheel's environment: the OpenTelemetry API, no SDK
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    assert not any(m.startswith("opentelemetry.sdk") for m in sys.modules)
    sys.meta_path.insert(0, NoSdk())
    from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
    from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry

    try:
        configure_telemetry("agent_tree")
    except ImportError as error:
        outcome = {"type": type(error).__name__, "message": str(error), "name": error.name}
    else:
        outcome = {"type": None}
    outcome["instrumented_after"] = AzureAgentInstrumentor().is_instrumented_by_opentelemetry
    AzureAgentInstrumentor().instrument()  # the instrumentation itself needs only the API
    outcome["instruments_without_sdk"] = AzureAgentInstrumentor().is_instrumented_by_opentelemetry
    AzureAgentInstrumentor().uninstrument()
    print(json.dumps(outcome))
    """
)


def test_without_the_sdk_configure_telemetry_names_the_pip_install():
    """The plain wheel does not depend on opentelemetry-sdk: the error says what to install, not just
    ``ModuleNotFoundError: opentelemetry.sdk``; the instrumentation alone still works on the API."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", NO_SDK_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["type"] == "ImportError", outcome
    assert "pip install opentelemetry-sdk" in outcome["message"]
    assert 'pip install "opentelemetry-instrumentation-azure-ai-agents[otlp]"' in outcome["message"]
    assert outcome["name"].startswith("opentelemetry.sdk")
    assert outcome["instrumented_after"] is False
    assert outcome["instruments_without_sdk"] is True


# ---- what it builds --------------------------------------------------------------------------------------
def test_service_name_argument_then_environment_then_default(monkeypatch, handles):
    assert _configure(handles, "none", instrument=False).tracer_provider.resource.attributes["service.name"] == (
        DEFAULT_SERVICE_NAME
    )
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert _configure(handles, "none", instrument=False).tracer_provider.resource.attributes["service.name"] == (
        "from-env"
    )
    handle = _configure(handles, "none", service_name="from-arg", instrument=False)
    assert handle.tracer_provider.resource.attributes["service.name"] == "from-arg"
    assert handle.exporters == () and handle.meter_provider is None and handle.instrumented is False


def test_default_agent_tree_prints_one_tree_per_run(emulator, handles):
    out = io.StringIO()
    handle = _configure(handles, exporter_options={"agent_tree": {"out": out, "color": False, "width": 100}})
    assert handle.exporters == ("agent_tree",) and handle.instrumented
    run = _run_app(emulator)
    handle.tracer_provider.force_flush()  # the run ends once its steps are listed, off the app's path
    text = out.getvalue()
    assert text.count("invoke_agent weather-agent") == 1, text
    assert "execute_tool get_weather" in text and run.id in text


def test_several_exporters_at_once_get_the_same_run(monkeypatch, emulator, handles):
    with NexusServer() as nexus, AppInsightsReceiver() as appinsights, OtlpHttpReceiver() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        monkeypatch.setenv("NEXUS_API_KEY", nexus.api_key)
        monkeypatch.setenv("NEXUS_ENDPOINT", nexus.url)
        monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", appinsights.connection_string)
        handle = _configure(
            handles,  # exporters=None: all three detected from the environment
            service_name="multi",
            exporter_options={"azure_monitor": {"disable_offline_storage": True}},
        )
        assert handle.exporters == ("nexus", "azure_monitor", "otlp")
        assert handle.meter_provider is not None
        memory = _capture(handle)
        run = _run_app(emulator)
        assert handle.shutdown(timeout_s=10) is True  # flushes every processor and the metric readers

        [run_span] = [s for s in memory.get_finished_spans() if s.name.startswith("invoke_agent")]
        trace_hex = format(run_span.context.trace_id, "032x")
        # Nexus: one trace for the run, with its spans
        assert nexus.wait_for_traces(1, with_spans=3)
        [nexus_trace] = nexus.traces
        assert nexus_trace["agent_id"] == "weather-agent" and nexus_trace["status"] == "success"
        assert {"chat gpt-4o", "execute_tool get_weather"} <= {s["name"] for s in nexus_trace["spans"]}
        # App Insights: GenAI dependency, operation id = trace id, cloud role = service name
        [dep] = [e for e in appinsights.genai_dependencies() if base_data(e)["name"] == "invoke_agent weather-agent"]
        assert dep["tags"]["ai.operation.id"] == trace_hex and dep["tags"]["ai.cloud.role"] == "multi"
        # OTLP: the run span with its attributes and resource; metrics too
        [otlp_run] = otlp.run_spans()
        assert otlp_run.trace_id == trace_hex and otlp_run.attributes["azure.ai.agents.run.id"] == run.id
        assert otlp_run.resource["service.name"] == "multi"
        assert "gen_ai.client.operation.duration" in otlp.metric_names
        assert appinsights.of_type("MetricData")


def test_otlp_grpc_protocol_from_environment(monkeypatch, emulator, handles):
    pytest.importorskip("grpc")
    with OtlpGrpcReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        handle = _configure(handles)
        run = _run_app(emulator)
        assert handle.shutdown(timeout_s=10)
        [span] = receiver.run_spans()
        assert span.transport == "grpc" and span.attributes["azure.ai.agents.run.id"] == run.id
        assert "gen_ai.client.operation.duration" in receiver.metric_names


def test_capture_content_and_instrument_kwargs_reach_the_instrumentor(emulator, handles):
    handle = _configure(handles, "none", capture_content=True, list_steps_on_completion=False)
    memory = _capture(handle)
    _run_app(emulator)
    handle.tracer_provider.force_flush()  # the run's answer is read off the app's path
    [run_span] = [s for s in memory.get_finished_spans() if s.name.startswith("invoke_agent")]
    assert INSTRUCTIONS in json.dumps(dict(run_span.attributes))  # content captured
    assert not [s for s in memory.get_finished_spans() if s.name.startswith("chat ")]  # steps not listed


def test_shutdown_uninstruments_and_is_idempotent(emulator, handles):
    with _configure(handles, "none") as handle:
        memory = _capture(handle)
        assert AzureAgentInstrumentor().is_instrumented_by_opentelemetry
        _run_app(emulator)
    assert handle.closed and not AzureAgentInstrumentor().is_instrumented_by_opentelemetry
    assert handle.shutdown() is True  # second call: no-op
    count = len(memory.get_finished_spans())
    _run_app(emulator)
    assert len(memory.get_finished_spans()) == count  # no longer instrumented


def test_existing_instrumentation_fails_loudly(emulator, instrument):
    telemetry = instrument()  # someone (say opentelemetry-instrument) instrumented first
    with pytest.raises(RuntimeError, match="already instrumented"):
        configure_telemetry("none", set_global=False)
    assert AzureAgentInstrumentor().is_instrumented_by_opentelemetry  # not ours to remove
    _run_app(emulator)
    assert len(telemetry.run_spans()) == 1


def test_calling_twice_fails_loudly_then_works_once_the_first_is_shut_down(monkeypatch, emulator, handles):
    with NexusServer() as nexus:
        monkeypatch.setenv("NEXUS_API_KEY", nexus.api_key)
        monkeypatch.setenv("NEXUS_ENDPOINT", nexus.url)
        first = _configure(handles, "agent_tree", exporter_options={"agent_tree": {"out": io.StringIO()}})
        with pytest.raises(RuntimeError, match="already instrumented"):
            configure_telemetry("nexus", set_global=False)  # would have sent nothing to Nexus
        first.shutdown()
        second = _configure(handles, "nexus")
        assert second.exporters == ("nexus",) and second.instrumented
        _run_app(emulator)
        assert second.tracer_provider.force_flush()  # delivered when the SDK's flush returns
        [trace] = nexus.traces
        assert trace["agent_id"] == "weather-agent" and trace["status"] == "success"


def test_otel_metrics_exporter_is_honoured(monkeypatch, handles):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    assert _configure(handles, "otlp", instrument=False).meter_provider is None  # nothing posted to :4318
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    handle = _configure(handles, "otlp", instrument=False)
    assert handle.metric_exporters == ("console",) and handle.meter_provider is not None
    monkeypatch.delenv("OTEL_METRICS_EXPORTER")
    handle = _configure(handles, "otlp", instrument=False)  # unset: the OTLP exporter's metrics too
    assert handle.metric_exporters == ("otlp_proto_http",)
    assert (
        _configure(
            handles, "nexus,agent_tree", instrument=False, exporter_options={"nexus": {"api_key": "nxs_" + "0" * 64}}
        ).meter_provider
        is None
    )


def test_instrument_false_only_builds_providers(handles):
    handle = _configure(handles, "console", instrument=False)
    assert handle.instrumented is False and not AzureAgentInstrumentor().is_instrumented_by_opentelemetry
    assert handle.exporters == ("console",)
    with pytest.raises(TypeError, match="capture"):
        configure_telemetry("none", set_global=False, instrument=False, redact_capture=True)


GLOBAL_SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry

    first = configure_telemetry("none", instrument=False)
    second = configure_telemetry("none", instrument=False, service_name="second")
    pinned = configure_telemetry("none", instrument=False, set_global=False)
    print(json.dumps({
        "first": first.is_global,
        "second": second.is_global,
        "pinned": pinned.is_global,
        "global_is_first": trace.get_tracer_provider() is first.tracer_provider,
    }))
    """
)


def test_global_providers_are_set_once_and_only_when_asked(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", GLOBAL_SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"first": True, "second": False, "pinned": False, "global_is_first": True}
    assert "Overriding of current TracerProvider is not allowed" not in done.stderr


@pytest.mark.parametrize(("env", "expected"), [(None, 16_384), ("4096", 4096)])
def test_nexus_gets_a_queue_that_holds_a_burst_unless_the_sdk_variable_says_otherwise(
    monkeypatch, handles, env, expected
):
    """Nexus costs one request per span: the SDK's default batch queue (2,048 spans) drops runs in a burst."""
    with NexusServer() as nexus:
        monkeypatch.setenv("NEXUS_API_KEY", nexus.api_key)
        monkeypatch.setenv("NEXUS_ENDPOINT", nexus.url)
        if env is None:
            monkeypatch.delenv("OTEL_BSP_MAX_QUEUE_SIZE", raising=False)
        else:
            monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", env)
        handle = _configure(handles, "nexus,otlp", instrument=False)
        processors = handle.tracer_provider._active_span_processor._span_processors
        sizes = [p._batch_processor._max_queue_size for p in processors]
        assert sizes == [expected, int(env or 2048)]  # nexus, then otlp (the SDK's default)
        handle.shutdown(timeout_s=5)
