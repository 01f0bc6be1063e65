"""The emulator as a tool: HTTPS with its own CA, a managed-identity token endpoint for DefaultAzureCredential,
runs that follow the agent's tools, response_format, files and vector stores, scripted failures, expiry."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import azure.ai.agents.models as am
import jsonschema
import pytest
from azure.ai.agents import AgentsClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from azure_ai_agents_emulator import AUTO_SCENARIO, AgentsEmulator, AgentsService, agents_client
from azure_ai_agents_emulator.schema_values import sample, sample_arguments
from azure_ai_agents_emulator.tls import ensure_certificate

# A function schema with the features that make made-up arguments invalid.
BOOKING = {
    "type": "object",
    "$defs": {"Seat": {"type": "string", "enum": ["aisle", "window"]}},
    "properties": {
        "city": {"type": "string"},
        "nights": {"type": "integer", "minimum": 2, "maximum": 14},
        "arrival": {"type": "string", "format": "date"},
        "seat": {"$ref": "#/$defs/Seat"},
        "guests": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string", "minLength": 3}, "age": {"type": ["integer", "null"]}},
                "required": ["name", "age"],
            },
        },
        "budget": {"anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 100}]},
        "notes": {"type": "string"},
    },
    "required": ["city", "nights", "arrival", "seat", "guests", "budget"],
}


@pytest.fixture(scope="module")
def https_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentsEmulator]:
    cert_dir = tmp_path_factory.mktemp("tls")
    with AgentsEmulator(
        tls=True, cert_dir=cert_dir, require_auth=True, polls_per_state=0, default_scenario=AUTO_SCENARIO
    ) as emulator:
        yield emulator


@pytest.fixture
def app_environment(https_emulator: AgentsEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment the emulator prints, as an app would have it."""
    env = https_emulator.environment()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_TOKEN_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    return env


# ---- HTTPS and DefaultAzureCredential -------------------------------------------------------------------
def test_an_unmodified_app_authenticates_with_default_azure_credential_over_https(app_environment, https_emulator):
    from azure.identity import DefaultAzureCredential

    with AgentsClient(endpoint=app_environment["PROJECT_ENDPOINT"], credential=DefaultAzureCredential()) as client:
        agent = client.create_agent(model=app_environment["MODEL_DEPLOYMENT_NAME"], name="plain-agent")
        thread = client.threads.create()
        client.messages.create(thread_id=thread.id, role="user", content="Hello")
        run = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)
        assert run.status == am.RunStatus.COMPLETED
        answer = client.messages.get_last_message_text_by_role(thread_id=thread.id, role=am.MessageRole.AGENT)
        assert answer is not None and "emulated agent" in answer.text.value  # no tools: a plain answer
        steps = list(client.run_steps.list(thread_id=thread.id, run_id=run.id))
        assert [s.type for s in steps] == ["message_creation"]
    assert "identity_token" in https_emulator.service.operations


def test_requests_without_an_issued_token_are_refused(app_environment):
    class Stranger:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("not-from-the-emulator", int(time.time()) + 3600)

    with AgentsClient(endpoint=app_environment["PROJECT_ENDPOINT"], credential=Stranger(), retry_total=0) as client:
        with pytest.raises(ClientAuthenticationError) as refused:
            client.threads.create()
    assert refused.value.status_code == 401


def test_the_token_endpoint_checks_the_identity_header(https_emulator, app_environment):
    context = ssl.create_default_context(cafile=app_environment["SSL_CERT_FILE"])
    url = app_environment["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://ai.azure.com"
    request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": "wrong"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context, timeout=10)
    assert refused.value.code == 401


def test_the_async_sdk_works_over_https(https_emulator):
    """aiohttp verifies the emulator's certificate (unmodified async apps: see the SDK samples test)."""
    from azure_ai_agents_emulator import async_agents_client

    async def main() -> Any:
        async with async_agents_client(https_emulator) as client:
            agent = await client.create_agent(model="gpt-4o", name="async-agent", tools=am.CodeInterpreterTool().definitions)
            thread = await client.threads.create()
            return await client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)

    run = asyncio.run(main())
    assert run.status == am.RunStatus.COMPLETED


def test_the_certificate_is_made_once_and_reused(tmp_path: Path):
    first = ensure_certificate(tmp_path)
    stamp = first.cert_file.stat().st_mtime_ns
    again = ensure_certificate(tmp_path)
    assert again.cert_file.stat().st_mtime_ns == stamp
    assert first.ca_file.read_bytes() in first.bundle_file.read_bytes()
    ensure_certificate(tmp_path, hosts=("emulator.test",))  # a new host name: a new certificate
    assert first.cert_file.stat().st_mtime_ns != stamp


# ---- runs follow the agent's tools ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auto_emulator() -> Iterator[AgentsEmulator]:
    """An HTTP emulator whose runs follow their agent's tools (what the command line serves)."""
    with AgentsEmulator(default_scenario=AUTO_SCENARIO) as emulator:
        yield emulator


@pytest.fixture
def client(auto_emulator: AgentsEmulator) -> Iterator[Any]:
    with agents_client(auto_emulator) as c:
        yield c


def _first_poll(client: Any, thread_id: str, run: Any) -> Any:
    while run.status in ("queued", "in_progress"):
        run = client.runs.get(thread_id=thread_id, run_id=run.id)
    return run


def test_function_tools_get_calls_with_arguments_valid_for_their_schemas(client):
    tools = [
        {"type": "function", "function": {"name": "book_hotel", "description": "Books.", "parameters": BOOKING}},
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
    ]
    agent = client.create_agent(model="gpt-4o", name="travel-agent", tools=tools)
    thread = client.threads.create()
    run = _first_poll(client, thread.id, client.runs.create(thread_id=thread.id, agent_id=agent.id))
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["book_hotel", "now"]
    booking = json.loads(calls[0].function.arguments)
    jsonschema.validate(booking, BOOKING)
    assert booking["city"] == "Seattle" and len(booking["guests"]) == 2
    assert json.loads(calls[1].function.arguments) == {}
    outputs = [am.ToolOutput(tool_call_id=c.id, output=f"done {c.function.name}") for c in calls]
    run = client.runs.submit_tool_outputs(thread_id=thread.id, run_id=run.id, tool_outputs=outputs)
    run = _first_poll(client, thread.id, run)
    assert run.status == "completed"
    answer = client.messages.get_last_message_text_by_role(thread_id=thread.id, role=am.MessageRole.AGENT)
    assert "done book_hotel" in answer.text.value and "done now" in answer.text.value


def test_server_tools_become_their_tool_calls_and_file_search_cites_the_store(client, tmp_path):
    document = tmp_path / "handbook.md"
    document.write_text("# Handbook\nSmart Eyewear has a heads-up display.\n")
    uploaded = client.files.upload_and_poll(file_path=str(document), purpose=am.FilePurpose.AGENTS)
    store = client.vector_stores.create_and_poll(file_ids=[uploaded.id], name="docs")
    spec = {"openapi": "3.0.0", "info": {"title": "w", "version": "1"}, "paths": {"/w": {"get": {"operationId": "GetWeather"}}}}
    tools = (
        am.CodeInterpreterTool().definitions
        + am.FileSearchTool(vector_store_ids=[store.id]).definitions
        + am.OpenApiTool(name="weather", spec=spec, description="d", auth=am.OpenApiAnonymousAuthDetails()).definitions
        + [{"type": "sharepoint_grounding", "sharepoint_grounding": {"connections": [{"connection_id": "c"}]}}]
    )
    agent = client.create_agent(
        model="gpt-4o", name="researcher", tools=tools, tool_resources=am.FileSearchTool(vector_store_ids=[store.id]).resources
    )
    thread = client.threads.create()
    run = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)
    assert run.status == am.RunStatus.COMPLETED
    steps = list(client.run_steps.list(thread_id=thread.id, run_id=run.id, order=am.ListSortOrder.ASCENDING))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    calls = steps[0].step_details.tool_calls
    assert [c.type for c in calls] == ["code_interpreter", "file_search", "openapi", "sharepoint_grounding"]
    assert calls[1]["file_search"]["results"][0]["file_id"] == uploaded.id
    assert calls[2]["openapi"]["name"] == "weather_GetWeather"
    answer = client.messages.get_last_message_text_by_role(thread_id=thread.id, role=am.MessageRole.AGENT)
    assert "handbook.md" in answer.text.value


def test_response_format_json_schema_is_honoured(client):
    schema = {
        "$defs": {"Planets": {"enum": ["Earth", "Mars"], "type": "string"}},
        "properties": {"planet": {"$ref": "#/$defs/Planets"}, "mass": {"type": "number"}},
        "required": ["planet", "mass"],
        "type": "object",
    }
    agent = client.create_agent(
        model="gpt-4o",
        name="extractor",
        response_format=am.ResponseFormatJsonSchemaType(
            json_schema=am.ResponseFormatJsonSchema(name="planet_mass", schema=schema)
        ),
    )
    thread = client.threads.create()
    run = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)
    assert run.status == am.RunStatus.COMPLETED
    answer = client.messages.get_last_message_text_by_role(thread_id=thread.id, role=am.MessageRole.AGENT)
    jsonschema.validate(json.loads(answer.text.value), schema)


def test_named_scenarios_still_win_over_the_tools(client):
    agent = client.create_agent(model="gpt-4o", name="with-tools", tools=am.CodeInterpreterTool().definitions)
    thread = client.threads.create()
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id, metadata={"scenario": "failed"})
    run = _first_poll(client, thread.id, run)
    assert run.status == "failed" and run.last_error.code == "server_error"


# ---- files and vector stores ---------------------------------------------------------------------------------
def test_files_vector_stores_files_and_batches(client, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"first file")
    first = client.files.upload_and_poll(file_path=str(path), purpose=am.FilePurpose.AGENTS)
    assert first.status == am.FileState.PROCESSED and first.filename == "notes.txt" and first.bytes == 10
    assert b"".join(client.files.get_content(first.id)) == b"first file"
    second = client.files.upload(file=b"second", filename="more.txt", purpose=am.FilePurpose.AGENTS)
    assert {f.id for f in client.files.list().data} >= {first.id, second.id}
    store = client.vector_stores.create_and_poll(name="store", file_ids=[first.id])
    assert store.status == "completed" and store.file_counts.completed == 1
    batch = client.vector_store_file_batches.create_and_poll(vector_store_id=store.id, file_ids=[second.id])
    assert batch.status == "completed" and batch.file_counts.total == 1
    listed = client.vector_store_file_batches.list_files(vector_store_id=store.id, batch_id=batch.id)
    assert [f.id for f in listed] == [second.id]
    assert {f.id for f in client.vector_store_files.list(vector_store_id=store.id)} == {first.id, second.id}
    client.vector_store_files.delete(vector_store_id=store.id, file_id=first.id)
    assert client.vector_stores.get(store.id).file_counts.total == 1
    client.vector_stores.delete(store.id)
    client.files.delete(first.id)
    for gone in (lambda: client.vector_stores.get(store.id), lambda: client.files.get(first.id)):
        with pytest.raises(HttpResponseError) as missing:
            gone()
        assert missing.value.status_code == 404


def test_uploads_work_in_process_too():
    service = AgentsService()
    with agents_client(service, in_process=True) as client:
        uploaded = client.files.upload(file=("notes.md", b"# notes\n"), purpose=am.FilePurpose.AGENTS)
        assert uploaded.filename == "notes.md" and b"".join(client.files.get_content(uploaded.id)) == b"# notes\n"


# ---- scripted failures, expiry, eager runs -----------------------------------------------------------------
def test_failures_are_scripted_through_the_control_routes(auto_emulator, client):
    emulator = auto_emulator
    agent = client.create_agent(model="gpt-4o", name="scripted")
    thread = client.threads.create()
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
    fault = json.dumps({"match": "get_run", "status": 503, "count": 1}).encode()
    request = urllib.request.Request(emulator.base_url + "/emulator/faults", data=fault, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["status"] == 503
    with agents_client(emulator, retry_total=0) as no_retry:
        with pytest.raises(HttpResponseError) as failed:
            no_retry.runs.get(thread_id=thread.id, run_id=run.id)
        assert failed.value.status_code == 503
        assert no_retry.runs.get(thread_id=thread.id, run_id=run.id).id == run.id  # only the next one failed


def test_a_run_nobody_finishes_expires_and_cancel_ends_one():
    service = AgentsService(default_scenario="cancel", run_expiry_seconds=0)
    with agents_client(service, in_process=True) as client:
        agent = client.create_agent(model="gpt-4o", name="hangs")
        thread = client.threads.create()
        run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
        run = client.runs.get(thread_id=thread.id, run_id=run.id)
        assert run.status == "expired" and run.expires_at is not None
        service.run_expiry_seconds = 600
        run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
        for _ in range(3):
            assert client.runs.get(thread_id=thread.id, run_id=run.id).status == "in_progress"
        client.runs.cancel(thread_id=thread.id, run_id=run.id)
        assert _first_poll_to_end(client, thread.id, run.id).status == "cancelled"


def _first_poll_to_end(client: Any, thread_id: str, run_id: str) -> Any:
    run = client.runs.get(thread_id=thread_id, run_id=run_id)
    while run.status in ("queued", "in_progress", "cancelling"):
        run = client.runs.get(thread_id=thread_id, run_id=run_id)
    return run


def test_zero_polls_per_state_runs_to_the_next_wait_at_each_poll():
    service = AgentsService(polls_per_state=0, default_scenario=AUTO_SCENARIO)
    with agents_client(service, in_process=True) as client:
        agent = client.create_agent(model="gpt-4o", name="eager", tools=am.CodeInterpreterTool().definitions)
        thread = client.threads.create()
        run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
        assert run.status == "queued"
        assert client.runs.get(thread_id=thread.id, run_id=run.id).status == "completed"


# ---- the schema sampler on its own ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "schema",
    [
        BOOKING,
        {"type": "array", "items": {"type": "integer", "minimum": 10}, "minItems": 3},
        {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, {"required": []}]},
        {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 2}]},
        {"type": "object", "properties": {"x": {"const": 7}}, "required": ["x"]},
        {"type": "string", "format": "date-time"},
    ],
)
def test_sampled_values_validate(schema):
    jsonschema.validate(sample(schema), schema)


def test_preferred_arguments_are_used_only_where_they_fit():
    parameters = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}
    assert sample_arguments(parameters, {"city": "Paris", "days": "three"}) == {"city": "Paris", "days": 1}
