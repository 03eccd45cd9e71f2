"""What every Entra ID endpoint of the sandbox shares: error bodies, tenant names, scopes, issuing a token.

Errors are Entra ID's OAuth 2.0 bodies (``error``, ``error_description`` starting with the
``AADSTS`` code, ``error_codes``, ``trace_id``, ``correlation_id``), which MSAL reads. A tenant in
a path is an id, a verified domain, or one of ``MULTI_TENANT``; a scope names its resource by
``<audience>/.default`` or ``<audience>/<permission>``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ._host import Host
from ._http import HttpError, Request
from ._model import Directory, Identity

__all__ = ["MULTI_TENANT", "RESERVED_SCOPES", "aad_error", "issue_access_token", "resolve_tenant", "resource_for"]

#: Tenant path segments that mean "the user's own tenant" rather than one tenant.
MULTI_TENANT = ("organizations", "common", "consumers")
RESERVED_SCOPES = {"openid", "profile", "offline_access"}


def aad_error(error: str, code: int, description: str, status: int = 400) -> HttpError:
    """An Entra ID error body, ``AADSTS<code>`` first in its description."""
    return HttpError(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
    )


def resolve_tenant(directory: Directory, name: str) -> str:
    """The tenant named in a path: its id, or the lowercase ``MULTI_TENANT`` name (AADSTS90002 if unknown)."""
    if name.lower() in MULTI_TENANT:
        return name.lower()
    tenant = directory.tenant_by_name(name)
    if tenant is None:
        raise aad_error(
            "invalid_request",
            90002,
            f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud.",
        )
    return tenant.tenant_id


def resource_for(scope: str) -> tuple[str, str]:
    """``(audience, echoed scope)`` for a requested scope string."""
    scopes = [s for s in scope.split() if s.lower() not in RESERVED_SCOPES]
    if not scopes:
        raise aad_error("invalid_scope", 70011, "The provided value for scope is not valid.")
    first = scopes[0]
    audience = first[: -len("/.default")] if first.endswith("/.default") else first.rsplit("/", 1)[0]
    if not audience.endswith("/"):
        audience += "/"
    return audience, " ".join(scopes)


def issue_access_token(
    host: Host, req: Request, identity: Identity, tenant_id: str, audience: str, extra: dict[str, Any]
) -> tuple[str, int]:
    """A signed access token for ``identity`` (registered as a secret), and its lifetime in seconds.

    The request log names who the token went to.
    """
    lifetime = host.token_lifetime
    token, claims = host.authority.access_token(
        tenant_id=tenant_id,
        object_id=identity.object_id,
        audience=audience,
        lifetime=lifetime,
        extra={"name": identity.display_name, **extra},
    )
    host.directory.remember_secret(token)
    req.identity, req.identity_name = identity.object_id, identity.name
    req.token_id, req.tenant = claims.token_id, tenant_id
    return token, max(1, int(lifetime))
