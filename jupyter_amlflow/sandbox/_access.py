"""Who may use a sandbox at all: its per-run access key, the Studio view key, sign-in page tokens.

On a shared machine every local process can reach 127.0.0.1. What Azure protects by network and
sign-in, the sandbox protects with secrets made fresh for each run:

* the **access key** (``Sandbox.access_key``, listed by ``issued_secrets``): the plain backend
  listener wants it as the password of HTTP Basic auth (``backend_tracking_uri`` carries it in
  its user-info part, which ``requests`` turns into that header) or as a bearer token;
* the **identity secret** (``Sandbox.identity_header``): ``IDENTITY_HEADER`` of the App Service
  style identity endpoint and ``MSI_SECRET`` of the Azure ML style ``MSI_ENDPOINT`` (both sent as
  headers; the Cloud Shell style, which needs no secret because only its container reaches it,
  is refused);
* the **Studio key**: a path segment of ``Sandbox.studio_url``. Studio links are shown to people
  (run summaries, ``amlflow-sandbox run``), so this key is printed by design, like the token in a
  Jupyter server's URL; it opens the read-only Studio pages and nothing else;
* **page tokens**: each device-login page carries a one-time token its form must send back, so
  another web page cannot submit the form in the person's browser (cross-site request forgery).
  Approving also needs the chosen user's password (``Sandbox.user_password``), as Entra ID asks
  for one: a local process that starts its own device code cannot approve it as someone else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time

from ._http import HttpError, Request

#: Seconds a device-login page's token stays valid (the device code itself lives 15 minutes).
PAGE_TOKEN_LIFETIME = 900.0


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class Access:
    """The access key, the Studio key and the device-login page tokens of one sandbox.

    Args:
        access_key: The per-run secret (registered with the directory's issued secrets by the caller).
    """

    def __init__(self, access_key: str) -> None:
        self.access_key = access_key
        self.studio_key = secrets.token_urlsafe(18)
        self._lock = threading.Lock()
        self._page_tokens: dict[str, float] = {}

    # -- the access key ------------------------------------------------------------------------
    def presented_key(self, req: Request) -> str | None:
        """The key in ``Authorization`` (Basic: the password, any user name; or Bearer), if any."""
        scheme, _, value = (req.header("authorization") or "").partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return value
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2]
        return None

    def require_key(self, req: Request) -> None:
        """Raise 401 unless the request presents the access key."""
        given = self.presented_key(req)
        if given is None or not _same(given, self.access_key):
            raise HttpError(
                401,
                {
                    "error_code": "UNAUTHENTICATED",
                    "message": "This sandbox listener needs the sandbox's access key: use the URI "
                    "Sandbox.backend_tracking_uri() returns (it carries the key).",
                },
                {"WWW-Authenticate": 'Basic realm="amlflow-sandbox", charset="UTF-8"'},
            )

    def studio_key_ok(self, key: str) -> bool:
        """Whether a Studio path carries this sandbox's Studio key."""
        return _same(key, self.studio_key)

    # -- device-login page tokens --------------------------------------------------------------
    def new_page_token(self) -> str:
        """A token for one device-login page (valid ``PAGE_TOKEN_LIFETIME`` seconds, usable once)."""
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._page_tokens = {t: exp for t, exp in self._page_tokens.items() if exp > now}
            self._page_tokens[token] = now + PAGE_TOKEN_LIFETIME
        return token

    def take_page_token(self, token: str) -> bool:
        """Use up a page token; False if it is unknown, used or expired."""
        with self._lock:
            expires = self._page_tokens.pop(token, None)
        return expires is not None and expires > time.monotonic()
