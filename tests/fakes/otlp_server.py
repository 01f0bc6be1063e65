"""Local OTLP receivers (HTTP/protobuf and gRPC) for tests and demos: a collector stand-in on 127.0.0.1.

:class:`OtlpHttpReceiver` serves ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` with
``application/x-protobuf`` bodies (optionally gzip/deflate-encoded), exactly what
``opentelemetry-exporter-otlp-proto-http`` sends; :class:`OtlpGrpcReceiver` implements the OTLP gRPC trace,
metrics and logs services with ``grpcio`` (installed with ``opentelemetry-exporter-otlp-proto-grpc``). Both
decode the requests with ``opentelemetry-proto`` and keep the spans as plain :class:`ReceivedSpan` values::

    with OtlpHttpReceiver() as receiver:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint   # http://127.0.0.1:PORT
        ...
        receiver.wait_for_spans(lambda spans: any(s.name.startswith("invoke_agent") for s in spans))

Test hooks: :meth:`fail_next` (an HTTP status, or a gRPC status code name such as ``"UNAVAILABLE"``) and
:meth:`wait_for`, which re-checks a condition after every request instead of sleeping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from azure_ai_agents_emulator.local_server import LocalHandler, LocalHttpServer, Startable, Waitable, decode_content

__all__ = ["OtlpHttpReceiver", "OtlpGrpcReceiver", "ReceivedSpan", "OtlpRequest", "any_value"]

TRACES, METRICS, LOGS = "traces", "metrics", "logs"
_HTTP_PATHS = {"/v1/traces": TRACES, "/v1/metrics": METRICS, "/v1/logs": LOGS}
_MESSAGES: dict[str, tuple[Any, Any]] = {
    TRACES: (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    METRICS: (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    LOGS: (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived over OTLP, with ids as lowercase hex and attribute values as Python values."""

    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    name: str
    kind: str  # INTERNAL | SERVER | CLIENT | PRODUCER | CONSUMER | UNSPECIFIED
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    events: tuple[tuple[str, dict[str, Any]], ...]
    status_code: str  # UNSET | OK | ERROR
    status_message: str
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    transport: str  # "http" | "grpc"


@dataclass
class OtlpRequest:
    """One export request. ``received_at`` is ``time.monotonic()`` on arrival."""

    signal: str  # traces | metrics | logs | "" (unknown path)
    transport: str
    received_at: float
    content_encoding: str = ""
    items: int = 0  # spans, metric data points' metrics or log records
    status: Union[int, str] = 0
    injected: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # lowercase names (HTTP headers / gRPC metadata)


@dataclass
class _Fault:
    status: Union[int, str]
    remaining: int
    signal: Optional[str]


def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (arrays become tuples, kvlists dicts)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which)


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items}


def spans_of(request: trace_service_pb2.ExportTraceServiceRequest, transport: str) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=trace_pb2.Span.SpanKind.Name(span.kind).replace("SPAN_KIND_", ""),
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        events=tuple((e.name, _attributes(e.attributes)) for e in span.events),
                        status_code=trace_pb2.Status.StatusCode.Name(span.status.code).replace("STATUS_CODE_", ""),
                        status_message=span.status.message,
                        resource=resource,
                        scope_name=scope.name,
                        scope_version=scope.version,
                        transport=transport,
                    )
                )
    return spans


def _metric_names(request: metrics_service_pb2.ExportMetricsServiceRequest) -> list[str]:
    return [m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


def _log_count(request: logs_service_pb2.ExportLogsServiceRequest) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


class _OtlpStore(Waitable):
    """What a receiver got, and the fault machinery shared by both transports (``wait_for``: :class:`Waitable`)."""

    transport = ""

    def __init__(self) -> None:
        super().__init__()
        self._faults: list[_Fault] = []
        self._requests: list[OtlpRequest] = []
        self._spans: list[ReceivedSpan] = []
        self._metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._log_requests: list[logs_service_pb2.ExportLogsServiceRequest] = []

    # -- test hooks -----------------------------------------------------------------------------------------
    def fail_next(self, status: Union[int, str], count: int = 1, signal: Optional[str] = TRACES) -> None:
        """Answer the next ``count`` export requests of ``signal`` (None: any) with ``status``; nothing stored.

        HTTP: an HTTP status (0 drops the connection). gRPC: a ``grpc.StatusCode`` name, e.g. ``"UNAVAILABLE"``.
        """
        with self._lock:
            self._faults.append(_Fault(status, count, signal))

    def clear(self) -> None:
        with self._changed:
            self._faults.clear()
            self._requests.clear()
            self._spans.clear()
            self._metric_requests.clear()
            self._log_requests.clear()
            self._notify()

    # -- what was received ----------------------------------------------------------------------------------
    @property
    def requests(self) -> list[OtlpRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def traces(self) -> dict[str, list[ReceivedSpan]]:
        """Spans grouped by trace id (arrival order)."""
        grouped: dict[str, list[ReceivedSpan]] = {}
        for span in self.spans:
            grouped.setdefault(span.trace_id, []).append(span)
        return grouped

    def run_spans(self) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]

    @property
    def metric_names(self) -> set[str]:
        with self._lock:
            return {name for request in self._metric_requests for name in _metric_names(request)}

    @property
    def log_requests(self) -> list[logs_service_pb2.ExportLogsServiceRequest]:
        with self._lock:
            return list(self._log_requests)

    def wait_for_spans(self, condition: Union[int, Callable[[list[ReceivedSpan]], bool]], timeout: float = 5.0) -> bool:
        """Wait for ``n`` spans, or until ``condition(spans)`` holds."""
        if isinstance(condition, int):
            n = condition
            return self.wait_for(lambda r: len(r.spans) >= n, timeout)
        check = condition
        return self.wait_for(lambda r: check(r.spans), timeout)

    def wait_for_requests(self, n: int, timeout: float = 5.0, signal: Optional[str] = None) -> bool:
        return self.wait_for(lambda r: sum(1 for q in r.requests if signal in (None, q.signal)) >= n, timeout)

    # -- used by the transports -----------------------------------------------------------------------------
    def _take_fault(self, signal: str) -> Optional[_Fault]:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.signal in (None, signal):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                    return fault
        return None

    def _store(self, record: OtlpRequest, signal: str = "", message: Any = None) -> None:
        with self._changed:
            if signal == TRACES and message is not None:
                spans = spans_of(message, self.transport)
                record.items = len(spans)
                self._spans.extend(spans)
            elif signal == METRICS and message is not None:
                record.items = len(_metric_names(message))
                self._metric_requests.append(message)
            elif signal == LOGS and message is not None:
                record.items = _log_count(message)
                self._log_requests.append(message)
            self._requests.append(record)
            self._notify()


# ---- OTLP/HTTP ---------------------------------------------------------------------------------------------
class _HttpHandler(LocalHandler):
    owner: OtlpHttpReceiver

    def _reply(self, status: int, data: bytes, content_type: str = "application/x-protobuf") -> None:
        self._send(status, data, content_type)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        owner = self.owner
        raw = self._read_body()
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        signal = _HTTP_PATHS.get(urlsplit(self.path).path.rstrip("/"), "")
        record = OtlpRequest(signal, "http", time.monotonic(), encoding)
        record.headers = {name.lower(): value for name, value in self.headers.items()}
        if not signal:
            record.status = 404
            owner._store(record)
            self._reply(404, b"not found", "text/plain")
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-protobuf":
            record.status = 415
            owner._store(record)
            self._reply(415, b"only application/x-protobuf is supported", "text/plain")
            return
        request_type, response_type = _MESSAGES[signal]
        try:
            message = request_type.FromString(decode_content(raw, encoding))
        except Exception as exc:  # noqa: BLE001 - any decoding problem is the client's
            record.status = 400
            owner._store(record)
            self._reply(400, f"cannot decode the request: {exc}".encode(), "text/plain")
            return
        owner._pause()
        fault = owner._take_fault(signal)
        if fault is not None:
            record.status, record.injected = fault.status, True
            owner._store(record)
            if fault.status == 0:
                self.close_connection = True
                return
            self._reply(int(fault.status), b"injected fault", "text/plain")
            return
        record.status = 200
        owner._store(record, signal, message)
        self._reply(200, response_type().SerializeToString())


class OtlpHttpReceiver(LocalHttpServer, _OtlpStore):
    """OTLP/HTTP (protobuf) on 127.0.0.1, ephemeral port, served by a daemon thread."""

    handler_class = _HttpHandler
    thread_name = "otlp-http-receiver"
    transport = "http"

    @property
    def endpoint(self) -> str:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter appends ``/v1/traces``)."""
        return self.url

    @property
    def traces_endpoint(self) -> str:
        """Full URL for ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is)."""
        return self.endpoint + "/v1/traces"


# ---- OTLP/gRPC ---------------------------------------------------------------------------------------------
class OtlpGrpcReceiver(_OtlpStore, Startable):
    """OTLP/gRPC (insecure) on 127.0.0.1, ephemeral port; needs ``grpcio``."""

    transport = "grpc"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, max_workers: int = 4) -> None:
        super().__init__()
        self._address = f"{host}:{port}"
        self._max_workers = max_workers
        self._server: Any = None
        self._port = 0

    def start(self) -> "OtlpGrpcReceiver":
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        store = self

        def export(signal: str) -> Callable[[Any, Any], Any]:
            response_type = _MESSAGES[signal][1]

            def handler(request: Any, context: Any) -> Any:
                record = OtlpRequest(signal, "grpc", time.monotonic())
                record.headers = {str(k).lower(): str(v) for k, v in (context.invocation_metadata() or ())}
                fault = store._take_fault(signal)
                if fault is not None:
                    record.status, record.injected = fault.status, True
                    store._store(record)
                    status = fault.status
                    code = status if isinstance(status, grpc.StatusCode) else grpc.StatusCode[str(status)]
                    context.abort(code, "injected fault")
                record.status = "OK"
                store._store(record, signal, request)
                return response_type()

            return handler

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            Export = staticmethod(export(TRACES))

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            Export = staticmethod(export(METRICS))

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            Export = staticmethod(export(LOGS))

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="otlp-grpc"))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
        self._port = server.add_insecure_port(self._address)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (http scheme means insecure)."""
        return f"http://127.0.0.1:{self.port}"


def _main(argv: Optional[list[str]] = None) -> None:
    """``python -m ...emulator.otlp_server [--http-port N] [--grpc-port M]``: print received spans."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, default=4318)
    parser.add_argument("--grpc-port", type=int, default=-1, help="also serve gRPC on this port (4317); -1: off")
    args = parser.parse_args(argv)
    receivers: list[_OtlpStore] = [OtlpHttpReceiver(port=args.http_port).start()]
    if args.grpc_port >= 0:
        receivers.append(OtlpGrpcReceiver(port=args.grpc_port).start())
    for receiver in receivers:
        print(f"OTLP/{receiver.transport} receiver on {receiver.endpoint}", flush=True)  # type: ignore[attr-defined]
    seen = [0] * len(receivers)
    try:
        while True:
            for index, receiver in enumerate(receivers):
                receiver.wait_for_spans(seen[index] + 1, timeout=0.5)
                spans = receiver.spans
                for span in spans[seen[index]:]:
                    print(f"{span.transport} trace {span.trace_id[:8]} {span.kind:<8} {span.name}", flush=True)
                seen[index] = len(spans)
    except KeyboardInterrupt:
        pass
    finally:
        for receiver in receivers:
            receiver.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":  # pragma: no cover
    _main()
