"""The check in front of every route: the sandbox's access key, or a bearer token it issued.

A route built with ``key=True`` wants the per-run access key (``_access``); one built with
``auth=True`` a bearer token the sandbox's authority signed for one of ``Sandbox.arm_audiences``,
whose principal still exists. A missing or rejected token is answered 401 with Resource Manager's
challenge (``WWW-Authenticate: Bearer authorization_uri=...``), from which a client learns the
tenant to sign in to. The request then carries who it acts for, for the handlers and the log.
"""

from __future__ import annotations

from ._host import Host
from ._http import HttpError, Request, Route
from ._tokens import TokenRejected

__all__ = ["Gate"]


class Gate:
    """Authenticates each request of one sandbox before its handler runs (``SandboxHTTPServer``'s hook)."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def __call__(self, req: Request, route: Route) -> None:
        host = self.host
        if route.key:
            host.access.require_key(req)
        if not route.auth:
            return
        header = req.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise self._unauthorized(
                "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        try:
            claims = host.authority.verify(token.strip(), audiences=host.arm_audiences)
        except TokenRejected as exc:
            raise self._unauthorized(exc.code, exc.message) from exc
        identity = host.directory.identities.get(claims.object_id)
        if identity is None:
            raise self._unauthorized(
                "InvalidAuthenticationToken", "The principal of the access token no longer exists."
            )
        req.claims = claims
        req.identity, req.identity_name = identity.object_id, identity.name
        req.token_id, req.tenant = claims.token_id, claims.tenant_id

    def _unauthorized(self, code: str, message: str) -> HttpError:
        return HttpError(
            401,
            {"error": {"code": code, "message": message}},
            {
                "WWW-Authenticate": f'Bearer authorization_uri="{self.host.authority_url}/{self.host.tenant_id}", '
                f'error="invalid_token", error_description="{code}"'
            },
        )
