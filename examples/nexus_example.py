"""Agent runs in Nexus (Keylight Digital): one Nexus trace per run, its steps and tool calls as spans.

    NEXUS_API_KEY=nxs_... python examples/nexus_example.py

* With NEXUS_API_KEY set, traces go to Nexus (NEXUS_ENDPOINT overrides the default
  https://nexus.keylightdigital.dev; NEXUS_AGENT_ID pins the agent name; the Free plan allows one agent).
* Without it, a local server that validates exactly like Nexus's v1 API (``emulator.nexus_server``) receives the
  traces and the example prints them.
* With PROJECT_ENDPOINT set the app talks to real Azure; otherwise to the bundled Agents emulator.

Needs the ``nexus`` extra: ``pip install 'opentelemetry-instrumentation-azure-ai-agents[nexus]'``.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

from agent_app import make_client, use_test_fakes, weather_run

from opentelemetry.instrumentation.azure_ai_agents.configure import configure_telemetry


def start_local_nexus(stack: ExitStack) -> Any:
    use_test_fakes()
    from tests.fakes.nexus_server import NexusServer

    server = stack.enter_context(NexusServer())
    os.environ["NEXUS_API_KEY"] = server.api_key
    os.environ["NEXUS_ENDPOINT"] = server.url
    print(f"Local Nexus API on {server.url}")
    return server


def show(server: Any) -> None:
    print(f"\nNexus received {server.request_count} requests, rejected {server.rejected_count}:")
    for trace in server.traces:
        print(f"  trace {trace['name']!r} agent={trace['agent_id']} status={trace['status']}")
        for span in trace["spans"]:
            print(f"    {span['name']:<34} {span['status']:<5} parent={(span.get('parent_span_id') or '-')[:8]}")


def main() -> None:
    with ExitStack() as stack:
        server = None if os.environ.get("NEXUS_API_KEY") else start_local_nexus(stack)
        telemetry = configure_telemetry("nexus", service_name="nexus-example")
        client, emulated = make_client(stack)
        try:
            with client:
                weather_run(client, emulated)
                if emulated:
                    weather_run(client, emulated, "failed")  # a failed run: Nexus trace status "error"
        finally:
            telemetry.shutdown()  # delivers buffered traces within its timeout
        if server is not None:
            show(server)


if __name__ == "__main__":
    main()
