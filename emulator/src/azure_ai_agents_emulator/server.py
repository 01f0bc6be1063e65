"""``AgentsEmulator``: serves an :class:`AgentsService` over HTTP on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qsl, urlsplit

from .local_server import Startable
from .service import AgentsService


class _Handler(BaseHTTPRequestHandler):
    """Passes every request to the service; SSE bodies are sent with chunked encoding."""

    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # headers and body leave in one segment (no Nagle / delayed-ACK stalls)
    server: "_Server"

    def setup(self) -> None:
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
        response = self.server.service.handle(self.command, url.path, query, body)
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

    def __init__(self, address: tuple[str, int], service: AgentsService) -> None:
        self.service = service
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # a client closed a stream early (apps may): not worth a traceback
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
    """An emulated Azure AI Agents service on ``http://127.0.0.1:<port>``.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Keyword arguments not listed are
    passed to :class:`AgentsService` (``default_scenario``, ``polls_per_state``, ``seed``).
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
        **service_kwargs: Any,
    ) -> None:
        self.service = service if service is not None else AgentsService(**service_kwargs)
        self.host, self.port, self.project = host, port, project
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
            self._server = _Server((self.host, self.port), self.service)
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
        """``http://127.0.0.1:PORT`` (the legacy ``AIProjectClient(endpoint=...)``)."""
        if self._server is None:
            raise RuntimeError("AgentsEmulator is not started")
        return f"http://{self.host}:{self.port}"

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
