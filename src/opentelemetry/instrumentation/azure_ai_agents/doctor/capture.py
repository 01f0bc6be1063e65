"""What exporters say while they send: their log records, and the HTTP statuses urllib3 saw.

Exporters report a failed export as ``SpanExportResult.FAILURE`` and explain why only in their logs (and
urllib3, under ``requests``, azure-core and the Nexus exporter alike, logs every response's status at DEBUG).
The capture keeps those records in memory for the report instead of letting them reach the terminal.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Optional

_URLLIB3 = "urllib3.connectionpool"
#: urllib3's response line (scheme, host, port, method, url, version, status, length).
_URLLIB3_RESPONSE = '%s://%s:%s "%s %s %s" %s %s'


@dataclass(frozen=True)
class Record:
    logger: str
    level: int
    thread: Optional[int]
    message: str
    #: for urllib3 response lines: (host, port, status)
    response: Optional[tuple[str, int, int]] = None


class LogCapture(logging.Handler):
    """A handler on the root logger for the doctor's lifetime; urllib3's responses are lifted to DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._records: list[Record] = []
        self._records_lock = threading.Lock()
        self._saved: list[tuple[logging.Logger, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == _URLLIB3 and record.levelno < logging.WARNING:
            response = _response(record)
            if response is None:
                return  # connection chatter: only responses matter
            message = f"HTTP {response[2]} from {response[0]}:{response[1]}"
        else:
            response = None
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a malformed record must not break the report
                message = str(record.msg)
        with self._records_lock:
            self._records.append(Record(record.name, record.levelno, record.thread, message, response))

    def install(self) -> "LogCapture":
        root = logging.getLogger()
        root.addHandler(self)
        urllib3 = logging.getLogger(_URLLIB3)
        self._saved = [(urllib3, urllib3.level)]
        urllib3.setLevel(logging.DEBUG)
        return self

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)
        for logger, level in self._saved:
            logger.setLevel(level)
        self._saved = []

    def records(self) -> list[Record]:
        with self._records_lock:
            return list(self._records)

    def matching(
        self, threads: set[int], prefixes: tuple[str, ...], address: Optional[tuple[str, int]]
    ) -> Iterator[Record]:
        """Records of one destination: from its threads, its exporter's loggers, or responses from its host."""
        for record in self.records():
            if record.response is not None:
                if address is not None and _same_address(record.response[:2], address):
                    yield record
                elif record.thread in threads and address is None:
                    yield record
            elif record.thread in threads or record.logger.startswith(prefixes):
                yield record


def _response(record: logging.LogRecord) -> Optional[tuple[str, int, int]]:
    args: Any = record.args
    if record.msg != _URLLIB3_RESPONSE or not isinstance(args, tuple) or len(args) != 8:
        return None
    try:
        return str(args[1]), int(args[2]), int(args[6])
    except (TypeError, ValueError):
        return None


def _same_address(seen: tuple[str, int], wanted: tuple[str, int]) -> bool:
    local = {"localhost", "127.0.0.1", "::1"}
    host_ok = seen[0] == wanted[0] or (seen[0] in local and wanted[0] in local)
    return host_ok and seen[1] == wanted[1]
