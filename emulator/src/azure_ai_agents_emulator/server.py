"""``AgentsEmulator``: serves an :class:`AgentsService` over HTTP or HTTPS on 127.0.0.1 (ephemeral port).

With ``tls=True`` it presents a certificate of a local CA (:mod:`.tls`) and :meth:`AgentsEmulator.environment`
gives the variables an unmodified app needs: the endpoint, the CA bundle to trust, and a managed-identity
token endpoint for ``DefaultAzureCredential`` (:mod:`.identity`).
"""

from __future__ import annotations

import secrets
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import parse_qsl, urlsplit

from .identity import TOKEN_PATH
from .local_server import Startable
from .service import AgentsService
from .tls import LocalCertificate, ensure_certificate


class _Handler(BaseHTTPRequestHandler):
    """Passes every request to the service; SSE bodies are sent with chunked encoding."""

    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # headers and body leave in one segment (no Nagle / delayed-ACK stalls)
    server: "_Server"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)  # a client that never completes the handshake frees its thread
            self.request.do_handshake()  # here, on the request's thread, not on the accepting one
            self.request.settimeout(None)
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
        return

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        delay_for = getattr(self.server.service, "delay_for", None)  # a stand-in service may have none
        delay = delay_for(self.command, url.path) if delay_for is not None else 0.0
        if delay > 0:
            time.sleep(delay)
        response = self.server.service.handle(self.command, url.path, query, body, dict(self.headers.items()))
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if isinstance(response.body, (bytes, bytearray)):
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for chunk in response.body:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # many clients connecting at once: the default backlog of 5 costs 1-3 s SYN retries

    def __init__(
        self, address: tuple[str, int], service: AgentsService, context: Optional[ssl.SSLContext] = None
    ) -> None:
        self.service = service
        self.context = context
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.context is not None:
            connection = self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError)):
            return  # a client closed a stream early or does not trust the certificate: not worth a traceback
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Drop kept-alive client connections so that a stopped emulator really is unreachable."""
        with self.lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class AgentsEmulator(Startable):
    """An emulated Azure AI Agents service on ``http://127.0.0.1:<port>`` (``https://`` with ``tls=True``).

    Use as a context manager or call :meth:`start` / :meth:`stop`. Keyword arguments not listed are
    passed to :class:`AgentsService` (``default_scenario``, ``polls_per_state``, ``seed``, ``require_auth``...).

    :param tls: serve HTTPS with a certificate of the emulator's local CA, made in ``cert_dir`` (default: a
        folder in the user's cache, reused across runs).
    """

    def __init__(
        self,
        service: Optional[AgentsService] = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        project: str = "emulated",
        subscription_id: str = "00000000-0000-0000-0000-000000000000",
        resource_group_name: str = "rg-emulated",
        tls: bool = False,
        cert_dir: Union[str, Path, None] = None,
        **service_kwargs: Any,
    ) -> None:
        service_kwargs.setdefault("identity_header", secrets.token_hex(16))
        self.service = service if service is not None else AgentsService(**service_kwargs)
        if self.service.identity_header is None:
            self.service.identity_header = secrets.token_hex(16)
        self.host, self.port, self.project = host, port, project
        self.tls, self._cert_dir = tls, cert_dir
        self.certificate: Optional[LocalCertificate] = None
        self.legacy_names = {
            "subscription_id": subscription_id,
            "resource_group_name": resource_group_name,
            "project_name": project,
        }
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle

    def start(self) -> "AgentsEmulator":
        """Bind the port and serve from a daemon thread; returns self."""
        if self._server is None:
            context = None
            if self.tls:
                self.certificate = ensure_certificate(self._cert_dir, hosts=(self.host,))
                context = self.certificate.server_context()
            self._server = _Server((self.host, self.port), self.service, context)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="agents-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    # -- addresses

    @property
    def base_url(self) -> str:
        """``http(s)://127.0.0.1:PORT`` (the legacy ``AIProjectClient(endpoint=...)``)."""
        if self._server is None:
            raise RuntimeError("AgentsEmulator is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """The azure-ai-agents 1.x endpoint: ``http://127.0.0.1:PORT/api/projects/<project>``."""
        return f"{self.base_url}/api/projects/{self.project}"

    @property
    def legacy_kwargs(self) -> dict[str, str]:
        """Constructor arguments (besides credential) of the legacy ``AIProjectClient``."""
        return {"endpoint": self.base_url, **self.legacy_names}

    @property
    def legacy_connection_string(self) -> str:
        """``host:port;subscription;resource_group;project``.

        ``AIProjectClient.from_connection_string`` always prefixes ``https://``: use it with an
        in-process transport (which ignores scheme and host), or use :attr:`legacy_kwargs`.
        """
        names = self.legacy_names
        return (
            f"{self.host}:{self.port};{names['subscription_id']};"
            f"{names['resource_group_name']};{names['project_name']}"
        )

    @property
    def token_endpoint(self) -> str:
        """The managed-identity token endpoint (``IDENTITY_ENDPOINT``)."""
        return self.base_url + TOKEN_PATH

    def environment(self, model: str = "gpt-4o") -> dict[str, str]:
        """The environment variables that point an unmodified app at this emulator.

        ``PROJECT_ENDPOINT`` and ``MODEL_DEPLOYMENT_NAME`` (what the Azure SDK samples read), the legacy
        ``PROJECT_CONNECTION_STRING``, and with TLS the CA bundle (``SSL_CERT_FILE`` for the standard
        library and aiohttp, ``REQUESTS_CA_BUNDLE`` for requests) and the managed-identity variables
        (``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER``) that make ``DefaultAzureCredential`` get its token here.
        """
        variables = {"PROJECT_ENDPOINT": self.endpoint, "MODEL_DEPLOYMENT_NAME": model}
        if self.tls and self.certificate is not None:
            names = self.legacy_names
            bundle = str(self.certificate.bundle_file)
            variables.update(
                {
                    "PROJECT_CONNECTION_STRING": (
                        f"{self.host}:{self.port};{names['subscription_id']};"
                        f"{names['resource_group_name']};{names['project_name']}"
                    ),
                    "SSL_CERT_FILE": bundle,
                    "REQUESTS_CA_BUNDLE": bundle,
                    "IDENTITY_ENDPOINT": self.token_endpoint,
                    "IDENTITY_HEADER": str(self.service.identity_header),
                }
            )
        return variables

    # -- test helpers

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request received, in order."""
        return self.service.requests

    def reset(self) -> None:
        """Reset the service (objects, request log, fault rules, hook)."""
        self.service.reset()

    def __repr__(self) -> str:
        state = self.endpoint if self._server is not None else "stopped"
        return f"<AgentsEmulator {state}>"
