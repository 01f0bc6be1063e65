"""What an invocation's spans say beyond its attributes: its content (capture on) and its ``chat`` span.

* :class:`InvocationContent` gathers an invocation's messages, instructions and tool definitions from wherever
  they show: the request (posted conversation items, ``input``, ``instructions``, ``tools``), then the response
  (its echoed ``instructions`` / ``tools``), then the agent version (``agents``). Only made with capture on.
* :func:`chat_span` is the one ``chat {model}`` span under an invocation: the model calls the service made for
  the response, with the response's usage (the service does not report its model calls one by one), finish
  reason and, with capture on, the conversation as the model saw it and its answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Protocol

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Tracer

from ..core import attributes as attrs
from ..core import conventions as conv
from ..core import messages
from ..core.content import ContentPolicy
from . import attributes as rattrs

if TYPE_CHECKING:  # pragma: no cover
    from .agents import VersionFacts


class Outcome:
    """What a finished response said, kept until the invocation completes (perhaps after a read of its agent)."""

    __slots__ = ("response", "items", "finish", "end_ns", "error_type", "response_id", "conversation", "attributes")

    def __init__(
        self,
        response: Any,
        items: list[Any],
        finish: Optional[str],
        end_ns: int,
        error_type: Optional[str],
        response_id: Optional[str],
        conversation: Optional[str],
        attributes: dict[str, Any],
    ) -> None:
        self.response = response
        self.items = items
        self.finish = finish
        self.end_ns = end_ns
        self.error_type = error_type
        self.response_id = response_id
        self.conversation = conversation
        #: the span's attributes from the response, completed with the agent's and set in one call
        self.attributes = attributes


class InvocationContent:
    """An invocation's opt-in content (see the module docstring)."""

    __slots__ = ("input", "instructions", "tools", "output")

    def __init__(self, given: Optional[list[dict[str, Any]]], instructions: Any, tools: Any) -> None:
        self.input = given
        self.instructions = instructions if isinstance(instructions, str) and instructions else None
        self.tools = rattrs.plain(tools) if isinstance(tools, (list, tuple)) and tools else None
        self.output: Optional[list[dict[str, Any]]] = None

    @classmethod
    def of_request(cls, kwargs: Mapping[str, Any], posted: tuple[Any, ...]) -> "InvocationContent":
        """The request's content: the items posted to its conversation since its last invocation, then ``input``."""
        given = kwargs.get("input")
        found = rattrs.input_messages(list(posted)) or [] if posted else []
        found += rattrs.input_messages(given) or []
        return cls(found or None, kwargs.get("instructions"), kwargs.get("tools"))

    def of_response(self, response: Any) -> None:
        if self.instructions is None:
            instructions = rattrs.get(response, "instructions")
            if isinstance(instructions, str) and instructions:
                self.instructions = instructions
        if self.tools is None:
            tools = rattrs.get(response, "tools")
            if isinstance(tools, list) and tools:
                self.tools = rattrs.plain(tools)

    def wants_agent(self) -> bool:
        """Whether the agent's definition would add something (instructions or tools still unknown)."""
        return self.instructions is None or self.tools is None

    def of_agent(self, facts: Optional["VersionFacts"]) -> None:
        if facts is None:
            return
        if self.instructions is None:
            self.instructions = facts.instructions
        if self.tools is None and facts.tools:
            self.tools = facts.tools

    def record_input(self, policy: ContentPolicy, span: Any) -> None:
        policy.record(span, {conv.INPUT_MESSAGES: policy.text("input.messages", self.input)})

    def record_outcome(self, policy: ContentPolicy, span: Any, outcome: Outcome) -> None:
        self.output = rattrs.output_messages(outcome.items, outcome.finish)
        policy.record(
            span,
            {
                conv.SYSTEM_INSTRUCTIONS: policy.text(
                    "system_instructions", messages.system_instructions(self.instructions)
                ),
                conv.TOOL_DEFINITIONS: policy.text("tool.definitions", messages.tool_definitions(self.tools)),
                conv.OUTPUT_MESSAGES: policy.text("output.messages", self.output),
            },
        )


_CHAT_IDENTITY = attrs.identity(conv.CHAT)


class Invoked(Protocol):
    """What :func:`chat_span` reads of an invocation (``invocations.Invocation``; declared here so that this
    module needs nothing from the one that calls it)."""

    model: Optional[str]
    usage: Mapping[str, Any]
    output_type: Optional[str]
    context: Context
    start_ns: int
    content: Optional[InvocationContent]


def chat_span(tracer: Tracer, policy: ContentPolicy, invocation: Invoked, outcome: Outcome) -> None:
    """The ``chat {model}`` span of a finished invocation (see the module docstring), over its window. It carries
    what a model-call span needs (operation, provider, model, usage, finish reason, response id); the server,
    conversation and agent are its parent's (each attribute costs every invocation a few microseconds)."""
    model = invocation.model
    attributes: dict[str, Any] = {**_CHAT_IDENTITY, **invocation.usage}
    if model:
        attributes[conv.REQUEST_MODEL] = model
    if outcome.response_id:
        attributes[conv.RESPONSE_ID] = outcome.response_id
    if outcome.finish:
        attributes[conv.RESPONSE_FINISH_REASONS] = (outcome.finish,)
    if invocation.output_type:
        attributes[conv.OUTPUT_TYPE] = invocation.output_type
    span = tracer.start_span(
        conv.span_name(conv.CHAT, model),
        context=invocation.context,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        start_time=invocation.start_ns,
    )
    content = invocation.content
    if content is not None:
        policy.record(
            span,
            {
                conv.SYSTEM_INSTRUCTIONS: policy.text(
                    "system_instructions", messages.system_instructions(content.instructions)
                ),
                conv.INPUT_MESSAGES: policy.text("input.messages", content.input),
                conv.OUTPUT_MESSAGES: policy.text("output.messages", content.output),
            },
        )
    span.end(end_time=outcome.end_ns)
