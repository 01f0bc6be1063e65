"""The REST surface of the emulated service: routes, request and response shapes, errors, fault rules.

:class:`RestFrontend` answers one request (:meth:`RestFrontend.handle`): it strips either API generation's
prefix (``/api/projects/{p}/...`` or the legacy ``/agents/v1.0/subscriptions/...``), finds the route and its
operation in :data:`_ROUTES` (then in the service's ``extra_routes``), applies the fault rules set by
:meth:`RestFrontend.fail_next`, parses the JSON (or multipart) body, calls the service's
``_op_<operation>(params, query, body)`` and serialises the result (passing it through ``response_hook``
first), or the :class:`ServiceError` it raised. Also here: list pagination
(:func:`page`), the shapes of message content (:func:`text_content`) and multipart form bodies.

A route is a row ``(method, path pattern, response kind, operation name)``. A module adding endpoints
keeps its own rows (a ``ROUTES`` tuple) and its ``_op_*`` methods in a mixin, and the service lists the
rows in ``extra_routes``: nothing here changes.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Callable, Iterator, Mapping, Optional, Union

__all__ = [
    "FormFile",
    "Response",
    "ResponseHook",
    "RestFrontend",
    "Route",
    "ServiceError",
    "page",
    "text_content",
    "to_int",
]

ResponseHook = Callable[[str, str, Any], Any]
#: (method, route pattern, response kind, operation name)
Route = tuple[str, str, str, str]

_PREFIX = re.compile(
    r"^(?:/api/projects/[^/]+"
    r"|/agents/v1\.0/subscriptions/[^/]+/resourceGroups/[^/]+"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+)?(?P<route>/.*)$",
    re.IGNORECASE,
)

# (method, route pattern, response kind, operation name)
_ROUTES: tuple[Route, ...] = (
    ("POST", r"/assistants", "agent", "create_agent"),
    ("GET", r"/assistants", "agent_list", "list_agents"),
    ("GET", r"/assistants/(?P<agent_id>[^/]+)", "agent", "get_agent"),
    ("POST", r"/assistants/(?P<agent_id>[^/]+)", "agent", "update_agent"),
    ("DELETE", r"/assistants/(?P<agent_id>[^/]+)", "deletion", "delete_agent"),
    ("POST", r"/threads", "thread", "create_thread"),
    ("GET", r"/threads", "thread_list", "list_threads"),
    ("POST", r"/threads/runs", "run", "create_thread_and_run"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)", "thread", "get_thread"),
    ("POST", r"/threads/(?P<thread_id>[^/]+)", "thread", "update_thread"),
    ("DELETE", r"/threads/(?P<thread_id>[^/]+)", "deletion", "delete_thread"),
    ("POST", r"/threads/(?P<thread_id>[^/]+)/messages", "message", "create_message"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/messages", "message_list", "list_messages"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/messages/(?P<message_id>[^/]+)", "message", "get_message"),
    ("POST", r"/threads/(?P<thread_id>[^/]+)/runs", "run", "create_run"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/runs", "run_list", "list_runs"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)", "run", "get_run"),
    ("POST", r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)", "run", "update_run"),
    (
        "POST",
        r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/submit_tool_outputs",
        "run",
        "submit_tool_outputs",
    ),
    ("POST", r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/cancel", "run", "cancel_run"),
    ("GET", r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/steps", "step_list", "list_run_steps"),
    (
        "GET",
        r"/threads/(?P<thread_id>[^/]+)/runs/(?P<run_id>[^/]+)/steps/(?P<step_id>[^/]+)",
        "step",
        "get_run_step",
    ),
)


@functools.lru_cache(maxsize=32)
def _compile(routes: tuple[Route, ...]) -> tuple[tuple[str, re.Pattern[str], str, str], ...]:
    return tuple((m, re.compile(p + r"/?$"), k, op) for m, p, k, op in routes)


_COMPILED = _compile(_ROUTES)


@dataclass
class Response:
    """An HTTP answer: ``body`` is bytes, or an iterator of SSE frames (bytes) for streams."""

    status: int
    headers: dict[str, str]
    body: Union[bytes, Iterator[bytes]]

    @property
    def is_stream(self) -> bool:
        """True when ``body`` is an iterator of server-sent event frames."""
        return not isinstance(self.body, (bytes, bytearray))

    def json(self) -> Any:
        """The decoded JSON body (not for streams)."""
        assert isinstance(self.body, (bytes, bytearray)), "streaming response"
        return json.loads(self.body)


@dataclass
class FormFile:
    """A file part of a ``multipart/form-data`` body."""

    filename: str
    content: bytes
    content_type: str


def parse_form(body: bytes, content_type: str) -> dict[str, Any]:
    """The fields of a ``multipart/form-data`` body: str values, or :class:`FormFile` for file parts."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        try:
            fields[name] = content.decode("utf-8") if filename is None else None
        except UnicodeDecodeError:
            pass
        if fields.get(name) is None:  # a file part, or binary content sent without a file name
            fields[name] = FormFile(filename or "", content, part.get_content_type())
    return fields


class ServiceError(Exception):
    """An error answered to the client as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class FailRule:
    match: str
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _default_code(status: int) -> str:
    return {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        429: "TooManyRequests",
        500: "InternalServerError",
        502: "BadGateway",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
    }.get(status, "Error")


def to_int(value: Any) -> Optional[int]:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return None


def text_content(content: Any) -> list[dict[str, Any]]:
    """Normalise message input content (str or content blocks) to ThreadMessage content."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    blocks: list[dict[str, Any]] = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            text = block.get("text")
            value = text.get("value", "") if isinstance(text, dict) else str(text or "")
            blocks.append({"type": "text", "text": {"value": value, "annotations": []}})
        elif isinstance(block, dict) and block.get("type") == "image_file":
            blocks.append({"type": "image_file", "image_file": block.get("image_file") or {}})
        elif isinstance(block, dict) and block.get("type") == "image_url":  # kept as the service keeps it
            blocks.append({"type": "image_url", "image_url": block.get("image_url") or {}})
        elif isinstance(block, dict):
            blocks.append({"type": "text", "text": {"value": json.dumps(block), "annotations": []}})
    return blocks


def page(items: list[dict[str, Any]], query: dict[str, str], default_order: str = "desc") -> dict[str, Any]:
    """One page of a list, cursor-paginated like the service (``after``/``before``/``limit``/``order``)."""
    ordered = list(items) if (query.get("order") or default_order) == "asc" else list(reversed(items))
    ids = [item["id"] for item in ordered]
    after, before = query.get("after"), query.get("before")
    if after:
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        ids = [item["id"] for item in ordered]
    if before:
        ordered = ordered[: ids.index(before)] if before in ids else ordered
    limit = min(100, to_int(query.get("limit")) or 20)
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }


class RestFrontend:
    """Request handling of :class:`~.service.AgentsService`: routing, faults, parsing, serialising.

    Every ``_op_<operation>`` of the route table is a method of the service; it returns a JSON-able
    payload, or a :class:`Response` (streams), or raises :class:`ServiceError`.
    """

    #: More routes (rows like :data:`_ROUTES`), tried after the Agents routes; set by the service class.
    extra_routes: tuple[Route, ...] = ()
    #: The headers of the request being handled (lower-case names); empty for calls without headers.
    request_headers: dict[str, str] = {}

    # state kept (and reset) by AgentsService
    _lock: threading.RLock
    requests: list[tuple[str, str]]
    operations: list[str]
    response_hook: Optional[ResponseHook]
    _fail_rules: list[FailRule]

    def fail_next(
        self,
        route_kind: str,
        status: int,
        body: Any = None,
        count: int = 1,
        headers: Optional[dict[str, str]] = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` without processing them.

        ``route_kind`` matches a response kind (``"run"``, ``"step_list"``...), an operation name
        (``"get_run"``, ``"submit_tool_outputs"``...), ``"METHOD kind"`` (``"GET run"``) or ``"*"``.
        ``body`` defaults to ``{"error": {"code", "message"}}``; a str/bytes body is sent verbatim.
        """
        if body is None:
            body = _error_body(_default_code(status), f"Injected failure ({status})")
        with self._lock:
            self._fail_rules.append(FailRule(route_kind, status, body, dict(headers or {}), count))

    def delay_for(self, method: str, path: str) -> float:
        """Seconds to wait before answering this request (``latency`` plus any matching ``delays``)."""
        latency: float = getattr(self, "latency", 0.0)
        delays: dict[str, float] = getattr(self, "delays", {})
        if not delays:
            return latency
        route = self._route(method.upper(), path.split("?", 1)[0])
        if route is None:
            return latency
        kind, op, _ = route
        extra = [delays[k] for k in (kind, op, f"{method.upper()} {kind}", f"{method.upper()} {op}") if k in delays]
        return latency + (max(extra) if extra else 0.0)

    def handle(
        self,
        method: str,
        path: str,
        query: Optional[dict[str, str]] = None,
        body: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Response:
        """Answer one REST request."""
        method = method.upper()
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        path = path.split("?", 1)[0]
        query = dict(query or {})
        with self._lock:
            self.requests.append((method, path))
            try:
                route = self._route(method, path)
                if route is None:
                    self.operations.append("unknown")
                    raise ServiceError(404, "NotFound", f"No route for {method} {path}")
                kind, op, params = route
                self.operations.append(op)
                failure = self._take_failure(method, kind, op) if kind != "control" else None
                if failure is not None:
                    return failure
                payload = self._parse_body(body, lowered.get("content-type", ""))
                self.request_headers = lowered
                try:
                    self._authorize(kind)
                    result = getattr(self, "_op_" + op)(params, query, payload)
                finally:
                    self.request_headers = {}
                if isinstance(result, Response):
                    return result
                return self._json(200, self._hook(method, kind, result))
            except ServiceError as err:
                return self._json(err.status, _error_body(err.code, err.message))
            except Exception as err:  # noqa: BLE001 - a bug or a failing hook must not kill the server
                return self._json(500, _error_body("InternalServerError", f"{type(err).__name__}: {err}"))

    def _authorize(self, kind: str) -> None:
        """Raise :class:`ServiceError` (401) for a request that may not proceed; the identity part checks."""

    # ------------------------------------------------------------------ plumbing

    @classmethod
    def _route(cls, method: str, path: str) -> Optional[tuple[str, str, dict[str, str]]]:
        match = _PREFIX.match(path)
        route = match.group("route") if match else path
        for m, pattern, kind, op in _COMPILED + _compile(cls.extra_routes):
            found = pattern.match(route)
            if m == method and found:
                return kind, op, found.groupdict()
        return None

    def _take_failure(self, method: str, kind: str, op: str) -> Optional[Response]:
        for rule in self._fail_rules:
            if rule.remaining > 0 and rule.match in (kind, op, f"{method} {kind}", f"{method} {op}", "*"):
                rule.remaining -= 1
                if isinstance(rule.body, (bytes, str)):
                    raw = rule.body.encode() if isinstance(rule.body, str) else rule.body
                    return Response(rule.status, {"Content-Type": "application/json", **rule.headers}, raw)
                response = self._json(rule.status, rule.body)
                response.headers.update(rule.headers)
                return response
        return None

    @staticmethod
    def _parse_body(body: Optional[bytes], content_type: str = "") -> dict[str, Any]:
        if not body:
            return {}
        if content_type.lower().startswith("multipart/form-data"):
            return parse_form(body, content_type)
        try:
            payload = json.loads(body)
        except ValueError as err:
            raise ServiceError(400, "BadRequest", f"Request body is not valid JSON: {err}") from None
        if not isinstance(payload, dict):
            raise ServiceError(400, "BadRequest", "Request body must be a JSON object")
        return payload

    @staticmethod
    def _json(status: int, payload: Any) -> Response:
        return Response(status, {"Content-Type": "application/json"}, json.dumps(payload).encode("utf-8"))

    def _hook(self, method: str, kind: str, payload: Any) -> Any:
        if self.response_hook is None:
            return payload
        changed = self.response_hook(method, kind, copy.deepcopy(payload))
        return payload if changed is None else changed
