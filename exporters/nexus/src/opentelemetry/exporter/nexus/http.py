"""Keep-alive HTTP/1.1 for the Nexus client: one connection per sender worker, requests from pre-encoded bytes.

Why not urllib3's ``PoolManager.request``: per request it parses the URL, merges header dicts, checks a
connection out of a locked pool and wraps the response, which costs more than the request itself against a
fast server (locally ~3,100 requests/s through it, ~7,000 like this). Here each worker thread owns one
connection (no pool, no lock on the hot path), the constant header block is encoded once, a request is one
``sendall`` and ``http.client`` parses the answer (status line, headers, Content-Length or chunked body,
``Connection: close``).

urllib3 still *opens* every connection (``urllib3.connection``): TCP_NODELAY, IPv6 literals, and for https its
TLS defaults (certificate and hostname verification against the system trust store, TLS 1.2+, SNI).

Failures are classified for the retry policy: :class:`NotSent` (the server certainly did not get a complete
request: safe to retry any method), :class:`NoAnswer` (it may have applied it), :class:`TlsFailure`.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import quote, urlsplit


class NotSent(Exception):
    """No complete request reached the server (refused, DNS failure, connect timeout, failed send)."""


class NoAnswer(Exception):
    """The request was sent but no complete answer came back (read timeout, reset, malformed reply)."""


class TlsFailure(Exception):
    """TLS handshake or certificate verification failed: retrying will not help."""


@dataclass
class Response:
    status: int
    retry_after: Optional[str]
    data: bytes


class Transport:
    """Requests to one origin, each calling thread on its own keep-alive connection."""

    def __init__(self, endpoint: str, headers: Mapping[str, str]) -> None:
        from urllib3 import connection, exceptions  # the `nexus` extra; ImportError disables the exporter

        parts = urlsplit(endpoint)
        if not parts.hostname:
            raise ValueError("endpoint has no host")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = quote(parts.path.rstrip("/"), safe="/%:@!$&'()*+,;=")
        self._connection_class = connection.HTTPSConnection if self._https else connection.HTTPConnection
        self._connect_errors = (exceptions.NewConnectionError, exceptions.ConnectTimeoutError)
        host = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None and parts.port != (443 if self._https else 80):
            host += f":{parts.port}"
        lines = [f"Host: {host}"] + [f"{name}: {value}" for name, value in headers.items()]
        if any("\r" in line or "\n" in line for line in lines):
            raise ValueError("header values must not contain line breaks")
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()  # every open connection, for abort() and close()

    def exchange(
        self, method: str, path: str, body: Optional[bytes], connect_timeout: float, read_timeout: float
    ) -> Response:
        """Send one request on this thread's connection (opened or re-opened as needed); one attempt only."""
        sock: Optional[socket.socket] = getattr(self._local, "sock", None)
        if sock is not None and _readable(sock):  # idle yet readable: the server closed it (or sent junk)
            self._discard(sock)
            sock = None
        if sock is None:
            sock = self._connect(connect_timeout)
        request = f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("ascii") + self._head
        request += b"\r\n" if body is None else b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        try:
            sock.settimeout(read_timeout)
            sock.sendall(request)
        except OSError as error:
            # sendall() raises only before the last byte was handed to the kernel: the server cannot have
            # a complete request (an idle connection the server dropped is caught by _readable() above).
            self._discard(sock)
            raise NotSent(f"send failed ({type(error).__name__})") from None
        try:
            response = http.client.HTTPResponse(sock, method=method)
            try:
                response.begin()
                data = response.read()
            finally:
                response.close()
        except (OSError, http.client.HTTPException) as error:
            self._discard(sock)
            raise NoAnswer(type(error).__name__) from None
        if response.will_close:
            self._discard(sock)
        return Response(response.status, response.getheader("Retry-After"), data)

    def close_thread(self) -> None:
        """Close the calling thread's connection (a worker leaving)."""
        sock = getattr(self._local, "sock", None)
        if sock is not None:
            self._discard(sock)

    def close(self, after_fork: bool = False) -> None:
        """Close every connection; no thread may be using them (never started, all workers gone, or in a
        forked child, where the lock may have been copied while held and the sockets are the parent's)."""
        if after_fork:
            self._lock = threading.Lock()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)
        self._local = threading.local()

    def abort(self) -> None:
        """Cut every open connection so that threads blocked reading an answer wake up now (shutdown).

        Only the TCP stream is shut down (``socket.socket.shutdown`` also on TLS sockets, whose own method
        would reset their TLS state under the thread using it); each owner closes its socket as usual.
        """
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    # -- internals ----------------------------------------------------------------------------------------
    def _connect(self, timeout: float) -> socket.socket:
        connection = self._connection_class(self._host, self._port, timeout=timeout)
        try:
            connection.connect()
            sock = connection.sock
            if isinstance(sock, ssl.SSLSocket) and sock.selected_alpn_protocol() not in (None, "http/1.1"):
                raise TlsFailure("the server did not agree to HTTP/1.1")
        except self._connect_errors as error:
            connection.close()
            raise NotSent(f"cannot connect ({type(error).__name__})") from None
        except (ssl.SSLError, ssl.CertificateError) as error:
            connection.close()
            raise TlsFailure(f"TLS error ({type(error).__name__})") from None
        except OSError as error:  # e.g. reset or timeout during the TLS handshake: nothing was sent yet
            connection.close()
            raise NotSent(f"cannot connect ({type(error).__name__})") from None
        except TlsFailure:
            connection.close()
            raise
        with self._lock:
            self._sockets.add(sock)
        self._local.sock = sock
        return sock

    def _discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        if getattr(self._local, "sock", None) is sock:
            self._local.sock = None
        _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


if hasattr(select, "poll"):

    def _readable(sock: socket.socket) -> bool:
        try:
            poller = select.poll()  # unlike select(), works for descriptors above FD_SETSIZE
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

else:  # Windows

    def _readable(sock: socket.socket) -> bool:
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True
