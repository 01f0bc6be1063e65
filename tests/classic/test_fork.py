"""Forking servers (issue 18): instrumented in the parent, then forked (gunicorn ``--preload``, uWSGI, celery
prefork). A child starts with no runs and a fresh fetcher: it traces its own runs fully (with their steps) and
never ends or sends the parent's runs, which the parent still ends and sends itself.

* ``os.fork()`` while the parent has a run whose step listing is in flight, a run open (in progress), and an idle
  fetcher worker: the child's own run is listed and flushed at once; at the child's exit nothing of the parent's
  is ended; the parent then completes its runs normally.
* a real prefork server: gunicorn ``--preload`` with two workers serving agent runs against the emulator, spans to
  the local Nexus receiver: every run reaches Nexus exactly once, with its steps, none of the master's twice.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Callable

import pytest

from azure_ai_agents_emulator import AgentsEmulator, agents_client
from opentelemetry.instrumentation.azure_ai_agents import AzureAgentInstrumentor
from tests.fakes.gated_service import GatedService
from tests.fakes.nexus_server import NexusServer
from tests.helpers import ACTIVE, metadata

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "azure.ai.agents.run.id"
UNAVAILABLE = "azure.ai.agents.run.steps_unavailable"


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Waits on a condition of another thread or process (bounded); True once it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _full_run(client: Any, agent_id: str, scenario: str, polls: int = 1) -> Any:
    thread = client.threads.create()
    run = client.runs.create(thread_id=thread.id, agent_id=agent_id, metadata=metadata(scenario, polls))
    while run.status in ACTIVE:
        run = client.runs.get(thread_id=thread.id, run_id=run.id)
    return run


def _in_child(work: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Runs ``work()`` in a forked child and returns its JSON-able result (the child never returns into pytest)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            data = json.dumps(work()).encode()
            with os.fdopen(write_fd, "wb") as out:
                out.write(data)
            code = 0
        except BaseException:  # noqa: BLE001 - report anything, then leave without running pytest's exit code
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                pytest.fail("the forked child did not finish in time")
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(b"".join(chunks))


def test_a_forked_child_traces_its_own_runs_fully_and_never_ends_the_parents(instrument):
    telemetry = instrument()
    service = GatedService()
    with AgentsEmulator(service=service) as emulator:
        client = agents_client(emulator)
        agent_id = client.create_agent(model="gpt-4o", name="fork-agent").id
        # The parent's runs at the fork: one ended whose listing is in flight (held by the emulator), one ended
        # and listed (a fetcher worker then waits idle), one open.
        service.hold_next_listing()
        held = _full_run(client, agent_id, "message")
        assert service.listing_held.wait(10)
        listed = _full_run(client, agent_id, "message")
        assert _wait_until(
            lambda: any(s.attributes.get(RUN_ID) == listed.id for s in telemetry.exporter.get_finished_spans()), 10
        )
        open_thread = client.threads.create()
        opened = client.runs.create(thread_id=open_thread.id, agent_id=agent_id, metadata=metadata("message", 3))
        opened = client.runs.get(thread_id=open_thread.id, run_id=opened.id)
        assert opened.status in ACTIVE

        def child() -> dict[str, Any]:
            telemetry.exporter.clear()  # the parent's exported spans, copied by the fork
            with agents_client(emulator) as own:  # the child's own connections
                run = _full_run(own, agent_id, "code_interpreter")
                started = time.monotonic()
                flushed = telemetry.tracer_provider.force_flush(10_000)
                flush_s = time.monotonic() - started
            AzureAgentInstrumentor().uninstrument()  # what the child's exit does: ends whatever it still holds
            spans = [
                {
                    "name": s.name,
                    "operation": s.attributes.get("gen_ai.operation.name"),
                    "run_id": s.attributes.get(RUN_ID),
                    "unavailable": s.attributes.get(UNAVAILABLE),
                    "parent": s.parent.span_id if s.parent else None,
                    "span_id": s.context.span_id,
                }
                for s in telemetry.exporter.get_finished_spans()
            ]
            return {"run_id": run.id, "flushed": flushed, "flush_s": flush_s, "spans": spans}

        report = _in_child(child)
        # The child: its own run, with its steps, flushed at once; nothing of the parent's.
        assert report["flushed"] is True and report["flush_s"] < 5.0
        runs = [s for s in report["spans"] if s["operation"] == "invoke_agent"]
        assert [r["run_id"] for r in runs] == [report["run_id"]]
        assert runs[0]["unavailable"] is None
        steps = sorted(s["name"] for s in report["spans"] if s["parent"] == runs[0]["span_id"])
        assert steps == ["chat gpt-4o", "chat gpt-4o", "execute_tool code_interpreter"]
        # The parent still owns and finishes its runs.
        service.release()
        opened = client.runs.get(thread_id=open_thread.id, run_id=opened.id)
        while opened.status in ACTIVE:
            opened = client.runs.get(thread_id=open_thread.id, run_id=opened.id)
        assert telemetry.tracer_provider.force_flush(10_000)
    parent_runs = {s.attributes[RUN_ID]: s for s in telemetry.run_spans()}
    assert sorted(parent_runs) == sorted([held.id, listed.id, opened.id])
    for run_span in parent_runs.values():
        assert UNAVAILABLE not in run_span.attributes and "azure.ai.agents.run.unfinished" not in run_span.attributes
        assert [c.name for c in telemetry.children(run_span)] == ["chat gpt-4o"]


# ---- a real prefork server ------------------------------------------------------------------------------------
def _gunicorn_version() -> tuple[int, ...]:
    return tuple(int(p) for p in package_metadata.version("gunicorn").split(".")[:2] if p.isdigit())


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def _get_run(sock_path: str) -> dict[str, Any]:
    connection = _UnixConnection(sock_path, timeout=60)
    try:
        connection.request("GET", "/run")
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.heavy
def test_gunicorn_preload_workers_send_every_run_once_with_its_steps_and_never_the_masters(tmp_path):
    pytest.importorskip("gunicorn")
    service = GatedService()
    with AgentsEmulator(service=service) as emulator, NexusServer(plan="pro", monthly_limit=10**6) as nexus:
        sock_path = str(tmp_path / "app.sock")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "AGENTS_ENDPOINT": f"{emulator.base_url}/api/projects/{emulator.project}",
            "NEXUS_API_KEY": nexus.api_key,
            "NEXUS_ENDPOINT": nexus.url,
            "PREFORK_DIR": str(tmp_path),
        }
        command = [
            sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind", f"unix:{sock_path}",
            "--timeout", "60", "--graceful-timeout", "30", "--log-level", "warning",
        ]  # fmt: skip
        if _gunicorn_version() >= (25,):
            command.append("--no-control-socket")
        command.append("tests.apps.prefork_app:app")
        service.hold_next_listing()  # the master's ended run: its listing is in flight when it forks
        log = open(tmp_path / "gunicorn.log", "wb")
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            master_file = tmp_path / "master.json"
            assert _wait_until(lambda: master_file.exists() and Path(sock_path).exists(), 60), _log(tmp_path)
            master = json.loads(master_file.read_text())
            assert master["open_status"] in ACTIVE
            assert service.listing_held.is_set()
            service.meet(2)  # the first two runs wait for each other: two workers serve them
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda _: _get_run(sock_path), range(2)))
                answers += list(pool.map(lambda _: _get_run(sock_path), range(4)))
            service.release()  # the master's listing now finishes, in the master
        finally:
            server.send_signal(signal.SIGTERM)  # graceful: workers, then the master, exit through sys.exit
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
            log.close()
        assert server.returncode == 0, _log(tmp_path)
        pids = {a["pid"] for a in answers}
        assert len({a["pid"] for a in answers[:2]}) == 2 and master["pid"] not in pids
        assert all(a["status"] == "completed" for a in answers)
        expected = [a["run_id"] for a in answers] + [master["held"], master["open"]]
        by_run: dict[str, list[dict[str, Any]]] = {}
        for trace in nexus.traces:
            run_id = trace["metadata"].get("run_id")
            if run_id is not None:
                by_run.setdefault(run_id, []).append(trace)
    assert sorted(by_run) == sorted(expected), _log(tmp_path)
    assert all(len(traces) == 1 for traces in by_run.values()), {k: len(v) for k, v in by_run.items()}
    for run_id in [a["run_id"] for a in answers] + [master["held"]]:
        [trace] = by_run[run_id]
        assert trace["metadata"].get("unfinished") is None
        names = sorted(s["name"] for s in trace["spans"])
        assert names == sorted(
            ["invoke_agent prefork-agent", "chat gpt-4o", "chat gpt-4o", "execute_tool code_interpreter"]
        ), (run_id, names)
    [opened] = by_run[master["open"]]
    assert opened["metadata"].get("unfinished") == "shutdown"  # ended once, by the master, at its exit


def _log(tmp_path: Path) -> str:
    path = tmp_path / "gunicorn.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""

