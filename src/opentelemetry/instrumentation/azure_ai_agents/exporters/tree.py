"""A console exporter that prints every finished trace as a tree with duration bars.

Meant for development: ``OTEL_TRACES_EXPORTER=agent_tree python app.py`` prints one tree per agent run::

    ▸ Trip planner · trace 5b08b164 · 2.60 s
    handle_request                 ████████████████  2.60 s ✓
    └─ invoke_agent Trip planner   ████████████████  2.40 s ✗ server_error
       │    run_abc123XYZ · gpt-4o · failed · 120→45 tok
       ├─ chat gpt-4o              ··██············  200 ms ✓
       │       tool_calls · completed · 80→12 tok
       ├─ execute_tool get_weather ····████········  600 ms ✓
       │       function · call_Qx81
       ├─ chat gpt-4o              ········███████·  1.10 s ✓
       │       message_creation · completed · 40→33 tok
       └─ (+3 HTTP calls)

The pure function :func:`render_trace` turns the spans of one trace into text; :class:`RunTreeSpanExporter`
buffers spans per trace until the trace's local root ends, then writes the rendering to a stream.

Environment: ``NO_COLOR`` (disables colour), ``FORCE_COLOR`` (forces it), ``COLUMNS`` (terminal width).
"""

from __future__ import annotations

import codecs
import logging
import os
import shutil
import sys
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Mapping, Optional, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

__all__ = ["RunTreeSpanExporter", "render_trace"]

_logger = logging.getLogger(__name__)

# Attribute names (literal, so this module stays independent of the rest of the package).
_OPERATION = "gen_ai.operation.name"
_AGENT_NAME = "gen_ai.agent.name"
_RUN_ID = "azure.ai.agents.run.id"
_RUN_STATUS = "azure.ai.agents.run.status"
_REQUEST_MODEL = "gen_ai.request.model"
_RESPONSE_MODEL = "gen_ai.response.model"
_INPUT_TOKENS = "gen_ai.usage.input_tokens"
_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
_TOOL_NAME = "gen_ai.tool.name"
_TOOL_TYPE = "gen_ai.tool.type"
_TOOL_CALL_ID = "gen_ai.tool.call.id"
_TOOL_RAW_TYPE = "azure.ai.agents.tool.type"
_STEP_TYPE = "azure.ai.agents.run_step.type"
_STEP_STATUS = "azure.ai.agents.run_step.status"
_ERROR_TYPE = "error.type"
_HTTP_METHODS = ("http.request.method", "http.method")
_HTTP_STATUS = ("http.response.status_code", "http.status_code")


# --- characters and colours -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Glyphs:
    branch: str
    last: str
    pipe: str
    blank: str
    bar: str
    track: str
    ok: str
    error: str
    sep: str
    arrow: str
    ellipsis: str
    header: str


_UNICODE = _Glyphs("├─ ", "└─ ", "│  ", "   ", "█", "·", "✓", "✗", " · ", "→", "…", "▸")
_ASCII = _Glyphs("|- ", "`- ", "|  ", "   ", "#", ".", "ok ", "ERR", " | ", "->", "...", ">")

_RESET = "\x1b[0m"
_BOLD, _DIM = "1", "2"
_RED, _GREEN, _YELLOW, _BLUE, _MAGENTA, _CYAN = "31", "32", "33", "34", "35", "36"


def _paint(text: str, color: bool, *codes: str) -> str:
    if not color or not codes or not text:
        return text
    return f"\x1b[{';'.join(codes)}m{text}{_RESET}"


def _cells(text: str) -> int:
    """Terminal columns ``text`` occupies (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1 for ch in text)


def _fit(text: str, width: int, ellipsis: str) -> str:
    """``text`` cut to at most ``width`` columns (ending in ``ellipsis`` when cut)."""
    if _cells(text) <= width:
        return text
    if width < _cells(ellipsis):
        ellipsis = ""
    room, out, used = width - _cells(ellipsis), [], 0
    for ch in text:
        used += _cells(ch)
        if used > room:
            break
        out.append(ch)
    return "".join(out) + ellipsis


def _pad(text: str, width: int, ellipsis: str) -> str:
    text = _fit(text, width, ellipsis)
    return text + " " * (width - _cells(text))


def _duration(ns: int) -> str:
    ms = ns / 1e6
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 999.5:
        return f"{ms:.0f} ms"
    if ms < 59_995:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(int(round(ms / 1000)), 60)
    return f"{minutes}m{seconds:02d}s"


# --- span classification --------------------------------------------------------------------------------
def _attrs(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def _is_genai(span: ReadableSpan) -> bool:
    return any(key.startswith("gen_ai.") for key in _attrs(span))


def _is_lifecycle(span: ReadableSpan) -> bool:
    """``create_agent`` / ``update_agent``: alone, not a tree worth printing."""
    return _attrs(span).get(_OPERATION) in ("create_agent", "update_agent")


def _is_http(span: ReadableSpan) -> bool:
    attrs = _attrs(span)
    return not _is_genai(span) and any(key in attrs for key in _HTTP_METHODS)


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _kind(span: ReadableSpan) -> str:
    attrs = _attrs(span)
    operation = attrs.get(_OPERATION)
    if operation == "invoke_agent":
        return "run"
    if operation == "execute_tool":
        return "tool"
    if _STEP_TYPE in attrs or span.name.startswith("run_step"):
        return "step"
    if _is_http(span):
        return "http"
    return "other"


_BAR_COLORS = {"run": _CYAN, "step": _BLUE, "tool": _YELLOW, "http": _DIM, "other": _MAGENTA}


def _tokens(attrs: Mapping[str, Any], g: _Glyphs) -> Optional[str]:
    tokens_in, tokens_out = attrs.get(_INPUT_TOKENS), attrs.get(_OUTPUT_TOKENS)
    if tokens_in is None and tokens_out is None:
        return None
    show = lambda v: "?" if v is None else str(v)  # noqa: E731
    return f"{show(tokens_in)}{g.arrow}{show(tokens_out)} tok"


def _details(span: ReadableSpan, kind: str, shown_name: str, g: _Glyphs) -> list[str]:
    """The short facts shown after the status, minus words the (displayed) span name already says."""
    attrs = _attrs(span)
    if kind == "run":
        items = [_first(attrs, _RUN_ID), _first(attrs, _RESPONSE_MODEL, _REQUEST_MODEL), _first(attrs, _RUN_STATUS)]
        items.append(_tokens(attrs, g))
    elif kind == "tool":
        tool_name, raw_type = _first(attrs, _TOOL_NAME), _first(attrs, _TOOL_RAW_TYPE)
        # built-in tools are named after their type: then the class (extension, datastore) says more
        tool_type = raw_type if raw_type and raw_type != tool_name else _first(attrs, _TOOL_TYPE, _TOOL_RAW_TYPE)
        items = [tool_name, tool_type, _first(attrs, _TOOL_CALL_ID)]
    elif kind == "step":
        items = [_first(attrs, _STEP_TYPE), _first(attrs, _STEP_STATUS), _tokens(attrs, g)]
    elif kind == "http":
        items = [_first(attrs, *_HTTP_STATUS)]
    else:
        items = []
    seen = set(shown_name.split())
    out = []
    for item in items:
        if item is not None and str(item) not in seen:
            seen.add(str(item))
            out.append(str(item))
    return out


# --- rendering ------------------------------------------------------------------------------------------
@dataclass
class _Row:
    guide: str  # tree guides before the name
    span: Optional[ReadableSpan]  # None for a "(+N HTTP calls)" line
    cont: str  # guides for a continuation line under this row
    label: str = ""


def _build_rows(spans: Sequence[ReadableSpan], show_http: bool, g: _Glyphs) -> list[_Row]:
    by_id = {span.context.span_id: span for span in spans if span.context is not None}
    children: dict[int, list[ReadableSpan]] = {}
    roots: list[ReadableSpan] = []
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        if parent is not None and parent in by_id and parent != span.context.span_id:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    order = lambda s: (s.start_time or 0, s.name)  # noqa: E731

    def count_http(span: ReadableSpan) -> int:
        return int(_is_http(span)) + sum(count_http(c) for c in children.get(span.context.span_id, ()))

    rows: list[_Row] = []

    def visit(span: ReadableSpan, guide: str, below: str, depth: int) -> None:
        kids = sorted(children.get(span.context.span_id, ()), key=order)
        shown = kids if show_http else [k for k in kids if not _is_http(k)]
        folded = 0 if show_http else sum(count_http(k) for k in kids if _is_http(k))
        entries: list[Optional[ReadableSpan]] = [*shown, *([None] if folded else [])]
        rows.append(_Row(guide, span, below + (g.pipe if entries else g.blank)))
        if depth > 64:  # a parent cycle or absurd nesting: stop rather than recurse forever
            return
        for i, kid in enumerate(entries):
            last = i == len(entries) - 1
            if kid is None:
                noun = "HTTP call" if folded == 1 else "HTTP calls"
                rows.append(_Row(below + g.last, None, "", f"(+{folded} {noun})"))
            else:
                visit(kid, below + (g.last if last else g.branch), below + (g.blank if last else g.pipe), depth + 1)

    for root in sorted(roots, key=order):
        visit(root, "", "", 0)
    return rows


@dataclass(frozen=True)
class _Layout:
    g: _Glyphs
    color: bool
    width: int
    t0: int  # start of the shared time axis (ns)
    total: int  # its length (ns)
    name_w: int
    bar_w: int

    @property
    def detail_w(self) -> int:  # what is left after "name bar duration status "
        return self.width - (self.name_w + 1 + self.bar_w + 1 + 7 + 1 + _cells(self.g.ok) + 1)


def render_trace(
    spans: Sequence[ReadableSpan],
    *,
    width: int = 80,
    color: bool = False,
    unicode: bool = True,
    show_http: bool = False,
    unfinished: bool = False,
    dropped: int = 0,
) -> str:
    """Render the spans of one trace as a tree: a header line, one line per span, then a blank line.

    Every line fits in ``width`` columns. Bars share one time axis: the trace's window (the root's, for a
    well-formed trace) is mapped onto a fixed range of columns, so a child's bar sits under its part of the
    parent's. Details that do not fit after the status go on a continuation line under the span.
    """
    g = _UNICODE if unicode else _ASCII
    spans = [s for s in spans if s.context is not None]
    if not spans:
        return ""
    width = max(int(width), 40)
    rows = _build_rows(spans, show_http, g)
    times = [t for s in spans for t in (s.start_time, s.end_time) if t is not None]
    t0 = min(times, default=0)
    needed = max(_cells(r.guide + r.span.name) for r in rows if r.span is not None)
    layout = _Layout(
        g=g,
        color=color,
        width=width,
        t0=t0,
        total=max(times, default=0) - t0,
        name_w=max(12, min(needed, int(width * 0.38))),
        bar_w=max(10, width // 10 * 2),
    )
    lines = [_header(spans, rows, layout, unfinished, dropped)]
    for row in rows:
        if row.span is None:
            label = _fit(row.label, width - _cells(row.guide), g.ellipsis)
            lines.append(_paint(row.guide, color, _DIM) + _paint(label, color, _DIM))
        else:
            lines.extend(_span_lines(row, row.span, layout))
    return "\n".join(line.rstrip(" ") for line in lines) + "\n\n"


def _span_lines(row: _Row, span: ReadableSpan, lay: _Layout) -> list[str]:
    g, color = lay.g, lay.color
    kind = _kind(span)
    start = span.start_time if span.start_time is not None else lay.t0
    end = span.end_time if span.end_time is not None else start
    is_error = span.status is not None and span.status.status_code is StatusCode.ERROR

    # name column: guides dimmed, run names bold
    cell = _pad(row.guide + span.name, lay.name_w, g.ellipsis)
    guides, name = cell[: len(row.guide)], cell[len(row.guide) :]
    text = _paint(guides, color, _DIM) + _paint(name.rstrip(), color, *([_BOLD] if kind == "run" else []))
    text += " " * (len(name) - len(name.rstrip())) + " "

    # bar on the shared time axis: columns [lo, hi) of bar_w
    if lay.total > 0:
        lo = min(max((start - lay.t0) * lay.bar_w // lay.total, 0), lay.bar_w - 1)
        hi = min(max(-(-(end - lay.t0) * lay.bar_w // lay.total), lo + 1), lay.bar_w)
    else:
        lo, hi = 0, 1
    text += _paint(g.track * lo, color, _DIM)
    text += _paint(g.bar * (hi - lo), color, _RED if is_error else _BAR_COLORS[kind])
    text += _paint(g.track * (lay.bar_w - hi), color, _DIM) + " "

    # duration, status
    text += f"{_duration(max(end - start, 0)):>7} "
    text += _paint(g.error, color, _RED, _BOLD) if is_error else _paint(g.ok, color, _GREEN)

    # details: inline when they fit, else on a continuation line (an error's type always stays inline)
    details = _details(span, kind, name, g)
    error_type = None
    if is_error:
        error_type = str(_first(_attrs(span), _ERROR_TYPE) or span.status.description or "error")
        details = [d for d in details if d != error_type]
    inline = ([error_type] if error_type else []) + details
    more: list[str] = []
    if _cells(g.sep.join(inline)) > lay.detail_w:
        inline, more = inline[: 1 if error_type else 0], details
    if inline:
        shown = _fit(g.sep.join(inline), lay.detail_w, g.ellipsis)
        if error_type:
            head = shown[: len(error_type)]
            text += " " + _paint(head, color, _RED) + _paint(shown[len(head) :], color, _DIM)
        else:
            text += " " + _paint(shown, color, _DIM)
    lines = [text]
    if more:
        lead = row.cont + "  "
        rest = _fit(g.sep.join(more), lay.width - _cells(lead), g.ellipsis)
        lines.append(_paint(lead, color, _DIM) + _paint(rest, color, _DIM))
    return lines


def _header(spans: Sequence[ReadableSpan], rows: Sequence[_Row], lay: _Layout, unfinished: bool, dropped: int) -> str:
    """``▸ {agent names} · trace {id prefix} · {total duration}[ · (unfinished)][ · (+N spans dropped)]``"""
    agents: list[str] = []
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        name = _attrs(span).get(_AGENT_NAME)
        if _kind(span) == "run" and name and str(name) not in agents:
            agents.append(str(name))
    title = ", ".join(agents) or next((r.span.name for r in rows if r.span is not None), "trace")
    parts = [title, f"trace {spans[0].context.trace_id:032x}"[:14], _duration(lay.total)]
    if unfinished:
        parts.append("(unfinished)")
    if dropped:
        parts.append(f"(+{dropped} spans dropped)")
    lead = lay.g.header + " "
    return _paint(lead + _fit(lay.g.sep.join(parts), lay.width - _cells(lead), lay.g.ellipsis), lay.color, _BOLD)


# --- the exporter ---------------------------------------------------------------------------------------
@dataclass
class _Buffered:
    spans: list[ReadableSpan] = field(default_factory=list)
    dropped: int = 0


class RunTreeSpanExporter(SpanExporter):
    """Prints each finished trace as a tree on a text stream (stdout by default).

    Spans are buffered per trace until the trace's local root (a span without a parent, or with a remote
    one) ends; the trace is then rendered once. Buffers are bounded (``max_traces``, ``max_spans_per_trace``)
    and what does not fit is counted. ``force_flush``/``shutdown`` print traces whose root never ended,
    marked "(unfinished)".

    Args:
        out: text stream to write to; default ``sys.stdout`` (looked up at each write).
        color: ANSI colours; None = on when ``out`` is a TTY and ``NO_COLOR`` is unset (``FORCE_COLOR`` forces).
        width: columns; default min(terminal width, 100), at least 60.
        only_genai: print only traces containing a GenAI (``gen_ai.*``) span.
        show_http: show HTTP client spans instead of folding them into "(+N HTTP calls)".
    """

    def __init__(
        self,
        out: Optional[IO[str]] = None,
        color: Optional[bool] = None,
        width: Optional[int] = None,
        only_genai: bool = True,
        show_http: bool = False,
        *,
        max_traces: int = 256,
        max_spans_per_trace: int = 1000,
    ) -> None:
        self._out = out
        self._color = color
        self._width = width
        self._only_genai = only_genai
        self._show_http = show_http
        self._max_traces = max(1, max_traces)
        self._max_spans = max(1, max_spans_per_trace)
        self._traces: "OrderedDict[int, _Buffered]" = OrderedDict()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._shutdown = False
        self.dropped_traces = 0
        self.dropped_spans = 0

    # settings resolved at write time, so a replaced sys.stdout or a resized terminal is honoured
    @property
    def out(self) -> IO[str]:
        return self._out if self._out is not None else sys.stdout

    def _use_color(self) -> bool:
        if self._color is not None:
            return self._color
        if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
            return True
        if os.environ.get("NO_COLOR", ""):
            return False
        try:
            return bool(self.out.isatty())
        except Exception:
            return False

    def _use_unicode(self, color: bool) -> bool:
        encoding = getattr(self.out, "encoding", None)
        if color or not encoding:
            return True
        try:
            return codecs.lookup(encoding).name.startswith("utf")
        except LookupError:
            return False

    def _columns(self) -> int:
        if self._width is not None:
            return max(int(self._width), 40)
        return max(min(shutil.get_terminal_size((80, 24)).columns, 100), 60)

    # SpanExporter
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            ready = self._collect(spans)
            for buffered in ready:
                self._print(buffered, unfinished=False)
            return SpanExportResult.SUCCESS
        except Exception:  # a console printer must never break the application
            _logger.exception("RunTreeSpanExporter failed to export spans")
            return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            self._flush_unfinished()
            return True
        except Exception:
            _logger.exception("RunTreeSpanExporter failed to flush")
            return False

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self.force_flush()
        self._shutdown = True
        if self.dropped_traces:
            try:
                self._write(f"({self.dropped_traces} traces, {self.dropped_spans} spans not shown: buffer full)\n")
            except Exception:
                _logger.exception("RunTreeSpanExporter failed to write")

    # internals
    def _collect(self, spans: Iterable[ReadableSpan]) -> list[_Buffered]:
        finished: list[int] = []
        with self._lock:
            for span in spans:
                if span.context is None:
                    continue
                trace_id = span.context.trace_id
                is_root = span.parent is None or span.parent.is_remote
                buffered = self._traces.get(trace_id)
                if buffered is None:
                    if len(self._traces) >= self._max_traces:
                        _, evicted = self._traces.popitem(last=False)
                        if not self.dropped_traces:
                            _logger.warning("RunTreeSpanExporter buffer full: dropping the oldest unfinished trace")
                        self.dropped_traces += 1
                        self.dropped_spans += len(evicted.spans) + evicted.dropped
                    buffered = self._traces[trace_id] = _Buffered()
                if is_root or len(buffered.spans) < self._max_spans:  # the root is always kept
                    buffered.spans.append(span)
                else:
                    buffered.dropped += 1
                if is_root and trace_id not in finished:
                    finished.append(trace_id)
            return [self._traces.pop(t) for t in finished if t in self._traces]

    def _flush_unfinished(self) -> None:
        with self._lock:
            pending = list(self._traces.values())
            self._traces.clear()
        for buffered in pending:
            self._print(buffered, unfinished=True)

    def _print(self, buffered: _Buffered, *, unfinished: bool) -> None:
        if self._only_genai and not any(_is_genai(s) and not _is_lifecycle(s) for s in buffered.spans):
            return
        color = self._use_color()
        text = render_trace(
            buffered.spans,
            width=self._columns(),
            color=color,
            unicode=self._use_unicode(color),
            show_http=self._show_http,
            unfinished=unfinished,
            dropped=buffered.dropped,
        )
        self._write(text)

    def _write(self, text: str) -> None:
        out = self.out
        encoding = getattr(out, "encoding", None)
        if encoding:
            text = text.encode(encoding, "replace").decode(encoding, "replace")
        with self._write_lock:
            out.write(text)
            flush = getattr(out, "flush", None)
            if callable(flush):
                flush()
