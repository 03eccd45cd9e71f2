"""Sign-in: a named chain of methods, device codes shown by the caller, tenants, a remembered login.

This is the only module that builds credentials; azure-identity is imported inside functions, so
``import jupyter_amlflow.auth`` stays cheap. ``sign_in`` tries the methods in the order given:

=======================  ===========================================================  ==========================
method                   available when                                               credential
=======================  ===========================================================  ==========================
``databricks-secrets``   ``dbutils`` is in the notebook and a secret scope is named    ClientSecretCredential
                         (``--secret-scope``): its keys ``tenant-id``, ``client-id``,
                         ``client-secret`` (``dbutils.secrets.get``)
``synapse-keyvault``     ``mssparkutils`` / ``notebookutils`` is in the notebook and   ClientSecretCredential
                         a Key Vault is named (``--key-vault``): the same three
                         secrets (``mssparkutils.credentials.getSecret``)
``env``                  ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET`` or              ClientSecretCredential /
                         ``AZURE_CLIENT_CERTIFICATE_PATH`` (+ ``..._PASSWORD``),       CertificateCredential
                         and a tenant
``workload-identity``    ``AZURE_FEDERATED_TOKEN_FILE`` + ``AZURE_CLIENT_ID`` + tenant  WorkloadIdentityCredential
``managed-identity``     ``IDENTITY_ENDPOINT`` or ``MSI_ENDPOINT`` is set (the         ManagedIdentityCredential
                         metadata address 169.254.169.254 is never probed)
``synapse-token``        ``mssparkutils`` / ``notebookutils`` is in the notebook:      TokenLibraryCredential
                         Synapse's token library (``getToken``), optionally for a
                         linked service (``--linked-service``)
``cli``                  ``az`` is on PATH and logged in                               AzureCliCredential
``powershell``           ``pwsh`` is on PATH with Az and ``Connect-AzAccount``         AzurePowerShellCredential
``browser``              the platform can open a browser                               InteractiveBrowserCredential
``device-code``          a renderer was given to show the code                         DeviceCodeCredential
=======================  ===========================================================  ==========================

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

Notebook platforms: the Databricks and Synapse methods take ``dbutils`` / ``mssparkutils`` (or
``notebookutils``) from ``user_ns`` (the notebook's namespace; ``__main__``'s globals when None)
and where to look from ``PlatformOptions``. The secrets they read go into the credential and
nowhere else: no message, log record or display names a value, only scope, vault and key names.
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
import stat
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
    "PlatformOptions",
    "SignIn",
    "SwappableCredential",
    "TokenLibraryCredential",
    "credential_for_tenant",
    "describe_token_identity",
    "logout",
    "platform_options",
    "record_path",
    "sign_in",
    "token_cache_paths",
]

_LOG = logging.getLogger(__name__)

# In the order platforms try them: configured service principals, the machine's or platform's
# own identity, developer tools, then a person (see platform.default_methods).
METHODS = (
    "databricks-secrets",
    "synapse-keyvault",
    "env",
    "workload-identity",
    "managed-identity",
    "synapse-token",
    "cli",
    "powershell",
    "browser",
    "device-code",
)
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
    # Hosts whose sign-in page may be shown as a link (``Cloud.device_login_hosts``); empty: any
    # https host (a custom cloud's own). The page comes from the server's answer.
    link_hosts: tuple[str, ...] = ()


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


# Names (never values) of the three secrets a service principal needs; also the default keys.
SECRET_NAMES = ("tenant-id", "client-id", "client-secret")
# Databricks scope and key names (letters, digits, "-", "_", "."; at most 128); Key Vault secret
# names (letters, digits, "-") are a subset.
_STORE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class PlatformOptions:
    """Where a Databricks or Synapse notebook keeps what sign-in needs: names, never values.

    Args:
        secret_scope: Databricks secret scope holding a service principal (``databricks-secrets``).
        key_vault: Key Vault holding one (``synapse-keyvault``): its name, or its URL where
            Synapse needs the full host name (national clouds).
        linked_service: Synapse linked service. With ``key_vault``, the Key Vault's (the
            workspace's identity then reads the secrets); without, the one whose identity
            ``getToken`` gives tokens of (``synapse-token``).
        tenant_key: Key (Key Vault: secret name) of the tenant id.
        client_id_key: Key of the application (client) id.
        client_secret_key: Key of the client secret.
    """

    secret_scope: str | None = None
    key_vault: str | None = None
    linked_service: str | None = None
    tenant_key: str = SECRET_NAMES[0]
    client_id_key: str = SECRET_NAMES[1]
    client_secret_key: str = SECRET_NAMES[2]

    @property
    def keys(self) -> dict[str, str]:
        """``{"tenant-id": key, "client-id": key, "client-secret": key}``."""
        return dict(zip(SECRET_NAMES, (self.tenant_key, self.client_id_key, self.client_secret_key), strict=True))


def platform_options(
    *,
    secret_scope: str | None = None,
    secret_keys: str | Mapping[str, str] | None = None,
    key_vault: str | None = None,
    linked_service: str | None = None,
) -> PlatformOptions:
    """Check and combine the notebook-platform sign-in options (``--secret-scope`` and friends).

    Args:
        secret_scope: Databricks secret scope.
        secret_keys: Other key names, as ``"client-id=app-id,client-secret=app-secret"`` or a
            mapping; the names are ``tenant-id``, ``client-id``, ``client-secret``.
        key_vault: Synapse: Key Vault name or URL.
        linked_service: Synapse linked service name.

    Raises:
        SignInError: A name is malformed, or ``secret_keys`` names an unknown secret.
    """
    example = "For example: --secret-keys client-id=aml-app-id,client-secret=aml-app-secret"
    pairs: list[tuple[str, str]] = []
    if isinstance(secret_keys, str):
        for item in filter(None, (part.strip() for part in secret_keys.split(","))):
            name, sep, key = item.partition("=")
            if not sep:
                raise SignInError(f"--secret-keys wants NAME=KEY pairs, got {quote_input(item)}", "", example)
            pairs.append((name.strip(), key.strip()))
    elif secret_keys is not None:
        pairs = [(str(name), str(key)) for name, key in secret_keys.items()]
    keys: dict[str, str] = {}
    for name, key in pairs:
        if name.lower() not in SECRET_NAMES:
            raise SignInError(
                f"Unknown secret {quote_input(name)} in --secret-keys",
                f"the names are {', '.join(SECRET_NAMES)}",
                example,
            )
        keys[name.lower()] = _store_name("key", key)
    return PlatformOptions(
        secret_scope=_store_name("--secret-scope", secret_scope) if secret_scope else None,
        key_vault=_free_name("--key-vault", key_vault, "Give the vault's name, or its URL in national clouds")
        if key_vault
        else None,
        linked_service=_free_name(
            "--linked-service", linked_service, "Give the name Synapse Studio shows under Manage > Linked services"
        )
        if linked_service
        else None,
        tenant_key=keys.get("tenant-id", SECRET_NAMES[0]),
        client_id_key=keys.get("client-id", SECRET_NAMES[1]),
        client_secret_key=keys.get("client-secret", SECRET_NAMES[2]),
    )


def _store_name(what: str, value: str) -> str:
    value = value.strip()
    if not _STORE_NAME.fullmatch(value):
        raise SignInError(
            f"{what} {quote_input(value)} is not a secret scope or key name",
            "names have 1-128 letters, digits, '-', '_' or '.'",
            "Check the name: dbutils.secrets.listScopes() and dbutils.secrets.list(SCOPE) show them",
        )
    return value


def _free_name(what: str, value: str, fix: str) -> str:
    """A Key Vault or linked service name: any printable text without spaces at the ends."""
    value = value.strip()
    if not value or len(value) > 260 or not value.isprintable():
        raise SignInError(
            f"{what} {quote_input(value)} is not a name", "it must be printable text of at most 260 characters", fix
        )
    return value


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


class TokenLibraryCredential:
    """Azure Synapse's token library (``mssparkutils.credentials.getToken``) as an azure-core credential.

    ``getToken(audience, name)`` answers a bare token string for an audience key, for the
    notebook's identity or, with ``name``, a linked service's (Synapse docs, "Secure credentials
    with linked services using the mssparkutils": ``getToken(audience: String, name: String)``,
    audiences ``AzureManagement``, ``Storage``, ``Vault``...). This maps scopes to those keys,
    reads each token's expiry from its ``exp`` claim, unverified (as azureml-mlflow's own
    ``_ArcadiaAuthentication`` does), keeps the token until ``REFRESH_MARGIN`` seconds before
    then, and asks the library again after that (it renews its own tokens). A token that comes
    back already expired is asked for once more, then refused.

    Args:
        credentials: ``mssparkutils.credentials`` (or ``notebookutils.credentials``).
        cloud: The cloud: its Resource Manager scope is the ``AzureManagement`` audience.
        linked_service: Get this linked service's tokens instead of the notebook's.
    """

    REFRESH_MARGIN = 300.0
    # Scopes (without "/.default") the library has audience keys for, besides the cloud's ARM.
    _AUDIENCES: Mapping[str, str] = {
        "https://management.core.windows.net": "AzureManagement",
        "https://management.azure.com": "AzureManagement",
        "https://storage.azure.com": "Storage",
        "https://vault.azure.net": "Vault",
    }

    def __init__(self, credentials: Any, cloud: Cloud, linked_service: str | None = None) -> None:
        self._credentials = credentials
        self._cloud = cloud
        self.linked_service = linked_service
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, int]] = {}

    def audience_key(self, scope: str) -> str:
        """The library's audience key for an azure-identity scope.

        Raises:
            CredentialUnavailableError: The library has no audience for it.
        """
        resource = scope.removesuffix("/.default").rstrip("/").lower()
        if resource == self._cloud.resource_manager.rstrip("/").lower():
            return "AzureManagement"
        key = self._AUDIENCES.get(resource)
        if key is None:
            from azure.identity import CredentialUnavailableError

            raise CredentialUnavailableError(f"the Synapse token library has no audience for the scope {scope}")
        return key

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token for ``scopes`` (one audience) from the token library."""
        from azure.core.credentials import AccessToken

        token, expires_on = self._token(scopes, tenant_id, fresh=bool(claims))
        return AccessToken(token, expires_on)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        """A token for ``scopes`` with its expiry (``refresh_on`` left to the caller's policy)."""
        from azure.core.credentials import AccessTokenInfo

        opts = dict(options or {})
        token, expires_on = self._token(scopes, opts.get("tenant_id"), fresh=bool(opts.get("claims")))
        return AccessTokenInfo(token, expires_on)

    def _token(self, scopes: Sequence[str], tenant_id: str | None, *, fresh: bool) -> tuple[str, int]:
        if len(scopes) != 1:
            raise ValueError("TokenLibraryCredential takes exactly one scope")
        key = self.audience_key(scopes[0])
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or fresh or cached[1] - time.time() < self.REFRESH_MARGIN:
                cached = self._ask(key)
                if cached[1] <= time.time():  # the library handed out a stale token: ask once more
                    cached = self._ask(key)
                if cached[1] <= time.time():
                    from azure.core.exceptions import ClientAuthenticationError

                    expired = datetime.fromtimestamp(cached[1], timezone.utc)
                    raise ClientAuthenticationError(
                        message=f"the Synapse token library returned a token that expired at {expired:%H:%M:%S} UTC"
                    )
                self._cache[key] = cached
        tid = _display(_unverified_claims(cached[0]).get("tid"))
        if tenant_id and tid and tenant_id.lower() != tid.lower():
            from azure.core.exceptions import ClientAuthenticationError

            raise ClientAuthenticationError(
                message=f"the Synapse token library gives tokens of tenant {tid} only, not of {_display(tenant_id)}"
            )
        return cached

    def _ask(self, key: str) -> tuple[str, int]:
        from azure.core.exceptions import ClientAuthenticationError

        call = f"getToken({key!r}" + (f", {self.linked_service!r})" if self.linked_service else ")")
        try:
            if self.linked_service:
                token = self._credentials.getToken(key, self.linked_service)
            else:
                token = self._credentials.getToken(key)
        except Exception as exc:  # boundary: py4j errors from the platform, whatever their class
            raise ClientAuthenticationError(
                message=f"mssparkutils.credentials.{call} failed: {_platform_error(exc)}"
            ) from exc
        if not isinstance(token, str) or not token:
            raise ClientAuthenticationError(message=f"mssparkutils.credentials.{call} returned no token")
        exp = _unverified_claims(token).get("exp")
        if not isinstance(exp, (int, float)):
            # An opaque token: its lifetime is unknown, so keep it no longer than the margin.
            _LOG.debug("The token library's %s token has no exp claim", key)
            exp = time.time() + self.REFRESH_MARGIN + 1
        return token, int(exp)

    def __repr__(self) -> str:
        via = f", linked_service={self.linked_service!r}" if self.linked_service else ""
        return f"TokenLibraryCredential({self._cloud.name}{via})"


def _platform_error(exc: BaseException) -> str:
    """The informative line of a notebook platform's error, printable, short.

    dbutils and mssparkutils wrap Java exceptions (py4j): ``"An error occurred while calling
    o123.get.\n: java.lang.IllegalArgumentException: Secret does not exist with scope: s and key:
    k\n\tat ..."``. The line naming the Java exception carries the message; stack lines do not.
    """
    lines = [line.strip() for line in str(exc).replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line and not line.startswith("at ")]
    java = re.compile(r"^:?\s*(?:[\w$]+\.)*[\w$]*(?:Exception|Error):\s*(.+)$")
    found = next((m.group(1) for line in lines if (m := java.match(line))), lines[0] if lines else type(exc).__name__)
    # Key Vault ends every message with a link to its troubleshooting page; the reason is before it.
    found = re.sub(r"\s*For help resolving this issue.*$", "", found)
    return _reason(RuntimeError(found))


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
    from .userfiles import state_dir

    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", cloud_name) or "cloud"
    return state_dir() / f"auth-record-{safe}.json"


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
    from .userfiles import state_dir

    records = sorted(state_dir().glob("auth-record-*.json"))
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
    user_ns: Mapping[str, object] | None = None,
    options: PlatformOptions | None = None,
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
        user_ns: The notebook's namespace, where ``dbutils`` / ``mssparkutils`` live (None:
            ``__main__``'s globals, which is the namespace in an IPython kernel).
        options: Secret scope, Key Vault, linked service and key names for the notebook
            platforms' methods (see ``platform_options``).

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
        user_ns=user_ns,
        options=options or PlatformOptions(),
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

    def __init__(self, renderer: DeviceCodeRenderer, gate: _Gate, link_hosts: tuple[str, ...] = ()) -> None:
        self.renderer = renderer
        self.gate = gate
        self.link_hosts = link_hosts
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
            link_hosts=self.link_hosts,
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
    user_ns: Mapping[str, object] | None = None
    options: PlatformOptions = dataclasses.field(default_factory=PlatformOptions)

    def platform(self) -> Platform:
        if self.given_platform is None:
            from .platform import detect_platform

            self.given_platform = detect_platform(self.env, self.user_ns)
        return self.given_platform

    def notebook_object(self, *names: str) -> tuple[str, Any] | None:
        """The first of ``names`` bound in the notebook's namespace, with its value."""
        namespace = self.user_ns
        if namespace is None:
            # An IPython kernel's user namespace is __main__'s dict (InteractiveShell.init_sys_modules).
            main = sys.modules.get("__main__")
            namespace = vars(main) if main is not None else {}
        return next(((name, namespace[name]) for name in names if namespace.get(name) is not None), None)

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
    relay = _PromptRelay(ctx.renderer, ctx.gate, ctx.cloud.device_login_hosts)
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


# -- notebook platforms ------------------------------------------------------------------------------
class _SecretStore(Protocol):
    """Where a notebook platform keeps a service principal's three values."""

    where: str

    def read(self, name: str, key: str) -> str:
        """The value of ``key`` (which holds ``name``: tenant-id, client-id, client-secret)."""


class _DatabricksScope:
    """A Databricks secret scope, read with the notebook's own access through ``dbutils.secrets``."""

    def __init__(self, dbutils: Any, scope: str) -> None:
        self.secrets = dbutils.secrets
        self.scope = scope
        self.where = f"secret scope {quote_input(scope)}"

    def read(self, name: str, key: str) -> str:
        try:
            # dbutils.secrets.get(scope=, key=) (Databricks docs, "Secrets utility (dbutils.secrets)").
            # The call behind it answers RESOURCE_DOES_NOT_EXIST for a missing scope or key and
            # PERMISSION_DENIED without READ on the scope (Secrets API, GET /api/2.0/secrets/get);
            # in a notebook they arrive as py4j-wrapped Java exceptions, e.g.
            # "java.lang.IllegalArgumentException: Secret does not exist with scope: s and key: k".
            return str(self.secrets.get(scope=self.scope, key=key))
        except Exception as exc:  # boundary: the platform's errors, classified by what they say
            raise self._failure(name, key, exc) from exc

    def _failure(self, name: str, key: str, exc: BaseException) -> _Failed:
        if _denied(exc):
            return self._denied(exc)
        # The message does not reliably say whether the scope or the key is missing; listing the
        # scope (key names only, never values) does.
        try:
            listed = [str(getattr(item, "key", item)) for item in self.secrets.list(self.scope)]
        except Exception as list_exc:  # boundary: as above
            if _denied(list_exc):
                return self._denied(list_exc)
            return _Failed(
                f"there is no {self.where} ({_platform_error(list_exc)})",
                "Check the name (dbutils.secrets.listScopes() lists the scopes you can read), or create it: "
                f"databricks secrets create-scope {self.scope}",
            )
        if key in listed:
            return _Failed(f"could not read {quote_input(key)} from {self.where} ({_platform_error(exc)})", "Try again")
        has = f"; it has {', '.join(quote_input(k) for k in listed[:10])}" if listed else "; it is empty"
        return _Failed(
            f"{self.where} has no key {quote_input(key)}{_holding(name, key)}{has}",
            f"Put the {name} there (databricks secrets put-secret {self.scope} {key}), "
            f"or name the key that holds it: --secret-keys {name}=KEY",
        )

    def _denied(self, exc: BaseException) -> _Failed:
        return _Failed(
            f"you may not read {self.where} ({_platform_error(exc)})",
            f"Ask a workspace admin for READ on it: databricks secrets put-acl {self.scope} YOUR_USER_NAME READ",
        )


class _KeyVault:
    """An Azure Key Vault read through Synapse's ``mssparkutils.credentials.getSecret``."""

    def __init__(self, credentials: Any, vault: str, linked_service: str | None) -> None:
        self.credentials = credentials
        self.vault = vault
        self.linked_service = linked_service
        self.where = f"Key Vault {quote_input(vault)}"

    def read(self, name: str, key: str) -> str:
        try:
            # getSecret(akvName, secret, linkedService) reads as the workspace's managed identity
            # through the Key Vault linked service; getSecret(akvName, secret) as the person
            # running the notebook (Synapse docs, "Secure credentials with linked services using
            # the mssparkutils", GetSecret()).
            if self.linked_service:
                return str(self.credentials.getSecret(self.vault, key, self.linked_service))
            return str(self.credentials.getSecret(self.vault, key))
        except Exception as exc:  # boundary: the platform's errors, classified by what they say
            raise self._failure(name, key, exc) from exc

    def _failure(self, name: str, key: str, exc: BaseException) -> _Failed:
        detail = _platform_error(exc)
        text = str(exc).lower()
        linked = quote_input(self.linked_service) if self.linked_service else None
        if linked and "linked service" in text and ("not found" in text or "does not exist" in text):
            return _Failed(
                f"there is no linked service {linked} ({detail})",
                "Check its name in Synapse Studio (Manage > Linked services); it must be published",
            )
        if _denied(exc) or "forbidden" in text or "does not have secrets get permission" in text:
            who = f"the workspace's managed identity (linked service {linked})" if linked else "you"
            other = "" if linked else ", or read it as the workspace's identity: --linked-service VAULT_LINKED_SERVICE"
            return _Failed(
                f"{who} may not read secrets in {self.where} ({detail})",
                f"Grant the Key Vault Secrets User role on the vault (or a Get secrets access policy){other}",
            )
        if "secretnotfound" in text or "was not found in this key vault" in text:
            return _Failed(
                f"{self.where} has no secret {quote_input(key)}{_holding(name, key)}",
                f"Add it (az keyvault secret set --vault-name {self.vault} --name {key} --value ...), "
                f"or name the secret that holds it: --secret-keys {name}=SECRET",
            )
        return _Failed(
            f"could not read secret {quote_input(key)} from {self.where} ({detail})",
            "Check the vault's name (its full host name in national clouds) and --linked-service",
        )


def _holding(name: str, key: str) -> str:
    """`` (for the client-secret)`` when the key is not named after what it holds."""
    return "" if name == key else f" (for the {name})"


def _denied(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("PERMISSION_DENIED", "does not have READ permission", "AccessDenied", "(403)"))


def _service_principal_from(ctx: _Context, store: _SecretStore) -> _Success:
    """Read tenant, client id and secret from ``store``; verify them with Entra ID.

    Values are checked without being echoed: a secret pasted under the wrong key must not end up
    in an error message.
    """
    keys = ctx.options.keys

    def read(name: str) -> str:
        value = store.read(name, keys[name]).strip()
        if not value:
            raise _Failed(
                f"{store.where}: {quote_input(keys[name])}{_holding(name, keys[name])} is empty",
                f"Put the service principal's {name} there",
            )
        return value

    tenant = ctx.tenant_id or read("tenant-id")
    if not _TENANT.match(tenant):
        raise _Failed(
            f"the tenant-id in {store.where} ({quote_input(keys['tenant-id'])}) is not a tenant id",
            "Put the directory (tenant) id there, a GUID",
        )
    client_id = read("client-id")
    if not _is_guid(client_id):
        raise _Failed(
            f"the client-id in {store.where} ({quote_input(keys['client-id'])}) is not an application id",
            "Put the application (client) id there, a GUID; the secret goes under client-secret",
        )
    secret = read("client-secret")
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(tenant, client_id, secret, **ctx.entra())
    return _verified(ctx, credential, f"service principal from {store.where}")


def _databricks_secrets(ctx: _Context) -> _Success:
    found = ctx.notebook_object("dbutils")
    if found is None:
        raise _Unavailable(
            "dbutils is not in the notebook's namespace (not a Databricks notebook)",
            _UNAVAILABLE_HINTS["databricks-secrets"],
        )
    if not ctx.options.secret_scope:
        raise _Unavailable("no secret scope was given (--secret-scope)", _UNAVAILABLE_HINTS["databricks-secrets"])
    return _service_principal_from(ctx, _DatabricksScope(found[1], ctx.options.secret_scope))


def _token_library(ctx: _Context) -> tuple[str, Any] | None:
    """``("mssparkutils", mssparkutils.credentials)`` or the ``notebookutils`` one, if there is one."""
    found = ctx.notebook_object("mssparkutils", "notebookutils")
    if found is None:
        return None
    name, utils = found
    # Synapse: mssparkutils.credentials, notebookutils.mssparkutils.credentials; Fabric:
    # notebookutils.credentials.
    credentials = getattr(utils, "credentials", None)
    if credentials is None:
        credentials = getattr(getattr(utils, "mssparkutils", None), "credentials", None)
    return (name, credentials) if credentials is not None else None


def _synapse_keyvault(ctx: _Context) -> _Success:
    found = _token_library(ctx)
    if found is None or not hasattr(found[1], "getSecret"):
        raise _Unavailable(
            "neither mssparkutils nor notebookutils is in the notebook's namespace (not a Synapse notebook)",
            _UNAVAILABLE_HINTS["synapse-keyvault"],
        )
    if not ctx.options.key_vault:
        raise _Unavailable("no Key Vault was given (--key-vault)", _UNAVAILABLE_HINTS["synapse-keyvault"])
    store = _KeyVault(found[1], ctx.options.key_vault, ctx.options.linked_service)
    return _service_principal_from(ctx, store)


def _synapse_token(ctx: _Context) -> _Success:
    found = _token_library(ctx)
    if found is None or not hasattr(found[1], "getToken"):
        raise _Unavailable(
            "neither mssparkutils nor notebookutils is in the notebook's namespace (not a Synapse notebook)",
            _UNAVAILABLE_HINTS["synapse-token"],
        )
    name, credentials = found
    # With --key-vault the linked service is the vault's (synapse-keyvault), not an identity.
    linked = None if ctx.options.key_vault else ctx.options.linked_service
    credential = TokenLibraryCredential(credentials, ctx.cloud, linked)
    from azure.core.exceptions import ClientAuthenticationError

    try:
        ctx.gate.check()
        info = credential.get_token_info(ctx.cloud.arm_scope)
    except ClientAuthenticationError as exc:
        raise _Failed(_reason(exc), _FAILURE_HINTS["synapse-token"]) from exc
    identity = describe_token_identity(info.token)
    wanted = ctx.tenant_id
    if wanted and _is_guid(wanted) and identity.tenant_id and identity.tenant_id.lower() != wanted.lower():
        raise _Failed(
            f"the token library signs in to tenant {identity.tenant_id}, not {wanted}",
            "Use a linked service of that tenant (--linked-service) or a service principal (--key-vault)",
        )
    via = f"{name}.credentials.getToken" + (f", linked service {quote_input(linked)}" if linked else "")
    return _Success(credential, identity, f"signed in as {identity.name} ({via})")


def _is_guid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", text))


_RUNNERS: Mapping[str, Callable[[_Context], _Success]] = {
    "databricks-secrets": _databricks_secrets,
    "synapse-keyvault": _synapse_keyvault,
    "synapse-token": _synapse_token,
    "env": _env,
    "workload-identity": _workload_identity,
    "managed-identity": _managed_identity,
    "cli": _cli,
    "powershell": _powershell,
    "browser": _browser,
    "device-code": _device_code,
}

_UNAVAILABLE_HINTS: Mapping[str, str] = {
    "databricks-secrets": "In a Databricks notebook, keep the service principal's tenant-id, client-id and "
    "client-secret in a secret scope and pass --secret-scope NAME",
    "synapse-keyvault": "In a Synapse notebook, keep the service principal's tenant-id, client-id and "
    "client-secret in Key Vault and pass --key-vault NAME (with --linked-service for the vault's linked service)",
    "synapse-token": "The token library is there in Azure Synapse notebooks (mssparkutils)",
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
    "databricks-secrets": "Check the service principal's values in the secret scope: the client secret's value "
    "(not its id, and not expired), the client id and the tenant id",
    "synapse-keyvault": "Check the service principal's values in Key Vault: the client secret's value "
    "(not its id, and not expired), the client id and the tenant id",
    "synapse-token": "Check the linked service (--linked-service), or sign in another way: --key-vault VAULT "
    "for a service principal, or --auth device-code",
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
    if not os.path.lexists(directory):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    if not check:
        return
    for path in (directory, *token_cache_paths(CACHE_NAME)):
        try:
            st = os.lstat(path)  # the path itself: a planted symlink is refused, not followed
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise _Failed(
                f"the token cache path {path} is a symbolic link",
                f"Remove it (rm {path}), or do not persist the sign-in",
            )
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

    from .userfiles import read_private

    path = record_path(cloud.name)
    try:
        text = read_private(path)
    except OSError as exc:  # an unsafe folder or a link included: sign in again instead
        _LOG.warning("Ignoring the saved sign-in %s: %s", path, exc)
        return None
    if text is None:
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
    from .userfiles import write_private

    path = record_path(cloud.name)
    try:
        write_private(path, pinned.serialize())
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
