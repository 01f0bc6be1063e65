"""Reading service objects safely, and the attributes both generations share (identity, server, agents, tool calls).

Every function takes the service's *wire* shape: a mapping keyed by REST field names. Both SDK generations'
models are ``MutableMapping`` views of the wire JSON, so ``run.get("assistant_id")`` works on an
``azure.ai.agents.models.ThreadRun``, an ``azure.ai.projects.models.ThreadRun``, a streamed event payload and a
plain dict alike. Nothing here trusts the payload's types: malformed values are skipped, never raised on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import urlsplit

from . import conventions as conv

# Names the core reads through this module (declared in ``conventions``).
EXECUTE_TOOL = conv.EXECUTE_TOOL
INVOKE_AGENT = conv.INVOKE_AGENT
MAX_PROMPT_TOKENS = conv.MAX_PROMPT_TOKENS
MCP_SERVER_LABEL = conv.MCP_SERVER_LABEL
PREVIOUS_STATUS = conv.PREVIOUS_STATUS
PROVIDER_NAME = conv.PROVIDER_NAME
REQUIRED_ACTION_TYPE = conv.REQUIRED_ACTION_TYPE
REQUIRED_TOOL_CALLS = conv.REQUIRED_TOOL_CALLS
RUN_ID = conv.RUN_ID
RUN_STATUS = conv.RUN_STATUS
RUN_STATUS_CHANGED_EVENT = conv.RUN_STATUS_CHANGED_EVENT
RUN_STEPS_DROPPED = conv.RUN_STEPS_DROPPED
RUN_STEPS_UNAVAILABLE = conv.RUN_STEPS_UNAVAILABLE
RUN_UNFINISHED = conv.RUN_UNFINISHED
STEP_ID = conv.STEP_ID
STEP_STATUS = conv.STEP_STATUS
STEP_TYPE = conv.STEP_TYPE
SYSTEM = conv.SYSTEM
TOOL_RAW_TYPE = conv.TOOL_RAW_TYPE

#: How the service's tool types map onto gen_ai.tool.type (function | extension | datastore): the app's own
#: functions are ``function``; the service's knowledge tools (retrieval / grounding over a data source) are
#: ``datastore``; action tools (code interpreter, OpenAPI, MCP, Azure Functions, connected agents, deep research)
#: and any type not listed, including types invented after this release, are agent-side ``extension``.
_TOOL_TYPE_CLASS = {
    "function": "function",
    "file_search": "datastore",
    "azure_ai_search": "datastore",
    "bing_grounding": "datastore",
    "bing_custom_search": "datastore",
    "sharepoint_grounding": "datastore",
    "fabric_dataagent": "datastore",
}


# --- safe access ------------------------------------------------------------------------------------------
def field(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping, else None. Never raises."""
    if isinstance(obj, Mapping):
        try:
            return obj.get(key)
        except Exception:  # a broken model must not break us
            return None
    return None


#: Service strings (ids, names, types, codes, messages) reach span names and attributes: they are cut here.
MAX_TEXT = 512
_INT64 = 2**63 - 1


def bounded(value: Any) -> Optional[str]:
    """A non-empty string, cut to :data:`MAX_TEXT` characters; anything else is None."""
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def text_field(obj: Any, key: str) -> Optional[str]:
    return bounded(field(obj, key))


def int_field(obj: Any, key: str) -> Optional[int]:
    """An integer attribute value: finite, within int64 (what exporters can encode), else None."""
    value = field(obj, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    result = int(value)
    return result if -_INT64 <= result <= _INT64 else None


def number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def seconds_to_ns(value: Any) -> Optional[int]:
    """Service timestamps are unix seconds; OpenTelemetry wants nanoseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    try:
        return int(value * 1_000_000_000)
    except (OverflowError, ValueError):
        return None


def without_none(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK keeps None-valued attributes passed at span start: drop them ourselves."""
    return {k: v for k, v in attributes.items() if v is not None}


# --- requests ---------------------------------------------------------------------------------------------
def server_address(endpoint: Any) -> dict[str, Any]:
    """server.address / server.port from a client's configured endpoint URL."""
    if not isinstance(endpoint, str) or not endpoint:
        return {}
    try:
        parts = urlsplit(endpoint if "//" in endpoint else "https://" + endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    if not parts.hostname:
        return {}
    return {conv.SERVER_ADDRESS: parts.hostname, conv.SERVER_PORT: port}


def identity(operation: str) -> dict[str, Any]:
    """The attributes every span of ours carries: the operation and who provides it."""
    return {conv.OPERATION_NAME: operation, conv.PROVIDER: conv.PROVIDER_NAME, conv.SYSTEM_ATTRIBUTE: conv.SYSTEM}


def settings(source: Any) -> dict[str, Any]:
    """Model and sampling settings, from a create request or a run object (same field names)."""
    return {
        conv.REQUEST_MODEL: text_field(source, "model"),
        conv.REQUEST_TEMPERATURE: number(field(source, "temperature")),
        conv.REQUEST_TOP_P: number(field(source, "top_p")),
        conv.REQUEST_MAX_TOKENS: int_field(source, "max_completion_tokens"),
        MAX_PROMPT_TOKENS: int_field(source, "max_prompt_tokens"),
        conv.OUTPUT_TYPE: output_type(field(source, "response_format")),
    }


def output_type(response_format: Any) -> Optional[str]:
    """gen_ai.output.type from ``response_format``: ``text`` -> text, ``json_object`` / ``json_schema`` ->
    json; ``auto``, ``none`` and anything else say nothing about the requested type."""
    kind = response_format if isinstance(response_format, str) else text_field(response_format, "type")
    if kind == "text":
        return conv.OUTPUT_TYPE_TEXT
    if kind in ("json_object", "json_schema"):
        return conv.OUTPUT_TYPE_JSON
    return None


def metadata_attributes(metadata: Any, allowed: Iterable[str]) -> dict[str, str]:
    """``azure.ai.agents.run.metadata.<key>`` for each allowed key present in a run's or agent's metadata.
    Nothing by default: metadata can hold user data."""
    if not isinstance(metadata, Mapping):
        return {}
    out = {}
    for key in allowed:
        value = bounded(field(metadata, key))
        if value is not None:
            out[conv.RUN_METADATA_PREFIX + key] = value
    return out


# --- agents -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentInfo:
    """What an agent object (create / get / update agent, or our own lookup) tells us. Content fields
    (``instructions``, ``tools``) are only kept when content capture is on."""

    id: str
    name: Optional[str] = None
    description: Optional[str] = None
    model: Optional[str] = None
    metadata: Optional[Mapping[str, Any]] = None
    instructions: Optional[str] = None
    tools: Any = None

    def attributes(self) -> dict[str, Any]:
        return without_none(
            {conv.AGENT_ID: self.id, conv.AGENT_NAME: self.name, conv.AGENT_DESCRIPTION: self.description}
        )


def agent_info(agent: Any, keep_content: bool = False) -> Optional[AgentInfo]:
    """An :class:`AgentInfo` from an agent object, or None when it has no id."""
    agent_id = text_field(agent, "id")
    if agent_id is None:
        return None
    metadata = field(agent, "metadata")
    return AgentInfo(
        id=agent_id,
        name=text_field(agent, "name"),
        description=text_field(agent, "description"),
        model=text_field(agent, "model"),
        metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
        instructions=field(agent, "instructions") if keep_content else None,
        tools=plain(field(agent, "tools")) if keep_content else None,
    )


def agent_operation_attributes(operation: str, agent: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """``create_agent`` / ``update_agent`` span attributes: the agent (from the result, else the request) and
    its model settings."""
    source = agent if isinstance(agent, Mapping) else request
    return without_none(
        {
            **identity(operation),
            conv.AGENT_ID: text_field(agent, "id") or _str(request.get("agent_id")),
            conv.AGENT_NAME: text_field(source, "name") or _str(request.get("name")),
            conv.AGENT_DESCRIPTION: text_field(source, "description") or _str(request.get("description")),
            **settings(source),
        }
    )


# --- tool calls -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToolCall:
    """What one tool call (from ``required_action`` or from step details) tells us."""

    id: Optional[str]
    raw_type: str
    name: str
    arguments: Any
    result: Any
    server_label: Optional[str] = None
    #: a connected-agent call's sub-run: (agent id, thread id, run id), whichever the service reported
    sub_run: tuple[Optional[str], Optional[str], Optional[str]] = (None, None, None)

    @property
    def semconv_type(self) -> str:
        return _TOOL_TYPE_CLASS.get(self.raw_type, "extension")

    def attributes(self) -> dict[str, Any]:
        agent_id, thread_id, run_id = self.sub_run
        return without_none(
            {
                **identity(EXECUTE_TOOL),
                conv.TOOL_NAME: self.name,
                conv.TOOL_CALL_ID: self.id,
                conv.TOOL_TYPE: self.semconv_type,
                TOOL_RAW_TYPE: self.raw_type,
                MCP_SERVER_LABEL: self.server_label,
                conv.CONNECTED_AGENT_ID: agent_id,
                conv.CONNECTED_THREAD_ID: thread_id,
                conv.CONNECTED_RUN_ID: run_id,
            }
        )


def plain(value: Any, depth: int = 0) -> Any:
    """SDK models (mappings) nested in lists, as plain dicts and lists: recorded content is then JSON, not a
    Python ``repr``. Depth-bounded."""
    if depth > 8:
        return str(value)
    if isinstance(value, Mapping):
        try:
            return {str(k): plain(v, depth + 1) for k, v in value.items()}
        except Exception:
            return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _str(value: Any) -> Optional[str]:
    return bounded(value)


def _int(value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value <= _INT64:
        return value
    return None

