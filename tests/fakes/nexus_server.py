"""A local Nexus (Keylight Digital) v1 API server for tests and demos.

It validates requests exactly like the published Nexus Worker (``src/routes/api.ts``): Bearer ``nxs_`` keys,
the required fields, status enums and the ISO-8601 regex, the Free plan's one-agent and monthly-trace limits.
One check is stricter than Nexus: a span's ``parent_span_id`` must be the id of a span already posted to
the same trace (Nexus would store a dangling parent silently).

Test hooks: :meth:`NexusServer.fail_next` injects faults (any status, extra headers, or status 0 to drop the
connection without answering, optionally *after* applying the request, optionally after *hanging* for a
while: :meth:`NexusServer.release` ends hangs early), :attr:`NexusServer.delay` slows every response (a
realistic round trip: 0.05-0.2 s), :attr:`NexusServer.requests` records every request with its arrival time, and
:meth:`NexusServer.wait_for` waits on a condition instead of sleeping.

The shape of the trace list is not published: :attr:`NexusServer.list_shape` picks it: ``"array"`` (a bare JSON
array, the default), ``"object"`` (``{<list_key>: [...], "total": n, "next_cursor": ...}``) or ``"unreadable"``
(a 200 with an HTML page, as a proxy in front of the API may answer); ``list_metadata=False`` leaves the
traces' ``metadata`` out of the list (``GET /api/v1/traces/{id}`` still has it).

    with NexusServer() as server:
        exporter = NexusSpanExporter(api_key=server.api_key, endpoint=server.url)
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

from azure_ai_agents_emulator.local_server import LocalHandler, LocalHttpServer

__all__ = ["NexusServer", "RequestRecord", "ROUTES"]

CREATE_TRACE = "POST /api/v1/traces"
LIST_TRACES = "GET /api/v1/traces"
GET_TRACE = "GET /api/v1/traces/{id}"
UPDATE_TRACE = "PATCH /api/v1/traces/{id}"
CREATE_SPAN = "POST /api/v1/traces/{id}/spans"
ROUTES = (CREATE_TRACE, LIST_TRACES, GET_TRACE, UPDATE_TRACE, CREATE_SPAN)
LIST_SHAPES = ("array", "object", "unreadable")
UNREADABLE_PAGE = b"<!doctype html><title>200 OK</title><p>Request accepted.</p>"

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_KEY = re.compile(r"^nxs_[0-9a-f]{64}$")
_TRACE_STATUSES = ("running", "success", "error", "timeout")
_SPAN_STATUSES = ("ok", "error")
_PATH = re.compile(r"^/api/v1/traces(?:/(?P<id>[^/]+)(?P<spans>/spans)?)?/?$")


@dataclass
class RequestRecord:
    """One request as the server saw it. ``received_at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    route: Optional[str]
    received_at: float
    body: Any
    status: int = 0
    injected: bool = False


@dataclass
class _Fault:
    status: int
    remaining: int
    headers: dict[str, str]
    body: Any
    after_processing: bool
    hang: float = 0.0


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def new_api_key() -> str:
    return "nxs_" + secrets.token_hex(32)


def _iso(value: Any) -> bool:
    return isinstance(value, str) and bool(_ISO.match(value))


def _month_start() -> str:
    now = datetime.now(timezone.utc)
    return f"{now.year:04d}-{now.month:02d}-01T00:00:00Z"


def _duration_ms(started: str, ended: Optional[str]) -> Optional[int]:
    if not ended:
        return None
    try:
        start = datetime.fromisoformat(started.replace("Z", "+00:00"))
        end = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((end - start).total_seconds() * 1000)


def _route(method: str, path: str) -> Optional[str]:
    match = _PATH.match(urlsplit(path).path)
    if match is None:
        return None
    if match.group("id") is None:
        return f"{method} /api/v1/traces"
    return f"{method} /api/v1/traces/{{id}}/spans" if match.group("spans") else f"{method} /api/v1/traces/{{id}}"


class _Handler(LocalHandler):
    owner: NexusServer

    def _serve(self) -> None:
        server = self.owner
        received = time.monotonic()
        raw = self._read_body()
        route = _route(self.command, self.path)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = RequestRecord(self.command, self.path, route, received, body)
        server._pause()
        fault = server._take_fault(route)
        if fault is not None and fault.hang > 0:
            server._released.wait(fault.hang)  # a hang the client must time out of; never applied
        if fault is None or fault.after_processing:
            reply = server._handle(self.command, self.path, self.headers, raw)
        if fault is not None:
            reply = _Reply(fault.status, fault.body, fault.headers)
            record.injected = True
        record.status = reply.status
        server._record(record)
        if reply.status == 0:
            self.close_connection = True  # drop the connection: the client gets no answer at all
            return
        if isinstance(reply.body, bytes):  # a raw page, not JSON
            self._send(reply.status, reply.body, "text/html", reply.headers)
            return
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        self._send(reply.status, data, "application/json", reply.headers)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


class NexusServer(LocalHttpServer):
    """The Nexus v1 ingestion API on 127.0.0.1 (ephemeral port), served by a daemon thread."""

    handler_class = _Handler
    thread_name = "nexus-emulator"

    def __init__(
        self,
        api_key: Optional[str] = None,
        *,
        plan: str = "free",
        monthly_limit: int = 1000,
        strict_parents: bool = True,
        list_shape: str = "array",
        list_key: str = "traces",
        list_metadata: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        if list_shape not in LIST_SHAPES:
            raise ValueError(f"unknown list_shape {list_shape!r}; expected one of {LIST_SHAPES}")
        self.list_shape = list_shape  #: how GET /api/v1/traces answers (may be changed while serving)
        self.list_key = list_key  #: the key holding the list when list_shape is "object"
        self.list_metadata = list_metadata  #: whether listed traces carry their metadata
        self.api_key = api_key or new_api_key()
        self.plan = plan
        self.monthly_limit = monthly_limit
        self.strict_parents = strict_parents
        self._faults: list[tuple[str, _Fault]] = []
        self._requests: list[RequestRecord] = []
        self._traces: dict[str, dict[str, Any]] = {}
        self._agents: list[str] = []
        self._released = threading.Event()

    # -- test hooks -----------------------------------------------------------------------------------------
    def fail_next(
        self,
        route: str,
        status: int,
        count: int = 1,
        headers: Optional[dict[str, str]] = None,
        body: Any = None,
        *,
        after_processing: bool = False,
        hang: float = 0.0,
    ) -> None:
        """Answer the next ``count`` requests to ``route`` (one of :data:`ROUTES`, or ``"*"``) with ``status``.

        ``status=0`` closes the connection without a response. ``after_processing=True`` applies the request
        first (e.g. the trace IS created) and then fails: the case where a client cannot know the outcome.
        ``hang``: hold the request that long first (until :meth:`release` or ``stop``), as a stuck server does.
        """
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTES} or '*'")
        default_body = {"error": "Injected fault"} if status else None
        if hang > 0:
            self._released.clear()
        with self._lock:
            self._faults.append(
                (
                    route,
                    _Fault(
                        status,
                        count,
                        dict(headers or {}),
                        default_body if body is None else body,
                        after_processing,
                        hang,
                    ),
                )
            )

    def heal(self) -> None:
        """End the outage: forget faults not yet hit and release hanging requests."""
        with self._lock:
            self._faults.clear()
        self._released.set()

    def release(self) -> None:
        """Let hanging requests answer now."""
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        super().stop()

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def rejected_count(self) -> int:
        """Requests the API itself refused (4xx), injected faults excluded."""
        with self._lock:
            return sum(1 for r in self._requests if 400 <= r.status < 500 and not r.injected)

    @property
    def injected_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._requests if r.injected)

    def count(self, route: Optional[str] = None, status: Optional[int] = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (route is None or r.route == route) and (status is None or r.status == status)
            )

    @property
    def traces(self) -> list[dict[str, Any]]:
        """Stored traces (creation order), each with ``agent_id`` (the agent name), ``name`` and ``spans``."""
        with self._lock:
            return copy.deepcopy(list(self._traces.values()))

    def wait_for_traces(self, n: int, timeout: float = 5.0, *, with_spans: Optional[int] = None) -> bool:
        def ready(server: NexusServer) -> bool:
            traces = server.traces
            return len(traces) >= n and (with_spans is None or sum(len(t["spans"]) for t in traces) >= with_spans)

        return self.wait_for(ready, timeout)

    # -- request handling (handler threads) -----------------------------------------------------------------
    def _take_fault(self, route: Optional[str]) -> Optional[_Fault]:
        with self._lock:
            for index, (name, fault) in enumerate(self._faults):
                if name == "*" or name == route:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                    return fault
        return None

    def _record(self, record: RequestRecord) -> None:
        with self._changed:
            self._requests.append(record)
            self._notify()

    def _handle(self, method: str, path: str, headers: Any, raw: bytes) -> _Reply:
        """Dispatch like the Hono router: auth first, then the route's own checks in the Worker's order."""
        auth = headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.startswith("Bearer ") else ""
        if not _KEY.match(token) or not secrets.compare_digest(token, self.api_key):
            return _Reply(401, {"error": "Invalid API key"})
        parts = urlsplit(path)
        match = _PATH.match(parts.path)
        if match is None:
            return _Reply(404, {"error": "Not Found"})
        trace_id, spans = match.group("id"), match.group("spans")
        with self._lock:
            if trace_id is None and method == "POST":
                return self._create_trace(raw)
            if trace_id is None and method == "GET":
                return self._list_traces(parse_qs(parts.query))
            if trace_id is not None and spans and method == "POST":
                return self._create_span(trace_id, raw)
            if trace_id is not None and not spans and method == "PATCH":
                return self._update_trace(trace_id, raw)
            if trace_id is not None and not spans and method == "GET":
                return self._get_trace(trace_id)
        return _Reply(404, {"error": "Not Found"})

    @staticmethod
    def _json_object(raw: bytes) -> tuple[Optional[dict[str, Any]], Optional[_Reply]]:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None, _Reply(400, {"error": "Invalid JSON body"})
        if isinstance(body, list):  # a JS array passes `typeof body === 'object'`, then has no fields
            return {}, None
        if not isinstance(body, dict):
            return None, _Reply(400, {"error": "Body must be a JSON object"})
        return body, None

    def _create_trace(self, raw: bytes) -> _Reply:
        body, error = self._json_object(raw)
        if error is not None:
            return error
        assert body is not None
        fields: dict[str, str] = {}
        for name in ("agent_id", "name"):
            if not body.get(name) or not isinstance(body.get(name), str):
                fields[name] = "Required, must be a string"
        status = body.get("status")
        if not status or not isinstance(status, str):
            fields["status"] = "Required, must be a string"
        elif status not in _TRACE_STATUSES:
            fields["status"] = f"Must be one of: {', '.join(_TRACE_STATUSES)}"
        started = body.get("started_at")
        if not started or not isinstance(started, str):
            fields["started_at"] = "Required, must be a string"
        elif not _iso(started):
            fields["started_at"] = "Must be ISO 8601 format (e.g. 2026-04-05T12:00:00Z)"
        if body.get("ended_at") is not None and not _iso(body["ended_at"]):
            fields["ended_at"] = "Must be ISO 8601 format if provided"
        if fields:
            return _Reply(400, {"error": "Validation failed", "fields": fields})
        if self.plan == "free":
            month = _month_start()
            used = sum(1 for t in self._traces.values() if t["started_at"] >= month)
            if used >= self.monthly_limit:
                return _Reply(
                    429,
                    {
                        "error": "Monthly trace limit reached",
                        "limit": self.monthly_limit,
                        "current": used,
                        "upgrade_url": "/dashboard/billing",
                    },
                )
        agent = body["agent_id"]
        if agent not in self._agents:
            if self.plan == "free" and len(self._agents) >= 1:
                return _Reply(403, {"error": "Free plan limited to 1 agent", "upgrade_url": "/dashboard/billing"})
            self._agents.append(agent)
        trace_id = str(uuid.uuid4())
        self._traces[trace_id] = {
            "id": trace_id,
            "agent_id": agent,
            "name": body["name"],
            "status": status,
            "started_at": started,
            "ended_at": body.get("ended_at"),
            "metadata": copy.deepcopy(body.get("metadata")),
            "spans": [],
        }
        return _Reply(201, {"trace_id": trace_id})

    def _create_span(self, trace_id: str, raw: bytes) -> _Reply:
        trace = self._traces.get(trace_id)
        if trace is None:
            return _Reply(404, {"error": "Trace not found"})
        body, error = self._json_object(raw)
        if error is not None:
            return error
        assert body is not None
        fields: dict[str, str] = {}
        if not body.get("name") or not isinstance(body.get("name"), str):
            fields["name"] = "Required, must be a string"
        status = body.get("status")
        if not status or not isinstance(status, str):
            fields["status"] = "Required, must be a string"
        elif status not in _SPAN_STATUSES:
            fields["status"] = f"Must be one of: {', '.join(_SPAN_STATUSES)}"
        started = body.get("started_at")
        if not started or not isinstance(started, str):
            fields["started_at"] = "Required, must be a string"
        elif not _iso(started):
            fields["started_at"] = "Must be ISO 8601 format (e.g. 2026-04-05T12:00:00Z)"
        if body.get("ended_at") is not None and not _iso(body["ended_at"]):
            fields["ended_at"] = "Must be ISO 8601 format if provided"
        parent = body.get("parent_span_id")
        if parent is not None and not isinstance(parent, str):
            fields["parent_span_id"] = "Must be a string if provided"
        elif parent is not None and self.strict_parents and all(s["id"] != parent for s in trace["spans"]):
            fields["parent_span_id"] = "Must be the id of an existing span of this trace (emulator check)"
        if fields:
            return _Reply(400, {"error": "Validation failed", "fields": fields})
        error_field = body.get("error")
        span_id = str(uuid.uuid4())
        trace["spans"].append(
            {
                "id": span_id,
                "name": body["name"],
                "parent_span_id": parent,
                "status": status,
                "started_at": started,
                "ended_at": body.get("ended_at"),
                "input": copy.deepcopy(body.get("input")),
                "output": copy.deepcopy(body.get("output")),
                "error": None
                if error_field is None
                else (error_field if isinstance(error_field, str) else json.dumps(error_field)),
            }
        )
        return _Reply(201, {"span_id": span_id})

    def _update_trace(self, trace_id: str, raw: bytes) -> _Reply:
        trace = self._traces.get(trace_id)
        if trace is None:
            return _Reply(404, {"error": "Trace not found"})
        body, error = self._json_object(raw)
        if error is not None:
            return error
        assert body is not None
        fields: dict[str, str] = {}
        if "status" in body and body["status"] not in _TRACE_STATUSES:
            fields["status"] = f"Must be one of: {', '.join(_TRACE_STATUSES)}"
        if body.get("ended_at") is not None and not _iso(body["ended_at"]):
            fields["ended_at"] = "Must be ISO 8601 format if provided"
        if fields:
            return _Reply(400, {"error": "Validation failed", "fields": fields})
        if "status" not in body and body.get("ended_at") is None:
            return _Reply(400, {"error": "No fields to update"})
        if "status" in body:
            trace["status"] = body["status"]
        if body.get("ended_at") is not None:
            trace["ended_at"] = body["ended_at"]
        return _Reply(200, {"trace_id": trace_id})

    def _summary(self, trace: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": trace["id"],
            "agent_name": trace["agent_id"],
            "status": trace["status"],
            "started_at": trace["started_at"],
            "ended_at": trace["ended_at"],
            "duration_ms": _duration_ms(trace["started_at"], trace["ended_at"]),
            "span_count": len(trace["spans"]),
            "metadata": copy.deepcopy(trace["metadata"]),
        }

    def _list_traces(self, query: dict[str, list[str]]) -> _Reply:
        def arg(name: str) -> Optional[str]:
            return query[name][0] if name in query else None

        fields: dict[str, str] = {}
        status, since, until, after = arg("status"), arg("since"), arg("until"), arg("after")
        if status is not None and status not in ("ok", "error"):
            fields["status"] = "Must be one of: ok, error"
        if since is not None and not _iso(since):
            fields["since"] = "Must be ISO 8601 format (e.g. 2026-04-05T12:00:00Z)"
        if until is not None and not _iso(until):
            fields["until"] = "Must be ISO 8601 format (e.g. 2026-04-05T12:00:00Z)"
        limit_match = re.match(r"^\s*[+-]?\d+", arg("limit") or "50")  # JS parseInt
        limit = int(limit_match.group()) if limit_match else 0
        if not 1 <= limit <= 200:
            fields["limit"] = "Must be an integer between 1 and 200"
        if fields:
            return _Reply(400, {"error": "Invalid query parameters", "fields": fields})
        traces = list(self._traces.values())
        agent = arg("agent_id")
        if agent:
            traces = [t for t in traces if t["agent_id"] == agent]
        if status == "ok":
            traces = [t for t in traces if t["status"] == "success"]
        elif status == "error":
            traces = [t for t in traces if t["status"] in ("error", "timeout")]
        if since:
            traces = [t for t in traces if t["started_at"] >= since]
        if until:
            traces = [t for t in traces if t["started_at"] <= until]
        if after:
            cursor = self._traces.get(after)
            if cursor is None:
                return _Reply(400, {"error": "Invalid cursor: trace not found"})
            mark = (cursor["started_at"], after)
            traces = [t for t in traces if (t["started_at"], t["id"]) < mark]
        traces.sort(key=lambda t: (t["started_at"], t["id"]), reverse=True)
        page = [self._summary(t) for t in traces[:limit]]
        if not self.list_metadata:
            page = [{k: v for k, v in item.items() if k != "metadata"} for item in page]
        headers = {"X-Total-Count": str(len(traces))}
        if self.list_shape == "unreadable":
            return _Reply(200, UNREADABLE_PAGE, headers)
        if self.list_shape == "object":
            cursor = page[-1]["id"] if len(traces) > limit else None
            return _Reply(200, {self.list_key: page, "total": len(traces), "next_cursor": cursor}, headers)
        return _Reply(200, page, headers)

    def _get_trace(self, trace_id: str) -> _Reply:
        trace = self._traces.get(trace_id)
        if trace is None:
            return _Reply(404, {"error": "Trace not found"})
        spans = sorted(trace["spans"], key=lambda s: s["started_at"])
        return _Reply(200, {**self._summary(trace), "spans": copy.deepcopy(spans)})
