"""What the tracker remembers about runs and tool calls, and the bounds on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from opentelemetry.context import Context
from opentelemetry.trace import Span

from . import attributes as attrs

#: Bounds that keep one pathological run from holding unbounded memory.
MAX_STEPS_PER_RUN = 256
MAX_CALLS_PER_RUN = 256
MAX_KNOWN_AGENTS = 4096


@dataclass
class PendingCall:
    """A function call the service asked the app to execute (``requires_action``)."""

    name: Optional[str] = None
    first_seen_ns: Optional[int] = None
    submitted_ns: Optional[int] = None
    arguments: Optional[str] = None
    output: Any = None


@dataclass(eq=False)
class RunState:
    """Everything known about one run while its span is open (and a little after)."""

    span: Span
    context: Context
    start_ns: int
    agent_id: Optional[str] = None
    agent_named: bool = False
    model: Optional[str] = None
    run_id: Optional[str] = None
    thread_id: Optional[str] = None
    status: Optional[str] = None
    last_seen: float = 0.0
    end_ns: Optional[int] = None
    finishing: bool = False
    error: Optional[tuple[str, Optional[str]]] = None
    usage: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, PendingCall] = field(default_factory=dict)
    steps: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    emitted: set[str] = field(default_factory=set)  # step and tool-call ids whose spans exist
    children_emitted: bool = False  # the run ended and its step/tool spans were emitted once
    first_chunk_s: Optional[float] = None  # streamed runs: seconds from create to the first event
    awaiting_outputs: bool = False  # requires_action observed and not answered yet
    #: status changes not yet on the span: (seen at ns, status, previous, required call count, action type)
    transitions: list[tuple[int, str, Optional[str], Optional[int], Optional[str]]] = field(default_factory=list)
    driver: Any = None  # the adapter now carrying the run (its newest stream); opaque to the tracker


@dataclass(eq=False)
class LiveTool:
    """An ``execute_tool`` span open while the SDK runs the app's function."""

    span: Span
    context: Context
    info: attrs.ToolCall
    start_ns: int


@dataclass(frozen=True)
class TrackerConfig:
    max_open_runs: int = 5_000
    idle_timeout_s: float = 1800.0
    list_steps_on_completion: bool = True
    finished_runs_kept: int = 1024
