"""A managed-identity token endpoint, so that an unmodified app's ``DefaultAzureCredential`` gets a token.

azure-identity's ``ManagedIdentityCredential`` (the third link of ``DefaultAzureCredential``'s chain) uses the
App Service flow when ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` are set: ``GET {IDENTITY_ENDPOINT}
?api-version=2019-08-01&resource=...`` with the header ``X-IDENTITY-HEADER: {IDENTITY_HEADER}``, answered with
``{"access_token", "expires_on", "resource", "token_type"}``. The emulator serves that at :data:`TOKEN_PATH`.

With ``require_auth`` on, every Agents request must carry ``Authorization: Bearer <token>`` with a token
issued here (or the fixed token of the emulator's client helpers); others get 401 like the service.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Optional

from .rest import Route, ServiceError

__all__ = ["ManagedIdentityEndpoint", "ROUTES", "TOKEN_PATH", "TOKEN_LIFETIME_SECONDS"]

TOKEN_PATH = "/msi/token"
TOKEN_LIFETIME_SECONDS = 24 * 3600
ROUTES: tuple[Route, ...] = (("GET", TOKEN_PATH, "token", "identity_token"),)
_OPEN_KINDS = frozenset({"token", "control"})


class ManagedIdentityEndpoint:
    """The token endpoint and the bearer-token check (a part of :class:`~.service.AgentsService`)."""

    #: The secret a token request must send as ``X-IDENTITY-HEADER`` (None: any value).
    identity_header: Optional[str] = None
    #: Reject Agents requests without a token issued here (or the client helpers' fixed token).
    require_auth: bool = False
    # provided by RestFrontend
    request_headers: dict[str, str]

    def _init_identity(self, identity_header: Optional[str], require_auth: bool) -> None:
        from .clients import TOKEN

        self.identity_header, self.require_auth = identity_header, require_auth
        self._tokens: set[str] = {TOKEN}  # kept across reset(): apps hold their tokens for hours

    def _op_identity_token(self, params: dict, query: dict, body: dict) -> dict[str, Any]:
        sent = self.request_headers.get("x-identity-header")
        if not sent or (self.identity_header is not None and not secrets.compare_digest(sent, self.identity_header)):
            raise ServiceError(401, "Unauthorized", "Missing or wrong X-IDENTITY-HEADER")
        resource = query.get("resource")
        if not resource:
            raise ServiceError(400, "BadRequest", "The 'resource' query parameter is required")
        token = "emulator-mi-" + secrets.token_urlsafe(24)
        self._tokens.add(token)
        return {
            "access_token": token,
            "expires_on": str(int(time.time()) + TOKEN_LIFETIME_SECONDS),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": query.get("client_id") or "00000000-0000-0000-0000-00000000e3a1",
        }

    def _authorize(self, kind: str) -> None:
        """Raise 401 when auth is required and the request has no token issued here."""
        if not self.require_auth or kind in _OPEN_KINDS:
            return
        scheme, _, token = self.request_headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self._tokens:
            raise ServiceError(401, "Unauthorized", "Access token is missing, invalid or not issued by this emulator")
