"""Requests to the Nexus v1 API over urllib3's ``PoolManager``: retries, a time budget, a shared Retry-After pause.

One pool of keep-alive connections, sized for the exporter's concurrency, serves every sender thread
(urllib3 verifies TLS certificates and host names against the system trust store).

Retry policy (see also ``sender`` for how duplicates are avoided):

* 2xx: done.
* 429 and 5xx (and 408): retried with exponential backoff and jitter; a ``Retry-After`` header (seconds or an
  HTTP date) replaces the computed delay. A 429 without ``Retry-After`` whose body names a ``limit`` is the
  Free plan's *monthly* quota: retrying cannot succeed for days, so it is final.
* Any other 4xx (400, 401, 403, 404, ...): final, never retried.
* The request certainly never reached the server (connection refused, DNS failure, connect timeout, a send
  that failed before its last byte): retried, whatever the method.
* The request may have reached the server (read timeout, connection reset after sending): retried only for
  idempotent methods (GET, PATCH). For POST the caller gets :class:`NexusAmbiguous` and decides
  (the sender looks the object up before posting again, so a retry never creates a duplicate).
* A 429, or any answer with ``Retry-After``, pauses *every* request for that delay, not just the one
  that got it: the limit is the account's, and the other workers would only collect 429s of their own.
* A 2xx whose body cannot be read (a list in an unknown shape, an HTML page from a proxy): for the lookups
  that settle lost answers this is :class:`NexusUnreadable`, "unknown", never "not found".

Every wait, request timeouts included, is bounded by the caller's deadline.
The API key lives only in the request headers: it is never formatted into a message.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import random
import time
from typing import Any, Callable, Mapping, Optional
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, ProtocolError, ReadTimeoutError, SSLError

_logger = logging.getLogger(__name__)

_IDEMPOTENT = frozenset({"GET", "PATCH", "PUT", "DELETE", "HEAD"})
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504}) | frozenset(range(520, 530))
_USER_AGENT = "opentelemetry-exporter-nexus"
#: One encoder for every body (json.dumps with options builds a new encoder per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


class NexusError(Exception):
    """Base class: a request to Nexus did not succeed. Messages never contain the API key."""


class NexusRejected(NexusError):
    """The server answered with a final error (4xx other than 408/429, or an exhausted quota)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class NexusUnavailable(NexusError):
    """The request failed with retryable errors until the time budget ran out (or transport is unusable)."""


class NexusAmbiguous(NexusError):
    """A non-idempotent request may or may not have been applied by the server (e.g. read timeout)."""


class NexusUnreadable(NexusError):
    """Nexus answered a lookup with 2xx, but in a shape this client cannot read: the answer is unknown.

    The list endpoint's body shape is not published (a bare array, or an object holding the array); a body
    that is neither must not be taken for an empty list, or a trace whose creation answer was lost is posted
    twice."""


#: Keys under which a list answer may hold its items, in the order they are tried.
LIST_KEYS = ("traces", "data", "items", "results")


def read_list(data: Any, keys: tuple[str, ...] = LIST_KEYS) -> Optional[list[Any]]:
    """The items of a list answer: a bare JSON array, or an object holding the array under one of ``keys``
    (or as its only array member, e.g. ``{"rows": [...], "total": 3}``). None when the body is neither."""
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        for key in keys:
            value = data.get(key)
            if isinstance(value, list):
                return value
        arrays = [value for value in data.values() if isinstance(value, list)]
        if len(arrays) == 1:
            return arrays[0]
    return None


def describe_shape(data: Any) -> str:
    """A body's shape for a log line, without its content (keys only, bounded)."""
    if data is None:
        return "empty or not JSON"
    if isinstance(data, Mapping):
        keys = ", ".join(sorted(str(k) for k in data)[:8])
        return f"an object with keys [{keys}]"
    return f"a JSON {type(data).__name__}"


def is_loopback_host(host: Optional[str]) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoint_problem(endpoint: str) -> Optional[str]:
    """Why ``endpoint`` must not receive a Bearer key, or None when it is acceptable.

    Plain http is allowed only to loopback hosts (local emulators, sidecars): anywhere else the key would
    cross the network in clear text.
    """
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return "endpoint is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "endpoint must be an http(s) URL with a host"
    if parts.scheme == "http" and not is_loopback_host(host):
        return "refusing to send the API key over plain http to a non-loopback host; use https"
    return None


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def error_message(data: Any, raw: bytes) -> str:
    """The server's error text: ``error`` plus validation ``fields`` when present; bounded in size."""
    if isinstance(data, Mapping):
        message = str(data.get("error") or "")
        fields = data.get("fields")
        if isinstance(fields, Mapping) and fields:
            message += " (" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + ")"
        if message:
            return message[:500]
    return raw[:200].decode("utf-8", "replace") or "no body"


class NexusClient:
    """Thread-safe client for ``{endpoint}/api/v1``: one urllib3 pool of ``max_connections`` for every thread."""

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 60.0,
        max_connections: int = 32,
    ) -> None:
        problem = endpoint_problem(endpoint)
        if problem is not None:  # the exporter checks first; this guards direct use
            raise ValueError(problem)
        self._base = endpoint.rstrip("/") + "/api/v1"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        self._max_connections = max_connections
        self._http = self._pool()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.paused_until = 0.0  # monotonic; raised by 429 / Retry-After answers, honoured by every request
        self.single_attempt = False  # set for a round that only probes whether Nexus is back: no retries
        # Should a server ever echo the key back, it must not reach a log line through an error message.
        self._redact: Callable[[str], str] = lambda text: text.replace(api_key, "[REDACTED]") if api_key else text

    def _pool(self) -> urllib3.PoolManager:
        return urllib3.PoolManager(num_pools=2, maxsize=self._max_connections, retries=False)

    def __repr__(self) -> str:
        return f"NexusClient(base={self._base!r})"

    def after_fork(self) -> None:
        """In a forked child: new connections (the inherited ones belong to the parent), no pause."""
        self._http = self._pool()
        self.paused_until = 0.0

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.clear()

    # -- API --------------------------------------------------------------------------------------------
    def create_trace(self, payload: Mapping[str, Any], deadline: float) -> str:
        data = self.request("POST", "/traces", payload, deadline=deadline)
        return _id_from(data, "trace_id")

    def create_span(self, trace_id: str, payload: Mapping[str, Any], deadline: float) -> str:
        data = self.request("POST", f"/traces/{_segment(trace_id)}/spans", payload, deadline=deadline)
        return _id_from(data, "span_id")

    def list_traces(self, query: Mapping[str, Any], deadline: float) -> list[Any]:
        """The traces matching ``query``; :class:`NexusUnreadable` when the answer's shape is unknown."""
        data = self.request("GET", "/traces?" + urlencode(query), None, deadline=deadline)
        items = read_list(data)
        if items is None:
            raise NexusUnreadable(f"GET /traces answered {describe_shape(data)}, not a list of traces")
        return items

    def get_trace(self, trace_id: str, deadline: float) -> Mapping[str, Any]:
        """One trace (its fields, and ``spans`` when the answer holds them, also as ``{"trace": {...},
        "spans": [...]}``); :class:`NexusUnreadable` when the answer is not an object."""
        data = self.request("GET", f"/traces/{_segment(trace_id)}", None, deadline=deadline)
        if isinstance(data, Mapping) and isinstance(data.get("trace"), Mapping):
            spans = data.get("spans")
            data = {**data["trace"], **({"spans": spans} if spans is not None else {})}
        if not isinstance(data, Mapping):
            raise NexusUnreadable(f"GET /traces/{{id}} answered {describe_shape(data)}, not a trace")
        return data

    # -- retries ----------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any, *, deadline: float) -> Any:
        """One logical request with retries until ``deadline`` (monotonic). Returns the decoded JSON body."""
        payload = None if body is None else _ENCODER.encode(body).encode()
        attempt = 0
        while True:
            pause = self.paused_until - time.monotonic()
            if pause > 0 and not self._sleep(pause, deadline):
                raise NexusUnavailable(f"{method} {path}: paused by the server beyond the time budget")
            remaining = self._remaining(deadline)
            if remaining <= 0:
                raise NexusUnavailable(f"{method} {path}: time budget exhausted")
            attempt += 1
            delay: Optional[float] = None
            try:
                timeout = urllib3.Timeout(
                    connect=min(self.connect_timeout, remaining),
                    read=min(self.read_timeout, remaining),
                    total=remaining,
                )
                response = self._http.request(
                    method, self._base + path, body=payload, headers=self._headers, timeout=timeout, redirect=False
                )
            except ConnectTimeoutError as error:  # also refused / DNS failures: nothing reached the server
                reason = f"{method} {path}: cannot connect ({_cause(error)})"
            except (ReadTimeoutError, ProtocolError) as error:
                reason = f"{method} {path}: no answer ({_cause(error)})"
                if method not in _IDEMPOTENT:
                    raise NexusAmbiguous(reason) from None
            except SSLError as error:
                raise NexusUnavailable(f"{method} {path}: TLS error ({_cause(error)})") from None
            except (HTTPError, OSError) as error:  # anything else: not worth retrying
                raise NexusUnavailable(f"{method} {path}: {type(error).__name__}") from None
            else:
                data = _decode(response.data)
                if 200 <= response.status < 300:
                    return data
                message = self._redact(error_message(data, response.data))
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                quota = response.status == 429 and retry_after is None and isinstance(data, Mapping) and "limit" in data
                if response.status not in _RETRYABLE_STATUS or quota:
                    raise NexusRejected(response.status, message)
                reason = f"{method} {path}: HTTP {response.status} {message}"
                if retry_after is not None:
                    if retry_after > min(self.max_retry_after, self._remaining(deadline)):
                        raise NexusUnavailable(f"{reason}; Retry-After {retry_after:.0f}s exceeds the time budget")
                    delay = retry_after
                if response.status == 429 or retry_after is not None:
                    delay = self.backoff_delay(attempt) if delay is None else delay
                    self.paused_until = max(self.paused_until, time.monotonic() + delay)
            if delay is None:
                delay = self.backoff_delay(attempt)
            _logger.debug("Nexus request failed, retrying in %.2fs: %s", delay, reason)
            if self.single_attempt or not self._sleep(delay, deadline):
                raise NexusUnavailable(f"{reason}; gave up after {attempt} attempt(s)")

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": never zero, never in lockstep with other clients."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return cap / 2 + random.uniform(0, cap / 2)

    def backoff(self, attempt: int, deadline: float) -> bool:
        """Sleep one backoff step; False when the deadline would pass first."""
        return self._sleep(self.backoff_delay(attempt), deadline)

    def _remaining(self, deadline: float) -> float:
        return deadline - time.monotonic()

    def _sleep(self, seconds: float, deadline: float) -> bool:
        """Wait ``seconds``; False (at once) when the deadline would pass first: no sleeping in vain."""
        if time.monotonic() + seconds >= deadline:
            return False
        time.sleep(seconds)
        return True


def _cause(error: Exception) -> str:
    """A short reason without the URL (urllib3 messages repeat host and port)."""
    return type(getattr(error, "reason", None) or error).__name__


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _id_from(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, str) or not value:
        raise NexusUnavailable(f"response has no {key}")
    return value


def _segment(value: str) -> str:
    """A server-assigned id as one path segment (it is framed into the request line as is)."""
    return quote(value, safe="")
