"""An emulated Agents service whose test decides when some requests are answered (no sleeps in tests).

* :meth:`GatedService.hold_next_listing`: the next run-step listing (or the next ``count``) waits until
  :meth:`GatedService.release` (:attr:`GatedService.listing_held` is set once one is waiting): listings
  deterministically in flight.
* :meth:`GatedService.meet`: the next ``parties`` requests of a kind (``"create"``: run creations, ``"list"``:
  step listings) wait for each other, so that that many requests are provably in flight at once (e.g. served
  by different prefork workers, or listed concurrently); :attr:`GatedService.broken` counts meetings that timed
  out instead (the requests were not concurrent).
* :meth:`GatedService.hold_next_agent_lookup`: the next ``GET /assistants/{id}`` waits until :meth:`release`
  (:attr:`GatedService.lookup_held` is set once it is waiting).
* :attr:`GatedService.max_listings` is the largest number of step listings seen in flight at once.

The waits happen in ``delay_for``, which the HTTP server and the in-process transports call outside the
service's lock: everything else keeps being answered meanwhile.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from azure_ai_agents_emulator import AgentsService

HOLD_LIMIT_S = 60.0  # a forgotten release never hangs a test run


class GatedService(AgentsService):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate_lock = threading.Lock()
        self._hold_listings = 0
        self._released = threading.Event()
        self.listing_held = threading.Event()
        self._hold_lookups = 0
        self.lookup_held = threading.Event()
        self._meetings: dict[str, tuple[threading.Barrier, int]] = {}
        self.broken = 0
        self._listings = 0
        self.max_listings = 0

    def hold_next_listing(self, count: int = 1) -> None:
        with self._gate_lock:
            self._hold_listings = count
            self._released.clear()
            self.listing_held.clear()

    def hold_next_agent_lookup(self) -> None:
        with self._gate_lock:
            self._hold_lookups = 1
            self._released.clear()
            self.lookup_held.clear()

    def release(self) -> None:
        self._released.set()

    def meet(self, parties: int, kind: str = "create", timeout: float = 30.0) -> None:
        with self._gate_lock:
            self._meetings[kind] = (threading.Barrier(parties, timeout=timeout), parties)

    def _meeting(self, kind: str) -> Optional[threading.Barrier]:
        with self._gate_lock:
            barrier, left = self._meetings.get(kind, (None, 0))
            if barrier is None or left <= 0:
                return None
            self._meetings[kind] = (barrier, left - 1)
            return barrier

    def _wait(self, barrier: Optional[threading.Barrier]) -> None:
        if barrier is None:
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            with self._gate_lock:
                self.broken += 1

    def delay_for(self, method: str, path: str) -> float:
        if method == "GET" and path.endswith("/steps"):
            with self._gate_lock:
                hold = self._hold_listings > 0
                self._hold_listings -= 1 if hold else 0
                self._listings += 1
                self.max_listings = max(self.max_listings, self._listings)
            try:
                if hold:
                    self.listing_held.set()
                    self._released.wait(HOLD_LIMIT_S)
                self._wait(self._meeting("list"))
            finally:
                with self._gate_lock:
                    self._listings -= 1
        elif method == "GET" and "/assistants/" in path:
            with self._gate_lock:
                hold = self._hold_lookups > 0
                self._hold_lookups -= 1 if hold else 0
            if hold:
                self.lookup_held.set()
                self._released.wait(HOLD_LIMIT_S)
        elif method == "POST" and path.endswith("/runs"):
            self._wait(self._meeting("create"))
        return super().delay_for(method, path)
