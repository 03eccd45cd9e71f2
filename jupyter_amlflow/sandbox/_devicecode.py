"""Device-code sign-in: the endpoint MSAL asks for a code, the page a person approves it on, waiting for one.

``POST /<tenant>/oauth2/v2.0/devicecode`` (endpoint ``devicecode``) answers as Entra ID does: a
device code for the client to poll the token endpoint with (``_entra``), a user code, the
verification URI and the polling interval. ``/devicelogin`` (``devicelogin``) is the page a person
opens: code, user, that user's password and a one-time page token (``_access``); a test approves
or declines through it in a real browser, or directly (``Sandbox.approve_device_code``).
"""

from __future__ import annotations

import hmac
import html
import secrets
import string
import time
from dataclasses import dataclass

from ._aad import MULTI_TENANT, aad_error, resolve_tenant, resource_for
from ._host import Host
from ._http import Request, Response, Route, route
from ._model import DeviceCode, Identity

__all__ = ["DeviceLogin", "PendingSignIn"]

USER_CODE_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "0O1I")


@dataclass(frozen=True)
class PendingSignIn:
    """A device-code sign-in waiting for a person: what the sign-in page would show them."""

    user_code: str
    tenant: str
    client_id: str
    expires_at: float
    created_at: float


class DeviceLogin:
    """The device-code endpoint and the device-login page of one sandbox."""

    def __init__(self, sandbox: Host) -> None:
        self.sb = sandbox
        self.directory = sandbox.directory

    def routes(self) -> list[Route]:
        """The routes this part serves."""
        t = r"/(?P<tenant>[^/]+)"
        return [
            route("POST", t + r"/oauth2/v2\.0/devicecode", "devicecode", self.devicecode),
            route("GET", r"/devicelogin", "devicelogin", self.devicelogin_page),
            route("POST", r"/devicelogin", "devicelogin", self.devicelogin_submit),
        ]

    def devicecode(self, req: Request) -> Response:
        tenant = resolve_tenant(self.directory, req.params["tenant"])
        form = req.form()
        client_id = form.get("client_id", "")
        if not client_id:
            raise aad_error(
                "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
            )
        _, scope = resource_for(form.get("scope", ""))
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

    # -- waiting for a person -------------------------------------------------------------------
    def pending(self) -> list[PendingSignIn]:
        """Sign-ins waiting for a person, oldest first."""
        now = time.time()
        with self.directory.lock:
            return [
                PendingSignIn(r.user_code, r.tenant, r.client_id, r.expires_at, r.created_at)
                for r in self.directory.device_codes.values()
                if r.state == "pending" and r.expires_at > now
            ]

    def wait(self, timeout: float, newer_than: float | None) -> PendingSignIn:
        """Block until a sign-in newer than ``newer_than`` is pending; returns the newest."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [p for p in self.pending() if newer_than is None or p.created_at >= newer_than]
            if pending:
                return pending[-1]
            time.sleep(0.05)
        raise TimeoutError(f"no device-code sign-in started within {timeout:g} s")
