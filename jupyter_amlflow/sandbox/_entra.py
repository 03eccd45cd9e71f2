"""Microsoft Entra ID stand-in: OIDC discovery and the token endpoint, with the device-code and identity endpoints.

The token endpoint serves the grants azure-identity and MSAL send: client credentials (a client
secret, a certificate's signed assertion, or a federated token's), the device code (``_devicecode``
hands codes out and lets a person approve them) and refresh tokens. Managed identity has endpoints
of its own (``_msi``). Errors are Entra ID's (``_aad``).
"""

from __future__ import annotations

import hmac
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from ._aad import MULTI_TENANT, aad_error, issue_access_token, resolve_tenant, resource_for
from ._devicecode import DeviceLogin
from ._host import Host
from ._http import HttpError, Request, Response, Route, route
from ._model import Identity
from ._msi import ManagedIdentity
from ._tokens import b64url_json

__all__ = ["Entra"]


def _pending(error: str, description: str) -> HttpError:
    return HttpError(400, {"error": error, "error_description": description})


class Entra:
    """The identity endpoints of one sandbox."""

    def __init__(self, sandbox: Host) -> None:
        self.sb = sandbox
        self.directory = sandbox.directory
        self.device = DeviceLogin(sandbox)
        self.msi = ManagedIdentity(sandbox)

    def routes(self) -> list[Route]:
        """The routes this part serves (the device-code and managed-identity ones included)."""
        t = r"/(?P<tenant>[^/]+)"
        return [
            route("GET", t + r"(?:/v2\.0)?/\.well-known/openid-configuration", "openid", self.openid),
            route("GET", t + r"/discovery/(?:v2\.0/)?keys", "openid", self.keys),
            route("POST", t + r"/oauth2/v2\.0/token", "token", self.token),
            *self.device.routes(),
            *self.msi.routes(),
        ]

    # -- discovery -----------------------------------------------------------------------------
    def openid(self, req: Request) -> Response:
        tenant = resolve_tenant(self.directory, req.params["tenant"])
        base = f"{req.base_url}/{req.params['tenant']}"
        issuer_tenant = "{tenantid}" if tenant in MULTI_TENANT else tenant
        return Response.json(
            {
                "issuer": f"{req.base_url}/{issuer_tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "tenant_region_scope": "NA",
                "cloud_instance_name": self.sb.cloud,
            }
        )

    def keys(self, req: Request) -> Response:
        resolve_tenant(self.directory, req.params["tenant"])
        return Response.json({"keys": [self.sb.authority.jwk()]})

    # -- token ---------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        tenant = resolve_tenant(self.directory, req.params["tenant"])
        form = req.form()
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            return self._client_credentials(req, tenant, form)
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_code_grant(req, tenant, form)
        if grant == "refresh_token":
            return self._refresh(req, tenant, form)
        raise aad_error("unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'.")

    def _client(self, tenant: str, form: dict[str, str], token_url: str) -> Identity:
        client_id = form.get("client_id", "")
        identity = self.directory.identity_by_client_id(client_id)
        if (
            identity is None
            or identity.kind != "service_principal"
            or (tenant not in MULTI_TENANT and tenant not in identity.tenants)
        ):
            raise aad_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
                "This can happen if the application has not been installed by the administrator of the "
                "tenant or consented to by any user in the tenant.",
            )
        if "client_secret" in form:
            if identity.client_secret is None or not hmac.compare_digest(
                form["client_secret"].encode(), identity.client_secret.encode()
            ):
                raise aad_error(
                    "invalid_client",
                    7000215,
                    f"Invalid client secret provided. Ensure the secret being sent in the request is the "
                    f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                    401,
                )
            return identity
        assertion = form.get("client_assertion")
        if assertion and form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            self._check_assertion(identity, assertion, token_url)
            return identity
        raise aad_error(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            401,
        )

    def _check_assertion(self, identity: Identity, assertion: str, token_url: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise aad_error("invalid_client", 50027, "JWT token is invalid or malformed.", 401) from exc
        if identity.federated_subject is not None and "x5t" not in header and "x5t#S256" not in header:
            try:
                claims = self.sb.federation.verify(assertion)
            except jwt.PyJWTError as exc:
                raise aad_error(
                    "invalid_client",
                    700211,
                    "No matching federated identity record found for presented assertion issuer. "
                    f"({type(exc).__name__})",
                    401,
                ) from exc
            if claims.get("sub") != identity.federated_subject:
                raise aad_error(
                    "invalid_client",
                    70021,
                    "No matching federated identity record found for presented assertion subject.",
                    401,
                )
            return
        cert = identity.certificate
        if cert is None:
            raise aad_error("invalid_client", 700027, "Client assertion contains an invalid signature.", 401)
        # MSAL keeps base64 padding on thumbprints; compare without it.
        thumbprint_ok = (header.get("x5t") or "").rstrip("=") == cert.thumbprint_sha1 or (
            header.get("x5t#S256") or ""
        ).rstrip("=") == cert.thumbprint_sha256
        if not thumbprint_ok:
            raise aad_error(
                "invalid_client",
                700027,
                "Client assertion failed signature validation. The key was not found.",
                401,
            )
        key = cert.certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):  # RS256 and PS256 need one (the sandbox makes only RSA keys)
            raise aad_error("invalid_client", 700027, "Client assertion contains an invalid signature.", 401)
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256", "PS256"],
                options={"verify_aud": False, "require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise aad_error("invalid_client", 700027, "Client assertion contains an invalid signature.", 401) from exc
        if claims["iss"] != identity.client_id or claims["sub"] != identity.client_id:
            raise aad_error(
                "invalid_client", 700023, "Client assertion issuer or subject does not match the client.", 401
            )
        if claims["aud"].split("?")[0].rstrip("/").lower() != token_url.rstrip("/").lower():
            raise aad_error(
                "invalid_client", 700024, "Client assertion audience claim does not match the token endpoint.", 401
            )

    def _client_credentials(self, req: Request, tenant: str, form: dict[str, str]) -> Response:
        identity = self._client(tenant, form, f"{req.base_url}{req.path}")
        tenant_id = identity.home_tenant if tenant in MULTI_TENANT else tenant
        audience, scope = resource_for(form.get("scope", ""))
        token, lifetime = issue_access_token(
            self.sb, req, identity, tenant_id, audience, {"appid": identity.client_id, "idtyp": "app"}
        )
        return Response.json(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
                "scope": scope,
            }
        )

    def _user_tokens(self, req: Request, user: Identity, tenant_id: str, client_id: str, scope_text: str) -> Response:
        audience, scope = resource_for(scope_text)
        token, lifetime = issue_access_token(
            self.sb,
            req,
            user,
            tenant_id,
            audience,
            {"upn": user.username, "preferred_username": user.username, "appid": client_id},
        )
        refresh = self.directory.new_secret(48)
        with self.directory.lock:
            self.directory.refresh_tokens[refresh] = (user.object_id, client_id)
        id_token = self.sb.authority.id_token(
            tenant_id=tenant_id,
            client_id=client_id,
            object_id=user.object_id,
            user=user.username or "",
            name=user.display_name,
        )
        self.directory.remember_secret(id_token)
        return Response.json(
            {
                "token_type": "Bearer",
                "scope": scope,
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
                "refresh_token": refresh,
                "id_token": id_token,
                "client_info": b64url_json({"uid": user.object_id, "utid": user.home_tenant}),
            }
        )

    def _device_code_grant(self, req: Request, tenant: str, form: dict[str, str]) -> Response:
        with self.directory.lock:
            record = self.directory.device_codes.get(form.get("device_code", ""))
        if record is None or record.client_id != form.get("client_id"):
            raise _pending("invalid_grant", "AADSTS70000: The provided device code is invalid or was already used.")
        if record.state == "redeemed":
            raise _pending("invalid_grant", "AADSTS70000: The provided device code was already redeemed.")
        if record.expires_at < time.time():
            raise _pending(
                "expired_token",
                "AADSTS70020: The provided value for the input parameter 'device_code' is not valid. "
                "This device code has expired.",
            )
        if record.state == "declined":
            raise _pending("authorization_declined", "AADSTS70016: The end user denied the authorization request.")
        if record.state == "pending":
            raise _pending(
                "authorization_pending",
                "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        assert record.user_object_id is not None
        user = self.directory.identities[record.user_object_id]
        tenant_id = self._check_tenant_membership(user, record.tenant)
        with self.directory.lock:
            record.state = "redeemed"
        return self._user_tokens(req, user, tenant_id, record.client_id, form.get("scope") or record.scope)

    def _refresh(self, req: Request, tenant: str, form: dict[str, str]) -> Response:
        with self.directory.lock:
            entry = self.directory.refresh_tokens.get(form.get("refresh_token", ""))
        if entry is None or entry[1] != form.get("client_id"):
            raise aad_error(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Sign in again.",
            )
        user = self.directory.identities.get(entry[0])
        if user is None:
            raise aad_error("invalid_grant", 50034, "The user account does not exist in the directory.")
        tenant_id = self._check_tenant_membership(user, tenant)
        return self._user_tokens(req, user, tenant_id, entry[1], form.get("scope", ""))

    def _check_tenant_membership(self, identity: Identity, tenant: str) -> str:
        if tenant in MULTI_TENANT:
            return identity.home_tenant
        if tenant not in identity.tenants:
            raise aad_error(
                "invalid_grant",
                50020,
                f"User account '{identity.name}' from identity provider does not exist in tenant "
                f"'{tenant}' and cannot access the application in that tenant.",
            )
        return tenant
