"""Bad input from the service (hypothesis): whatever run, step or tool-call JSON the service sends (missing
fields, nulls, wrong types, huge strings, unicode, unknown enums), every SDK call returns exactly what it returns
uninstrumented, nothing raised inside the instrumentation is swallowed silently either (its guard never fires),
and the spans stay well-formed: ended, valid attribute types, parented within their trace, bounded sizes.

Each example runs the same app code twice against a fresh in-process emulator with the same seed (so every id is
the same): uninstrumented, then instrumented; the emulator's ``response_hook`` substitutes the generated payloads.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from azure_ai_agents_emulator import (
    AgentsService,
    agents_client,
    async_agents_client,
    project_client,
)
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor

pytestmark = pytest.mark.heavy
SEED = 20240611
KEEP = "<keep the real id>"
PROPERTY = settings(
    # 30 examples per property in the suite; a campaign runs more (PROPERTY_EXAMPLES=500 python -m pytest ...).
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "30")),
    deadline=None,
    # No shrinking: with megabyte payloads it would take minutes in CI. Failures still print the example, and the
    # assertion messages name the span, attribute and size; the fixed examples below pin the known ones.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    report_multiple_bugs=False,
    # CI gates on a fixed, reproducible sample (CI=true); local runs keep exploring new examples every time.
    derandomize=os.environ.get("CI", "").lower() == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
#: Logger names whose records mean "the instrumentation caught one of its own exceptions".
OUR_LOGGER = "opentelemetry.instrumentation.azure_ai_agents"
#: Expected, by design: the SDK itself may fail to read a malformed step page when WE list a finished run's steps
#: (the app never asked for them); the run still ends, without those steps.
EXPECTED_FAILURES = ("could not list the steps",)

#: Set to True only while a core bug in input bounding is open: the generated payloads then avoid its triggers
#: (strings up to 8,000 characters, finite floats, int64 integers) so that everything else is still checked.
#: (These tests found two such bugs, fixed in d4e7396: int(inf) in attributes.int_field lost the run span;
#: service strings and integers reached span names, attributes and status unbounded.)
KNOWN_CORE_BUGS_OPEN = False

#: No attribute string may exceed this: service strings are unbounded, span attributes must not be.
MAX_ATTRIBUTE_CHARS = 8192 + 64
#: Span names (``execute_tool {name}``, ``run_step {type}``) carry service strings too: a prefix and a bounded name.
MAX_NAME_CHARS = MAX_ATTRIBUTE_CHARS if KNOWN_CORE_BUGS_OPEN else 600

# ---- strategies -------------------------------------------------------------------------------------------
_HUGE = (2_000, 8_000) if KNOWN_CORE_BUGS_OPEN else (10_000, 150_000)
huge_text = st.integers(min_value=_HUGE[0], max_value=_HUGE[1]).map(lambda n: ("é" * n)[:n])
text = st.one_of(st.text(max_size=24), huge_text, st.sampled_from(["", " ", "\u0000", "\ud7ff\ufffd", "💥" * 3]))
_INT_BOUND = 2**63 - 1 if KNOWN_CORE_BUGS_OPEN else 2**70
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-_INT_BOUND, max_value=_INT_BOUND),
    st.floats(min_value=-1e18, max_value=1e18) if KNOWN_CORE_BUGS_OPEN else st.floats(),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
RUN_STATUSES = ["queued", "in_progress", "requires_action", "cancelling", "cancelled", "failed", "completed",
                "expired", "incomplete"]
statuses = st.one_of(st.sampled_from(RUN_STATUSES), st.sampled_from(["COMPLETED", "paused", ""]), json_values)
TOOL_TYPES = ["function", "code_interpreter", "file_search", "bing_grounding", "azure_ai_search", "openapi", "mcp",
              "connected_agent", "deep_research", "azure_function", "quantum_entangler"]
timestamps = st.one_of(st.integers(min_value=1_600_000_000, max_value=1_900_000_000), st.floats(), json_values)


def _maybe(value: st.SearchStrategy[Any], missing_weight: float = 0.2) -> st.SearchStrategy[Any]:
    """A value, or the marker MISSING (the key is dropped)."""
    return st.one_of(value, st.just(MISSING)) if missing_weight else value


MISSING = object()


def _drop_missing(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not MISSING}


@st.composite
def tool_calls(draw: Any) -> Any:
    kind = draw(st.one_of(st.sampled_from(TOOL_TYPES), json_values))
    details = draw(
        st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": text | json_values,
                    "arguments": text | json_values,
                    "output": text | json_values,
                    "input": text | json_values,
                    "outputs": json_values,
                    "server_label": text | json_values,
                },
            ),
            json_values,
        )
    )
    call = {"id": draw(_maybe(st.one_of(st.text(min_size=1, max_size=12).map(lambda s: "call_" + s), json_values))),
            "type": kind}
    if isinstance(kind, str):
        call[kind] = details
    call.update(draw(st.dictionaries(st.sampled_from(["name", "arguments", "output", "server_label"]), json_values, max_size=2)))
    return _drop_missing(call)


@st.composite
def run_payloads(draw: Any) -> Any:
    """A run as the service might (mis)send it; ``id`` is usually the real one so that it is tracked."""
    if draw(st.integers(0, 30)) == 0:  # not even an object (JSON null cannot be sent: None means "unchanged")
        return draw(json_values.filter(lambda v: v is not None))
    calls = draw(st.one_of(st.lists(tool_calls(), max_size=3), json_values))
    run = {
        "id": draw(st.one_of(st.just(KEEP), st.just(KEEP), st.just(KEEP), json_values)),
        "object": "thread.run",
        "thread_id": draw(_maybe(st.one_of(st.just(KEEP), json_values))),
        "assistant_id": draw(_maybe(text | json_values)),
        "status": draw(_maybe(statuses)),
        "required_action": draw(
            _maybe(
                st.one_of(
                    st.just({"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}}),
                    st.fixed_dictionaries({"type": json_values, "submit_tool_outputs": json_values}),
                    json_values,
                )
            )
        ),
        "last_error": draw(_maybe(st.one_of(st.fixed_dictionaries({"code": text | json_values, "message": text | json_values}), json_values))),
        "incomplete_details": draw(_maybe(st.one_of(st.fixed_dictionaries({"reason": text | json_values}), json_values))),
        "model": draw(_maybe(text | json_values)),
        "usage": draw(
            _maybe(
                st.one_of(
                    st.fixed_dictionaries({"prompt_tokens": json_values, "completion_tokens": json_values, "total_tokens": json_values}),
                    json_values,
                )
            )
        ),
        "created_at": draw(_maybe(timestamps)),
        "completed_at": draw(_maybe(timestamps)),
        "failed_at": draw(_maybe(timestamps)),
        "expires_at": draw(_maybe(timestamps)),
        "instructions": draw(_maybe(text | json_values)),
        "tools": draw(_maybe(json_values)),
        "metadata": draw(_maybe(json_values)),
        "temperature": draw(_maybe(json_values)),
    }
    run.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))  # unknown fields
    return _drop_missing(run)


@st.composite
def step_payloads(draw: Any) -> Any:
    if draw(st.integers(0, 30)) == 0:
        return draw(json_values)  # in a list: None is a null item
    kind = draw(st.one_of(st.sampled_from(["tool_calls", "message_creation", "reasoning"]), json_values))
    details = draw(
        st.one_of(
            st.fixed_dictionaries(
                {"type": st.just(kind) | json_values},
                optional={
                    "tool_calls": st.one_of(st.lists(tool_calls(), max_size=4), json_values),
                    "message_creation": st.one_of(st.fixed_dictionaries({"message_id": text | json_values}), json_values),
                },
            ),
            json_values,
        )
    )
    step = {
        "id": draw(_maybe(st.one_of(st.text(min_size=1, max_size=10).map(lambda s: "step_" + s), json_values))),
        "object": "thread.run.step",
        "type": kind,
        "run_id": draw(_maybe(st.one_of(st.just(KEEP), json_values))),
        "status": draw(_maybe(st.one_of(st.sampled_from(["in_progress", "completed", "failed", "cancelled", "expired"]), json_values))),
        "step_details": draw(_maybe(st.just(details))),
        "last_error": draw(_maybe(st.one_of(st.fixed_dictionaries({"code": text | json_values, "message": text | json_values}), json_values))),
        "created_at": draw(_maybe(timestamps)),
        "completed_at": draw(_maybe(timestamps)),
        "failed_at": draw(_maybe(timestamps)),
        "usage": draw(_maybe(json_values)),
    }
    step.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    return _drop_missing(step)


step_lists = st.lists(step_payloads(), max_size=4)


# ---- running the same app code uninstrumented and instrumented ----------------------------------------------
def _fill(payload: Any, real: Any) -> Any:
    """Replace KEEP markers by the real values the service would have sent."""
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    for key, value in payload.items():
        if value == KEEP:
            out[key] = real.get(key) if isinstance(real, dict) else None
    return out


def _page(items: Any, real_page: Any) -> dict[str, Any]:
    """A list page around arbitrary items; ``last_id`` null so the SDK's paging ends (it ignores has_more)."""
    run_id = None
    if isinstance(real_page, dict) and real_page.get("data"):
        run_id = real_page["data"][0].get("run_id")
    data = [_fill(i, {"run_id": run_id}) for i in items] if isinstance(items, list) else items
    return {"object": "list", "data": data, "first_id": None, "last_id": None, "has_more": False}


class Hook:
    """The emulator's response hook: substitutes the generated run / steps once armed."""

    def __init__(self, runs: list[Any], steps: Any = None, step: Any = None) -> None:
        self.runs, self.steps, self.step = list(runs), steps, step
        self.armed = False
        self._last_run: Any = None

    def __call__(self, method: str, kind: str, payload: Any) -> Any:
        if not self.armed:
            return None
        if kind == "run":
            if self.runs:
                self._last_run = _fill(self.runs.pop(0), payload)
            return self._last_run if self._last_run is not None else None
        if kind == "step_list" and self.steps is not None:
            return _page(self.steps, payload)
        if kind == "step" and self.step is not None:
            return _fill(self.step, payload)
        return None


def observe(call: Callable[[], Any]) -> tuple:
    """What the app sees: the result as plain data (probing model attributes too), or the exception raised."""
    try:
        result = call()
    except Exception as error:  # noqa: BLE001 - compared, not handled
        return ("raised", type(error).__name__, str(error))
    return ("returned", _plain(result))


_PROBES = ("id", "status", "required_action", "usage", "last_error", "model", "type", "step_details", "thread_id")


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        probes = {}
        for name in _PROBES:
            try:
                probes[name] = _norm(getattr(value, name, None))
            except Exception as error:  # noqa: BLE001 - the SDK's own lazy deserialization may raise
                probes[name] = "raised " + type(error).__name__
        return (type(value).__name__, _norm(as_dict()), probes)
    return ("value", type(value).__name__, _norm(value))


def _norm(value: Any) -> Any:
    """Comparable plain data: NaN as a string (NaN != NaN), other objects as their repr without addresses."""
    if isinstance(value, dict):
        return {_norm(k): _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, str):  # the SDK's as_dict() may str() a generator: "<generator ... at 0x...>"
        return _ADDRESS.sub("", value)
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return _ADDRESS.sub("", repr(value))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class Pass:
    """One run of the app code: a fresh seeded emulator, instrumented or not."""

    def __init__(self, instrumented: bool, hook: Hook) -> None:
        self.instrumented = instrumented
        self.service = AgentsService(seed=SEED, default_scenario="function_call")
        self.service._now = lambda: 1_700_000_000.25  # noqa: SLF001 - a fixed clock: both passes stamp alike
        self.service.response_hook = hook
        self.hook = hook
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.instrumentor = AzureAgentInstrumentor()
        self.failures: list[logging.LogRecord] = []

    def __enter__(self) -> "Pass":
        if self.instrumented:
            self._handler = _Collect(self.failures)
            logging.getLogger(OUR_LOGGER).addHandler(self._handler)
            logging.getLogger(OUR_LOGGER).setLevel(logging.DEBUG)
            self.instrumentor.instrument(tracer_provider=self.provider)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.instrumented:
            self.instrumentor.uninstrument()  # ends whatever is still open: every span is now finished
            logging.getLogger(OUR_LOGGER).removeHandler(self._handler)

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.getMessage().startswith(EXPECTED_FAILURES):
            self.into.append(record)  # a guarded hook or wrapper caught an exception of ours


def both(app: Callable[[Pass], list[tuple]], make_hook: Callable[[], Hook], runs: int = 1) -> Pass:
    """Runs ``app`` uninstrumented and instrumented; asserts the app saw the same and that each of the ``runs``
    runs the app created became exactly one ended run span; returns the instrumented pass."""
    with Pass(False, make_hook()) as plain:
        expected = app(plain)
    with Pass(True, make_hook()) as traced:
        seen = app(traced)
    assert seen == expected
    spans = traced.spans
    run_spans = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
    failures = [f"{r.getMessage()}: {r.exc_info[1]!r}" for r in traced.failures]  # type: ignore[index]
    assert len(run_spans) == runs, (len(run_spans), failures)  # none lost (never ended), none doubled
    check_spans(spans)
    assert not failures
    return traced


# ---- span checks ------------------------------------------------------------------------------------------
def _valid_value(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, tuple) and value:
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        return len(kinds) == 1 and kinds <= {str, bool, int, float}
    return isinstance(value, tuple)


def _check_attributes(where: str, attributes: Any) -> None:
    for key, value in (attributes or {}).items():
        assert isinstance(key, str) and key, where
        assert _valid_value(value), (where, key, type(value))
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str):
                assert len(item) <= MAX_ATTRIBUTE_CHARS, (where, key, len(item))
            if isinstance(item, int) and not isinstance(item, bool):
                assert -(2**63) <= item < 2**64, (where, key, item)  # representable by every exporter
            if isinstance(item, float):
                assert not math.isnan(item), (where, key)


def check_spans(spans: list[ReadableSpan]) -> None:
    ids = {(s.context.trace_id, s.context.span_id): s for s in spans}
    assert len(ids) == len(spans)
    for span in spans:
        where = span.name
        assert span.end_time is not None and span.start_time is not None, where
        assert span.start_time <= span.end_time, where
        assert 0 < span.start_time < 2**63 and span.end_time < 2**63, where
        assert len(span.name) <= MAX_NAME_CHARS, (span.name[:80], len(span.name))
        _check_attributes(where, span.attributes)
        for event in span.events:
            _check_attributes(f"{where} / {event.name}", event.attributes)
            assert 0 < event.timestamp < 2**63
        description = span.status.description
        assert description is None or len(description) <= MAX_ATTRIBUTE_CHARS, (where, len(description))
        if span.parent is not None:
            parent = ids.get((span.context.trace_id, span.parent.span_id))
            assert parent is not None, f"{where}: parent missing from its trace"
            assert parent.start_time <= span.start_time <= span.end_time <= parent.end_time, where
        else:
            operation = span.attributes.get("gen_ai.operation.name")
            assert operation in ("invoke_agent", "create_agent"), f"{where}: a root that is not a run (or an agent)"


# ---- the app code -----------------------------------------------------------------------------------------
def _setup(client: Any) -> tuple[str, str, str]:
    agent = client.create_agent(model="gpt-4o", name="fuzz-agent")
    thread = client.threads.create()
    run = client.runs.create(thread_id=thread.id, agent_id=agent.id)
    client.runs.get(thread_id=thread.id, run_id=run.id)  # in_progress: tracked and open when instrumented
    return agent.id, thread.id, run.id


@PROPERTY
@given(runs=st.lists(run_payloads(), min_size=1, max_size=3), steps=step_lists)
def test_polling_arbitrary_run_snapshots(runs, steps):
    """The polling loop gets arbitrary run snapshots (maybe terminal: the instrumentation then lists the
    arbitrary steps itself), and the app lists the steps too."""

    def app(p: Pass) -> list[tuple]:
        client = agents_client(p.service, in_process=True)
        _, thread_id, run_id = _setup(client)
        p.hook.armed = True
        seen = [observe(lambda: client.runs.get(thread_id=thread_id, run_id=run_id)) for _ in range(len(runs) + 1)]
        seen.append(observe(lambda: list(client.run_steps.list(thread_id=thread_id, run_id=run_id))))
        return seen

    both(app, lambda: Hook(runs, steps))


@PROPERTY
@given(created=run_payloads(), then=run_payloads())
def test_creating_a_run_that_comes_back_malformed(created, then):
    """The create response itself is arbitrary (no id, a terminal status, wrong types...)."""

    def app(p: Pass) -> list[tuple]:
        client = agents_client(p.service, in_process=True)
        agent = client.create_agent(model="gpt-4o", name="fuzz-agent")
        thread = client.threads.create()
        p.hook.armed = True
        holder: list[Any] = []

        def create() -> Any:
            holder.append(client.runs.create(thread_id=thread.id, agent_id=agent.id))
            return holder[-1]

        seen = [observe(create)]
        try:
            run_id = holder[0].id if holder else None
        except Exception:  # noqa: BLE001 - an id of the wrong type may not deserialize
            run_id = None
        if isinstance(run_id, str) and run_id:  # the app polls whatever id it was given
            seen.append(observe(lambda: client.runs.get(thread_id=thread.id, run_id=run_id)))
        seen.append(observe(lambda: client.create_thread_and_run(agent_id=agent.id)))
        return seen

    both(app, lambda: Hook([created, then, created]), runs=2)


@PROPERTY
@given(steps=step_lists, one=step_payloads(), outputs_run=run_payloads())
def test_finished_run_with_arbitrary_steps_and_tool_calls(steps, one, outputs_run):
    """A normal run answered by the app; its step listing (ours and the app's) and one step are arbitrary."""
    from azure.ai.agents.models import ToolOutput

    def app(p: Pass) -> list[tuple]:
        client = agents_client(p.service, in_process=True)
        _, thread_id, run_id = _setup(client)
        run = client.runs.get(thread_id=thread_id, run_id=run_id)  # requires_action (function_call scenario)
        p.hook.armed = True
        outputs = [ToolOutput(tool_call_id=c.id, output="{}") for c in run.required_action.submit_tool_outputs.tool_calls]
        seen = [observe(lambda: client.runs.submit_tool_outputs(thread_id=thread_id, run_id=run_id, tool_outputs=outputs))]
        p.hook.runs = []  # later polls: the real run, through to completion (then steps are listed)
        p.hook._last_run = None
        for _ in range(4):
            seen.append(observe(lambda: client.runs.get(thread_id=thread_id, run_id=run_id)))
        seen.append(observe(lambda: list(client.run_steps.list(thread_id=thread_id, run_id=run_id))))
        seen.append(observe(lambda: client.run_steps.get(thread_id=thread_id, run_id=run_id, step_id="step_x")))
        return seen

    both(app, lambda: Hook([outputs_run], steps, one))


@PROPERTY
@given(runs=st.lists(run_payloads(), min_size=1, max_size=2), steps=step_lists)
def test_legacy_sdk_with_arbitrary_payloads(runs, steps):
    def app(p: Pass) -> list[tuple]:
        client = project_client(p.service, in_process=True).agents
        agent = client.create_agent(model="gpt-4o", name="fuzz-agent")
        thread = client.create_thread()
        run = client.create_run(thread_id=thread.id, agent_id=agent.id)
        client.get_run(thread_id=thread.id, run_id=run.id)
        p.hook.armed = True
        seen = [observe(lambda: client.get_run(thread_id=thread.id, run_id=run.id)) for _ in range(len(runs) + 1)]
        seen.append(observe(lambda: client.list_run_steps(thread_id=thread.id, run_id=run.id)))
        return seen

    both(app, lambda: Hook(runs, steps))


@PROPERTY
@given(runs=st.lists(run_payloads(), min_size=1, max_size=2), steps=step_lists)
def test_async_client_with_arbitrary_payloads(runs, steps):
    def app(p: Pass) -> list[tuple]:
        async def main() -> list[tuple]:
            async with async_agents_client(p.service, in_process=True) as client:
                agent = await client.create_agent(model="gpt-4o", name="fuzz-agent")
                thread = await client.threads.create()
                run = await client.runs.create(thread_id=thread.id, agent_id=agent.id)
                await client.runs.get(thread_id=thread.id, run_id=run.id)
                p.hook.armed = True
                seen = []
                for _ in range(len(runs) + 1):
                    seen.append(await _observe_async(lambda: client.runs.get(thread_id=thread.id, run_id=run.id)))

                async def listed() -> list:
                    return [s async for s in client.run_steps.list(thread_id=thread.id, run_id=run.id)]

                seen.append(await _observe_async(listed))
                return seen

        return asyncio.run(main())

    both(app, lambda: Hook(runs, steps))


async def _observe_async(call: Callable[[], Any]) -> tuple:
    try:
        result = await call()
    except Exception as error:  # noqa: BLE001
        return ("raised", type(error).__name__, str(error))
    return ("returned", _plain(result))


FIXED_RUNS = {
    # Service strings copied verbatim into span names, attributes and status descriptions.
    "huge strings": {
        "id": KEEP, "status": "failed", "model": "m" * 200_000, "assistant_id": "a" * 100_000,
        "last_error": {"code": "c" * 50_000, "message": "x" * 50_000},
    },
    # Token counts that no exporter can encode (int64), or that int() refuses (inf, nan).
    "huge token count": {"id": KEEP, "status": "completed", "usage": {"prompt_tokens": 2**80, "completion_tokens": 3}},
    "infinite token count": {"id": KEEP, "status": "completed", "usage": {"prompt_tokens": 5, "completion_tokens": math.inf}},
    "nan token count": {"id": KEEP, "status": "queued", "usage": {"prompt_tokens": math.nan}},
    "nested garbage": {"id": KEEP, "status": "requires_action", "required_action": {"submit_tool_outputs": {"tool_calls": [
        {"id": None, "type": "function", "function": "not-a-dict"}, {"type": ["x"]}, 7, None]}}},
}
FIXED_STEPS = [
    {"id": "step_1", "type": "tool_calls", "status": "completed", "created_at": 1e308, "completed_at": -5,
     "step_details": {"tool_calls": [{"id": "call_1", "type": "function", "function": {"name": None}}, "x", None]}},
]
HUGE_STEPS = [
    {"id": "step_" + "s" * 20_000, "type": "tool_calls", "status": "failed", "last_error": {"code": "e" * 20_000},
     "step_details": {"tool_calls": [{"id": "call_" + "c" * 20_000, "type": "t" * 20_000}]}},
]


@pytest.mark.parametrize("kind", sorted(FIXED_RUNS))
def test_fixed_bad_runs(kind):
    """Fixed examples, fast and readable when they fail: the run is polled once with the bad snapshot."""

    def app(p: Pass) -> list[tuple]:
        client = agents_client(p.service, in_process=True)
        _, thread_id, run_id = _setup(client)
        p.hook.armed = True
        return [observe(lambda: client.runs.get(thread_id=thread_id, run_id=run_id))]

    both(app, lambda: Hook([FIXED_RUNS[kind]], FIXED_STEPS))


def test_fixed_huge_step_strings():
    """A finished run whose listed step has huge id, error code and tool type (span names, attributes)."""

    def app(p: Pass) -> list[tuple]:
        client = agents_client(p.service, in_process=True)
        _, thread_id, run_id = _setup(client)
        p.hook.armed = True
        return [observe(lambda: client.runs.get(thread_id=thread_id, run_id=run_id))]

    both(app, lambda: Hook([{"id": KEEP, "status": "completed"}], HUGE_STEPS))
