"""Signed JWTs: the access, id and federated tokens the sandbox issues, and their checks."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class TokenRejected(Exception):
    """A bearer token failed a check; ``code`` is the ARM error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AccessClaims:
    """What an endpoint needs to know about the caller of a verified access token."""

    token_id: str
    tenant_id: str
    object_id: str
    audience: str
    expires_at: float
    raw: dict[str, Any]


def b64url_json(value: dict[str, Any]) -> str:
    """Base64url of compact JSON, without padding (``client_info`` is encoded so)."""
    data = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenAuthority:
    """Issues and verifies RS256 tokens with one key pair per sandbox run."""

    def __init__(self, issuer_base: str) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public = self._key.public_key()
        self._kid = secrets.token_hex(8)
        self.issuer_base = issuer_base.rstrip("/")

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK, for the ``jwks_uri`` document."""
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._public))
        return {**key, "kid": self._kid, "use": "sig", "alg": "RS256"}

    def issuer(self, tenant_id: str) -> str:
        """The ``iss`` claim for tokens of one tenant (v2 endpoint form)."""
        return f"{self.issuer_base}/{tenant_id}/v2.0"

    def access_token(
        self,
        *,
        tenant_id: str,
        object_id: str,
        audience: str,
        lifetime: float,
        extra: dict[str, Any],
    ) -> tuple[str, AccessClaims]:
        """A signed access token and the claims an endpoint later reads back."""
        now = time.time()
        token_id = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer(tenant_id),
            "iat": int(now),
            "nbf": int(now) - 60,
            "exp": now + lifetime,
            "tid": tenant_id,
            "oid": object_id,
            "sub": object_id,
            "uti": token_id,
            "ver": "2.0",
            **extra,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})
        return token, self._claims(claims)

    def id_token(self, *, tenant_id: str, client_id: str, object_id: str, user: str, name: str) -> str:
        """An id_token with the claims azure-identity needs to build an AuthenticationRecord."""
        now = int(time.time())
        claims = {
            "aud": client_id,
            "iss": self.issuer(tenant_id),
            "iat": now,
            "nbf": now - 60,
            "exp": now + 3600,
            "tid": tenant_id,
            "oid": object_id,
            "sub": object_id,
            "preferred_username": user,
            "name": name,
            "ver": "2.0",
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    def verify(self, token: str, *, audiences: tuple[str, ...]) -> AccessClaims:
        """Check signature, expiry and audience; the caller checks the tenant against the resource."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.") from exc
        if header.get("alg") != "RS256" or header.get("kid") != self._kid:
            raise TokenRejected(
                "InvalidAuthenticationToken",
                "The access token is not signed by this sandbox's identity provider.",
            )
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "aud", "tid", "oid"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            ) from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected("InvalidAuthenticationToken", "The access token has an invalid signature.") from exc
        if _normal_audience(claims["aud"]) not in {_normal_audience(a) for a in audiences}:
            raise TokenRejected(
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource "
                f"'{claims['aud']}'. It should exactly match with one of the allowed audiences "
                f"{', '.join(repr(a) for a in audiences)}.",
            )
        return self._claims(claims)

    @staticmethod
    def _claims(claims: dict[str, Any]) -> AccessClaims:
        return AccessClaims(
            token_id=claims["uti"] if "uti" in claims else "",
            tenant_id=claims["tid"],
            object_id=claims["oid"],
            audience=claims["aud"],
            expires_at=float(claims["exp"]),
            raw=claims,
        )


def _normal_audience(audience: str) -> str:
    return audience.rstrip("/").lower()


class FederationIssuer:
    """Stands in for an external OIDC issuer (a Kubernetes cluster) for workload identity."""

    AUDIENCE = "api://AzureADTokenExchange"

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, subject: str, lifetime: float = 3600.0, audience: str | None = None) -> str:
        """A projected service-account token as a cluster would mount it."""
        now = time.time()
        return jwt.encode(
            {
                "iss": self.issuer,
                "sub": subject,
                "aud": audience or self.AUDIENCE,
                "iat": int(now),
                "exp": int(now + lifetime),
            },
            self._key,
            algorithm="RS256",
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Decode a federated assertion; raises ``jwt.PyJWTError`` when it is not ours or stale."""
        return jwt.decode(
            token,
            self._key.public_key(),
            algorithms=["RS256"],
            audience=self.AUDIENCE,
            issuer=self.issuer,
        )
