"""Scenario definitions for the Agents emulator: pure data describing what a run does.

A scenario is a sequence of run steps plus an outcome. The state machine in ``service.py``
walks every scenario the same way:

``queued -> in_progress -> [requires_action -> (submit) -> in_progress]* -> outcome``

* A :class:`ToolCallsStep` with ``client_side=True`` holds ``function`` calls that the client must
  answer with ``submit_tool_outputs``: the run stops in ``requires_action`` until it does.
* Other steps are executed "server side" and finish by themselves.
* ``outcome`` is the final run status; ``None`` means the run never finishes on its own (it stays
  ``in_progress`` until it is cancelled).

Tool call templates use the wire format (``{"type": T, T: {...}}``, MCP has its fields at the top
level like the SDK's ``RunStepMcpToolCall``); ids are added per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

DEFAULT_FUNCTION_NAME = "get_weather"


@dataclass(frozen=True)
class ToolCallsStep:
    """A ``tool_calls`` run step.

    ``calls`` are wire-format tool call templates without ``id``. For ``client_side`` steps each call
    is ``{"type": "function", "function": {"name": ..., "arguments": {...}}}``; the emulator replaces
    the name/arguments with the agent's own function tools when it has some.
    """

    calls: Sequence[Mapping[str, Any]]
    client_side: bool = False


@dataclass(frozen=True)
class MessageStep:
    """A ``message_creation`` run step adding an assistant message with ``text`` to the thread.

    ``{outputs}`` in the text is replaced with the tool outputs submitted during the run.
    """

    text: str


Step = Union[ToolCallsStep, MessageStep]


@dataclass(frozen=True)
class Scenario:
    """What a run does, as data."""

    name: str
    description: str
    steps: Sequence[Step]
    outcome: Optional[str] = "completed"  # completed | failed | expired | incomplete | None (hang)
    usage: Optional[tuple[int, int]] = (120, 45)  # (prompt_tokens, completion_tokens)
    last_error: Optional[Mapping[str, Any]] = None  # run.last_error when outcome == "failed"
    step_error: Optional[Mapping[str, Any]] = None  # last_error of the failed/expired step
    incomplete_details: Optional[Mapping[str, Any]] = None


def function_call(name: str = DEFAULT_FUNCTION_NAME, **arguments: Any) -> dict[str, Any]:
    """A client-side function call template."""
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


CODE_INTERPRETER_CALL: dict[str, Any] = {
    "type": "code_interpreter",
    "code_interpreter": {"input": "print(2+2)", "outputs": [{"type": "logs", "logs": "4\n"}]},
}

FILE_SEARCH_CALL: dict[str, Any] = {
    "type": "file_search",
    "file_search": {
        "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0},
        "results": [
            {"file_id": "assistant-file-emulated-1", "file_name": "product_info.md", "score": 0.92},
            {"file_id": "assistant-file-emulated-2", "file_name": "faq.md", "score": 0.71},
        ],
    },
}

# One call of every server-side tool type the service knows (field names as in the SDK models).
ALL_SERVER_TOOL_CALLS: tuple[dict[str, Any], ...] = (
    CODE_INTERPRETER_CALL,
    FILE_SEARCH_CALL,
    {
        "type": "bing_grounding",
        "bing_grounding": {
            "requesturl": "https://api.bing.microsoft.com/v7.0/search?q=weather+seattle",
            "response_metadata": "{'market': 'en-US', 'num_docs_retrieved': 5}",
        },
    },
    {
        "type": "bing_custom_search",
        "bing_custom_search": {
            "requesturl": "https://api.bing.microsoft.com/v7.0/custom/search?q=agents&customconfig=1",
            "response_metadata": "{'num_docs_retrieved': 3}",
        },
    },
    {
        "type": "azure_ai_search",
        "azure_ai_search": {"input": "hotels near the lake", "output": "3 documents found"},
    },
    {
        "type": "sharepoint_grounding",
        "sharepoint_grounding": {"input": "travel policy", "output": "Travel policy v3 found"},
    },
    {
        "type": "fabric_dataagent",
        "fabric_dataagent": {"input": "sales in Q3", "output": "Q3 sales: 1.2M"},
    },
    {
        "type": "openapi",
        "openapi": {
            "name": "weather_GetCurrentWeather",
            "arguments": '{"location": "Seattle"}',
            "output": '{"temperature": 12, "unit": "C"}',
        },
    },
    {
        "type": "mcp",
        "name": "search_docs",
        "arguments": '{"query": "agent service"}',
        "output": "Found 2 pages",
        "server_label": "docs",
    },
    {
        "type": "azure_function",
        "azure_function": {
            "name": "foo",
            "arguments": '{"query": "Seattle"}',
            "output": '{"result": "sunny"}',
        },
    },
    {
        "type": "connected_agent",
        "connected_agent": {
            "name": "stock_price_bot",
            "arguments": '{"query": "MSFT"}',
            "output": "MSFT is at 420 USD",
            "run_id": "run_connectedemulated0001",
            "thread_id": "thread_connectedemulated01",
            "assistant_id": "asst_connectedemulated001",
        },
    },
    {
        "type": "deep_research",
        "deep_research": {"input": "state of quantum computing", "output": "A 3-page report"},
    },
    # A function call that the service already completed (output present), e.g. an auto-executed one.
    {
        "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order_id": "42"}', "output": '{"status": "shipped"}'},
    },
)

UNKNOWN_TOOL_CALL: dict[str, Any] = {
    "type": "quantum_entangler",
    "quantum_entangler": {"qubits": "2", "state": "bell", "output": "|00> + |11>"},
}

_SERVER_ERROR = {"code": "server_error", "message": "Something went wrong"}
_STEP_ERROR = {"code": "server_error", "message": "Code interpreter session crashed"}

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "message",
            "Plain reply: one message_creation step.",
            (MessageStep("Hello! I am an emulated agent. How can I help you today?"),),
            usage=(120, 45),
        ),
        Scenario(
            "function_call",
            "One client-side function call (requires_action), then a reply.",
            (
                ToolCallsStep((function_call(city="Seattle"),), client_side=True),
                MessageStep("Here is what I found: {outputs}"),
            ),
            usage=(250, 60),
        ),
        Scenario(
            "multi_function",
            "Two parallel function calls, then a second round with one call, then a reply.",
            (
                ToolCallsStep((function_call(city="Seattle"), function_call(city="Paris")), client_side=True),
                ToolCallsStep((function_call(city="Tokyo"),), client_side=True),
                MessageStep("Summary of the three lookups: {outputs}"),
            ),
            usage=(480, 96),
        ),
        Scenario(
            "code_interpreter",
            "Server-side code interpreter call, then a reply.",
            (ToolCallsStep((CODE_INTERPRETER_CALL,)), MessageStep("2 + 2 = 4")),
            usage=(300, 70),
        ),
        Scenario(
            "file_search",
            "Server-side file search call, then a reply.",
            (ToolCallsStep((FILE_SEARCH_CALL,)), MessageStep("According to product_info.md, yes.")),
            usage=(900, 80),
        ),
        Scenario(
            "all_tools",
            "One tool_calls step with a call of every server-side tool type, then a reply.",
            (ToolCallsStep(ALL_SERVER_TOOL_CALLS), MessageStep("I used every tool I have.")),
            usage=(2600, 130),
        ),
        Scenario(
            "unknown_tool",
            "A tool call of a type no SDK knows ('quantum_entangler'), then a reply.",
            (ToolCallsStep((UNKNOWN_TOOL_CALL,)), MessageStep("The qubits are entangled.")),
            usage=(150, 30),
        ),
        Scenario(
            "failed",
            "The run fails with last_error server_error; its tool_calls step fails too.",
            (ToolCallsStep((CODE_INTERPRETER_CALL,)),),
            outcome="failed",
            usage=None,
            last_error=_SERVER_ERROR,
            step_error=_STEP_ERROR,
        ),
        Scenario(
            "failed_no_error",
            "The run fails without last_error.",
            (ToolCallsStep((CODE_INTERPRETER_CALL,)),),
            outcome="failed",
            usage=None,
        ),
        Scenario(
            "expired",
            "The run expires (expires_at set, no last_error).",
            (ToolCallsStep((CODE_INTERPRETER_CALL,)),),
            outcome="expired",
            usage=None,
        ),
        Scenario(
            "incomplete",
            "The run ends incomplete (max_completion_tokens), with usage.",
            (MessageStep("The answer is a long story that got cut"),),
            outcome="incomplete",
            usage=(200, 64),
            incomplete_details={"reason": "max_completion_tokens"},
        ),
        Scenario(
            "cancel",
            "The run stays in_progress until it is cancelled.",
            (ToolCallsStep((CODE_INTERPRETER_CALL,)),),
            outcome=None,
            usage=None,
        ),
    )
}

SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)
#: What runs that name no scenario do in ``AgentsService`` by default (kept for existing tests); ``"auto"``
#: (``tool_plans.AUTO_SCENARIO``, the command line's default) follows the agent's tools instead.
DEFAULT_SCENARIO = "function_call"
