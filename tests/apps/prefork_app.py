"""A prefork WSGI app, as deployed with ``gunicorn --preload``: instrumented ONCE, in the master, at import; the
workers are forked from it.

Environment: ``AGENTS_ENDPOINT`` (the emulator's project endpoint), ``NEXUS_API_KEY`` / ``NEXUS_ENDPOINT`` (the
local Nexus receiver), ``PREFORK_DIR`` (where the master writes ``master.json``).

At import (in the master, before any fork) the app leaves two runs of its own in flight, as a busy master might:
one ended whose step listing is still pending (the test's emulator holds it), and one open (in progress). They are
the master's: it ends and sends them at its own exit; a worker must never end or send them. Workers serve
``GET /run``: one full run (a code-interpreter run: two steps, one tool call) on a new thread; the answer is
``{"run_id": ..., "pid": ...}``. Spans go through a ``BatchSpanProcessor`` to the Nexus exporter; every process
flushes them at its exit (gunicorn workers and master exit through ``sys.exit``: exit handlers run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from azure_ai_agents_emulator.clients import FakeCredential, auth_policy
from opentelemetry.exporter.nexus import NexusSpanExporter
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(NexusSpanExporter()))
AzureAgentInstrumentor().instrument(tracer_provider=provider)


def _client() -> Any:
    from azure.ai.agents import AgentsClient

    return AgentsClient(
        endpoint=os.environ["AGENTS_ENDPOINT"], credential=FakeCredential(), authentication_policy=auth_policy()
    )


def _full_run(client: Any, agent_id: str, polls: int = 1) -> Any:
    thread = client.threads.create()
    metadata = {"scenario": "code_interpreter", "polls_per_state": str(polls)}
    run = client.runs.create(thread_id=thread.id, agent_id=agent_id, metadata=metadata)
    while run.status in ACTIVE:
        run = client.runs.get(thread_id=thread.id, run_id=run.id)
    return run


# ---- the master, at import ----------------------------------------------------------------------------------
_master_client = _client()
AGENT_ID = _master_client.create_agent(model="gpt-4o", name="prefork-agent").id
_held = _full_run(_master_client, AGENT_ID)  # its listing: held by the emulator until the test releases it
_open_thread = _master_client.threads.create()
_open = _master_client.runs.create(
    thread_id=_open_thread.id, agent_id=AGENT_ID, metadata={"scenario": "message", "polls_per_state": "1000"}
)
_open = _master_client.runs.get(thread_id=_open_thread.id, run_id=_open.id)  # in progress; never polled again
Path(os.environ["PREFORK_DIR"], "master.json").write_text(
    json.dumps({"pid": os.getpid(), "held": _held.id, "open": _open.id, "open_status": _open.status})
)

# ---- the workers ----------------------------------------------------------------------------------------------
_worker_client: Optional[Any] = None


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    global _worker_client
    if environ.get("PATH_INFO") != "/run":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    if _worker_client is None:  # the worker's own connections, not the master's
        _worker_client = _client()
    run = _full_run(_worker_client, AGENT_ID)
    body = json.dumps({"run_id": run.id, "status": run.status, "pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
