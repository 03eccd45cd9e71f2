"""Sign-in: a named chain of methods, device codes shown by the caller, tenants, a remembered login.

This is the only module that builds credentials; azure-identity is imported inside functions, so
``import jupyter_amlflow.auth`` stays cheap. ``sign_in`` tries the methods in the order given:

=====================  ===========================================================  ==========================
method                 available when                                               credential
=====================  ===========================================================  ==========================
``env``                ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET`` or              ClientSecretCredential /
                       ``AZURE_CLIENT_CERTIFICATE_PATH`` (+ ``..._PASSWORD``),       CertificateCredential
                       and a tenant
``workload-identity``  ``AZURE_FEDERATED_TOKEN_FILE`` + ``AZURE_CLIENT_ID`` + tenant  WorkloadIdentityCredential
``managed-identity``   ``IDENTITY_ENDPOINT`` or ``MSI_ENDPOINT`` is set (the         ManagedIdentityCredential
                       metadata address 169.254.169.254 is never probed)
``cli``                ``az`` is on PATH and logged in                               AzureCliCredential
``powershell``         ``pwsh`` is on PATH with Az and ``Connect-AzAccount``         AzurePowerShellCredential
``browser``            the platform can open a browser                               InteractiveBrowserCredential
``device-code``        a renderer was given to show the code                         DeviceCodeCredential
=====================  ===========================================================  ==========================

"Unavailable" moves on to the next method; "failed" (a configured method that Entra ID or the
tool refused) stops, and the ``SignInError`` lists every attempt with its reason and what to do
next. Each candidate is verified by getting a Resource Manager token. Which methods are tried by
default depends on where the kernel runs (``platform.default_methods``).

Persistence (opt-in, ``persist=True``): browser and device-code sign-ins keep MSAL's token cache
(``TokenCachePersistenceOptions(name="jupyter_amlflow")``, encrypted by the platform's secret
store; a plain 0600 file only with ``allow_unencrypted_cache=True``) and the
``AuthenticationRecord`` in ``~/.jupyter_amlflow/auth-record-<cloud>.json``, so a fresh kernel
signs in silently. ``logout`` removes both.

Interruption and cancellation: ``sign_in`` may run in a worker thread that its caller abandons.
Pass ``cancel`` (a ``threading.Event``) and set it when giving up: from then on the sign-in sends
no further request (the device-code poll in progress is its last), shows no prompt, writes
nothing persistent, and ends with ``SignInError`` ("cancelled"). A ``KeyboardInterrupt`` in the
thread running ``sign_in`` propagates after the renderer is told "cancelled"; nothing is saved.
The saved sign-in is written only after the sign-in has completed and was not cancelled.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from . import _redact
from .errors import SignInError
from .references import quote_input

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential, TokenRequestOptions
    from azure.identity import AuthenticationRecord, TokenCachePersistenceOptions

    from .clouds import Cloud
    from .platform import Platform

__all__ = [
    "CACHE_NAME",
    "METHODS",
    "Attempt",
    "DeviceCodePrompt",
    "DeviceCodeRenderer",
    "Identity",
    "SignIn",
    "SwappableCredential",
    "credential_for_tenant",
    "describe_token_identity",
    "logout",
    "record_path",
    "sign_in",
    "token_cache_paths",
]

_LOG = logging.getLogger(__name__)

METHODS = ("env", "workload-identity", "managed-identity", "cli", "powershell", "browser", "device-code")
CACHE_NAME = "jupyter_amlflow"
# Token requests are retried by azure-core; a sign-in chain should fail fast instead of spending
# the default ten retries (minutes) on an endpoint that is down.
RETRIES = 2
_TENANT = re.compile(r"^[0-9A-Za-z.-]{1,100}$")  # azure-identity's validate_tenant_id, plus a length cap
_CACHE_SUFFIXES = (".nocae", ".cae")  # azure-identity: CACHE_NON_CAE_SUFFIX, CACHE_CAE_SUFFIX

Outcome = Literal["unavailable", "failed", "ok"]


# -- public data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceCodePrompt:
    """What a person needs to finish a device-code sign-in. The user code is meant to be shown.

    The secret device code itself never leaves this module.
    """

    verification_uri: str
    user_code: str
    expires_at: datetime
    message: str


class DeviceCodeRenderer(Protocol):
    """Shows a device-code prompt and, later, how it ended (``devicecode`` has two)."""

    def show(self, prompt: DeviceCodePrompt) -> None:
        """Show the link, the code and when it expires."""

    def finish(self, outcome: str, detail: str = "") -> None:
        """Replace the prompt with the outcome.

        Args:
            outcome: ``"signed-in"``, ``"declined"``, ``"expired"``, ``"cancelled"`` or ``"failed"``.
            detail: One sentence for the person, e.g. ``"Signed in as bob@contoso.com."``.
        """


@dataclass(frozen=True)
class Attempt:
    """One method tried: ``outcome``, ``reason`` (why) and ``hint`` (what to do next)."""

    method: str
    outcome: Outcome
    reason: str
    hint: str

    def __str__(self) -> str:
        return f"{self.method}: {self.outcome}, {self.reason}"


@dataclass(frozen=True)
class Identity:
    """Who is signed in, for display: read from the token's claims, which are not verified."""

    kind: str
    name: str
    object_id: str | None
    tenant_id: str

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


@dataclass
class SignIn:
    """A sign-in that worked: the credential (a plain azure-identity one), how, and who."""

    credential: TokenCredential
    method: str
    identity: Identity
    tenant_id: str
    attempts: list[Attempt]


# -- credentials handed to other code ----------------------------------------------------------------
class _Delegating:
    """Forwards ``get_token`` / ``get_token_info`` to another credential."""

    def _target(self) -> Any:
        raise NotImplementedError

    def _options(self, options: TokenRequestOptions | None) -> dict[str, Any]:
        return dict(options or {})

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token for ``scopes`` from the current credential."""
        options = self._options({"tenant_id": tenant_id} if tenant_id else None)
        return self._target().get_token(
            *scopes, claims=claims, tenant_id=options.get("tenant_id"), enable_cae=enable_cae, **kwargs
        )

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        """A token (with refresh hints) for ``scopes`` from the current credential."""
        target = self._target()
        merged = self._options(options)
        if hasattr(target, "get_token_info"):
            return target.get_token_info(*scopes, options=merged)  # type: ignore[arg-type]
        from azure.core.credentials import AccessTokenInfo

        token = target.get_token(
            *scopes,
            claims=merged.get("claims"),
            tenant_id=merged.get("tenant_id"),
            enable_cae=bool(merged.get("enable_cae", False)),
        )
        return AccessTokenInfo(token.token, token.expires_on)


class SwappableCredential(_Delegating):
    """A stable credential object whose inner credential can be replaced (e.g. on reconnect).

    Clients such as the azureml-mlflow plugin keep the credential they were given; swapping the
    inner one changes the identity they use from the next token request on.

    Args:
        inner: The credential to delegate to (None until ``swap``).
    """

    def __init__(self, inner: TokenCredential | None = None) -> None:
        self._lock = threading.Lock()
        self._inner = inner

    @property
    def inner(self) -> TokenCredential | None:
        """The credential in use now."""
        with self._lock:
            return self._inner

    def swap(self, inner: TokenCredential | None) -> None:
        """Use ``inner`` from now on."""
        with self._lock:
            self._inner = inner

    def _target(self) -> Any:
        inner = self.inner
        if inner is None:
            from azure.identity import CredentialUnavailableError

            raise CredentialUnavailableError("Not signed in: run %amlflow connect (or jupyter_amlflow.connect())")
        return inner

    def __repr__(self) -> str:
        return f"SwappableCredential({type(self.inner).__name__})"


class _TenantCredential(_Delegating):
    """Gets every token from one tenant (``credential_for_tenant``)."""

    def __init__(self, inner: TokenCredential, tenant_id: str) -> None:
        self._inner = inner
        self.tenant_id = tenant_id

    def _target(self) -> Any:
        return self._inner

    def _options(self, options: TokenRequestOptions | None) -> dict[str, Any]:
        return {**(options or {}), "tenant_id": self.tenant_id}

    def __repr__(self) -> str:
        return f"credential_for_tenant({type(self._inner).__name__}, {self.tenant_id!r})"


def credential_for_tenant(signin: SignIn, tenant_id: str) -> TokenCredential:
    """A credential that gets the signed-in identity's tokens from ``tenant_id``.

    A user in several tenants signs in once; the refresh token gets a token for each tenant
    silently (every credential here allows any tenant). If a tenant demands a new interactive
    sign-in (MFA, consent), the token request raises ``AuthenticationRequiredError``: sign in with
    that tenant explicitly.

    Args:
        signin: The result of ``sign_in``.
        tenant_id: A tenant id (GUID) or domain.

    Raises:
        SignInError: ``tenant_id`` is not a tenant id or domain.
    """
    return _TenantCredential(signin.credential, _check_tenant(tenant_id))


# -- identity ----------------------------------------------------------------------------------------
def describe_token_identity(token: str) -> Identity:
    """Who a token was issued to, from its claims, decoded without verification (display only).

    Never logs or returns the token. An opaque (non-JWT) token gives an "unknown" identity.
    """
    claims = _unverified_claims(token)
    tenant = _display(claims.get("tid")) or ""
    object_id = _display(claims.get("oid")) or None
    user = next(
        (v for k in ("upn", "preferred_username", "unique_name", "email") if (v := _display(claims.get(k)))), ""
    )
    app = next((v for k in ("app_displayname", "name", "appid", "azp") if (v := _display(claims.get(k)))), "")
    if mirid := _display(claims.get("xms_mirid")):
        return Identity("managed identity", mirid.rstrip("/").rsplit("/", 1)[-1] or app, object_id, tenant)
    if user and claims.get("idtyp") != "app":
        return Identity("user", user, object_id, tenant)
    if claims:
        return Identity("service principal", app or object_id or "unnamed application", object_id, tenant)
    return Identity("unknown", "unknown identity", None, tenant)


def _unverified_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):  # not a JWT: the identity is simply unknown
        return {}
    return claims if isinstance(claims, dict) else {}


def _display(value: object, limit: int = 200) -> str:
    """A claim as printable one-line text (claims come from the network)."""
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value if ch.isprintable())[:limit]


# -- persistence paths -------------------------------------------------------------------------------
def record_path(cloud_name: str) -> Path:
    """Where the saved sign-in (``AuthenticationRecord``, no secret in it) for a cloud lives."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", cloud_name) or "cloud"
    return Path.home() / ".jupyter_amlflow" / f"auth-record-{safe}.json"


def token_cache_paths(cache_name: str = CACHE_NAME) -> list[Path]:
    """The files of the persistent token cache (where azure-identity / msal-extensions put them)."""
    return [_cache_dir() / (cache_name + suffix) for suffix in _CACHE_SUFFIXES]


def _cache_dir() -> Path:
    # azure-identity's _persistent_cache._get_persistence: LOCALAPPDATA on Windows, else ~ (HOME).
    if sys.platform.startswith("win") and "LOCALAPPDATA" in os.environ:
        return Path(os.environ["LOCALAPPDATA"]) / ".IdentityService"
    return Path(os.path.expanduser("~")) / ".IdentityService"


def logout(*, cache_name: str = CACHE_NAME) -> list[str]:
    """Forget every persisted sign-in: the token cache and the saved ``AuthenticationRecord`` s.

    Args:
        cache_name: The token cache's name (``TokenCachePersistenceOptions.name``).

    Returns:
        What was removed (file paths, and the secret-store entry when there was one).
    """
    removed: list[str] = []
    if _clear_secret_store(cache_name):
        removed.append(f"token cache {cache_name!r} in the system secret store")
    records = sorted((Path.home() / ".jupyter_amlflow").glob("auth-record-*.json"))
    for path in [*token_cache_paths(cache_name), *records]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(str(path))
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + ".lockfile").unlink()
    return removed


def _clear_secret_store(cache_name: str) -> bool:
    """Empty the encrypted cache in the OS secret store (keychain, libsecret), if there is one.

    Deleting the files is not enough there: on macOS and Linux the file only signals changes and
    the tokens live in the store. azure-identity has no public call to clear a persisted cache,
    so this uses its private loader; any failure means there is nothing we can clear.
    """
    try:
        from azure.identity import TokenCachePersistenceOptions
        from azure.identity._persistent_cache import _load_persistent_cache
        from msal import TokenCache
    except ImportError:
        return False
    cleared = False
    kinds = [getattr(TokenCache.CredentialType, k) for k in ("ACCESS_TOKEN", "REFRESH_TOKEN", "ID_TOKEN", "ACCOUNT")]
    for is_cae in (False, True):
        try:
            cache = _load_persistent_cache(TokenCachePersistenceOptions(name=cache_name), is_cae)
            entries = [(kind, entry) for kind in kinds for entry in list(cache.search(kind))]
            for kind, entry in entries:
                cache.modify(kind, entry, None)
            cleared = cleared or bool(entries)
        except Exception as exc:  # boundary: no usable secret store means nothing is stored in one
            _LOG.debug("No encrypted token cache to clear (%s)", type(exc).__name__)
            break
    return cleared


# -- sign-in -----------------------------------------------------------------------------------------
def sign_in(
    cloud: Cloud,
    *,
    methods: Sequence[str] | None = None,
    tenant_id: str | None = None,
    platform: Platform | None = None,
    renderer: DeviceCodeRenderer | None = None,
    timeout: float = 30.0,
    device_code_timeout: float = 900.0,
    persist: bool = False,
    allow_unencrypted_cache: bool = False,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> SignIn:
    """Sign in to ``cloud`` with the first method that works.

    Args:
        cloud: The cloud (its authority, and the Resource Manager scope used to verify).
        methods: Method names (see ``METHODS``), tried in order; None: the platform's defaults.
        tenant_id: The tenant; None: ``AZURE_TENANT_ID``, else the account's home tenant.
        platform: Where the kernel runs (None: detected from ``env``).
        renderer: Shows device codes; without one, ``device-code`` is unavailable.
        timeout: Seconds for each network request (and each ``az`` / ``pwsh`` call).
        device_code_timeout: Seconds to wait for a person at the browser or device-code page.
        persist: Keep interactive sign-ins for new kernels (token cache + saved account).
        allow_unencrypted_cache: With ``persist``, allow a plain 0600 cache file where there is
            no secret store.
        env: Environment variables to read (default ``os.environ``).
        cancel: Set it to abandon the sign-in (see the module docstring).

    Returns:
        The credential that worked, with the method, identity, tenant and every attempt.

    Raises:
        SignInError: No method worked, one failed, an argument is wrong, or it was cancelled.
        KeyboardInterrupt: Interrupted; the renderer was told and nothing was saved.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    wanted = tenant_id or environ.get("AZURE_TENANT_ID") or None
    tenant = _check_tenant(wanted) if wanted is not None else None
    ctx = _Context(
        cloud=cloud,
        env=environ,
        tenant_id=tenant,
        given_platform=platform,
        renderer=renderer,
        timeout=timeout,
        device_code_timeout=device_code_timeout,
        persist=persist,
        allow_unencrypted_cache=allow_unencrypted_cache,
        gate=_Gate(cancel),
    )
    chosen = _choose_methods(methods, ctx)
    _redact.install()
    attempts: list[Attempt] = []
    with _quiet_azure_identity():
        try:
            for method in chosen:
                ctx.gate.check()
                attempt, success = _attempt(ctx, method)
                attempts.append(attempt)
                _LOG.info("Sign-in %s", attempt)
                if success is not None:
                    return _complete(ctx, method, success, attempts)
                if attempt.outcome == "failed":
                    break
        except _Cancelled:
            raise SignInError(
                f"Sign-in to {cloud.name} was cancelled",
                "nothing was saved",
                "Run the command again to sign in",
                attempts=attempts,
            ) from None
    raise _chain_error(cloud, attempts)


def _complete(ctx: _Context, method: str, success: _Success, attempts: list[Attempt]) -> SignIn:
    """Mark the sign-in done (unless cancelled), then save it, then tell the renderer."""
    relay = success.relay
    try:
        ctx.gate.complete()
    except _Cancelled:
        if relay is not None:
            relay.finish("cancelled", "Sign-in cancelled; nothing was saved.")
        raise
    identity = success.identity
    if method == "managed-identity":
        identity = dataclasses.replace(identity, kind="managed identity")
    if success.record is not None and ctx.persist:
        note = _save_record(ctx.cloud, success.record)
        attempts[-1] = dataclasses.replace(attempts[-1], reason=f"{attempts[-1].reason}; {note}")
    if relay is not None:
        relay.finish("signed-in", f"Signed in as {identity.name}.")
    return SignIn(
        credential=success.credential,
        method=method,
        identity=identity,
        tenant_id=identity.tenant_id or ctx.tenant_id or "",
        attempts=attempts,
    )


def _check_tenant(tenant_id: str) -> str:
    if not _TENANT.match(tenant_id):
        raise SignInError(
            f"Tenant {quote_input(tenant_id)} is not a tenant id",
            "a tenant is a GUID or a domain such as contoso.onmicrosoft.com",
            "Check --tenant, AZURE_TENANT_ID or tenant_id in config.json",
        )
    return tenant_id


def _choose_methods(methods: Sequence[str] | None, ctx: _Context) -> list[str]:
    if methods is None:
        from .platform import default_methods

        return list(default_methods(ctx.platform()))
    chosen: list[str] = []
    for raw in methods:
        name = raw.strip().lower()
        if name not in METHODS:
            raise SignInError(
                f"Unknown sign-in method {quote_input(raw)}",
                f"the methods are {', '.join(METHODS)}",
                "For example: --auth env,device-code",
            )
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise SignInError("No sign-in method was given", f"the methods are {', '.join(METHODS)}", "Name at least one")
    return chosen


def _chain_error(cloud: Cloud, attempts: list[Attempt]) -> SignInError:
    tried = "; ".join(str(a) for a in attempts)
    failed = next((a for a in attempts if a.outcome == "failed"), None)
    if failed is not None:
        return SignInError(
            f"Could not sign in to {cloud.name} with {failed.method}", f"Tried {tried}", failed.hint, attempts=attempts
        )
    hints = "; ".join(f"{a.method}: {a.hint}" for a in attempts if a.hint)
    return SignInError(
        f"Could not sign in to {cloud.name}: no sign-in method is available here",
        f"Tried {tried}",
        f"Set one up ({hints})" if hints else "",
        attempts=attempts,
    )


# -- the machinery of one sign-in ------------------------------------------------------------------
class _Unavailable(Exception):
    """The method cannot run here (not configured, tool missing): try the next one."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason, self.hint = reason, hint


class _Failed(Exception):
    """The method ran and was refused: stop."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason, self.hint = reason, hint


class _Cancelled(Exception):
    """The caller gave up on this sign-in."""


class _Gate:
    """Stops an abandoned sign-in from sending requests or saving anything.

    Its ``check`` runs as azure-core's ``raw_request_hook`` / ``raw_response_hook`` on every
    credential built here, so once ``cancel`` is set no request leaves and no token response
    reaches MSAL's cache. After ``complete`` the sign-in belongs to the caller and the gate is open
    for good (a later cancel of the caller's other work must not break the credential).
    """

    def __init__(self, cancel: threading.Event | None) -> None:
        self._cancel = cancel
        self._lock = threading.Lock()
        self._interrupted = False
        self._done = False

    def cancelled(self) -> bool:
        with self._lock:
            wanted = self._interrupted or (self._cancel is not None and self._cancel.is_set())
            return wanted and not self._done

    def check(self, *_: object) -> None:
        if self.cancelled():
            raise _Cancelled

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True

    def complete(self) -> None:
        with self._lock:
            if self._interrupted or (self._cancel is not None and self._cancel.is_set()):
                raise _Cancelled
            self._done = True


class _PromptRelay:
    """The device-code ``prompt_callback``: turns the flow into a ``DeviceCodePrompt`` for the renderer."""

    def __init__(self, renderer: DeviceCodeRenderer, gate: _Gate) -> None:
        self.renderer = renderer
        self.gate = gate
        self.prompt: DeviceCodePrompt | None = None
        self._finished = False

    def __call__(self, verification_uri: str, user_code: str, expires_on: datetime) -> None:
        self.gate.check()
        expires_at = expires_on if expires_on.tzinfo else expires_on.replace(tzinfo=timezone.utc)
        self.prompt = DeviceCodePrompt(
            verification_uri=verification_uri,
            user_code=user_code,
            expires_at=expires_at,
            message=(
                f"To sign in, open {verification_uri} and enter the code {user_code} "
                f"(it expires at {expires_at.astimezone(timezone.utc):%H:%M:%S} UTC)."
            ),
        )
        self.renderer.show(self.prompt)

    def finish(self, outcome: str, detail: str) -> None:
        if self.prompt is not None and not self._finished:
            self._finished = True
            self.renderer.finish(outcome, detail)


@dataclass
class _Success:
    credential: TokenCredential
    identity: Identity
    reason: str
    record: AuthenticationRecord | None = None
    relay: _PromptRelay | None = None


@dataclass
class _Context:
    """Everything one ``sign_in`` call decided, shared by the method runners."""

    cloud: Cloud
    env: Mapping[str, str]
    tenant_id: str | None
    given_platform: Platform | None
    renderer: DeviceCodeRenderer | None
    timeout: float
    device_code_timeout: float
    persist: bool
    allow_unencrypted_cache: bool
    gate: _Gate

    def platform(self) -> Platform:
        if self.given_platform is None:
            from .platform import detect_platform

            self.given_platform = detect_platform(self.env)
        return self.given_platform

    def network(self) -> dict[str, Any]:
        """Keyword arguments every azure-identity credential passes to its HTTP pipeline."""
        kwargs: dict[str, Any] = {
            "connection_timeout": self.timeout,
            "read_timeout": self.timeout,
            "retry_total": RETRIES,
            "raw_request_hook": self.gate.check,
            "raw_response_hook": self.gate.check,
        }
        # The sync credentials trust REQUESTS_CA_BUNDLE (through requests) but not SSL_CERT_FILE;
        # pass the bundle explicitly so either variable, in ``env`` or the process, works.
        bundle = next((self.env[k] for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE") if self.env.get(k)), None)
        if bundle:
            kwargs["connection_verify"] = bundle
        return kwargs

    def entra(self, *, authority: bool = True) -> dict[str, Any]:
        """``network()`` plus the cloud's authority, instance discovery and multi-tenant settings."""
        kwargs = {
            **self.network(),
            # MSAL would ask login.microsoftonline.com about any other authority (and fail).
            "disable_instance_discovery": not self.cloud.is_public_authority,
            "additionally_allowed_tenants": ["*"],
        }
        if authority:
            kwargs["authority"] = self.cloud.authority_host
        return kwargs


def _attempt(ctx: _Context, method: str) -> tuple[Attempt, _Success | None]:
    runner = _RUNNERS[method]
    try:
        success = runner(ctx)
    except _Cancelled:
        raise
    except _Unavailable as exc:
        return Attempt(method, "unavailable", exc.reason, exc.hint), None
    except _Failed as exc:
        return Attempt(method, "failed", exc.reason, exc.hint), None
    except Exception as exc:  # boundary: whatever a credential raised becomes this attempt's reason
        if ctx.gate.cancelled():
            raise _Cancelled from None
        _LOG.debug("Sign-in method %s raised %s", method, type(exc).__name__, exc_info=True)
        from azure.identity import CredentialUnavailableError

        if isinstance(exc, CredentialUnavailableError):
            return Attempt(method, "unavailable", _reason(exc), _UNAVAILABLE_HINTS[method]), None
        return Attempt(method, "failed", _reason(exc), _failure_hint(method, exc, ctx)), None
    return Attempt(method, "ok", success.reason, ""), success


def _verified(ctx: _Context, credential: Any, what: str) -> _Success:
    info = credential.get_token_info(ctx.cloud.arm_scope)
    identity = describe_token_identity(info.token)
    return _Success(credential, identity, f"signed in as {identity.name} ({what})")


# -- the methods -------------------------------------------------------------------------------------
def _env(ctx: _Context) -> _Success:
    env = ctx.env
    client_id = env.get("AZURE_CLIENT_ID")
    secret = env.get("AZURE_CLIENT_SECRET")
    certificate = env.get("AZURE_CLIENT_CERTIFICATE_PATH")
    missing = [] if client_id else ["AZURE_CLIENT_ID"]
    if not (secret or certificate):
        missing.append("AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)")
    if not ctx.tenant_id:
        missing.append("AZURE_TENANT_ID")
    if missing:
        raise _Unavailable(f"not set: {', '.join(missing)}", _UNAVAILABLE_HINTS["env"])
    from azure.identity import CertificateCredential, ClientSecretCredential

    if secret:
        credential: Any = ClientSecretCredential(ctx.tenant_id, client_id, secret, **ctx.entra())
        return _verified(ctx, credential, "client secret")
    try:
        credential = CertificateCredential(
            ctx.tenant_id,
            client_id,
            certificate,
            password=env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or None,
            send_certificate_chain=env.get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "").lower() in ("1", "true"),
            **ctx.entra(),
        )
    except (OSError, ValueError) as exc:
        raise _Failed(
            f"the certificate in AZURE_CLIENT_CERTIFICATE_PATH could not be loaded ({_reason(exc)})",
            "Point AZURE_CLIENT_CERTIFICATE_PATH at a PEM or PKCS12 file with the private key "
            "(and set AZURE_CLIENT_CERTIFICATE_PASSWORD if it is encrypted)",
        ) from exc
    return _verified(ctx, credential, "certificate")


def _workload_identity(ctx: _Context) -> _Success:
    env = ctx.env
    token_file = env.get("AZURE_FEDERATED_TOKEN_FILE")
    client_id = env.get("AZURE_CLIENT_ID")
    missing = [n for n, v in (("AZURE_FEDERATED_TOKEN_FILE", token_file), ("AZURE_CLIENT_ID", client_id)) if not v]
    if not ctx.tenant_id:
        missing.append("AZURE_TENANT_ID")
    if missing:
        raise _Unavailable(f"not set: {', '.join(missing)}", _UNAVAILABLE_HINTS["workload-identity"])
    from azure.identity import WorkloadIdentityCredential

    credential = WorkloadIdentityCredential(
        tenant_id=ctx.tenant_id, client_id=client_id, token_file_path=token_file, **ctx.entra()
    )
    return _verified(ctx, credential, "federated token")


def _managed_identity(ctx: _Context) -> _Success:
    env = ctx.env
    if not _identity_endpoint(env):
        raise _Unavailable(
            "no identity endpoint is configured here (IDENTITY_ENDPOINT with IDENTITY_HEADER, or MSI_ENDPOINT)",
            _UNAVAILABLE_HINTS["managed-identity"],
        )
    # ManagedIdentityCredential reads os.environ itself; without an endpoint there it would probe
    # the metadata address 169.254.169.254, which this package never does.
    if not _identity_endpoint(os.environ):
        raise _Unavailable(
            "the identity endpoint is set in env= but not in this process's environment",
            "Set IDENTITY_ENDPOINT / MSI_ENDPOINT in os.environ",
        )
    cloud_shell = bool(env.get("MSI_ENDPOINT")) and not env.get("MSI_SECRET") and not env.get("IDENTITY_ENDPOINT")
    # Azure ML compute names its user-assigned identity in DEFAULT_IDENTITY_CLIENT_ID; elsewhere
    # AZURE_CLIENT_ID selects one (as DefaultAzureCredential does). Cloud Shell takes no client id.
    client_id = None if cloud_shell else (env.get("DEFAULT_IDENTITY_CLIENT_ID") or env.get("AZURE_CLIENT_ID") or None)
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential(client_id=client_id, **ctx.network())
    return _verified(ctx, credential, "managed identity")


def _identity_endpoint(env: Mapping[str, str]) -> bool:
    """An endpoint azure-identity uses instead of IMDS (the rule of ``platform.Platform.has_identity_endpoint``)."""
    if env.get("IDENTITY_ENDPOINT") and (env.get("IDENTITY_HEADER") or env.get("IMDS_ENDPOINT")):
        return True
    return bool(env.get("MSI_ENDPOINT"))


def _cli(ctx: _Context) -> _Success:
    if shutil.which("az", path=ctx.env.get("PATH")) is None:
        raise _Unavailable("the Azure CLI (az) is not installed or not on PATH", _UNAVAILABLE_HINTS["cli"])
    from azure.identity import AzureCliCredential

    credential = AzureCliCredential(
        tenant_id=ctx.tenant_id or "", additionally_allowed_tenants=["*"], process_timeout=max(1, int(ctx.timeout))
    )
    return _verified(ctx, credential, "Azure CLI")


def _powershell(ctx: _Context) -> _Success:
    names = ("pwsh", "powershell") if sys.platform.startswith("win") else ("pwsh",)
    if all(shutil.which(n, path=ctx.env.get("PATH")) is None for n in names):
        raise _Unavailable("PowerShell (pwsh) is not installed or not on PATH", _UNAVAILABLE_HINTS["powershell"])
    from azure.identity import AzurePowerShellCredential

    credential = AzurePowerShellCredential(
        tenant_id=ctx.tenant_id or "", additionally_allowed_tenants=["*"], process_timeout=max(1, int(ctx.timeout))
    )
    return _verified(ctx, credential, "Azure PowerShell")


def _browser(ctx: _Context) -> _Success:
    platform = ctx.platform()
    if not platform.can_open_browser:
        raise _Unavailable(f"no browser can be opened here ({platform.label})", _UNAVAILABLE_HINTS["browser"])
    from azure.identity import InteractiveBrowserCredential

    options = _cache_options(ctx)
    saved = _silent(ctx, InteractiveBrowserCredential, options)
    if saved is not None:
        return saved
    credential = InteractiveBrowserCredential(
        tenant_id=ctx.tenant_id or "organizations",
        timeout=max(1, int(ctx.device_code_timeout)),
        # Later token requests never open a browser by surprise; they raise instead.
        disable_automatic_authentication=True,
        cache_persistence_options=options,
        **ctx.entra(),
    )
    return _interactive(ctx, "browser", credential, None)


def _device_code(ctx: _Context) -> _Success:
    if ctx.renderer is None:
        raise _Unavailable("there is nothing to show a device code on (no renderer)", _UNAVAILABLE_HINTS["device-code"])
    from azure.identity import DeviceCodeCredential

    options = _cache_options(ctx)
    saved = _silent(ctx, DeviceCodeCredential, options)
    if saved is not None:
        return saved
    relay = _PromptRelay(ctx.renderer, ctx.gate)
    credential = DeviceCodeCredential(
        tenant_id=ctx.tenant_id or "organizations",
        prompt_callback=relay,
        timeout=max(1, int(ctx.device_code_timeout)),
        # Later token requests never print a new code into some old cell; they raise instead.
        disable_automatic_authentication=True,
        cache_persistence_options=options,
        **ctx.entra(),
    )
    return _interactive(ctx, "device-code", credential, relay)


_RUNNERS: Mapping[str, Callable[[_Context], _Success]] = {
    "env": _env,
    "workload-identity": _workload_identity,
    "managed-identity": _managed_identity,
    "cli": _cli,
    "powershell": _powershell,
    "browser": _browser,
    "device-code": _device_code,
}

_UNAVAILABLE_HINTS: Mapping[str, str] = {
    "env": "For a service principal set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET "
    "(or AZURE_CLIENT_CERTIFICATE_PATH)",
    "workload-identity": "On Kubernetes, enable Azure workload identity for the pod "
    "(it sets AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID)",
    "managed-identity": "Managed identity works on Azure compute that sets IDENTITY_ENDPOINT or MSI_ENDPOINT; "
    "on an Azure VM run az login --identity and use cli",
    "cli": "Install the Azure CLI (https://aka.ms/installazurecli), then run az login",
    "powershell": "Install PowerShell 7 (https://aka.ms/install-powershell) and the Az module "
    "(Install-Module Az), then run Connect-AzAccount",
    "browser": "Use device-code instead",
    "device-code": "Pass a renderer, e.g. jupyter_amlflow.devicecode.TextDeviceCodeRenderer()",
}

_FAILURE_HINTS: Mapping[str, str] = {
    "env": "Check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (the secret's value, not its id, and not expired) or the "
    "certificate, and AZURE_TENANT_ID; or unset them to skip env",
    "workload-identity": "Check the app's federated credential (issuer and subject) and AZURE_CLIENT_ID / "
    "AZURE_TENANT_ID",
    "managed-identity": "Check that this compute has a managed identity with access (and DEFAULT_IDENTITY_CLIENT_ID "
    "or AZURE_CLIENT_ID for a user-assigned one)",
    "cli": "Run az login again (az account show tells who is signed in)",
    "powershell": "Run Connect-AzAccount again",
    "browser": "Try again, or use device-code",
    "device-code": "Try again, or choose another method with --auth",
}


def _failure_hint(method: str, exc: BaseException, ctx: _Context) -> str:
    text = _chain_text(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"Python does not trust the certificate of {ctx.cloud.authority_host}: point REQUESTS_CA_BUNDLE "
            "at a CA bundle that includes your network's root certificate"
        )
    if any(s in text for s in ("timed out", "Timeout", "ConnectionError", "Connection refused", "Failed to resolve")):
        return (
            f"Check that this machine can reach {ctx.cloud.authority_host} (a proxy needs HTTPS_PROXY), "
            "or allow more time (timeout=)"
        )
    if method == "cli" and ctx.tenant_id:
        return f"Run az login --tenant {ctx.tenant_id}"
    return _FAILURE_HINTS[method]


# -- interactive methods and persistence -------------------------------------------------------------
def _interactive(ctx: _Context, method: str, credential: Any, relay: _PromptRelay | None) -> _Success:
    scope = ctx.cloud.arm_scope
    try:
        record = credential.authenticate(scopes=[scope])
        info = credential.get_token_info(scope)
    except KeyboardInterrupt:
        ctx.gate.interrupt()
        if relay is not None:
            relay.finish("cancelled", "Interrupted; nothing was saved.")
        raise
    except Exception as exc:  # boundary: classified into declined / expired / failed for the person
        cancelled = isinstance(exc, _Cancelled) or ctx.gate.cancelled()
        if cancelled:
            if relay is not None:
                relay.finish("cancelled", "Sign-in cancelled; nothing was saved.")
            raise _Cancelled from None
        if _no_secret_store(exc):
            raise _no_secret_store_failure() from exc
        from azure.identity import CredentialUnavailableError

        if isinstance(exc, CredentialUnavailableError):
            raise _Unavailable(_reason(exc), _UNAVAILABLE_HINTS[method]) from exc
        outcome, reason, hint = _interactive_failure(method, exc, relay, ctx)
        if relay is not None:
            relay.finish(outcome, reason[0].upper() + reason[1:] + ".")
        raise _Failed(reason, hint) from exc
    identity = describe_token_identity(info.token)
    return _Success(credential, identity, f"signed in as {identity.name}", record=record, relay=relay)


def _interactive_failure(
    method: str, exc: BaseException, relay: _PromptRelay | None, ctx: _Context
) -> tuple[str, str, str]:
    """``(outcome, reason, hint)`` for a failed browser / device-code sign-in."""
    prompt = relay.prompt if relay is not None else None
    error = _entra_error(exc)
    again = "Run the command again"
    if error in ("authorization_declined", "access_denied"):
        return "declined", "the sign-in was declined", f"{again} and approve it, or choose another method with --auth"
    timed_out = "Timed out waiting" in _reason(exc) or error in ("expired_token", "code_expired")
    if timed_out and prompt is not None and time.time() >= prompt.expires_at.timestamp() - 2:
        return (
            "expired",
            f"the code {prompt.user_code} expired before anyone signed in with it",
            f"{again} and enter the new code before it expires",
        )
    if timed_out:
        return (
            "expired",
            f"no one finished signing in within {ctx.device_code_timeout:g} s",
            f"{again}, or allow more time (device_code_timeout=)",
        )
    reason = _reason(exc)
    if prompt is None and method == "device-code":
        reason = f"could not start a device-code sign-in ({reason})"
    return "failed", reason, _failure_hint(method, exc, ctx)


def _entra_error(exc: BaseException) -> str | None:
    """The ``error`` field of the Entra ID response behind ``exc`` (MSAL public clients attach it)."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        body = json.loads(response.text())
    except (ValueError, TypeError, AttributeError):  # not a JSON error body: no code to read
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _silent(ctx: _Context, credential_class: Any, options: TokenCachePersistenceOptions | None) -> _Success | None:
    """Sign in with the saved account and the persisted cache, without a person; None if that can't be done."""
    if options is None:
        return None
    record = _load_record(ctx.cloud)
    if record is None:
        return None
    # With a record, azure-identity takes the authority and client id from it: no authority= here.
    credential = credential_class(
        authentication_record=record,
        tenant_id=ctx.tenant_id,
        disable_automatic_authentication=True,
        cache_persistence_options=options,
        **ctx.entra(authority=False),
    )
    try:
        info = credential.get_token_info(ctx.cloud.arm_scope)
    except Exception as exc:  # boundary: any failure here only means "sign in interactively"
        if ctx.gate.cancelled():
            raise _Cancelled from None
        if _no_secret_store(exc):
            raise _no_secret_store_failure() from exc
        _LOG.info("The saved sign-in of %s needs you again (%s)", _display(record.username), _reason(exc))
        return None
    identity = describe_token_identity(info.token)
    return _Success(credential, identity, f"signed in as {identity.name} with the saved sign-in, no prompt")


def _cache_options(ctx: _Context) -> TokenCachePersistenceOptions | None:
    if not ctx.persist:
        return None
    from azure.identity import TokenCachePersistenceOptions

    if os.name != "nt":
        _prepare_cache_dir(check=ctx.allow_unencrypted_cache)
    return TokenCachePersistenceOptions(name=CACHE_NAME, allow_unencrypted_storage=ctx.allow_unencrypted_cache)


def _prepare_cache_dir(*, check: bool) -> None:
    """Create the cache directory 0700 (msal-extensions would make it 0755); refuse lax permissions.

    A plain cache file holds refresh tokens: it must be readable by this user alone, and so must
    its directory.
    """
    directory = _cache_dir()
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    if not check:
        return
    for path in (directory, *token_cache_paths(CACHE_NAME)):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        mode = st.st_mode & 0o777
        others = mode & 0o077
        foreign = hasattr(os, "getuid") and st.st_uid != os.getuid()
        if others or foreign:
            fix = f"chmod {'700' if path.is_dir() else '600'} {path}"
            why = f"it belongs to another user (uid {st.st_uid})" if foreign else f"its mode is {mode:o}"
            raise _Failed(
                f"the token cache {'directory' if path.is_dir() else 'file'} {path} is readable by others ({why})",
                f"Run: {fix}" if not foreign else f"Remove {path}, or do not persist the sign-in",
            )


def _no_secret_store(exc: BaseException) -> bool:
    text = _chain_text(exc)
    return "Cache encryption is impossible" in text or "persistent cache is not available" in text


def _no_secret_store_failure() -> _Failed:
    return _Failed(
        "this machine has no secret store to keep the sign-in encrypted (libsecret is missing or unusable, "
        "e.g. over SSH)",
        "Allow a plain cache file only you can read: %config AmlflowMagics.allow_unencrypted_token_cache = True "
        "(Python: allow_unencrypted_cache=True), or sign in without persistence",
    )


def _load_record(cloud: Cloud) -> AuthenticationRecord | None:
    from azure.identity import AuthenticationRecord

    path = record_path(cloud.name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        _LOG.warning("Ignoring the saved sign-in %s: %s", path, exc)
        return None
    try:
        record = AuthenticationRecord.deserialize(text)
    except (ValueError, KeyError, TypeError):
        _LOG.warning("Ignoring the saved sign-in %s: it is not a sign-in record", path)
        return None
    if record.authority.lower() != _authority_netloc(cloud):
        # Saved for another authority (a cloud redefined, a sandbox on another port).
        _LOG.info("Ignoring the saved sign-in %s: it is for %s", path, _display(record.authority))
        return None
    return record


def _save_record(cloud: Cloud, record: AuthenticationRecord) -> str:
    """Write the account record (no secret in it) 0600; returns a note for the attempt's reason."""
    from azure.identity import AuthenticationRecord

    # MSAL caches tokens under the authority we signed in with, which the id token's issuer may
    # spell differently (China); pin the record to the cloud's authority so the lookup matches.
    pinned = AuthenticationRecord(
        record.tenant_id, record.client_id, _authority_netloc(cloud), record.home_account_id, record.username
    )
    path = record_path(cloud.name)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(pinned.serialize())
        os.replace(temporary, path)
    except OSError as exc:
        _LOG.warning("Could not save the sign-in to %s: %s", path, exc)
        return f"not saved for new kernels ({exc.strerror or exc})"
    return "saved for new kernels"


def _authority_netloc(cloud: Cloud) -> str:
    return urlsplit(cloud.authority_host).netloc.lower()


# -- small helpers -----------------------------------------------------------------------------------
def _reason(exc: BaseException) -> str:
    """An exception's message as one short line (Entra ID appends trace ids on later lines)."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    line = str(text).replace("\r", "\n").split("\n", 1)[0].strip()
    line = line.removeprefix("Authentication failed: ").strip()
    line = "".join(ch for ch in line if ch.isprintable())
    return (line[:237] + "...") if len(line) > 240 else (line or type(exc).__name__)


def _chain_text(exc: BaseException) -> str:
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


@contextlib.contextmanager
def _quiet_azure_identity() -> Iterator[None]:
    """Keep azure-identity's per-credential warnings out of notebook output during the chain.

    With no logging configured, Python prints WARNING records to stderr ("last resort"), so each
    unavailable method would leave a red line in the cell. A handler on ``azure.identity`` stops
    that while the chain runs; records still propagate to any handlers the user configured, and
    the final ``SignInError`` carries every reason.
    """
    handler = logging.NullHandler()
    logger = logging.getLogger("azure.identity")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
