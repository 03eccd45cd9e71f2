"""Token claims: who a token was issued to, read without verification, for display only.

Claims come from the network: every value shown is made printable and short first. Nothing here
logs or returns a token.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["Identity", "describe_token_identity", "printable", "unverified_claims"]


@dataclass(frozen=True)
class Identity:
    """Who is signed in, for display: read from the token's claims, which are not verified."""

    kind: str
    name: str
    object_id: str | None
    tenant_id: str

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


def describe_token_identity(token: str) -> Identity:
    """Who a token was issued to, from its claims, decoded without verification (display only).

    Never logs or returns the token. An opaque (non-JWT) token gives an "unknown" identity.
    """
    claims = unverified_claims(token)
    tenant = printable(claims.get("tid")) or ""
    object_id = printable(claims.get("oid")) or None
    user = next(
        (v for k in ("upn", "preferred_username", "unique_name", "email") if (v := printable(claims.get(k)))), ""
    )
    app = next((v for k in ("app_displayname", "name", "appid", "azp") if (v := printable(claims.get(k)))), "")
    if mirid := printable(claims.get("xms_mirid")):
        return Identity("managed identity", mirid.rstrip("/").rsplit("/", 1)[-1] or app, object_id, tenant)
    if user and claims.get("idtyp") != "app":
        return Identity("user", user, object_id, tenant)
    if claims:
        return Identity("service principal", app or object_id or "unnamed application", object_id, tenant)
    return Identity("unknown", "unknown identity", None, tenant)


def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's payload as a dict; ``{}`` for anything that is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):  # not a JWT: the identity is simply unknown
        return {}
    return claims if isinstance(claims, dict) else {}


def printable(value: object, limit: int = 200) -> str:
    """A claim (or any text from the network) as printable one-line text; ``""`` if not a string."""
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value if ch.isprintable())[:limit]
