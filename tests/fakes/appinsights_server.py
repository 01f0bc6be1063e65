"""A local Application Insights ingestion endpoint (Breeze ``/v2.1/track``) for tests and demos.

``AzureMonitorTraceExporter`` (and ``configure_azure_monitor()``) POST a JSON array of envelopes to
``{IngestionEndpoint}/v2.1/track`` and expect ``{"itemsReceived": N, "itemsAccepted": N, "errors": []}``.
This receiver accepts exactly that (plain, gzip- or deflate-encoded, JSON array or newline-delimited JSON),
stores the accepted envelopes, and can inject faults::

    with AppInsightsReceiver() as receiver:
        exporter = AzureMonitorTraceExporter(connection_string=receiver.connection_string,
                                             disable_offline_storage=True)
        ...
        receiver.wait_for_envelopes(lambda envs: any(...))
        [dep] = receiver.dependencies(type_prefix="GenAI | ")

Test hooks: :meth:`fail_next` answers the next requests with any status (0 drops the connection),
:meth:`partial_success` answers with 206 and per-item errors (the rejected items are NOT stored), and
:meth:`wait_for` waits on a condition (re-checked after every request) instead of sleeping.

Only the standard library is used; the server listens on 127.0.0.1 (ephemeral port) in a daemon thread.
"""

from __future__ import annotations

import copy
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, Union
from urllib.parse import urlsplit

from azure_ai_agents_emulator.local_server import LocalHandler, LocalHttpServer, decode_content

__all__ = ["AppInsightsReceiver", "TrackRequest", "DEFAULT_IKEY", "TRACK_PATHS"]

DEFAULT_IKEY = "00000000-0000-0000-0000-000000000000"
TRACK_PATHS = ("/v2.1/track", "/v2/track")
DEPENDENCY = "RemoteDependencyData"
REQUEST = "RequestData"
MESSAGE = "MessageData"
EXCEPTION = "ExceptionData"
METRIC = "MetricData"

Selector = Union[Sequence[int], Callable[[dict], bool], None]


@dataclass
class TrackRequest:
    """One request as the receiver saw it. ``received_at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    received_at: float
    content_encoding: str
    item_count: int
    status: int = 0
    injected: bool = False
    accepted: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Fault:
    status: int
    remaining: int
    headers: dict[str, str]
    body: Any


@dataclass
class _Partial:
    remaining: int
    reject: Selector
    status_code: int
    message: str


class _Handler(LocalHandler):
    owner: AppInsightsReceiver

    def _read_body(self) -> bytes:
        """Also accepts ``Transfer-Encoding: chunked`` bodies."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return super()._read_body()

    def _reply(self, status: int, body: Any, headers: Optional[dict[str, str]] = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self._send(status, data, "application/json; charset=utf-8", headers)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        owner = self.owner
        received = time.monotonic()
        raw = self._read_body()
        path = urlsplit(self.path).path
        encoding = self.headers.get("Content-Encoding") or ""
        record = TrackRequest("POST", path, received, encoding.lower(), 0)
        if path.rstrip("/") not in TRACK_PATHS:
            record.status = 404
            owner._record(record)
            self._reply(404, {"error": f"no route for POST {path}"})
            return
        try:
            items = _parse_items(decode_content(raw, encoding))
        except (ValueError, OSError, EOFError, zlib.error) as exc:
            record.status = 400
            owner._record(record)
            self._reply(400, {"itemsReceived": 0, "itemsAccepted": 0, "errors": [{"index": 0, "statusCode": 400,
                                                                                   "message": str(exc)}]})
            return
        record.item_count = len(items)
        owner._pause()
        fault = owner._take_fault()
        if fault is not None:
            record.status, record.injected = fault.status, True
            owner._record(record)
            if fault.status == 0:
                self.close_connection = True  # no answer at all
                return
            body = fault.body
            if body is None:
                body = {
                    "itemsReceived": len(items),
                    "itemsAccepted": 0,
                    "errors": [{"index": i, "statusCode": fault.status, "message": "Injected fault"}
                               for i in range(len(items))],
                }
            self._reply(fault.status, body, fault.headers)
            return
        status, body, accepted = owner._track(items)
        record.status, record.accepted, record.errors = status, len(accepted), list(body["errors"])
        owner._record(record, accepted)
        self._reply(status, body)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(404, {"error": "only POST /v2.1/track is served"})


class AppInsightsReceiver(LocalHttpServer):
    """Breeze-compatible ``/v2.1/track`` endpoint on 127.0.0.1 (ephemeral port), served by a daemon thread."""

    handler_class = _Handler
    thread_name = "appinsights-receiver"

    def __init__(self, instrumentation_key: str = DEFAULT_IKEY, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.instrumentation_key = instrumentation_key
        self._faults: list[_Fault] = []
        self._partials: list[_Partial] = []
        self._requests: list[TrackRequest] = []
        self._envelopes: list[dict[str, Any]] = []

    @property
    def connection_string(self) -> str:
        """``InstrumentationKey=...;IngestionEndpoint=http://127.0.0.1:PORT/`` for exporters and the distro."""
        return f"InstrumentationKey={self.instrumentation_key};IngestionEndpoint={self.url}/"

    # -- test hooks -----------------------------------------------------------------------------------------
    def fail_next(
        self, status: int, count: int = 1, headers: Optional[dict[str, str]] = None, body: Any = None
    ) -> None:
        """Answer the next ``count`` track requests with ``status`` (nothing stored); 0 drops the connection."""
        with self._lock:
            self._faults.append(_Fault(status, count, dict(headers or {}), body))

    def partial_success(
        self, reject: Selector = None, *, status_code: int = 500, count: int = 1, message: str = "Injected item error"
    ) -> None:
        """Answer the next ``count`` requests with 206, rejecting some items with per-item ``status_code``.

        ``reject`` picks the rejected items: a sequence of indexes into the request's array, or a predicate
        on the envelope; by default the first item. Accepted items are stored, rejected ones are not.
        """
        with self._lock:
            self._partials.append(_Partial(count, reject, status_code, message))

    def clear(self) -> None:
        """Forget stored envelopes, requests and pending faults."""
        with self._changed:
            self._faults.clear()
            self._partials.clear()
            self._requests.clear()
            self._envelopes.clear()
            self._notify()

    # -- what was received ----------------------------------------------------------------------------------
    @property
    def requests(self) -> list[TrackRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        """Accepted envelopes, in arrival order (deep copies)."""
        with self._lock:
            return copy.deepcopy(self._envelopes)

    def of_type(self, base_type: str, envelopes: Optional[Iterable[dict[str, Any]]] = None) -> list[dict[str, Any]]:
        items = self.envelopes if envelopes is None else envelopes
        return [e for e in items if base_type_of(e) == base_type]

    def dependencies(self, type_prefix: Optional[str] = None) -> list[dict[str, Any]]:
        """RemoteDependency envelopes, optionally only those whose ``baseData.type`` starts with ``type_prefix``."""
        return [
            e
            for e in self.of_type(DEPENDENCY)
            if type_prefix is None or str(base_data(e).get("type", "")).startswith(type_prefix)
        ]

    def genai_dependencies(self) -> list[dict[str, Any]]:
        return self.dependencies(type_prefix="GenAI | ")

    def wait_for_envelopes(
        self, condition: Union[int, Callable[[list[dict[str, Any]]], bool]], timeout: float = 5.0
    ) -> bool:
        """Wait for ``n`` accepted envelopes, or until ``condition(envelopes)`` holds."""
        if isinstance(condition, int):
            n = condition
            return self.wait_for(lambda r: len(r.envelopes) >= n, timeout)
        check = condition
        return self.wait_for(lambda r: check(r.envelopes), timeout)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda r: len(r.requests) >= n, timeout)

    # -- request handling (handler threads) -----------------------------------------------------------------
    def _take_fault(self) -> Optional[_Fault]:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.pop(0)
            return fault

    def _take_partial(self) -> Optional[_Partial]:
        with self._lock:
            if not self._partials:
                return None
            partial = self._partials[0]
            partial.remaining -= 1
            if partial.remaining <= 0:
                self._partials.pop(0)
            return partial

    def _record(self, request: TrackRequest, accepted: Sequence[dict[str, Any]] = ()) -> None:
        with self._changed:
            self._requests.append(request)
            self._envelopes.extend(accepted)
            self._notify()

    def _track(self, items: list[Any]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """Validates and (partially) accepts ``items``; returns (status, body, accepted envelopes)."""
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            problem = _envelope_problem(item)
            if problem:
                errors.append({"index": index, "statusCode": 400, "message": problem})
        partial = self._take_partial()
        if partial is not None:
            rejected = {e["index"] for e in errors}
            for index, item in enumerate(items):
                if index not in rejected and _selected(partial.reject, index, item):
                    errors.append({"index": index, "statusCode": partial.status_code, "message": partial.message})
            errors.sort(key=lambda e: e["index"])
        rejected = {e["index"] for e in errors}
        accepted = [item for index, item in enumerate(items) if index not in rejected]
        body = {"itemsReceived": len(items), "itemsAccepted": len(accepted), "errors": errors}
        if not errors:
            return 200, body, accepted
        if not accepted and all(e["statusCode"] == 400 for e in errors):
            return 400, body, accepted
        return 206, body, accepted


def base_type_of(envelope: dict[str, Any]) -> Optional[str]:
    data = envelope.get("data") or {}
    return data.get("baseType") if isinstance(data, dict) else None


def base_data(envelope: dict[str, Any]) -> dict[str, Any]:
    data = envelope.get("data") or {}
    value = data.get("baseData") if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _selected(reject: Selector, index: int, item: Any) -> bool:
    if reject is None:
        return index == 0
    if callable(reject):
        return bool(reject(item))
    return index in reject


def _envelope_problem(item: Any) -> Optional[str]:
    """The checks Breeze makes that matter here: an object with a name, a time, an iKey and data.baseType."""
    if not isinstance(item, dict):
        return "Envelope is not a JSON object"
    for key in ("name", "time"):
        if not item.get(key):
            return f"Field '{key}' on type 'Envelope' is required but missing or empty"
    if not item.get("iKey"):
        return "Invalid instrumentation key"
    data = item.get("data")
    if not isinstance(data, dict) or not data.get("baseType"):
        return "Field 'baseType' on type 'Data' is required but missing or empty"
    return None


def _parse_items(text: bytes) -> list[Any]:
    """A JSON array (what the Python exporter sends) or newline-delimited JSON (``application/x-json-stream``)."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        value = json.loads(stripped)
    except ValueError:
        return [json.loads(line) for line in stripped.splitlines() if line.strip()]
    return value if isinstance(value, list) else [value]


def _main(argv: Optional[list[str]] = None) -> None:
    """``python -m ...emulator.appinsights_server [--port N]``: print what an exporter sends, envelope by envelope."""
    import argparse

    parser = argparse.ArgumentParser(description="Local Application Insights ingestion endpoint (/v2.1/track).")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    receiver = AppInsightsReceiver(port=args.port).start()
    print(f"APPLICATIONINSIGHTS_CONNECTION_STRING='{receiver.connection_string}'", flush=True)
    seen = 0
    try:
        while True:
            receiver.wait_for_envelopes(seen + 1, timeout=0.5)
            envelopes = receiver.envelopes
            for envelope in envelopes[seen:]:
                data, tags = base_data(envelope), envelope.get("tags") or {}
                label = data.get("name") or data.get("message") or ""
                kind = data.get("type") or base_type_of(envelope)
                print(f"{str(tags.get('ai.operation.id', ''))[:8]:<8} {kind:<24} {label}", flush=True)
            seen = len(envelopes)
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()


if __name__ == "__main__":  # pragma: no cover
    _main()
