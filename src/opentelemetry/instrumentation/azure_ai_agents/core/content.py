"""Content-capture policy: whether prompts, tool arguments, outputs and code may be recorded, and how.

Off by default (GenAI semantic conventions). Switched on by, in order of precedence:

1. ``AzureAgentInstrumentor().instrument(capture_content=True/False)``;
2. ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` = ``true`` | ``SPAN_ONLY`` | ``SPAN_AND_EVENT`` |
   ``EVENT_ONLY`` (``false`` / ``NO_CONTENT`` keep it off);
3. ``AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED=true`` (Microsoft's switch, honoured for easy migration).

Captured values are passed through an optional redaction hook, then truncated to ``max_length`` characters.
Structured values (messages, instructions, tool definitions) stay valid JSON when cut: their longest strings are
shortened first, so backends that parse them (Phoenix, MLflow) still can.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

_log = logging.getLogger(__name__)

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
AZURE_CAPTURE_ENV = "AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED"
MAX_LENGTH_ENV = "OTEL_INSTRUMENTATION_AZURE_AI_AGENTS_CONTENT_MAX_LENGTH"
DEFAULT_MAX_LENGTH = 8192
TRUNCATION_MARK = "…[truncated]"

#: ``redact(kind, value) -> value``: kind is one of ``tool.arguments``, ``tool.result``, ``input.messages``,
#: ``output.messages``, ``system_instructions``, ``tool.definitions``; the value is the text about to be recorded.
RedactHook = Callable[[str, str], Optional[str]]

_ON = {"true", "1", "yes", "on", "span_only", "span_and_event", "event_only"}
_EVENT_MODES = {"span_and_event", "event_only"}


@dataclass(frozen=True)
class ContentPolicy:
    """What may be recorded. ``enabled`` False means no content ever reaches a span."""

    enabled: bool = False
    on_span: bool = True  #: as span attributes (SPAN_ONLY, SPAN_AND_EVENT, true)
    as_event: bool = False  #: as a span event named ``gen_ai.content`` (SPAN_AND_EVENT, EVENT_ONLY)
    max_length: int = DEFAULT_MAX_LENGTH
    redact: Optional[RedactHook] = None

    @classmethod
    def resolve(
        cls,
        capture_content: Optional[bool] = None,
        redact: Optional[RedactHook] = None,
        max_length: Optional[int] = None,
    ) -> "ContentPolicy":
        """Build the policy from the ``instrument()`` argument and the environment."""
        mode = os.environ.get(CAPTURE_ENV, "").strip().lower()
        enabled = mode in _ON or os.environ.get(AZURE_CAPTURE_ENV, "").strip().lower() == "true"
        if capture_content is not None:
            enabled = bool(capture_content)
        if max_length is None:
            try:
                max_length = int(os.environ.get(MAX_LENGTH_ENV, DEFAULT_MAX_LENGTH))
            except ValueError:
                _log.warning("%s is not an integer; using %d", MAX_LENGTH_ENV, DEFAULT_MAX_LENGTH)
                max_length = DEFAULT_MAX_LENGTH
        return cls(
            enabled=enabled,
            on_span=mode != "event_only",
            as_event=mode in _EVENT_MODES,
            max_length=max(16, max_length),
            redact=redact,
        )

    def text(self, kind: str, value: Any) -> Optional[str]:
        """The recordable form of ``value`` (None when capture is off or there is nothing to record)."""
        if not self.enabled or value is None:
            return None
        text = value if isinstance(value, str) else _to_json(_fit(value, self.max_length))
        if self.redact is not None:
            try:
                redacted: object = self.redact(kind, text)  # a faulty hook may return anything
            except Exception as exc:  # a faulty hook must not leak the unredacted value: not even via the log
                _log.warning("content redaction hook raised %s; dropping the %s value", type(exc).__name__, kind)
                return None
            if not isinstance(redacted, str):
                if redacted is not None:
                    kind_of = type(redacted).__name__
                    _log.warning("content redaction hook returned %s, not str; dropping the %s value", kind_of, kind)
                return None
            text = redacted
        return truncate(text, self.max_length)


    def record(self, span: Any, values: Mapping[str, Optional[str]]) -> None:
        """Puts already-processed content on ``span``: as attributes and/or as a ``gen_ai.content`` event."""
        present = {k: v for k, v in values.items() if v is not None}
        if not present:
            return
        if self.on_span:
            span.set_attributes(present)
        if self.as_event:
            span.add_event("gen_ai.content", present)


def truncate(text: str, max_length: int) -> str:
    """Cut ``text`` to at most ``max_length`` characters, marking the cut."""
    if len(text) <= max_length:
        return text
    return text[: max_length - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def _fit(value: Any, max_length: int) -> Any:
    """``value`` with its strings shortened (longest first, each marked) until its JSON fits ``max_length``;
    the result is still a valid JSON structure. Bounded work: a few passes."""
    if len(_to_json(value)) <= max_length:
        return value
    budget = max_length
    for _ in range(6):
        budget = max(len(TRUNCATION_MARK) + 8, budget // 2)
        shortened = _cut_strings(value, budget)
        if len(_to_json(shortened)) <= max_length:
            return shortened
    return shortened


def _cut_strings(value: Any, limit: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return truncate(value, limit)
    if depth > 16:
        return value
    if isinstance(value, dict):
        return {k: _cut_strings(v, limit, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut_strings(v, limit, depth + 1) for v in value]
    return value


def _to_json(value: Any) -> str:
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
