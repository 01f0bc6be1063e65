"""In-process azure-core transports: SDK clients talk to an :class:`AgentsService` without sockets.

``InProcessTransport(service)`` / ``AsyncInProcessTransport(service)`` (subclasses of azure-core's
``HttpTransport`` / ``AsyncHttpTransport``, built on first access) can be passed as
``transport=`` to any azure-core based client. Host and scheme of the request URL are ignored, so
even ``https://`` endpoints (e.g. from ``AIProjectClient.from_connection_string``) work.
azure-core is imported when a transport is created, not when this module is imported.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, Optional
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:  # pragma: no cover
    from .service import AgentsService, Response


def _multipart(request: Any) -> Optional[tuple[bytes, str]]:
    """The ``multipart/form-data`` body and its content type of a request with ``files`` (file uploads), as
    requests would send them; None for other requests."""
    files = getattr(request, "_files", None)
    if not files:
        return None
    from urllib3.filepost import encode_multipart_formdata

    fields: list[tuple[str, Any]] = [(k, str(v)) for k, v in (getattr(request, "_data", None) or {}).items()]
    for name, value in files.items() if isinstance(files, dict) else files:
        filename, content, content_type = name, value, "application/octet-stream"
        if isinstance(value, tuple):
            filename, content = value[0] or name, value[1]
            content_type = value[2] if len(value) > 2 and value[2] else content_type
        if hasattr(content, "read"):
            content = content.read()
        fields.append((name, (filename, content.encode() if isinstance(content, str) else content, content_type)))
    return encode_multipart_formdata(fields)


def _request_parts(request: Any) -> tuple[str, str, dict[str, str], Optional[bytes], dict[str, str]]:
    """(method, path, query, body, headers) of an azure-core request (rest or legacy pipeline flavour)."""
    url = urlsplit(request.url)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    headers = dict(request.headers.items())
    form = _multipart(request)
    if form is not None:
        headers["Content-Type"] = form[1]
        return request.method, url.path, query, form[0], headers
    try:
        content = request.content  # azure.core.rest.HttpRequest
    except AttributeError:
        content = getattr(request, "data", None) or getattr(request, "body", None)
    if content is None:
        body = None
    elif isinstance(content, str):
        body = content.encode("utf-8")
    elif isinstance(content, (bytes, bytearray)):
        body = bytes(content)
    elif hasattr(content, "read"):
        body = content.read()
    else:
        body = bytes(content)
    return request.method, url.path, query, body, headers


def _chunks(response: "Response") -> Iterator[bytes]:
    if isinstance(response.body, (bytes, bytearray)):
        return iter([bytes(response.body)])
    return iter(response.body)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


class _Internal:
    """Stands in for the network response object that azure-core keeps as ``internal_response``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if callable(close):
            close()


class _AsyncInternal(_Internal):
    async def close(self) -> None:  # type: ignore[override]
        _Internal.close(self)


def _response_kwargs(request: Any, response: "Response", internal: _Internal) -> dict[str, Any]:
    from azure.core.utils import case_insensitive_dict

    headers = case_insensitive_dict(response.headers)
    return {
        "request": request,
        "internal_response": internal,
        "status_code": response.status,
        "reason": _REASONS.get(response.status, "Error"),
        "content_type": headers.get("Content-Type"),
        "headers": headers,
    }


def _sync_response(request: Any, response: "Response") -> Any:
    from azure.core.rest._http_response_impl import HttpResponseImpl

    internal = _Internal(_chunks(response))

    def generator(**_: Any) -> Iterator[bytes]:
        return internal.chunks

    return HttpResponseImpl(stream_download_generator=generator, **_response_kwargs(request, response, internal))


def _async_response(request: Any, response: "Response") -> Any:
    from azure.core.rest._http_response_impl_async import AsyncHttpResponseImpl

    internal = _AsyncInternal(_chunks(response))

    async def generator(**_: Any) -> AsyncIterator[bytes]:
        for chunk in internal.chunks:
            yield chunk

    return AsyncHttpResponseImpl(stream_download_generator=generator, **_response_kwargs(request, response, internal))


def _legacy_response(request: Any, response: "Response") -> Any:
    """A legacy ``azure.core.pipeline.transport.HttpResponse`` for non-rest requests."""
    from azure.core.pipeline.transport import HttpResponse
    from azure.core.utils import case_insensitive_dict

    class _LegacyResponse(HttpResponse):
        def body(self) -> bytes:
            return b"".join(_chunks(response)) if not response.is_stream else b""

        def stream_download(self, pipeline: Any, **kwargs: Any) -> Iterator[bytes]:
            return _chunks(response)

    legacy = _LegacyResponse(request, None)
    legacy.status_code = response.status
    legacy.headers = case_insensitive_dict(response.headers)
    legacy.reason = _REASONS.get(response.status, "Error")
    legacy.content_type = legacy.headers.get("Content-Type")
    return legacy


def _is_rest(request: Any) -> bool:
    from azure.core.rest import HttpRequest

    return isinstance(request, HttpRequest)


def _build_classes() -> tuple[type, type]:
    """Create the transport classes on top of azure-core's base classes (imported lazily)."""
    from azure.core.pipeline.transport import AsyncHttpTransport, HttpTransport

    class _InProcessTransport(HttpTransport):
        """Synchronous azure-core transport calling ``service.handle`` directly."""

        def __init__(self, service: "AgentsService") -> None:
            self.service = service

        def __enter__(self) -> "_InProcessTransport":
            return self

        def __exit__(self, *args: Any) -> None:
            self.close()

        def open(self) -> None:
            """Nothing to open."""

        def close(self) -> None:
            """Nothing to close."""

        def send(self, request: Any, **kwargs: Any) -> Any:
            """Answer ``request`` from the service (after its ``latency`` / ``delays``)."""
            parts = _request_parts(request)
            delay_for = getattr(self.service, "delay_for", None)
            delay = delay_for(parts[0], parts[1]) if delay_for is not None else 0.0
            if delay > 0:
                time.sleep(delay)
            answer = self.service.handle(*parts)
            if not _is_rest(request):
                return _legacy_response(request, answer)
            response = _sync_response(request, answer)
            if not kwargs.get("stream"):
                response.read()
            return response

    class _AsyncInProcessTransport(AsyncHttpTransport):
        """Asynchronous azure-core transport calling ``service.handle`` directly."""

        def __init__(self, service: "AgentsService") -> None:
            self.service = service

        async def __aenter__(self) -> "_AsyncInProcessTransport":
            return self

        async def __aexit__(self, *args: Any) -> None:
            await self.close()

        async def open(self) -> None:
            """Nothing to open."""

        async def close(self) -> None:
            """Nothing to close."""

        async def send(self, request: Any, **kwargs: Any) -> Any:
            """Answer ``request`` from the service (after its ``latency`` / ``delays``)."""
            parts = _request_parts(request)
            delay_for = getattr(self.service, "delay_for", None)
            delay = delay_for(parts[0], parts[1]) if delay_for is not None else 0.0
            if delay > 0:
                await asyncio.sleep(delay)
            answer = self.service.handle(*parts)
            response = _async_response(request, answer)
            if not kwargs.get("stream"):
                await response.read()
            return response

    _InProcessTransport.__name__ = _InProcessTransport.__qualname__ = "InProcessTransport"
    _AsyncInProcessTransport.__name__ = _AsyncInProcessTransport.__qualname__ = "AsyncInProcessTransport"
    _InProcessTransport.__module__ = _AsyncInProcessTransport.__module__ = __name__
    return _InProcessTransport, _AsyncInProcessTransport


_CLASSES: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    """Build ``InProcessTransport`` / ``AsyncInProcessTransport`` on first use (imports azure-core)."""
    if name in ("InProcessTransport", "AsyncInProcessTransport"):
        if not _CLASSES:
            sync_cls, async_cls = _build_classes()
            _CLASSES.update(InProcessTransport=sync_cls, AsyncInProcessTransport=async_cls)
            globals().update(_CLASSES)
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["InProcessTransport", "AsyncInProcessTransport"]  # noqa: F822 - built by __getattr__ on first access
