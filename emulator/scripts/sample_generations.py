"""The two sample generations ``run_sdk_samples.py`` runs: what to download, which samples, what they need.

* ``classic``: the ``azure-ai-agents`` sdist's ``samples/`` (threads, runs, steps), one emulator for all.
* ``foundry``: the ``azure-ai-projects`` >= 2 sdist's ``samples/agents/`` (the new Foundry agents: versions,
  agent endpoints, conversations, the Responses API), one emulator per sample: most samples create, configure
  and delete the same default agent name (``MyAgent``), so samples running at once must not share one service.

A sample the emulator cannot serve is skipped with the reason given here (:attr:`Generation.not_emulated`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Callable, Optional

__all__ = ["CLASSIC", "FOUNDRY", "GENERATIONS", "Generation"]


@dataclass(frozen=True)
class Generation:
    """One SDK generation's samples."""

    name: str
    package: str  # the PyPI distribution whose sdist holds the samples
    default_version: str  # used when the package is not installed
    sets: dict[str, str]  # set name -> folder under the sdist's samples/
    default_sets: tuple[str, ...]
    keep: Callable[[str], bool]  # which paths under samples/ to extract
    not_emulated: dict[str, str] = field(default_factory=dict)  # sample -> why it cannot run against the emulator
    placeholders: dict[str, str] = field(default_factory=dict)  # environment the samples read
    interactive: frozenset[str] = frozenset()  # samples that read from the terminal
    assets: dict[str, bytes] = field(default_factory=dict)  # assets/ stand-ins the sdist lacks
    assets_folder: str = "assets"  # under samples/
    isolated: bool = False  # one emulator per sample
    requires: Optional[Callable[[str], Optional[str]]] = None  # installed version -> why it cannot run, or None


_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
_OPENAPI = {
    "openapi": "3.0.0",
    "info": {"title": "Stand-in API", "version": "1.0"},
    "servers": [{"url": "https://example.com"}],
    "paths": {"/lookup": {"get": {"operationId": "Lookup", "responses": {"200": {"description": "OK"}}}}},
}
_CONNECTION = (
    "/subscriptions/0/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a/projects/p/connections/"
)

CLASSIC = Generation(
    name="classic",
    package="azure-ai-agents",
    default_version="1.1.0",
    sets={
        "basics": "",
        "tools": "agents_tools",
        "streaming": "agents_streaming",
        "async": "agents_async",
        "files": "agents_files_images_inputs",
        "telemetry": "agents_telemetry",
    },
    default_sets=("basics", "tools", "streaming", "async", "files"),
    keep=lambda path: True,
    not_emulated={
        "sample_agents_logic_apps.py": "creates a Logic App through Azure Resource Manager (azure-mgmt-logic)",
    },
    placeholders={
        "AZURE_BING_CONNECTION_ID": "/subscriptions/0/resourceGroups/rg/providers/x/connections/bing",
        "AI_AZURE_AI_CONNECTION_ID": "/subscriptions/0/resourceGroups/rg/providers/x/connections/search",
        "OPENAPI_CONNECTION_ID": "/subscriptions/0/resourceGroups/rg/providers/x/connections/openapi",
        "AZURE_BLOB_URI": "azureml://datastores/workspaceblobstore/paths/product_info_1.md",
        "STORAGE_SERVICE_ENDPONT": "https://emulated.queue.core.windows.net",
        "SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
    },
    interactive=frozenset({"sample_agents_agent_team.py", "sample_agents_agent_team_custom_team_leader.py"}),
    assets={
        "synthetic_500_quarterly_results.csv": b"sector,quarter,operating_profit\nTRANSPORTATION,Q1,120\n",
        "image_file.png": _PNG,
        "countries.json": json.dumps(_OPENAPI).encode(),
        "weather_openapi.json": json.dumps(_OPENAPI).encode(),
        "tripadvisor_openapi.json": json.dumps(_OPENAPI).encode(),
        "product_info_1.md": b"# Contoso products\nSmart Eyewear: heads-up display, voice assistant.\n",
    },
)


def _projects_2(version: str) -> Optional[str]:
    major = version.split(".", 1)[0]
    return None if major.isdigit() and int(major) >= 2 else f"needs azure-ai-projects >= 2 (installed: {version})"


_TOOLBOXES = "toolboxes (project_client.toolboxes) are not emulated"
_REALTIME = "realtime voice conversations (WebSocket) are not emulated"
_OPTIMIZATION = "agent optimization jobs are not emulated"
FOUNDRY = Generation(
    name="foundry",
    package="azure-ai-projects",
    default_version="2.10.0",
    sets={
        "agents": "agents",
        "tools": "agents/tools",
        "telemetry": "agents/telemetry",
        "voice": "agents/voice",
        "optimization": "agents/optimization",
    },
    default_sets=("agents", "tools", "telemetry", "voice", "optimization"),
    # samples/agents/ and the shared samples/util.py its helpers import as `samples.util`
    keep=lambda path: path.startswith("agents/") or path == "util.py",
    not_emulated={
        "sample_agent_memory_search.py": "memory stores (project_client.beta.memory_stores) are not emulated",
        "sample_agent_memory_search_async.py": "memory stores (project_client.beta.memory_stores) are not emulated",
        "sample_toolbox_with_shell.py": _TOOLBOXES,
        "sample_toolbox_with_shell_and_skill.py": _TOOLBOXES + ", nor skills (project_client.beta.skills)",
        "sample_toolbox_with_shipping_skill.py": _TOOLBOXES + ", nor skills (project_client.beta.skills)",
        "sample_toolboxes_with_search.py": _TOOLBOXES,
        "sample_toolboxes_with_search_async.py": _TOOLBOXES,
        "sample_voice_agent_generate.py": "agents generated from a prompt (beta.agents.create_from_prompt)"
        " are not emulated",
        "sample_voice_agent_read_conversation.py": _REALTIME + " (it holds one to read back)",
        "sample_voice_agent_read_conversation_audio.py": _REALTIME + " (it holds one to read back)",
        "sample_voice_agent_realtime_audio_conversation_async.py": _REALTIME,
        "sample_voice_agent_realtime_function_tool.py": _REALTIME,
        "sample_voice_agent_realtime_text_conversation.py": _REALTIME,
        "sample_voice_agent_realtime_text_conversation_async.py": _REALTIME,
        "sample_optimization_job_advanced_app_polling.py": _OPTIMIZATION,
        "sample_optimization_job_advanced_app_polling_async.py": _OPTIMIZATION,
        "sample_optimization_job_basic.py": _OPTIMIZATION,
        "sample_optimization_job_basic_async.py": _OPTIMIZATION,
        "sample_optimization_job_cancel.py": _OPTIMIZATION,
        "sample_optimization_job_list_get_delete.py": _OPTIMIZATION,
    },
    placeholders={
        "FOUNDRY_MODEL_NAME": "gpt-4o",
        "IMAGE_GENERATION_MODEL_DEPLOYMENT_NAME": "gpt-image-1",
        "COMPUTER_USE_MODEL_DEPLOYMENT_NAME": "computer-use-preview",
        "AI_SEARCH_PROJECT_CONNECTION_ID": _CONNECTION + "search",
        "AI_SEARCH_INDEX_NAME": "products",
        "AI_SEARCH_USER_INPUT": "Which Contoso products have a heads-up display?",
        "BING_PROJECT_CONNECTION_ID": _CONNECTION + "bing",
        "BING_CUSTOM_SEARCH_PROJECT_CONNECTION_ID": _CONNECTION + "bing-custom",
        "BING_CUSTOM_SEARCH_INSTANCE_NAME": "emulated-instance",
        "BING_CUSTOM_USER_INPUT": "What is new in Azure AI Foundry?",
        "BROWSER_AUTOMATION_PROJECT_CONNECTION_ID": _CONNECTION + "browser",
        "FABRIC_PROJECT_CONNECTION_ID": _CONNECTION + "fabric",
        "FABRIC_USER_INPUT": "What were last quarter's sales?",
        "FABRIC_IQ_PROJECT_CONNECTION_ID": _CONNECTION + "fabric-iq",
        "FABRIC_IQ_USER_INPUT": "What were last quarter's sales?",
        "MCP_PROJECT_CONNECTION_ID": _CONNECTION + "mcp",
        "OPENAPI_PROJECT_CONNECTION_ID": _CONNECTION + "openapi",
        "SHAREPOINT_PROJECT_CONNECTION_ID": _CONNECTION + "sharepoint",
        "SHAREPOINT_USER_INPUT": "Summarize the onboarding guide.",
        "A2A_PROJECT_CONNECTION_ID": _CONNECTION + "a2a",
        "A2A_USER_INPUT": "What can the secondary agent do?",
        "WEB_IQ_PROJECT_CONNECTION_ID": _CONNECTION + "web-iq",
        "WEB_IQ_USER_INPUT": "What is the weather in Seattle?",
        "WORK_IQ_PROJECT_CONNECTION_ID": _CONNECTION + "work-iq",
        "WORK_IQ_USER_INPUT": "What meetings do I have today?",
        "STORAGE_INPUT_QUEUE_NAME": "input",
        "STORAGE_OUTPUT_QUEUE_NAME": "output",
        "STORAGE_QUEUE_SERVICE_ENDPOINT": "https://emulated.queue.core.windows.net",
    },
    assets_folder="agents/assets",
    isolated=True,
    requires=_projects_2,
)
GENERATIONS = {generation.name: generation for generation in (CLASSIC, FOUNDRY)}
