"""Every attribute, span, event and metric name this instrumentation emits, and the conventions they follow.

Conventions followed: the OpenTelemetry GenAI semantic conventions, which moved out of the core
semantic-conventions repository after v1.41 into ``open-telemetry/semantic-conventions-genai``. That repository
has cut no release: its registry declares the development schema :data:`SCHEMA_URL` (on core semantic
conventions 1.44.0). Names come from the ``opentelemetry-semantic-conventions`` package constants where they exist
(0.63b0 and later carry all of them); values the package does not carry yet (the Foundry provider value) are
written here once, from the development registry.

Names of our own exist only where no convention does, and all start with ``azure.ai.agents.``. One deliberate
exception: ``gen_ai.system=az.ai.agents`` (deprecated in the conventions) is kept because Application Insights
lists a span as a GenAI dependency only when ``gen_ai.system`` is set.

Migration from the ``gen_ai.thread.*`` names (Microsoft's agents instrumentation invented them in the
OpenTelemetry-owned ``gen_ai`` namespace without a convention): :data:`LEGACY_NAMES` maps each one to its
replacement.
"""

from __future__ import annotations

from typing import Any, Final, Mapping

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import exception_attributes as _exception
from opentelemetry.semconv.attributes import server_attributes as _server

# --- version ------------------------------------------------------------------------------------------------
#: The conventions this release follows (stated in docs/spans-and-attributes.md too).
CONVENTIONS: Final = "OpenTelemetry GenAI semantic conventions, development registry 1.42.0-dev (core 1.44.0)"
#: The tracer's and meter's schema URL: the GenAI registry's own (development) schema.
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/gen-ai-dev/1.42.0-dev"

# --- identity -----------------------------------------------------------------------------------------------
#: ``gen_ai.provider.name`` of Microsoft Foundry Agent Service (the development registry renamed the earlier
#: ``azure.ai.foundry`` to this value).
PROVIDER_NAME: Final = "microsoft.foundry"
#: Deprecated ``gen_ai.system`` value, kept for Application Insights (see the module docstring).
SYSTEM: Final = "az.ai.agents"

# --- operations (gen_ai.operation.name) and span names ------------------------------------------------------
INVOKE_AGENT: Final = _gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value
CHAT: Final = _gen_ai.GenAiOperationNameValues.CHAT.value
EXECUTE_TOOL: Final = _gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value
CREATE_AGENT: Final = _gen_ai.GenAiOperationNameValues.CREATE_AGENT.value
#: No convention names an agent update or deletion; custom operation values, as the conventions allow.
UPDATE_AGENT: Final = "update_agent"
DELETE_AGENT: Final = "delete_agent"


def span_name(operation: str, subject: Any) -> str:
    """``{operation} {subject}`` (``invoke_agent {agent}``, ``chat {model}``, ``execute_tool {tool}``), or the
    bare operation when the subject is unknown."""
    return f"{operation} {subject}" if isinstance(subject, str) and subject else operation


# --- GenAI attributes (conventions) -------------------------------------------------------------------------
OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
PROVIDER: Final = _gen_ai.GEN_AI_PROVIDER_NAME
SYSTEM_ATTRIBUTE: Final = _gen_ai.GEN_AI_SYSTEM
AGENT_ID: Final = _gen_ai.GEN_AI_AGENT_ID
AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
AGENT_DESCRIPTION: Final = _gen_ai.GEN_AI_AGENT_DESCRIPTION
#: The new Foundry agents' version (in the package's constants since semantic-conventions 0.59b0).
AGENT_VERSION: Final[str] = getattr(_gen_ai, "GEN_AI_AGENT_VERSION", "gen_ai.agent.version")
CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
#: The response a Responses API request continues (``previous_response_id``). In the GenAI development registry;
#: not in the conventions package yet (0.66b2), so written here until it is.
PREVIOUS_RESPONSE_ID: Final[str] = getattr(
    _gen_ai, "GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID", "gen_ai.request.previous_response.id"
)
#: The Foundry project's Azure Resource Manager id (the development registry's ``microsoft.foundry`` namespace;
#: the Foundry refinement of ``invoke_agent`` asks for it when it is known).
FOUNDRY_PROJECT_ID: Final = "microsoft.foundry.project.id"
REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
REQUEST_TOP_P: Final = _gen_ai.GEN_AI_REQUEST_TOP_P
REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
OUTPUT_TYPE: Final = _gen_ai.GEN_AI_OUTPUT_TYPE
RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
RESPONSE_TIME_TO_FIRST_CHUNK: Final = _gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE
TOOL_NAME: Final = _gen_ai.GEN_AI_TOOL_NAME
TOOL_CALL_ID: Final = _gen_ai.GEN_AI_TOOL_CALL_ID
TOOL_TYPE: Final = _gen_ai.GEN_AI_TOOL_TYPE
TOOL_DESCRIPTION: Final = _gen_ai.GEN_AI_TOOL_DESCRIPTION
# Opt-in content (recorded only when content capture is on, see ``content``).
SYSTEM_INSTRUCTIONS: Final = _gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS
INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
TOOL_DEFINITIONS: Final = _gen_ai.GEN_AI_TOOL_DEFINITIONS
TOOL_CALL_ARGUMENTS: Final = _gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
TOOL_CALL_RESULT: Final = _gen_ai.GEN_AI_TOOL_CALL_RESULT
#: Every opt-in content attribute: none of them may appear with capture off.
CONTENT_ATTRIBUTES: Final = frozenset(
    {SYSTEM_INSTRUCTIONS, INPUT_MESSAGES, OUTPUT_MESSAGES, TOOL_DEFINITIONS, TOOL_CALL_ARGUMENTS, TOOL_CALL_RESULT}
)

#: ``gen_ai.output.type`` values (``response_format``: text -> text; json_object / json_schema -> json).
OUTPUT_TYPE_TEXT: Final = _gen_ai.GenAiOutputTypeValues.TEXT.value
OUTPUT_TYPE_JSON: Final = _gen_ai.GenAiOutputTypeValues.JSON.value
TOKEN_INPUT: Final = _gen_ai.GenAiTokenTypeValues.INPUT.value
TOKEN_OUTPUT: Final = _gen_ai.GenAiTokenTypeValues.OUTPUT.value

ERROR_TYPE: Final = _error.ERROR_TYPE
#: The span event Application Insights (and other backends) list as a failure, with its type and message.
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = _exception.EXCEPTION_TYPE
EXCEPTION_MESSAGE: Final = _exception.EXCEPTION_MESSAGE
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
SERVER_PORT: Final = _server.SERVER_PORT

# --- our own names (no convention exists) -------------------------------------------------------------------
RUN_ID: Final = "azure.ai.agents.run.id"
RUN_STATUS: Final = "azure.ai.agents.run.status"
RUN_UNFINISHED: Final = "azure.ai.agents.run.unfinished"
#: Marks the spans of the doctor's synthetic run (no convention exists for test traffic).
SYNTHETIC: Final = "azure.ai.agents.synthetic"
RUN_STEPS_DROPPED: Final = "azure.ai.agents.run.steps_dropped"
RUN_STEPS_UNAVAILABLE: Final = "azure.ai.agents.run.steps_unavailable"
PREVIOUS_STATUS: Final = "azure.ai.agents.run.previous_status"
REQUIRED_TOOL_CALLS: Final = "azure.ai.agents.run.required_tool_calls"
REQUIRED_ACTION_TYPE: Final = "azure.ai.agents.run.required_action.type"
#: Run and agent ``metadata`` keys the user allowed: ``azure.ai.agents.run.metadata.<key>``.
RUN_METADATA_PREFIX: Final = "azure.ai.agents.run.metadata."
MAX_PROMPT_TOKENS: Final = "azure.ai.agents.request.max_prompt_tokens"
STEP_ID: Final = "azure.ai.agents.run_step.id"
STEP_TYPE: Final = "azure.ai.agents.run_step.type"
STEP_STATUS: Final = "azure.ai.agents.run_step.status"
TOOL_RAW_TYPE: Final = "azure.ai.agents.tool.type"
MCP_SERVER_LABEL: Final = "azure.ai.agents.mcp.server_label"
#: A new Foundry agent's server-side tool item status (``completed``, ``failed``, ``incomplete``, ...).
TOOL_STATUS: Final = "azure.ai.agents.tool.status"
#: A connected-agent tool call's sub-run (its agent is ``gen_ai.agent.id`` on the tool span).
CONNECTED_RUN_ID: Final = "azure.ai.agents.connected_agent.run.id"
CONNECTED_THREAD_ID: Final = "azure.ai.agents.connected_agent.thread.id"
CONNECTED_AGENT_ID: Final = "azure.ai.agents.connected_agent.agent.id"
RUN_STATUS_CHANGED_EVENT: Final = "azure.ai.agents.run.status_changed"
#: Where a classic run's time went (float seconds; see ``classic.run_state.RunState`` for the clocks):
#: in the service's queue (``created_at`` -> ``started_at``, service timestamps) ...
RUN_QUEUE_TIME: Final = "azure.ai.agents.run.queue_time"
#: ... and in ``requires_action``, waiting for the app's tool outputs (client-observed, summed over rounds).
RUN_TOOL_WAIT_TIME: Final = "azure.ai.agents.run.tool_wait_time"

# --- migration ------------------------------------------------------------------------------------------------
#: Old name -> the name that replaced it. With legacy attributes on, both are emitted.
LEGACY_NAMES: Final[Mapping[str, str]] = {
    "gen_ai.thread.id": CONVERSATION_ID,
    "gen_ai.thread.run.id": RUN_ID,
    "gen_ai.thread.run.status": RUN_STATUS,
}
_LEGACY_BY_NEW: Final = {new: old for old, new in LEGACY_NAMES.items()}


def with_legacy_names(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` plus the old ``gen_ai.thread.*`` name of every attribute that has one."""
    out = dict(attributes)
    for new, old in _LEGACY_BY_NEW.items():
        if new in attributes:
            out[old] = attributes[new]
    return out


# --- metrics --------------------------------------------------------------------------------------------------
# The instruments published in the conventions package. The development registry is reworking the token and
# inference metrics (``gen_ai.client.inference.*``); none of that is released, and the names changed three
# times in 2026, so these stay until a release carries the new ones.
METRIC_OPERATION_DURATION: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
METRIC_TOKEN_USAGE: Final = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_TIME_TO_FIRST_CHUNK: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
#: Histograms of our own (no convention exists): a run's queue time and tool-wait time (s), named like the span
#: attributes that carry the same values.
METRIC_RUN_QUEUE_TIME: Final = RUN_QUEUE_TIME
METRIC_RUN_TOOL_WAIT_TIME: Final = RUN_TOOL_WAIT_TIME
#: gen_ai.client.operation.duration buckets (seconds), from the GenAI metric conventions.
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
#: gen_ai.client.token.usage buckets ({token}), from the GenAI metric conventions.
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
