"""Send the synthetic run through each destination's standard exporter and say what happened, in bounded time.

Each destination gets its own thread: the exporter is built as the app builds it (its class, from the standard
environment; the doctor only shortens its timeouts to fit the budget and keeps Azure Monitor from storing the
run for a later retry), then ``export()`` and ``force_flush()`` are called, as a ``BatchSpanProcessor`` would.
The outcome is the exporter's own ``SpanExportResult``; the reason for a failure comes from what the exporter
logged and the HTTP statuses it received (``capture``), and from a TCP connection attempt to its endpoint made
alongside (a refused or unresolvable endpoint is reported as unreachable without waiting out retries). Whatever
has not finished at the deadline is reported as such and left behind on daemon threads.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExportResult

from .capture import LogCapture, Record
from .config import Destination, host_port
from .synthetic import SyntheticRun

DELIVERED = "delivered"
REJECTED = "rejected"  # 401 / 403: credentials or permissions
REFUSED = "refused"  # other final 4xx
THROTTLED = "throttled"  # 429
SERVER_ERROR = "server_error"  # 5xx
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
FAILED = "failed"
MISCONFIGURED = "misconfigured"

#: After the probe finds the endpoint unreachable, how long the exporter may still take to report on its own.
_GRACE_S = 1.0
_PROBE_TIMEOUT_S = 3.0
_MAX_DETAILS = 6
_LABELS = {
    "nexus": "Nexus",
    "azure_monitor_opentelemetry_exporter": "Application Insights",
    "otlp_proto_http": "The OTLP endpoint",
    "otlp_proto_grpc": "The OTLP endpoint",
}
_CREDENTIALS = {
    "nexus": "check NEXUS_API_KEY",
    "azure_monitor_opentelemetry_exporter": (
        "check the InstrumentationKey in APPLICATIONINSIGHTS_CONNECTION_STRING (and Entra ID authentication, if the "
        "resource requires it)"
    ),
    "otlp_proto_http": "check the credentials in OTEL_EXPORTER_OTLP_[TRACES_]HEADERS",
    "otlp_proto_grpc": "check the credentials in OTEL_EXPORTER_OTLP_[TRACES_]HEADERS",
}
_GRPC_CODE = re.compile(r"StatusCode\.([A-Z_]+)")
_HTTP_IN_MESSAGE = re.compile(r"(?:\bcode:|\bHTTP|\bstatus)\s*'?(\d{3})\b")
_TIMED_OUT = re.compile(r"time(?:d)? ?out|timeout|time budget", re.IGNORECASE)
_NEXUS_REJECTION = re.compile(r"HTTP (\d{3}) (.+?)(?: \(check [^)]*\))?; not retried")


@dataclass
class Outcome:
    """What happened to the synthetic run at one destination."""

    destination: str
    entry_point: str
    endpoint: Optional[str]
    status: str
    reason: str
    http_status: Optional[int] = None
    elapsed_s: Optional[float] = None
    details: list[str] = field(default_factory=list)
    find: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == DELIVERED

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "entry_point": self.entry_point,
            "endpoint": self.endpoint,
            "ok": self.ok,
            "status": self.status,
            "reason": self.reason,
            "http_status": self.http_status,
            "elapsed_s": None if self.elapsed_s is None else round(self.elapsed_s, 3),
            "details": self.details,
            "find": self.find,
        }


class _Attempt:
    """One destination: the export on one thread, the reachability probe on another."""

    def __init__(
        self, destination: Destination, run: SyntheticRun, deadline: float, changed: threading.Condition
    ) -> None:
        self.destination = destination
        self.run = run
        self.deadline = deadline
        self.changed = changed
        self.address = host_port(destination.endpoint)
        self.proxied = _proxied(destination.endpoint)
        self.exporter: Any = None
        self.build_error: Optional[BaseException] = None
        self.export_error: Optional[BaseException] = None
        self.result: Optional[SpanExportResult] = None
        self.flushed: Optional[bool] = None
        self.done = False
        self.started = time.monotonic()
        self.elapsed: Optional[float] = None
        self.probe: Optional[tuple[str, str]] = None  # (kind, text): ok, refused, dns, timeout, unreachable
        self.grace_until: Optional[float] = None
        self.threads: set[int] = set()

    # -- threads ----------------------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._export, "export"), (self._probe, "probe")):
            thread = threading.Thread(target=target, name=f"doctor-{name}-{self.destination.name}", daemon=True)
            thread.start()
            if thread.ident is not None:
                self.threads.add(thread.ident)

    def _export(self) -> None:
        try:
            exporter = self.destination.exporter_class(**self._kwargs())
        except BaseException as error:  # noqa: BLE001 - reported, not raised
            self._finish(build_error=error)
            return
        self.exporter = exporter
        if getattr(exporter, "enabled", True) is False:  # the Nexus exporter without a usable key / endpoint
            self._finish()
            return
        try:
            result = exporter.export(self.run.spans)
            flushed = None
            if result is SpanExportResult.SUCCESS:
                # The SDK's base force_flush() returns None (nothing buffered): only False is a failure.
                flushed = exporter.force_flush(max(1, int((self.deadline - time.monotonic()) * 1000))) is not False
        except BaseException as error:  # noqa: BLE001
            self._finish(export_error=error)
            return
        self._finish(result=result, flushed=flushed)

    def _finish(self, **outcome: Any) -> None:
        with self.changed:
            for key, value in outcome.items():
                setattr(self, key, value)
            self.elapsed = time.monotonic() - self.started
            self.done = True
            self.changed.notify_all()

    def _kwargs(self) -> dict[str, Any]:
        """The app's exporter, with timeouts that fit the doctor's budget (and no retry storage)."""
        budget = max(1.0, self.deadline - time.monotonic() - 0.25)
        entry_point = self.destination.entry_point
        if entry_point == "azure_monitor_opentelemetry_exporter":
            return {"tracer_provider": self.run.provider, "disable_offline_storage": True, "timeout": budget}
        if entry_point in ("otlp_proto_http", "otlp_proto_grpc"):
            return {"timeout": budget}
        if entry_point == "nexus":
            return {"export_timeout": budget, "shutdown_timeout": 1.0}
        return {}

    def _probe(self) -> None:
        if self.address is None:
            return
        timeout = max(0.1, min(_PROBE_TIMEOUT_S, self.deadline - time.monotonic()))
        try:
            socket.create_connection(self.address, timeout=timeout).close()
            probe = ("ok", f"TCP connection to {_where(self.address)} works")
        except socket.gaierror as error:
            probe = ("dns", f"the host name {self.address[0]!r} does not resolve ({error.strerror or error})")
        except ConnectionRefusedError:
            probe = ("refused", f"nothing listens on {_where(self.address)} (connection refused)")
        except socket.timeout:
            probe = ("timeout", f"connecting to {_where(self.address)} timed out after {timeout:.1f} s")
        except OSError as error:
            probe = ("unreachable", f"{_where(self.address)} is unreachable ({error.strerror or error})")
        with self.changed:
            self.probe = probe
            if probe[0] in ("dns", "refused", "unreachable") and not self.proxied:
                self.grace_until = time.monotonic() + _GRACE_S
            self.changed.notify_all()

    # -- verdict ----------------------------------------------------------------------------------------
    def decided(self, now: float) -> bool:
        return self.done or (self.grace_until is not None and now >= self.grace_until)

    def outcome(self, capture: LogCapture) -> Outcome:
        destination = self.destination
        prefix = ".".join(getattr(destination.exporter_class, "__module__", "").split(".")[:3])
        records = list(capture.matching(self.threads, (prefix,) if prefix else (), self.address))
        status, reason, http = self._classify(records)
        elapsed = self.elapsed if self.done else time.monotonic() - self.started
        return Outcome(
            destination=destination.name,
            entry_point=destination.entry_point,
            endpoint=destination.endpoint,
            status=status,
            reason=reason,
            http_status=http,
            elapsed_s=elapsed,
            details=_details(records),
        )

    def _classify(self, records: Sequence[Record]) -> tuple[str, str, Optional[int]]:
        entry_point = self.destination.entry_point
        label = _LABELS.get(entry_point, f"The {self.destination.name!r} destination")
        if self.build_error is not None:
            return MISCONFIGURED, f"the exporter could not be built: {_text(self.build_error)}", None
        if self.done and self.exporter is not None and getattr(self.exporter, "enabled", True) is False:
            warnings = [r.message for r in records if r.level >= 30]
            return MISCONFIGURED, (warnings[-1] if warnings else "the exporter is disabled"), None
        if self.done and self.result is SpanExportResult.SUCCESS:
            note = "" if self.flushed is not False else " (force_flush() did not confirm)"
            return DELIVERED, f"delivered in {self.elapsed or 0:.2f} s{note}", None
        http = _http_status(records, self.exporter)
        grpc = _grpc_code(records)
        server = _server_message(records)
        said = f" {server}" if server else ""
        if http in (401, 403) or grpc in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            code = f"HTTP {http}" if http else f"gRPC {grpc}"
            what = "the API key" if entry_point == "nexus" else "the credentials"
            verb = "rejected" if http == 401 or grpc == "UNAUTHENTICATED" else "refused access with"
            hint = _CREDENTIALS.get(entry_point, "check its credentials")
            if entry_point == "nexus" and http == 403 and server and "agent" in server.lower():
                what, verb = "the run's agent", "refused"
                hint = "the plan allows one agent: pin it with NEXUS_AGENT_ID (the doctor: --agent-name <that agent>)"
            return REJECTED, f"{label} {verb} {what} ({code}{said}): {hint}", http
        if http == 429 or grpc == "RESOURCE_EXHAUSTED":
            return THROTTLED, f"{label} is throttling (HTTP 429{said}): a quota or rate limit is reached", http
        if http is not None and 400 <= http < 500:
            return REFUSED, f"{label} refused the run (HTTP {http}{said})", http
        if http is not None and http >= 500:
            pending = "" if self.done else "; still retrying at the time limit"
            return SERVER_ERROR, f"{label} answered with a server error (HTTP {http}{said}){pending}", http
        if self.probe is not None and self.probe[0] != "ok":
            return UNREACHABLE, f"{label} is unreachable: {self.probe[1]}", None
        if grpc == "UNAVAILABLE" and self.done:
            return UNREACHABLE, f"{label} is unavailable (gRPC {grpc})", None
        if not self.done or grpc == "DEADLINE_EXCEEDED" or self._timed_out(records):
            connected = f"; {self.probe[1]}" if self.probe else ""
            waited = self.elapsed if self.done else time.monotonic() - self.started
            return TIMEOUT, f"no answer within the time limit (waited {waited:.1f} s){connected}", None
        if self.export_error is not None:
            return FAILED, f"the exporter raised {_text(self.export_error)}", None
        return FAILED, "the exporter reported a failure (see details)", None

    def _budget(self) -> float:
        return self.deadline - self.started

    def _timed_out(self, records: Sequence[Record]) -> bool:
        """The exporter gave up on its own because its time ran out (it used the budget, or says so)."""
        if self.elapsed is not None and self.elapsed >= 0.8 * self._budget():
            return True
        return any(_TIMED_OUT.search(r.message) for r in records if r.level >= 30)


def deliver(
    destinations: Sequence[Destination], run: SyntheticRun, timeout_s: float, capture: LogCapture
) -> list[Outcome]:
    """Sends ``run`` to every destination concurrently; returns within about ``timeout_s`` (plus 1 s at most)."""
    changed = threading.Condition()
    deadline = time.monotonic() + timeout_s
    attempts = [_Attempt(d, run, deadline, changed) for d in destinations]
    for attempt in attempts:
        attempt.start()
    with changed:
        while True:
            now = time.monotonic()
            if all(a.decided(now) for a in attempts) or now >= deadline:
                break
            wakes = [a.grace_until for a in attempts if a.grace_until is not None and not a.done]
            changed.wait(max(0.01, min([deadline, *wakes]) - now))
        outcomes = [a.outcome(capture) for a in attempts]  # a consistent snapshot: workers wait for the lock
    for attempt in attempts:
        if attempt.exporter is not None:
            # Ends retry loops still running (and frees connections); never waited for.
            threading.Thread(target=_quietly_shutdown, args=(attempt.exporter,), daemon=True).start()
    return outcomes


# ---- helpers ---------------------------------------------------------------------------------------------
def _http_status(records: Sequence[Record], exporter: Any) -> Optional[int]:
    """The most telling HTTP error status seen: a credentials refusal first, else the last error."""
    seen = [r.response[2] for r in records if r.response is not None and r.response[2] >= 400]
    if not seen:
        for record in records:
            match = _HTTP_IN_MESSAGE.search(record.message) if record.level >= 30 else None
            if match and int(match.group(1)) >= 400:
                seen.append(int(match.group(1)))
    stats = getattr(exporter, "stats", None)  # the Nexus exporter counts rejections by status
    if isinstance(stats, dict):
        seen += [int(k.rsplit("_", 1)[1]) for k, v in stats.items() if k.startswith("spans_rejected_http_") and v]
    for wanted in (401, 403):
        if wanted in seen:
            return wanted
    return seen[-1] if seen else None


def _grpc_code(records: Sequence[Record]) -> Optional[str]:
    codes = [m.group(1) for r in records if r.level >= 30 for m in [_GRPC_CODE.search(r.message)] if m]
    return codes[-1] if codes else None


def _server_message(records: Sequence[Record]) -> Optional[str]:
    for record in records:
        match = _NEXUS_REJECTION.search(record.message)
        if match:
            return match.group(2).strip()
    return None


def _details(records: Sequence[Record]) -> list[str]:
    lines: list[str] = []
    for record in records:
        if record.level < 30 and record.response is None:
            continue
        text = record.message if len(record.message) <= 300 else record.message[:297] + "..."
        if text not in lines:
            lines.append(text)
    return lines[-_MAX_DETAILS:]


def _proxied(endpoint: Optional[str]) -> bool:
    """Whether an HTTP proxy from the environment applies to ``endpoint`` (then a direct probe proves nothing)."""
    if not endpoint:
        return False
    parts = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all") or proxies.get("grpc")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _where(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _quietly_shutdown(exporter: Any) -> None:
    try:
        exporter.shutdown()
    except Exception:  # noqa: BLE001
        pass
