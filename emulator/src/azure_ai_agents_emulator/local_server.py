"""What the local HTTP receivers (Nexus, Application Insights, OTLP/HTTP) share: lifecycle and waiting.

* :class:`Startable`: ``with x:`` calls ``x.start()`` and, on exit, ``x.stop()`` (also used by the gRPC
  receiver and :class:`~.server.AgentsEmulator`, which serve differently).
* :class:`Waitable`: a lock, a condition and a generation counter behind ``wait_for(predicate, timeout)``,
  which re-checks ``predicate`` after every recorded change instead of sleeping. Whatever records a
  request calls :meth:`Waitable._notify` while holding ``self._changed``.
* :class:`LocalHttpServer`: a ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port by default) with daemon
  request threads, served from a daemon thread; ``start``/``stop``, context manager, ``port``, ``url``
  and ``delay`` (seconds added before every response; cut short by ``stop``).
* :class:`LocalHandler`: the request handler base; a server's handler reaches it as ``self.owner``.
* :func:`decode_content`: a request body decoded per its ``Content-Encoding`` (gzip, deflate, identity).

A receiver subclasses :class:`LocalHttpServer`, sets ``handler_class`` (a :class:`LocalHandler` subclass)
and ``thread_name``, and keeps only its protocol. Only the standard library is used.
"""

from __future__ import annotations

import functools
import gzip
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, TypeVar

__all__ = ["LocalHandler", "LocalHttpServer", "Startable", "Waitable", "decode_content"]

_T = TypeVar("_T", bound="Startable")
_W = TypeVar("_W", bound="Waitable")
_S = TypeVar("_S", bound="LocalHttpServer")


class Startable:
    """A context manager over ``start()`` (which returns self) and ``stop()``."""

    def start(self: _T) -> _T:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Waitable:
    """State guarded by ``_lock``, with ``wait_for`` woken by every :meth:`_notify`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._generation = 0  # bumped after every recorded change, for wait_for

    def wait_for(self: _W, predicate: Callable[[_W], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(self)`` holds (re-checked after every request); False on timeout."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                generation = self._generation
            if predicate(self):
                return True
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait_for(functools.partial(self._changed_since, generation), remaining)

    def _changed_since(self, generation: int) -> bool:
        return self._generation != generation

    def _notify(self) -> None:
        """Wake the waiters; call with ``self._changed`` held, after changing what they look at."""
        self._generation += 1
        self._changed.notify_all()


class LocalHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler without access logs; ``owner`` is the serving :class:`LocalHttpServer`."""

    owner: Any  # set on the per-server subclass made by LocalHttpServer.start()
    protocol_version = "HTTP/1.1"  # keep-alive, like the real services
    timeout = 30  # idle keep-alive connections do not pin a thread forever
    disable_nagle_algorithm = True  # headers and body are two writes: avoid the 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr access logs
        pass

    def _read_body(self) -> bytes:
        """The ``Content-Length`` bytes of the request body (b"" without one)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, data: bytes, content_type: str, headers: Optional[dict[str, str]] = None) -> None:
        """Answer ``status`` with ``data`` (and ``Content-Length``), then ``headers``."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # clients opening dozens of connections at once are not refused (default: 5)


class LocalHttpServer(Startable, Waitable):
    """Serves ``handler_class`` on ``http://127.0.0.1:<port>`` from a daemon thread."""

    handler_class: type[LocalHandler] = LocalHandler
    thread_name = "local-http-server"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self.delay = 0.0  #: seconds added before every response (a slow server)
        self._address = (host, port)
        self._stopping = threading.Event()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self: _S) -> _S:
        """Bind the port and serve from a daemon thread; returns self."""
        handler = type(self.handler_class.__name__, (self.handler_class,), {"owner": self})
        self._httpd = _Server(self._address, handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (a pending ``delay`` ends at once)."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, f"{type(self).__name__} not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- used by handlers -----------------------------------------------------------------------------------
    def _pause(self) -> None:
        """Wait ``delay`` seconds, if set, before answering (returns early once stopped)."""
        if self.delay > 0:
            self._stopping.wait(self.delay)


def decode_content(raw: bytes, encoding: str) -> bytes:
    """``raw`` decoded per its ``Content-Encoding`` (gzip, deflate with or without zlib header, identity)."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gzip.decompress(raw)
    if encoding == "deflate":
        try:
            return zlib.decompress(raw)
        except zlib.error:
            return zlib.decompress(raw, -zlib.MAX_WBITS)
    if encoding in ("", "identity"):
        return raw
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")
