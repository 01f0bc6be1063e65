"""The doctor (``python -m opentelemetry.instrumentation.azure_ai_agents doctor``) against local receivers.

Each test starts the receivers it needs in the test process and runs the doctor in a subprocess with only
environment variables, as a deployment pipeline would. The receivers stay up until the doctor has exited.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.fakes.appinsights_server import AppInsightsReceiver, base_data, base_type_of
from tests.fakes.nexus_server import NexusServer, new_api_key
from tests.fakes.otlp_server import OtlpHttpReceiver

ROOT = Path(__file__).parents[2]
COMMAND = [sys.executable, "-m", "opentelemetry.instrumentation.azure_ai_agents", "doctor"]
_DROPPED_PREFIXES = ("OTEL_", "NEXUS_", "APPLICATIONINSIGHTS_", "AZURE_")
AI_QUIET = {
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}
AGENT = "azure-ai-agents-doctor"
SYNTHETIC_NAMES = {f"invoke_agent {AGENT}", "chat gpt-4o", "execute_tool doctor_check"}
#: The slowest a doctor process may take beyond its --timeout: interpreter start-up and imports on a loaded
#: 2-core machine (about 1 s when idle).
STARTUP_ALLOWANCE_S = 6.0


class Doctor:
    """One finished doctor process: exit code, output, the JSON report when ``--json`` was given."""

    def __init__(self, done: subprocess.CompletedProcess[str], wall_s: float) -> None:
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.wall_s = wall_s
        self.report: dict[str, Any] = json.loads(done.stdout) if done.stdout.lstrip().startswith("{") else {}

    def delivery(self, name: str) -> dict[str, Any]:
        [outcome] = [d for d in self.report["delivery"] if d["destination"] == name]
        return outcome


def run_doctor(tmp_path: Path, env: dict[str, str], *args: str, command: list[str] = COMMAND) -> Doctor:
    full = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    full.update(AI_QUIET)
    full["TMPDIR"] = str(tmp_path)  # anything an exporter persists stays in the test's directory
    full.update(env)
    started = time.monotonic()
    done = subprocess.run([*command, *args], env=full, capture_output=True, text=True, timeout=60)
    wall = time.monotonic() - started
    assert "Traceback" not in done.stderr, done.stderr
    return Doctor(done, wall)


@pytest.fixture
def otlp() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def appinsights() -> Iterator[AppInsightsReceiver]:
    with AppInsightsReceiver() as receiver:
        yield receiver


@pytest.fixture
def nexus() -> Iterator[NexusServer]:
    with NexusServer() as server:
        yield server


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- delivered ---------------------------------------------------------------------------------------------
def test_otlp_delivered_with_the_evidence_to_find_the_run(tmp_path, otlp):
    doctor = run_doctor(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_SERVICE_NAME": "trip"},
                        "--strict", "--json")
    assert doctor.returncode == 0, doctor.stdout
    report, run = doctor.report, doctor.report["synthetic_run"]
    assert report["ok"] is True and report["failures"] == []
    outcome = doctor.delivery("otlp")
    assert outcome["status"] == "delivered" and outcome["ok"] is True
    assert outcome["endpoint"] == otlp.endpoint + "/v1/traces"
    assert any(run["trace_id"] in line for line in outcome["find"])
    assert any(run["run_id"] in line for line in outcome["find"])

    # What arrived is one agent run, as our runs look, marked synthetic, under the app's service name.
    spans = otlp.traces()[run["trace_id"]]
    assert {s.name for s in spans} == SYNTHETIC_NAMES
    by_name = {s.name: s for s in spans}
    root = by_name[f"invoke_agent {AGENT}"]
    assert root.parent_span_id == "" and root.kind == "CLIENT"
    assert {by_name["chat gpt-4o"].parent_span_id, by_name["execute_tool doctor_check"].parent_span_id} == {
        root.span_id
    }
    assert all(s.attributes["azure.ai.agents.synthetic"] is True for s in spans)
    assert all(s.resource["service.name"] == "trip" for s in spans)
    assert root.attributes["azure.ai.agents.run.id"] == run["run_id"]
    assert root.attributes["gen_ai.conversation.id"] == run["conversation_id"]
    assert root.attributes["gen_ai.usage.input_tokens"] == run["input_tokens"]
    assert (root.end_time_unix_nano - root.start_time_unix_nano) / 1e9 == pytest.approx(run["duration_s"])
    assert report["configuration"]["service_name"] == "trip"


def test_text_report_prints_the_evidence(tmp_path, otlp):
    doctor = run_doctor(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint})
    assert doctor.returncode == 0, doctor.stdout
    [trace_id] = list(otlp.traces())
    run_id = next(s.attributes["azure.ai.agents.run.id"] for s in otlp.spans if s.name.startswith("invoke_agent"))
    text = doctor.stdout
    for expected in (trace_id, run_id, "[ok  ] otlp: delivered", "120 in, 24 out", "latency", "Result: OK"):
        assert expected in text, text
    assert doctor.stderr == ""


def test_appinsights_ingestion_delivered(tmp_path, appinsights):
    doctor = run_doctor(tmp_path, {"APPLICATIONINSIGHTS_CONNECTION_STRING": appinsights.connection_string},
                        "--strict", "--json")
    assert doctor.returncode == 0, doctor.stdout
    run = doctor.report["synthetic_run"]
    outcome = doctor.delivery("azure_monitor")
    assert outcome["status"] == "delivered"
    assert outcome["endpoint"] == appinsights.url + "/v2.1/track"
    assert f'dependencies | where operation_Id == "{run["trace_id"]}"' in " ".join(outcome["find"])

    dependencies = [e for e in appinsights.envelopes if base_type_of(e) == "RemoteDependencyData"]
    assert {base_data(e)["name"] for e in dependencies} == SYNTHETIC_NAMES
    assert {e["tags"]["ai.operation.id"] for e in dependencies} == {run["trace_id"]}
    [root] = [e for e in dependencies if base_data(e)["name"].startswith("invoke_agent")]
    data = base_data(root)
    assert data["type"] == "GenAI | az.ai.agents"  # filed where real runs go
    assert data["properties"]["azure.ai.agents.run.id"] == run["run_id"]
    assert data["properties"]["azure.ai.agents.synthetic"] == "True"
    assert not list(tmp_path.rglob("*.blob"))  # nothing stored for a later retry


def test_nexus_receives_the_synthetic_run_as_an_agent_run(tmp_path, nexus):
    """The Nexus exporter sends only agent runs: the synthetic run is one (a trace with its spans)."""
    env = {"NEXUS_API_KEY": nexus.api_key, "NEXUS_ENDPOINT": nexus.url}
    doctor = run_doctor(tmp_path, env, "--json", "--agent-name", "trip-planner")
    assert doctor.returncode == 0, doctor.stdout
    assert doctor.delivery("nexus")["status"] == "delivered"
    [trace] = nexus.traces
    assert trace["agent_id"] == "trip-planner" and trace["status"] == "success"
    assert trace["metadata"]["run_id"] == doctor.report["synthetic_run"]["run_id"]
    assert trace["metadata"]["otel_trace_id"] == doctor.report["synthetic_run"]["trace_id"]
    assert len(trace["spans"]) == 3


# ---- failures ----------------------------------------------------------------------------------------------
def test_nexus_401_fails_strict_and_says_the_key_was_rejected(tmp_path, nexus):
    wrong_key = new_api_key()
    env = {"NEXUS_API_KEY": wrong_key, "NEXUS_ENDPOINT": nexus.url}
    doctor = run_doctor(tmp_path, env, "--strict", "--json")
    assert doctor.returncode == 1
    outcome = doctor.delivery("nexus")
    assert outcome["status"] == "rejected" and outcome["http_status"] == 401
    assert "rejected the API key" in outcome["reason"] and "NEXUS_API_KEY" in outcome["reason"]
    assert doctor.report["ok"] is False and any("rejected" in f for f in doctor.report["failures"])
    assert nexus.traces == [] and nexus.count(status=401) == 1  # one attempt, not retried

    text = run_doctor(tmp_path, env)  # a failure fails without --strict too
    assert text.returncode == 1
    assert "[FAIL] nexus: Nexus rejected the API key (HTTP 401 Invalid API key)" in text.stdout
    assert wrong_key not in doctor.stdout + text.stdout + text.stderr  # the key is never printed


@pytest.mark.parametrize("destination", ["otlp", "azure_monitor"])
def test_rejected_credentials_name_the_setting_to_check(tmp_path, otlp, appinsights, destination):
    if destination == "otlp":
        otlp.fail_next(401, count=10)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer x"}
        setting = "OTEL_EXPORTER_OTLP_[TRACES_]HEADERS"
    else:
        appinsights.fail_next(401, count=10)  # a resource that requires Entra ID authentication
        env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": appinsights.connection_string}
        setting = "APPLICATIONINSIGHTS_CONNECTION_STRING"
    doctor = run_doctor(tmp_path, env, "--json")
    assert doctor.returncode == 1
    outcome = doctor.delivery(destination)
    assert outcome["status"] == "rejected" and outcome["http_status"] == 401
    assert "rejected the credentials (HTTP 401)" in outcome["reason"] and setting in outcome["reason"]
    assert "Bearer x" not in doctor.stdout  # header values are never printed
    if destination == "otlp":
        [settings] = [d["settings"] for d in doctor.report["configuration"]["destinations"]]
        assert settings["headers"] == ["authorization"]


def test_unreachable_endpoint_fails_fast(tmp_path):
    port = _closed_port()
    doctor = run_doctor(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}, "--json")
    assert doctor.returncode == 1
    outcome = doctor.delivery("otlp")
    assert outcome["status"] == "unreachable"
    assert "connection refused" in outcome["reason"] and f"127.0.0.1:{port}" in outcome["reason"]
    # Reported without waiting out the exporter's retries (up to the 10 s limit): the connection is refused.
    assert doctor.report["elapsed_s"] < 5.0
    assert doctor.wall_s < 5.0 + STARTUP_ALLOWANCE_S


def test_silent_endpoint_times_out_within_the_limit(tmp_path):
    """An endpoint that accepts connections and never answers: reported as a timeout, within --timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes connections; nothing ever reads or answers
        port = silent.getsockname()[1]
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:{port}/"
            ),
        }
        doctor = run_doctor(tmp_path, env, "--json", "--timeout", "2")
    assert doctor.returncode == 1
    for name in ("otlp", "azure_monitor"):
        outcome = doctor.delivery(name)
        assert outcome["status"] == "timeout", outcome
        assert "time limit" in outcome["reason"] and "TCP connection" in outcome["reason"]
    assert doctor.report["elapsed_s"] <= 2.0 + 0.5
    assert doctor.wall_s < 2.0 + STARTUP_ALLOWANCE_S


def test_misconfiguration_is_reported_before_sending(tmp_path):
    env = {"OTEL_TRACES_EXPORTER": "nexsu,nexus"}
    doctor = run_doctor(tmp_path, env, "--json")
    assert doctor.returncode == 1
    assert doctor.report["synthetic_run"] is None  # nothing could be sent
    assert doctor.delivery("nexsu")["status"] == "misconfigured"
    assert "unknown exporter 'nexsu'" in doctor.delivery("nexsu")["reason"]
    assert "needs an API key" in doctor.delivery("nexus")["reason"]
    assert run_doctor(tmp_path, env, "--no-send").returncode == 1  # found without sending anything


def test_nothing_configured_fails_only_with_strict(tmp_path):
    relaxed = run_doctor(tmp_path, {}, "--json")
    assert relaxed.returncode == 0
    assert relaxed.report["configuration"]["destinations"] == []
    assert relaxed.report["configuration"]["local_outputs"] == ["agent_tree"]
    assert relaxed.report["delivery"] == [] and relaxed.report["synthetic_run"] is None

    strict = run_doctor(tmp_path, {}, "--strict")
    assert strict.returncode == 1
    assert "no destination is configured (local output only: agent_tree)" in strict.stdout

    # The terminal tree and the console are not destinations either.
    tree = run_doctor(tmp_path, {"OTEL_TRACES_EXPORTER": "agent_tree,console"}, "--strict", "--json")
    assert tree.returncode == 1 and tree.report["delivery"] == []
    assert tree.report["configuration"]["local_outputs"] == ["agent_tree", "console"]


def test_a_sampler_that_records_nothing_fails_strict(tmp_path, otlp):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_TRACES_SAMPLER": "always_off"}
    relaxed = run_doctor(tmp_path, env, "--json")
    assert relaxed.returncode == 0  # the synthetic run is sent regardless: delivery works
    assert relaxed.report["configuration"]["sampler"]["keeps"] == "no runs"
    assert any("records no runs" in w for w in relaxed.report["configuration"]["warnings"])
    strict = run_doctor(tmp_path, env, "--json", "--strict")
    assert strict.returncode == 1
    assert strict.report["failures"] == ["the sampler (AlwaysOffSampler) records no runs"]


# ---- the report --------------------------------------------------------------------------------------------
REPORT_SCHEMA = {
    "type": "object",
    "required": ["schema", "ok", "exit_code", "strict", "failures", "timeout_s", "elapsed_s", "configuration",
                 "synthetic_run", "delivery"],
    "properties": {
        "schema": {"const": 1},
        "ok": {"type": "boolean"},
        "exit_code": {"type": "integer"},
        "failures": {"type": "array", "items": {"type": "string"}},
        "configuration": {
            "type": "object",
            "required": ["reader", "exporters_from", "destinations", "local_outputs", "service_name", "sampler",
                         "content_capture", "metadata_keys", "agent_sdks", "packages", "problems", "warnings",
                         "notes"],
            "properties": {
                "destinations": {"type": "array", "items": {
                    "type": "object", "required": ["name", "entry_point", "endpoint", "settings", "problem"]}},
                "sampler": {"type": "object", "required": ["sampler", "keeps"]},
                "content_capture": {"type": "object", "required": ["enabled"]},
                "agent_sdks": {"type": "object", "required": ["azure-ai-agents", "azure-ai-projects", "openai"]},
            },
        },
        "synthetic_run": {"type": ["object", "null"], "required": [
            "trace_id", "run_id", "conversation_id", "agent_name", "spans", "input_tokens", "output_tokens",
            "duration_s"]},
        "delivery": {"type": "array", "items": {
            "type": "object",
            "required": ["destination", "entry_point", "endpoint", "ok", "status", "reason", "http_status",
                         "elapsed_s", "details", "find"],
            "properties": {"status": {"enum": ["delivered", "rejected", "refused", "throttled", "server_error",
                                               "unreachable", "timeout", "failed", "misconfigured"]}},
        }},
    },
}


def test_json_report_shape_with_every_destination(tmp_path, otlp, appinsights, nexus):
    jsonschema = pytest.importorskip("jsonschema")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": appinsights.connection_string,
        "NEXUS_API_KEY": nexus.api_key,
        "NEXUS_ENDPOINT": nexus.url,
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
        "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_METADATA_KEYS": "tenant, scenario",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    doctor = run_doctor(tmp_path, env, "--strict", "--json")
    jsonschema.validate(doctor.report, REPORT_SCHEMA)
    assert doctor.returncode == 0 and doctor.report["exit_code"] == 0, doctor.report["failures"]
    assert [d["destination"] for d in doctor.report["delivery"]] == ["nexus", "azure_monitor", "otlp"]
    assert all(d["status"] == "delivered" for d in doctor.report["delivery"])
    config = doctor.report["configuration"]
    assert config["exporters_from"].startswith("detected from the environment")
    assert config["content_capture"]["enabled"] is True and config["content_capture"]["recorded_as"] == [
        "span attributes"
    ]
    assert config["metadata_keys"] == ["tenant", "scenario"]
    assert config["sampler"]["sampler"].startswith("ParentBased{root:TraceIdRatioBased{0.25}")
    assert config["sampler"]["keeps"].startswith("a share of the runs, each one whole")
    assert config["agent_sdks"]["azure-ai-agents"]  # the main environment has it
    [nexus_config] = [d for d in config["destinations"] if d["name"] == "nexus"]
    assert nexus_config["settings"]["api_key"] == "set (nxs_ + 64 hex digits)"
    assert nexus.api_key not in doctor.stdout
    # All three received the same run.
    trace_id = doctor.report["synthetic_run"]["trace_id"]
    assert set(otlp.traces()) == {trace_id}
    assert nexus.traces[0]["metadata"]["otel_trace_id"] == trace_id
    assert {e["tags"]["ai.operation.id"] for e in appinsights.envelopes if base_type_of(e) == "RemoteDependencyData"
            } == {trace_id}


def test_zero_code_reading_flags_configure_only_names(tmp_path, appinsights):
    env = {"OTEL_TRACES_EXPORTER": "azure_monitor", "APPLICATIONINSIGHTS_CONNECTION_STRING": appinsights.connection_string}
    as_code = run_doctor(tmp_path, env, "--json")
    assert as_code.returncode == 0 and as_code.delivery("azure_monitor")["status"] == "delivered"
    zero_code = run_doctor(tmp_path, env, "--json", "--zero-code")
    assert zero_code.returncode == 1
    assert zero_code.report["configuration"]["reader"] == "opentelemetry-instrument"
    reason = zero_code.delivery("azure_monitor")["reason"]
    assert "opentelemetry-instrument does not know 'azure_monitor'" in reason
    assert "azure_monitor_opentelemetry_exporter" in reason


def test_console_script_is_declared_and_runs(tmp_path):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    target = scripts["azure-ai-agents-otel-doctor"]
    module, function = target.split(":")
    code = f"import sys; sys.argv[0] = 'azure-ai-agents-otel-doctor'; from {module} import {function}; {function}()"
    doctor = run_doctor(tmp_path, {}, "--strict", "--json", command=[sys.executable, "-c", code])
    assert doctor.returncode == 1  # nothing configured, --strict
    assert doctor.report["failures"] == ["no destination is configured (local output only: agent_tree)"]


# ---- the synthetic run looks like a real one ---------------------------------------------------------------
def test_synthetic_run_has_the_attributes_of_a_real_run(emulator, instrument):
    from azure_ai_agents_emulator import agents_client
    from opentelemetry.instrumentation.azure_ai_agents.doctor import synthetic
    from tests.helpers import agents_run, agents_setup

    telemetry = instrument()
    client = agents_client(emulator)
    agent_id, thread_id = agents_setup(client)
    agents_run(client, agent_id, thread_id, "function_call")
    real = {s.attributes["gen_ai.operation.name"]: s for s in telemetry.spans}
    fake = {s.attributes["gen_ai.operation.name"]: s for s in synthetic.build().spans}
    assert set(fake) == {"invoke_agent", "chat", "execute_tool"} <= set(real)
    for operation, span in fake.items():
        ours = set(span.attributes) - {synthetic.SYNTHETIC}
        missing = ours - set(real[operation].attributes)
        assert not missing, (operation, missing)  # no attribute a real run does not have
        for key in ("gen_ai.provider.name", "gen_ai.system", "gen_ai.operation.name", "azure.ai.agents.tool.type"):
            assert span.attributes.get(key) == real[operation].attributes.get(key), (operation, key)
        assert span.kind == real[operation].kind
        assert span.attributes[synthetic.SYNTHETIC] is True
    assert {e.name for e in fake["invoke_agent"].events} == {e.name for e in real["invoke_agent"].events}
    statuses = [e.attributes["azure.ai.agents.run.status"] for e in fake["invoke_agent"].events]
    assert statuses == ["queued", "in_progress", "completed"]
    root = fake["invoke_agent"].context.span_id
    assert {fake["chat"].parent.span_id, fake["execute_tool"].parent.span_id} == {root}
    assert real["execute_tool"].parent.span_id == real["invoke_agent"].context.span_id  # the same tree shape
