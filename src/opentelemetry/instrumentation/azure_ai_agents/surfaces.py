"""The table of instrumented SDK methods: (module, class, method) -> what its call tells the core.

Supporting a new SDK version or surface means adding rows here. Rows whose module or method does not exist in
the installed SDK are skipped, so one table serves every version. Sync and async twins share operations: the
wrapper is chosen from the method itself (coroutine function or not).
"""

from __future__ import annotations

from dataclasses import dataclass

from .classic.agents import AgentGetter
from .classic.message_reads import MessageLister
from .classic.operations import (
    AgentOperation,
    CloseClient,
    CreateRun,
    GetStep,
    ListSteps,
    ObserveAgent,
    ObserveRun,
    PostMessage,
    ProcessRun,
    ReadMessages,
    SubmitToolOutputs,
)
from .classic.reads import RunReader
from .classic.steps import PagedStepLister, PageModelStepLister
from .classic.streaming import StreamClosed, StreamEvents, StreamRegistry, StreamRun, SubmitToolOutputsStream
from .classic.tool_execution import ExecuteFunction
from .core import conventions as conv
from .core.calls import Arg, Operation
from .foundry.agent_operations import AgentVersionOperation, CloseOpenAIClient, ObserveAgentVersion, PostItems
from .foundry.operations import CreateResponse, ObserveResponse

#: Shared by every streaming row: which handler feeds which run.
STREAMS = StreamRegistry()


@dataclass(frozen=True)
class Surface:
    module: str
    cls: str
    method: str
    operation: Operation
    sdk: str  #: distribution name, for docs and coverage tables


def _agents(module: str, client_module: str) -> list[Surface]:
    """azure-ai-agents 1.x: ``client.runs``, ``client.run_steps``, ``client.messages`` and agent methods on the
    client."""
    reader = RunReader(PagedStepLister(module), AgentGetter(module + "._operations"), MessageLister(module))
    sdk = "azure-ai-agents"
    return [
        Surface(module, "RunsOperations", "create", CreateRun(reader, thread=Arg(0, "thread_id")), sdk),
        Surface(module, "RunsOperations", "get", ObserveRun(reader), sdk),
        Surface(module, "RunsOperations", "cancel", ObserveRun(reader), sdk),
        Surface(module, "RunsOperations", "submit_tool_outputs", SubmitToolOutputs(reader), sdk),
        Surface(module, "RunsOperations", "create_and_process", ProcessRun(reader), sdk),
        Surface(module, "RunsOperations", "stream", StreamRun(STREAMS, reader), sdk),
        Surface(
            module, "RunsOperations", "submit_tool_outputs_stream", SubmitToolOutputsStream(STREAMS, reader), sdk
        ),
        Surface(module, "RunStepsOperations", "list", ListSteps(paged=True), sdk),
        Surface(module, "RunStepsOperations", "get", GetStep(), sdk),
        Surface(module, "MessagesOperations", "create", PostMessage(), sdk),
        Surface(module, "MessagesOperations", "list", ReadMessages(paged=True), sdk),
        Surface(module, "MessagesOperations", "get", ReadMessages(), sdk),
        Surface(
            client_module,
            "AgentsClient",
            "create_thread_and_run",
            CreateRun(reader, body=Arg(0, "body")),
            sdk,
        ),
        Surface(client_module, "AgentsClient", "create_thread_and_process_run", ProcessRun(reader), sdk),
        Surface(client_module, "AgentsClient", "create_agent", AgentOperation(conv.CREATE_AGENT), sdk),
        Surface(client_module, "AgentsClient", "get_agent", ObserveAgent(), sdk),
        Surface(
            client_module, "AgentsClient", "update_agent", AgentOperation(conv.UPDATE_AGENT, Arg(0, "agent_id")), sdk
        ),
        Surface(client_module, "AgentsClient", "close", CloseClient(), sdk),
        Surface(client_module, "AgentsClient", "__exit__", CloseClient(), sdk),
        Surface(client_module, "AgentsClient", "__aexit__", CloseClient(), sdk),
    ]


def _project_client(module: str) -> list[Surface]:
    """azure-ai-projects 1.0.0bX's client: closing it waits for our pending fetches through it."""
    sdk = "azure-ai-projects"
    return [
        Surface(module, "AIProjectClient", "close", CloseClient(), sdk),
        Surface(module, "AIProjectClient", "__exit__", CloseClient(), sdk),
        Surface(module, "AIProjectClient", "__aexit__", CloseClient(), sdk),
    ]


def _projects(module: str) -> list[Surface]:
    """azure-ai-projects 1.0.0bX: everything on ``client.agents`` (``AgentsOperations``)."""
    reader = RunReader(
        PageModelStepLister("list_run_steps"), AgentGetter(), MessageLister(legacy_method="list_messages")
    )
    sdk = "azure-ai-projects"
    ops = "AgentsOperations"
    return [
        Surface(module, ops, "create_run", CreateRun(reader, thread=Arg(0, "thread_id")), sdk),
        Surface(module, ops, "get_run", ObserveRun(reader), sdk),
        Surface(module, ops, "cancel_run", ObserveRun(reader), sdk),
        Surface(module, ops, "submit_tool_outputs_to_run", SubmitToolOutputs(reader), sdk),
        Surface(module, ops, "create_and_process_run", ProcessRun(reader), sdk),
        Surface(module, ops, "create_stream", StreamRun(STREAMS, reader), sdk),
        Surface(module, ops, "submit_tool_outputs_to_stream", SubmitToolOutputsStream(STREAMS, reader), sdk),
        Surface(module, ops, "list_run_steps", ListSteps(paged=False), sdk),
        Surface(module, ops, "get_run_step", GetStep(), sdk),
        Surface(module, ops, "create_message", PostMessage(), sdk),
        Surface(module, ops, "list_messages", ReadMessages(), sdk),
        Surface(module, ops, "get_message", ReadMessages(), sdk),
        Surface(module, ops, "create_thread_and_run", CreateRun(reader, body=Arg(0, "body")), sdk),
        Surface(module, ops, "create_agent", AgentOperation(conv.CREATE_AGENT), sdk),
        Surface(module, ops, "get_agent", ObserveAgent(), sdk),
        Surface(module, ops, "update_agent", AgentOperation(conv.UPDATE_AGENT, Arg(0, "agent_id")), sdk),
    ]


def _models(module: str, sdk: str) -> list[Surface]:
    """Model classes shared by the sync and async clients of one SDK generation: stream event handlers and
    streams (see ``streaming``), and the function tool that runs the app's functions (see ``tool_execution``;
    ``BaseFunctionTool`` is not exported, hence its private module)."""
    return [
        Surface(module, "BaseAgentEventHandler", "__next_impl__", StreamEvents(STREAMS), sdk),
        Surface(module, "BaseAsyncAgentEventHandler", "__anext_impl__", StreamEvents(STREAMS), sdk),
        Surface(module, "AgentRunStream", "__exit__", StreamClosed(STREAMS), sdk),
        Surface(module, "AsyncAgentRunStream", "__aexit__", StreamClosed(STREAMS), sdk),
        Surface(module + "._patch", "BaseFunctionTool", "_get_func_and_args", ExecuteFunction(), sdk),
    ]


SURFACES: tuple[Surface, ...] = tuple(
    _agents("azure.ai.agents.operations", "azure.ai.agents")
    + _agents("azure.ai.agents.aio.operations", "azure.ai.agents.aio")
    + _models("azure.ai.agents.models", "azure-ai-agents")
    + _projects("azure.ai.projects.operations")
    + _projects("azure.ai.projects.aio.operations")
    + _models("azure.ai.projects.models", "azure-ai-projects")
    + _project_client("azure.ai.projects")
    + _project_client("azure.ai.projects.aio")
)


def _responses(module: str) -> list[Surface]:
    """The new Foundry agents (``azure-ai-projects`` >= 2): the Responses API of the ``openai`` client that
    ``project.get_openai_client()`` (or ``get_openai_client(agent_name=N)``) returns. ``responses.stream(...)``
    calls ``create`` itself."""
    sdk = "openai"
    return [
        Surface(module, cls, method, operation, sdk)
        for cls in ("Responses", "AsyncResponses")
        for method, operation in (
            ("create", CreateResponse()),
            ("retrieve", ObserveResponse()),
            ("cancel", ObserveResponse()),
        )
    ]


def _conversations() -> list[Surface]:
    """Conversation items posted before an invocation are its input (content capture only)."""
    sdk = "openai"
    conversations, items = "openai.resources.conversations.conversations", "openai.resources.conversations.items"
    return [
        Surface(conversations, "Conversations", "create", PostItems(), sdk),
        Surface(conversations, "AsyncConversations", "create", PostItems(), sdk),
        Surface(items, "Items", "create", PostItems(Arg(0, "conversation_id")), sdk),
        Surface(items, "AsyncItems", "create", PostItems(Arg(0, "conversation_id")), sdk),
    ]


def _openai_clients() -> list[Surface]:
    """Closing an ``openai`` client waits for the reads of agents still going through it."""
    sdk = "openai"
    module = "openai._base_client"
    return [
        Surface(module, "SyncAPIClient", "close", CloseOpenAIClient(), sdk),
        Surface(module, "SyncAPIClient", "__exit__", CloseOpenAIClient(), sdk),
        Surface(module, "AsyncAPIClient", "close", CloseOpenAIClient(), sdk),
        Surface(module, "AsyncAPIClient", "__aexit__", CloseOpenAIClient(), sdk),
    ]


def _agent_versions(module: str) -> list[Surface]:
    """``project.agents`` of ``azure-ai-projects`` >= 2 (none of these methods exist in 1.0.0bX): lifecycle spans,
    and what agent reads return is learned."""
    sdk = "azure-ai-projects"
    ops = "AgentsOperations"
    create = AgentVersionOperation(conv.CREATE_AGENT)
    return [
        Surface(module, ops, "create_version", create, sdk),
        Surface(module, ops, "create_version_from_manifest", create, sdk),
        Surface(module, ops, "create_version_from_code", create, sdk),
        Surface(module, ops, "update_details", AgentVersionOperation(conv.UPDATE_AGENT), sdk),
        Surface(module, ops, "delete", AgentVersionOperation(conv.DELETE_AGENT), sdk),
        Surface(module, ops, "delete_version", AgentVersionOperation(conv.DELETE_AGENT, Arg(1, "agent_version")), sdk),
        Surface(module, ops, "get", ObserveAgentVersion(is_version=False), sdk),
        Surface(module, ops, "get_version", ObserveAgentVersion(is_version=True), sdk),
    ]


#: Installed with the invocation tracker (``foundry/invocations.py``), not the run tracker.
RESPONSES_SURFACES: tuple[Surface, ...] = tuple(
    _responses("openai.resources.responses.responses")
    + _conversations()
    + _openai_clients()
    + _agent_versions("azure.ai.projects.operations")
    + _agent_versions("azure.ai.projects.aio.operations")
)
