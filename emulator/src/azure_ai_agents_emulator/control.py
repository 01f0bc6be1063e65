"""The emulator's own control routes, for scripting it from outside the process (tests in another language,
a shell, an app's test suite): ``/emulator/...``, with or without a project prefix.

* ``POST /emulator/faults`` ``{"match": "get_run", "status": 503, "count": 2, "body": ..., "headers": {...}}``:
  answer the next ``count`` matching requests with ``status`` (see :meth:`~.rest.RestFrontend.fail_next` for
  ``match``); ``DELETE /emulator/faults`` forgets pending faults;
* ``POST /emulator/reset``: forget every object, request and fault;
* ``GET /emulator/requests``: ``[{"method", "path", "operation"}]`` in order;
* ``GET /emulator/scenarios``: name -> description of the scenarios a run can name in its metadata.

Control requests are never failed by fault rules and need no token.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .rest import FailRule, Route, ServiceError
from .scenarios import Scenario

__all__ = ["ControlRoutes", "ROUTES"]

ROUTES: tuple[Route, ...] = (
    ("POST", r"/emulator/faults", "control", "control_add_fault"),
    ("DELETE", r"/emulator/faults", "control", "control_clear_faults"),
    ("POST", r"/emulator/reset", "control", "control_reset"),
    ("GET", r"/emulator/requests", "control", "control_requests"),
    ("GET", r"/emulator/scenarios", "control", "control_scenarios"),
)


class ControlRoutes:
    """The ``_op_control_*`` methods (a part of :class:`~.service.AgentsService`)."""

    # provided by AgentsService
    scenarios: dict[str, Scenario]
    requests: list[tuple[str, str]]
    operations: list[str]
    _fail_rules: list[FailRule]
    fail_next: Callable[..., None]
    reset: Callable[[], None]

    def _op_control_add_fault(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        match, status = body.get("match", "*"), body.get("status")
        if not isinstance(match, str) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ServiceError(400, "BadRequest", "'match' must be a string and 'status' an HTTP status code")
        count = body.get("count", 1)
        headers: Optional[dict[str, str]] = body.get("headers")
        self.fail_next(match, status, body=body.get("body"), count=int(count), headers=headers)
        return {"match": match, "status": status, "count": count}

    def _op_control_clear_faults(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        cleared = sum(1 for rule in self._fail_rules if rule.remaining > 0)
        self._fail_rules.clear()
        return {"cleared": cleared}

    def _op_control_reset(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        self.reset()
        return {"reset": True}

    def _op_control_requests(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        rows = zip(self.requests, self.operations, strict=False)
        return {"data": [{"method": m, "path": p, "operation": op} for (m, p), op in rows]}

    def _op_control_scenarios(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        return {name: scenario.description for name, scenario in self.scenarios.items()}
