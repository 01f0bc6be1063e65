"""The new agents' calls around invocations: conversation items, agent versions, closing an ``openai`` client.

* ``conversations.create(items=...)`` / ``conversations.items.create(conversation_id, items=...)`` (content
  capture only): the items are the input of the conversation's next invocation (:class:`PostItems`).
* ``project.agents.create_version`` (and ``_from_manifest`` / ``_from_code``), ``update_details``, ``delete``,
  ``delete_version``: a ``create_agent`` / ``update_agent`` / ``delete_agent`` span around the call, like classic
  ``create_agent`` (:class:`AgentVersionOperation`); what the call returns is learned (``agents``).
* ``project.agents.get`` / ``get_version``: what they return is learned (:class:`ObserveAgentVersion`), no span.
* ``OpenAI.close`` / ``__exit__`` (and the async client's): a closed client cannot finish a read of its agent
  still going through it, so closing waits for those (at most the fetch timeout; only when one is pending).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from opentelemetry import trace

from ..core import attributes as attrs
from ..core import conventions as conv
from ..core.calls import Arg, Call, Operation
from .clients import project_endpoint
from .invocations import Invocations

_NO_CONTEXT = Call()


class PostItems(Operation):
    """``conversations.create`` (``conversation_id`` None: the result's id) and ``conversations.items.create``."""

    def __init__(self, conversation: Optional[Arg] = None) -> None:
        self._conversation = conversation

    def before(self, tracker: Invocations, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        if not tracker.content_enabled:
            return None
        items = kwargs.get("items")
        if not isinstance(items, (list, tuple)) or not items:
            return None
        conversation = self._conversation.get(args, kwargs) if self._conversation is not None else None
        return Call(payload=(conversation if isinstance(conversation, str) else None, items))

    def after(self, tracker: Invocations, instance: Any, call: Call, result: Any) -> Any:
        conversation, items = call.payload
        tracker.posted.posted(conversation or attrs.bounded(getattr(result, "id", None)), items)
        return result


class ObserveAgentVersion(Operation):
    """``agents.get`` (an agent, its latest version, its endpoint) / ``agents.get_version`` (one version)."""

    def __init__(self, is_version: bool) -> None:
        self._is_version = is_version

    def before(self, tracker: Invocations, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        return _NO_CONTEXT

    def after(self, tracker: Invocations, instance: Any, call: Call, result: Any) -> Any:
        if isinstance(result, Mapping):
            endpoint = project_endpoint(instance)
            if self._is_version:
                tracker.agents.learn_version(endpoint, result)
            else:
                tracker.agents.learn_agent(endpoint, result)
        return result


class AgentVersionOperation(Operation):
    """An agent lifecycle call as a span (see the module docstring): ``operation`` is its
    ``gen_ai.operation.name``; ``version`` where the call names a version (``delete_version``)."""

    def __init__(self, operation: str, version: Optional[Arg] = None) -> None:
        self._operation, self._version = operation, version

    def before(self, tracker: Invocations, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        body = kwargs.get("body")
        if body is None and len(args) > 1 and isinstance(args[1], Mapping):
            body = args[1]
        source: Mapping[str, Any] = body if isinstance(body, Mapping) else kwargs
        name = Arg(0, "agent_name").get(args, kwargs)
        definition = source.get("definition")
        request = {
            "name": name,
            "description": source.get("description"),
            "model": attrs.field(definition, "model") if isinstance(definition, Mapping) else None,
        }
        endpoint = project_endpoint(instance)
        span = tracker.spans.start_agent_operation(self._operation, request, attrs.server_address(endpoint))
        version = self._version.get(args, kwargs) if self._version is not None else None
        if version is not None:
            span.set_attribute(conv.AGENT_VERSION, str(version))
        return Call(context=trace.set_span_in_context(span), payload=(span, endpoint, name))

    def after(self, tracker: Invocations, instance: Any, call: Call, result: Any) -> Any:
        span, endpoint, name = call.payload
        agent: Any = None
        extra: dict[str, Any] = {}
        if self._operation == conv.CREATE_AGENT:
            tracker.agents.created(endpoint, result)
            agent, version = _flat_version(result)
            if version:
                extra[conv.AGENT_VERSION] = version
        elif self._operation == conv.UPDATE_AGENT:
            tracker.agents.forget(endpoint, name)
            if isinstance(result, Mapping):
                tracker.agents.learn_agent(endpoint, result)
                agent = {"id": attrs.field(result, "id"), "name": attrs.field(result, "name")}
        else:
            tracker.agents.forget(endpoint, name)
        tracker.spans.end_agent_operation(span, self._operation, agent, None, extra)
        return result

    def failed(self, tracker: Invocations, call: Call, exc: BaseException) -> None:
        tracker.spans.end_agent_operation(call.payload[0], self._operation, None, exc)


def _flat_version(details: Any) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """An agent version as the agent-operation span reads an agent (id, name, description, model, instructions,
    tools), and its version."""
    if not isinstance(details, Mapping):
        return None, None
    definition = attrs.field(details, "definition")
    version = attrs.field(details, "version")
    flat = {
        "id": attrs.field(details, "id"),
        "name": attrs.field(details, "name"),
        "description": attrs.field(details, "description"),
        "model": attrs.field(definition, "model"),
        "instructions": attrs.field(definition, "instructions"),
        "tools": attrs.field(definition, "tools"),
    }
    return flat, (str(version) if isinstance(version, (str, int)) and not isinstance(version, bool) else None)


class CloseOpenAIClient(Operation):
    """``OpenAI.close`` / ``__exit__`` and ``AsyncOpenAI.close`` / ``__aexit__``: waits for the reads of agents still
    going through the client (see the module docstring)."""

    def before(self, tracker: Invocations, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        if tracker.fetcher.pending:
            tracker.fetcher.flush(tracker.fetcher.timeout_s, owners=[instance])
        return None

    async def before_async(self, tracker: Invocations, instance: Any, args: tuple, kwargs: dict) -> Optional[Call]:
        if tracker.fetcher.pending:
            await tracker.fetcher.drain_async([instance])
        return None
