"""Microsoft Entra ID stand-in: OIDC discovery, device code, token grants, managed identity."""

from __future__ import annotations

import hmac
import html
import secrets
import string
import time
import uuid
from typing import TYPE_CHECKING, Any

import jwt

from ._http import HttpError, Request, Response, Route, route
from ._model import DeviceCode, Identity
from ._tokens import b64url_json

if TYPE_CHECKING:
    from . import Sandbox

#: Tenant path segments that mean "the user's own tenant" rather than one tenant.
MULTI_TENANT = ("organizations", "common", "consumers")
RESERVED_SCOPES = {"openid", "profile", "offline_access"}
USER_CODE_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "0O1I")


def _aad_error(error: str, code: int, description: str, status: int = 400) -> HttpError:
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


def _pending(error: str, description: str) -> HttpError:
    return HttpError(400, {"error": error, "error_description": description})


class Entra:
    """The identity endpoints of one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.directory = sandbox.directory

    def routes(self) -> list[Route]:
        """The routes this part serves."""
        t = r"/(?P<tenant>[^/]+)"
        return [
            route("GET", t + r"(?:/v2\.0)?/\.well-known/openid-configuration", "openid", self.openid),
            route("GET", t + r"/discovery/(?:v2\.0/)?keys", "openid", self.keys),
            route("POST", t + r"/oauth2/v2\.0/devicecode", "devicecode", self.devicecode),
            route("POST", t + r"/oauth2/v2\.0/token", "token", self.token),
            route("GET", r"/devicelogin", "devicelogin", self.devicelogin_page),
            route("POST", r"/devicelogin", "devicelogin", self.devicelogin_submit),
            route("GET", r"/msi/appservice", "msi", self.msi_app_service),
            route("GET", r"/msi/token", "msi", self.msi_azure_ml),
            route("POST", r"/msi/token", "msi", self.msi_cloud_shell),
        ]

    # -- helpers -------------------------------------------------------------------------------
    def _tenant(self, req: Request) -> str:
        """The tenant named in the path: an id, a domain, or one of ``MULTI_TENANT``."""
        name = req.params["tenant"]
        if name.lower() in MULTI_TENANT:
            return name.lower()
        tenant = self.directory.tenant_by_name(name)
        if tenant is None:
            raise _aad_error(
                "invalid_request",
                90002,
                f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and "
                "are signing into the correct cloud.",
            )
        return tenant.tenant_id

    def _resource(self, scope: str) -> tuple[str, str]:
        """``(audience, echoed scope)`` for a requested scope string."""
        scopes = [s for s in scope.split() if s.lower() not in RESERVED_SCOPES]
        if not scopes:
            raise _aad_error("invalid_scope", 70011, "The provided value for scope is not valid.")
        first = scopes[0]
        audience = first[: -len("/.default")] if first.endswith("/.default") else first.rsplit("/", 1)[0]
        if not audience.endswith("/"):
            audience += "/"
        return audience, " ".join(scopes)

    def _access(
        self, req: Request, identity: Identity, tenant_id: str, audience: str, extra: dict[str, Any]
    ) -> tuple[str, int]:
        lifetime = self.sb.token_lifetime
        token, claims = self.sb.authority.access_token(
            tenant_id=tenant_id,
            object_id=identity.object_id,
            audience=audience,
            lifetime=lifetime,
            extra={"name": identity.display_name, **extra},
        )
        self.directory.remember_secret(token)
        req.identity, req.identity_name = identity.object_id, identity.name
        req.token_id, req.tenant = claims.token_id, tenant_id
        return token, max(1, int(lifetime))

    def _check_tenant_membership(self, identity: Identity, tenant: str) -> str:
        if tenant in MULTI_TENANT:
            return identity.home_tenant
        if tenant not in identity.tenants:
            raise _aad_error(
                "invalid_grant",
                50020,
                f"User account '{identity.name}' from identity provider does not exist in tenant "
                f"'{tenant}' and cannot access the application in that tenant.",
            )
        return tenant

    # -- discovery -----------------------------------------------------------------------------
    def openid(self, req: Request) -> Response:
        tenant = self._tenant(req)
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
        self._tenant(req)
        return Response.json({"keys": [self.sb.authority.jwk()]})

    # -- device code ---------------------------------------------------------------------------
    def devicecode(self, req: Request) -> Response:
        tenant = self._tenant(req)
        form = req.form()
        client_id = form.get("client_id", "")
        if not client_id:
            raise _aad_error(
                "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
            )
        _, scope = self._resource(form.get("scope", ""))
        user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(9))
        record = DeviceCode(
            device_code=self.directory.new_secret(48),
            user_code=user_code,
            tenant=tenant,
            client_id=client_id,
            scope=scope,
            expires_at=time.time() + self.sb.device_code_lifetime,
            interval=self.sb.device_code_interval,
        )
        with self.directory.lock:
            self.directory.device_codes[record.device_code] = record
        url = f"{req.base_url}/devicelogin"
        return Response.json(
            {
                "device_code": record.device_code,
                "user_code": user_code,
                "verification_uri": url,
                "expires_in": int(self.sb.device_code_lifetime),
                "interval": record.interval,
                "message": f"To sign in, use a web browser to open the page {url} and enter the code "
                f"{user_code} to authenticate.",
            }
        )

    def find_device_code(self, user_code: str) -> DeviceCode | None:
        """The pending sign-in with this user code (dashes and case ignored)."""
        wanted = user_code.replace("-", "").strip().upper()
        with self.directory.lock:
            for record in self.directory.device_codes.values():
                if record.user_code == wanted and record.state == "pending":
                    return record
        return None

    def approve(self, user_code: str, user: str | None) -> Identity:
        """Approve a pending code as ``user`` (a username or object id; the tenant's first user if None)."""
        record = self.find_device_code(user_code)
        if record is None or record.expires_at < time.time():
            raise LookupError(f"no pending sign-in has the code {user_code!r}")
        candidates = self.directory.users(None if record.tenant in MULTI_TENANT else record.tenant)
        if user is not None:
            candidates = [u for u in candidates if user.lower() in (u.object_id.lower(), (u.username or "").lower())]
        if not candidates:
            raise LookupError(f"no user {user!r} can sign in to tenant {record.tenant!r}")
        with self.directory.lock:
            record.state = "approved"
            record.user_object_id = candidates[0].object_id
        return candidates[0]

    def decline(self, user_code: str) -> None:
        """Decline a pending code, as a person pressing "Cancel" on the sign-in page would."""
        record = self.find_device_code(user_code)
        if record is None:
            raise LookupError(f"no pending sign-in has the code {user_code!r}")
        with self.directory.lock:
            record.state = "declined"

    def devicelogin_page(self, req: Request, message: str = "", status: int = 200) -> Response:
        """The sign-in page: code, user, password, and a one-time token the form must send back."""
        users = self.directory.users()
        token = self.sb.access.new_page_token()
        options = "".join(
            f'<option value="{html.escape(u.username or "")}">{html.escape(u.display_name)} '
            f"({html.escape(u.username or '')})</option>"
            for u in users
        )
        note = f'<p id="message" role="status">{html.escape(message)}</p>' if message else ""
        return Response.html(
            f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Enter code - sandbox sign-in</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto}}
label,input,select,button{{display:block;margin:.5rem 0;font-size:1rem}}</style></head>
<body><h1>Enter code</h1>
<p>Enter the code displayed on your app or device (jupyter_amlflow sandbox, cloud {html.escape(self.sb.cloud)}).</p>
{note}
<form method="post" action="/devicelogin">
<input type="hidden" name="page_token" value="{html.escape(token, quote=True)}">
<label for="code">Code</label><input id="code" name="code" autocomplete="off" autofocus>
<label for="user">Sign in as</label><select id="user" name="user">{options}</select>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="off">
<button id="approve" name="action" value="approve" type="submit">Continue</button>
<button id="decline" name="action" value="decline" type="submit">Cancel sign-in</button>
</form></body></html>""",
            status,
        )

    def devicelogin_submit(self, req: Request) -> Response:
        form = req.form()
        code = form.get("code", "")
        if not self.sb.access.take_page_token(form.get("page_token", "")):
            # A form this sandbox did not just serve: another site posting it in the person's
            # browser, or a script that never loaded the page. (Azure's page is protected the same
            # way by its session and anti-forgery token; the exact answer is not public.)
            return self.devicelogin_page(req, "This page expired. Enter the code again.", 403)
        try:
            if form.get("action") == "decline":
                self.decline(code)
                return Response.html(
                    '<!doctype html><html><body><h1 id="result">Sign-in cancelled</h1>'
                    "<p>You declined to sign in. You may now close this window.</p></body></html>"
                )
            if not self._password_ok(form.get("user") or "", form.get("password") or ""):
                # AADSTS50126: Entra ID's answer to a wrong user name or password.
                return self.devicelogin_page(req, "Your account or password is incorrect.", 401)
            user = self.approve(code, form.get("user") or None)
        except LookupError:
            return self.devicelogin_page(req, "That code did not work. Check the code and try again.", 400)
        return Response.html(
            '<!doctype html><html><body><h1 id="result">You have signed in</h1>'
            f"<p>Signed in as {html.escape(user.name)}. You may now close this window.</p></body></html>"
        )

    def _password_ok(self, username: str, password: str) -> bool:
        user = next(
            (u for u in self.directory.users() if username and (u.username or "").lower() == username.lower()), None
        )
        expected = user.password if user is not None else None
        # Compared even for an unknown user, so the answer takes as long either way.
        return hmac.compare_digest(password.encode(), (expected or "\x00").encode()) and expected is not None

    # -- token ---------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        tenant = self._tenant(req)
        form = req.form()
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            return self._client_credentials(req, tenant, form)
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_code_grant(req, tenant, form)
        if grant == "refresh_token":
            return self._refresh(req, tenant, form)
        raise _aad_error("unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'.")

    def _client(self, tenant: str, form: dict[str, str], token_url: str) -> Identity:
        client_id = form.get("client_id", "")
        identity = self.directory.identity_by_client_id(client_id)
        if (
            identity is None
            or identity.kind != "service_principal"
            or (tenant not in MULTI_TENANT and tenant not in identity.tenants)
        ):
            raise _aad_error(
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
                raise _aad_error(
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
        raise _aad_error(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            401,
        )

    def _check_assertion(self, identity: Identity, assertion: str, token_url: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise _aad_error("invalid_client", 50027, "JWT token is invalid or malformed.", 401) from exc
        if identity.federated_subject is not None and "x5t" not in header and "x5t#S256" not in header:
            try:
                claims = self.sb.federation.verify(assertion)
            except jwt.PyJWTError as exc:
                raise _aad_error(
                    "invalid_client",
                    700211,
                    "No matching federated identity record found for presented assertion issuer. "
                    f"({type(exc).__name__})",
                    401,
                ) from exc
            if claims.get("sub") != identity.federated_subject:
                raise _aad_error(
                    "invalid_client",
                    70021,
                    "No matching federated identity record found for presented assertion subject.",
                    401,
                )
            return
        cert = identity.certificate
        if cert is None:
            raise _aad_error("invalid_client", 700027, "Client assertion contains an invalid signature.", 401)
        # MSAL keeps base64 padding on thumbprints; compare without it.
        thumbprint_ok = (header.get("x5t") or "").rstrip("=") == cert.thumbprint_sha1 or (
            header.get("x5t#S256") or ""
        ).rstrip("=") == cert.thumbprint_sha256
        if not thumbprint_ok:
            raise _aad_error(
                "invalid_client",
                700027,
                "Client assertion failed signature validation. The key was not found.",
                401,
            )
        try:
            claims = jwt.decode(
                assertion,
                cert.certificate.public_key(),
                algorithms=["RS256", "PS256"],
                options={"verify_aud": False, "require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise _aad_error("invalid_client", 700027, "Client assertion contains an invalid signature.", 401) from exc
        if claims["iss"] != identity.client_id or claims["sub"] != identity.client_id:
            raise _aad_error(
                "invalid_client", 700023, "Client assertion issuer or subject does not match the client.", 401
            )
        if claims["aud"].split("?")[0].rstrip("/").lower() != token_url.rstrip("/").lower():
            raise _aad_error(
                "invalid_client", 700024, "Client assertion audience claim does not match the token endpoint.", 401
            )

    def _client_credentials(self, req: Request, tenant: str, form: dict[str, str]) -> Response:
        identity = self._client(tenant, form, f"{req.base_url}{req.path}")
        tenant_id = identity.home_tenant if tenant in MULTI_TENANT else tenant
        audience, scope = self._resource(form.get("scope", ""))
        token, lifetime = self._access(
            req, identity, tenant_id, audience, {"appid": identity.client_id, "idtyp": "app"}
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
        audience, scope = self._resource(scope_text)
        token, lifetime = self._access(
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
            raise _aad_error(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Sign in again.",
            )
        user = self.directory.identities.get(entry[0])
        if user is None:
            raise _aad_error("invalid_grant", 50034, "The user account does not exist in the directory.")
        tenant_id = self._check_tenant_membership(user, tenant)
        return self._user_tokens(req, user, tenant_id, entry[1], form.get("scope", ""))

    # -- managed identity ----------------------------------------------------------------------
    def _managed_identity(self, req: Request, client_id: str | None, resource: str) -> Identity:
        with self.directory.lock:
            identities = [i for i in self.directory.identities.values() if i.kind == "managed_identity"]
        if client_id:
            identities = [i for i in identities if (i.client_id or "").lower() == client_id.lower()]
        if not identities:
            raise HttpError(400, {"error": "invalid_request", "error_description": "Identity not found"})
        if not resource:
            raise HttpError(
                400, {"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}
            )
        return identities[0]

    def _msi_response(self, req: Request, identity: Identity, resource: str) -> Response:
        audience = resource if resource.endswith("/") else resource + "/"
        token, lifetime = self._access(
            req, identity, identity.home_tenant, audience, {"appid": identity.client_id, "idtyp": "app"}
        )
        return Response.json(
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + lifetime),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            }
        )

    def msi_app_service(self, req: Request) -> Response:
        """App Service style (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``, api-version 2019-08-01)."""
        if not hmac.compare_digest((req.header("x-identity-header") or "").encode(), self.sb.identity_header.encode()):
            raise HttpError(
                401, {"error": "unauthorized", "error_description": "X-IDENTITY-HEADER is missing or wrong"}
            )
        resource = req.query.get("resource", "")
        identity = self._managed_identity(req, req.query.get("client_id"), resource)
        return self._msi_response(req, identity, resource)

    def _check_msi_secret(self, req: Request) -> None:
        if not hmac.compare_digest((req.header("secret") or "").encode(), self.sb.identity_header.encode()):
            raise HttpError(
                401,
                {"error": "unauthorized", "error_description": "The secret header (MSI_SECRET) is missing or wrong"},
            )

    def msi_azure_ml(self, req: Request) -> Response:
        """Azure ML compute style (``MSI_ENDPOINT`` + ``MSI_SECRET``): GET, api-version 2017-09-01.

        As azure-identity (``_credentials/azure_ml.py``) and MSAL (``managed_identity.py``,
        ``_obtain_token_on_machine_learning``) call it: the secret in a ``secret`` header, the
        user-assigned identity as ``clientid``.
        """
        self._check_msi_secret(req)
        resource = req.query.get("resource", "")
        identity = self._managed_identity(req, req.query.get("clientid") or req.query.get("client_id"), resource)
        return self._msi_response(req, identity, resource)

    def msi_cloud_shell(self, req: Request) -> Response:
        """Cloud Shell / legacy style (``MSI_ENDPOINT`` alone): POST a form with ``Metadata: true``.

        Real Cloud Shell's endpoint needs nothing more because only its own container reaches it.
        Every local process reaches the sandbox's loopback port, so it refuses this form unless
        the ``secret`` header carries its identity secret (which azure-identity's Cloud Shell
        credential never sends); ``Sandbox.msi_endpoint_env`` gives the Azure ML form instead.
        """
        self._check_msi_secret(req)
        if (req.header("metadata") or "").lower() != "true":
            raise HttpError(
                400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}
            )
        form = req.form()
        resource = form.get("resource", "")
        identity = self._managed_identity(req, form.get("client_id"), resource)
        return self._msi_response(req, identity, resource)
