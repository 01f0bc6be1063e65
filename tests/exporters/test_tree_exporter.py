"""RunTreeSpanExporter / render_trace: real SDK spans with explicit timestamps, rendered into a StringIO."""

from __future__ import annotations

import io
import re
import threading
from typing import Any, Optional

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from opentelemetry.instrumentation.azure_ai_agents.exporters.tree import RunTreeSpanExporter, render_trace

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FULL = "█"


class Rig:
    """A TracerProvider whose SimpleSpanProcessor feeds a RunTreeSpanExporter writing to ``out``."""

    def __init__(self, out: Optional[io.TextIOBase] = None, **options: Any) -> None:
        self.out = out if out is not None else io.StringIO()
        options.setdefault("width", 80)
        options.setdefault("color", False)
        self.exporter = RunTreeSpanExporter(out=self.out, **options)
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")

    def start(self, name: str, at_ms: float, parent: Optional[Span] = None, kind=SpanKind.INTERNAL, **attrs: Any):
        context = set_span_in_context(parent) if parent is not None else None
        start = T0 + int(at_ms * MS)
        return self.tracer.start_span(name, context=context, kind=kind, start_time=start, attributes=attrs)

    def text(self) -> str:
        return self.out.getvalue()


def end(span: Span, at_ms: float) -> None:
    span.end(end_time=T0 + int(at_ms * MS))


def run_attrs(status: str = "completed", **extra: Any) -> dict:
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "Demo",
        "gen_ai.agent.id": "asst_1",
        "azure.ai.agents.run.id": "run_42",
        "azure.ai.agents.run.status": status,
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 45,
        **extra,
    }


def step_attrs(step_type: str, tokens: tuple[int, int] = (80, 12)) -> dict:
    return {
        "azure.ai.agents.run_step.id": f"step_{step_type}",
        "azure.ai.agents.run_step.type": step_type,
        "azure.ai.agents.run_step.status": "completed",
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
    }


def tool_attrs(name: str = "get_weather", raw_type: str = "function", call_id: str = "call_7") -> dict:
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": "function" if raw_type == "function" else "extension",
        "azure.ai.agents.tool.type": raw_type,
    }


def http(rig: Rig, parent: Span, start_ms: float, end_ms: float) -> None:
    span = rig.start(
        "GET /threads/{t}/runs/{r}", start_ms, parent, SpanKind.CLIENT,
        **{"http.request.method": "GET", "http.response.status_code": 200},
    )
    end(span, end_ms)


def full_run(rig: Rig, *, failed: bool = False, http_calls: int = 0) -> None:
    """invoke_agent Demo [0, 1000] > step tool_calls [100, 500] > tool [200, 400]; step message_creation [600, 950]."""
    extra = {"error.type": "server_error"} if failed else {}
    attrs = run_attrs("failed" if failed else "completed", **extra)
    root = rig.start("invoke_agent Demo", 0, kind=SpanKind.CLIENT, **attrs)
    for i in range(http_calls):
        http(rig, root, 10 + i * 20, 20 + i * 20)
    step = rig.start("run_step tool_calls", 100, root, **step_attrs("tool_calls"))
    tool = rig.start("execute_tool get_weather", 200, step, **tool_attrs())
    end(tool, 400)
    end(step, 500)
    message = rig.start("run_step message_creation", 600, root, **step_attrs("message_creation", (40, 33)))
    end(message, 950)
    if failed:
        root.set_status(Status(StatusCode.ERROR, "Rate limit exceeded"))
    end(root, 1000)


def line_of(text: str, needle: str) -> str:
    matches = [line for line in text.splitlines() if needle in line and not line.startswith("▸")]
    assert len(matches) == 1, (needle, text)
    return matches[0]


def headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("▸ ", "> "))]


# --- buffering ------------------------------------------------------------------------------------------
def test_one_tree_per_trace_printed_only_after_root_ends():
    rig = Rig()
    root = rig.start("invoke_agent Demo", 0, kind=SpanKind.CLIENT, **run_attrs())
    step = rig.start("run_step tool_calls", 100, root, **step_attrs("tool_calls"))
    end(step, 500)
    assert rig.text() == "", "nothing may be printed before the root ends"
    end(root, 1000)
    text = rig.text()
    assert len(headers(text)) == 1
    assert "invoke_agent Demo" in text and "run_step tool_calls" in text
    assert text.endswith("\n\n"), "a blank line follows each tree"

    full_run(rig)
    assert len(headers(rig.text())) == 2
    assert rig.text().startswith(text), "the first tree is not printed again"


def test_header_names_agent_trace_and_total_duration():
    rig = Rig()
    full_run(rig)
    (header,) = headers(rig.text())
    assert header.startswith("▸ Demo")
    assert "1.00 s" in header
    assert re.search(r"trace [0-9a-f]{8}\b", header)


def test_trace_id_in_header_is_the_traces():
    spans = finished_spans(lambda rig: full_run(rig))
    text = render_trace(spans, width=80, color=False)
    assert f"trace {spans[0].context.trace_id:032x}"[:14] in headers(text)[0]


# --- tree shape -----------------------------------------------------------------------------------------
def test_nesting_order_and_guides():
    rig = Rig(width=100)
    root = rig.start("invoke_agent Demo", 0, kind=SpanKind.CLIENT, **run_attrs())
    # created (and ended) out of time order: the tree must still list children by start time
    late = rig.start("run_step message_creation", 600, root, **step_attrs("message_creation"))
    end(late, 950)
    early = rig.start("run_step tool_calls", 100, root, **step_attrs("tool_calls"))
    tool = rig.start("execute_tool get_weather", 200, early, **tool_attrs())
    end(tool, 400)
    end(early, 500)
    end(root, 1000)

    text = rig.text()
    span_lines = [line for line in text.splitlines() if re.search(r"\d (ms|s) ", line) and line not in headers(text)]
    assert [re.split(r" +[█·]", line)[0] for line in span_lines] == [
        "invoke_agent Demo",
        "├─ run_step tool_calls",
        "│  └─ execute_tool get_weather",
        "└─ run_step message_creation",
    ]


def test_bars_share_one_time_axis():
    rig = Rig(width=80)
    root = rig.start("invoke_agent Demo", 0, kind=SpanKind.CLIENT, **run_attrs())
    first_quarter = rig.start("run_step tool_calls", 0, root, **step_attrs("tool_calls"))
    end(first_quarter, 250)
    second_half = rig.start("run_step message_creation", 500, root, **step_attrs("message_creation"))
    end(second_half, 1000)
    end(root, 1000)
    text = rig.text()

    root_line = line_of(text, "invoke_agent Demo")
    left = root_line.index(FULL)
    bar_w = root_line.count(FULL)
    assert root_line[left : left + bar_w] == FULL * bar_w, "the root fills the whole axis"
    assert bar_w >= 10 and bar_w % 2 == 0

    half = line_of(text, "run_step message_creation")
    assert half.index(FULL) == left + bar_w // 2, "a child in the second half starts at the middle column"
    assert half.rindex(FULL) == left + bar_w - 1
    quarter = line_of(text, "run_step tool_calls")
    assert quarter.index(FULL) == left
    assert quarter.count(FULL) == bar_w // 4 or quarter.count(FULL) == -(-bar_w // 4)


def test_durations_and_details():
    rig = Rig(width=100)
    full_run(rig)
    text = rig.text()
    run = text[text.index("invoke_agent Demo") :]
    assert "1.00 s" in line_of(text, "invoke_agent Demo")
    for fact in ("run_42", "gpt-4o", "completed", "120→45 tok"):
        assert fact in run.split("├─")[0], fact  # on the run's line or its continuation line
    tool = line_of(text, "execute_tool get_weather")
    assert "200 ms" in tool and "function" in tool and "call_7" in tool
    step = line_of(text, "run_step tool_calls")
    assert "400 ms" in step and "completed" in step and "80→12 tok" in step


def test_no_line_longer_than_width():
    rig = Rig(width=80)
    long = "a-very-long-agent-name-that-goes-on-and-on-and-on"
    root = rig.start(f"invoke_agent {long}", 0, kind=SpanKind.CLIENT,
                     **run_attrs("failed", **{"gen_ai.agent.name": long, "error.type": "x" * 90}))
    chain = [root]
    for depth in range(12):  # deep nesting
        chain.append(rig.start(f"run_step tool_calls level {depth}", depth, chain[-1], **step_attrs("tool_calls")))
    tool_name = "t" * 70
    attrs = tool_attrs(tool_name, "code_interpreter", "call_" + "9" * 60)
    tool = rig.start(f"execute_tool {tool_name}", 20, chain[-1], **attrs)
    end(tool, 30)
    for step in reversed(chain[1:]):
        end(step, 40)
    http(rig, root, 1, 2)
    root.set_status(Status(StatusCode.ERROR))
    end(root, 60_000 * 125)  # two hours: a long duration string
    text = rig.text()
    assert text.count("\n") > 15
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "✗ xxx" in line_of(text, "invoke_agent a-very")


def test_rendered_width_is_respected_for_default_trace():
    spans = finished_spans(lambda rig: full_run(rig, failed=True, http_calls=3))
    for width in (60, 80, 100):
        for unicode in (True, False):
            text = render_trace(spans, width=width, color=False, unicode=unicode)
            assert max(len(line) for line in text.splitlines()) <= width, (width, text)


# --- colour ---------------------------------------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return monkeypatch


def test_no_ansi_when_not_a_tty(clean_env):
    rig = Rig(color=None)
    full_run(rig)
    assert "invoke_agent Demo" in rig.text()
    assert "\x1b[" not in rig.text()


def test_ansi_when_color_true(clean_env):
    rig = Rig(color=True)
    full_run(rig)
    text = rig.text()
    assert ANSI.search(text)
    plain = ANSI.sub("", text)
    assert "invoke_agent Demo" in plain and "✓" in plain
    assert max(len(line) for line in plain.splitlines()) <= 80, "colour codes do not count towards width"


def test_auto_colour_on_tty_and_env_switches(clean_env):
    rig = Rig(out=FakeTTY(), color=None)
    full_run(rig)
    assert ANSI.search(rig.text())

    clean_env.setenv("NO_COLOR", "1")
    rig = Rig(out=FakeTTY(), color=None)
    full_run(rig)
    assert "\x1b[" not in rig.text()

    clean_env.setenv("FORCE_COLOR", "1")
    rig = Rig(color=None)  # not a TTY, NO_COLOR set: FORCE_COLOR still wins
    full_run(rig)
    assert ANSI.search(rig.text())


def test_ascii_fallback_on_non_utf8_stream(clean_env):
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    rig = Rig(out=out, color=None)
    full_run(rig, failed=True)
    out.flush()
    text = out.buffer.getvalue().decode("ascii")  # would raise on any non-ASCII byte
    assert "|- run_step tool_calls" in text
    assert "`- run_step message_creation" in text
    assert "#" in line_of(text, "invoke_agent Demo")
    assert "ERR server_error" in line_of(text, "invoke_agent Demo")


# --- status ---------------------------------------------------------------------------------------------
def test_failed_run_shows_cross_and_error_type():
    rig = Rig()
    full_run(rig, failed=True)
    run = line_of(rig.text(), "invoke_agent Demo")
    assert "✗ server_error" in run
    assert "✓" not in run
    assert "✓" in line_of(rig.text(), "execute_tool get_weather")


def test_successful_run_shows_tick():
    rig = Rig()
    full_run(rig)
    assert "✓" in line_of(rig.text(), "invoke_agent Demo")
    assert "✗" not in rig.text()


def test_error_without_error_type_uses_description():
    rig = Rig()
    root = rig.start("invoke_agent Demo", 0, kind=SpanKind.CLIENT, **run_attrs("failed"))
    root.set_status(Status(StatusCode.ERROR, "boom"))
    end(root, 10)
    assert "✗ boom" in line_of(rig.text(), "invoke_agent Demo")


# --- filtering ------------------------------------------------------------------------------------------
def test_only_genai_skips_http_only_traces():
    rig = Rig()
    root = rig.start("GET /health", 0, kind=SpanKind.CLIENT, **{"http.request.method": "GET"})
    end(root, 5)
    assert rig.text() == ""
    full_run(rig)
    assert len(headers(rig.text())) == 1

    rig = Rig(only_genai=False)
    root = rig.start("GET /health", 0, kind=SpanKind.CLIENT, **{"http.request.method": "GET"})
    end(root, 5)
    assert "GET /health" in rig.text()


def test_http_spans_folded_and_counted():
    rig = Rig()
    full_run(rig, http_calls=3)
    text = rig.text()
    assert "GET /threads" not in text
    assert "└─ (+3 HTTP calls)" in text

    rig = Rig(show_http=True)
    full_run(rig, http_calls=3)
    text = rig.text()
    assert text.count("GET /threads/{t}/runs/{r}") == 3
    assert "HTTP calls" not in text


# --- unfinished traces, bounds, robustness --------------------------------------------------------------
def test_unfinished_trace_flushed_on_shutdown():
    rig = Rig()
    root = rig.start("invoke_agent Demo", 0, kind=SpanKind.CLIENT, **run_attrs("in_progress"))
    step = rig.start("run_step tool_calls", 100, root, **step_attrs("tool_calls"))
    end(step, 500)
    assert rig.text() == ""
    rig.provider.shutdown()
    text = rig.text()
    (header,) = headers(text)
    assert "(unfinished)" in header
    assert "run_step tool_calls" in text
    assert rig.exporter.export([]) is SpanExportResult.FAILURE, "no exports after shutdown"


def test_force_flush_prints_pending_traces_once():
    rig = Rig()
    root = rig.start("invoke_agent Demo", 0, kind=SpanKind.CLIENT, **run_attrs())
    end(rig.start("run_step tool_calls", 1, root, **step_attrs("tool_calls")), 2)
    assert rig.exporter.force_flush() is True
    assert "(unfinished)" in rig.text()
    before = rig.text()
    rig.exporter.force_flush()
    assert rig.text() == before


def test_buffer_bounds_are_counted():
    rig = Rig(max_traces=2, max_spans_per_trace=3)
    roots = [rig.start("invoke_agent Demo", 0, kind=SpanKind.CLIENT, **run_attrs()) for _ in range(3)]
    for root in roots:
        end(rig.start("run_step tool_calls", 1, root, **step_attrs("tool_calls")), 2)
    assert rig.exporter.dropped_traces == 1  # the oldest pending trace was evicted

    for i in range(5):
        end(rig.start(f"run_step message_creation {i}", 3 + i, roots[2], **step_attrs("message_creation")), 4 + i)
    end(roots[2], 10)  # the root is kept even when the trace is full
    text = rig.text()
    (header,) = headers(text)
    assert "(+3 spans dropped)" in header
    assert "invoke_agent Demo" in line_of(text, "invoke_agent Demo")


def test_export_never_raises():
    class Broken(io.StringIO):
        def write(self, s):
            raise OSError("disk full")

    spans = finished_spans(lambda rig: full_run(rig))
    exporter = RunTreeSpanExporter(out=Broken(), width=80, color=False)
    assert exporter.export(spans) is SpanExportResult.FAILURE
    exporter = RunTreeSpanExporter(out=io.StringIO(), width=80, color=False)
    assert exporter.export([object()]) is SpanExportResult.FAILURE  # garbage in: logged, not raised
    assert exporter.export(spans) is SpanExportResult.SUCCESS


def test_concurrent_traces_are_not_interleaved():
    rig = Rig()
    threads = [threading.Thread(target=full_run, args=(rig,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = rig.text()
    trees = [t for t in text.split("\n\n") if t]
    assert len(trees) == 8
    for tree in trees:
        assert tree.startswith("▸ Demo") and tree.count("invoke_agent Demo") == 1 and tree.count("execute_tool") == 1


def test_no_argument_constructor_writes_to_stdout(capsys):
    exporter = RunTreeSpanExporter()
    spans = finished_spans(lambda rig: full_run(rig))
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert "invoke_agent Demo" in capsys.readouterr().out


def test_render_trace_is_pure():
    spans = finished_spans(lambda rig: full_run(rig))
    first = render_trace(spans, width=80, color=False)
    assert first == render_trace(spans, width=80, color=False)
    assert render_trace([], width=80, color=False) == ""


def finished_spans(build) -> list[ReadableSpan]:
    """Spans of one trace, built by ``build(rig)`` and captured with an in-memory exporter."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    rig = Rig.__new__(Rig)
    rig.tracer = provider.get_tracer("test")
    build(rig)
    return list(memory.get_finished_spans())


def test_default_width_follows_terminal_within_bounds(monkeypatch):
    spans = finished_spans(lambda rig: full_run(rig))
    for columns, expected in (("200", 100), ("40", 60), ("90", 90)):
        monkeypatch.setenv("COLUMNS", columns)
        out = io.StringIO()
        RunTreeSpanExporter(out=out, color=False).export(spans)
        root = line_of(out.getvalue(), "invoke_agent Demo")
        assert max(len(line) for line in out.getvalue().splitlines()) <= expected
        assert root.count(FULL) == max(10, expected // 10 * 2)


def test_entry_point_builds_the_exporter():
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="opentelemetry_traces_exporter") if e.name == "agent_tree"] or [None]
    if entry is None:
        pytest.skip("package not installed")
    assert entry.load() is RunTreeSpanExporter
    assert isinstance(entry.load()(), RunTreeSpanExporter)
