"""Runs one traced agent run with only ONE SDK generation importable; prints the span names as JSON.

argv[1] is the SDK to hide: ``azure.ai.agents`` (the app then uses legacy azure-ai-projects) or
``azure.ai.projects`` (the app uses azure-ai-agents).
"""

from __future__ import annotations

import importlib.abc
import json
import sys
from typing import Any

HIDDEN = sys.argv[1]


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == HIDDEN or name.startswith(HIDDEN + "."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from azure_ai_agents_emulator import AgentsEmulator  # noqa: E402
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor  # noqa: E402

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
AzureAgentInstrumentor().instrument(tracer_provider=provider, raise_exception_on_conflict=True)

with AgentsEmulator() as emulator:
    if HIDDEN == "azure.ai.agents":
        from azure_ai_agents_emulator import project_client

        agents = project_client(emulator).agents
        agent = agents.create_agent(model="gpt-4o", name="legacy-agent")
        thread = agents.create_thread()
        run = agents.create_and_process_run(thread_id=thread.id, agent_id=agent.id, sleep_interval=0)
    else:
        from azure_ai_agents_emulator import agents_client

        client = agents_client(emulator)
        agent = client.create_agent(model="gpt-4o", name="current-agent")
        thread = client.threads.create()
        run = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)

provider.force_flush()  # the run ends once its steps are listed, off the app's path
print(
    json.dumps(
        {
            "status": str(run.status),
            "spans": sorted(s.name for s in exporter.get_finished_spans()),
            "loaded": sorted(m for m in ("azure.ai.agents", "azure.ai.projects") if m in sys.modules),
        }
    )
)
