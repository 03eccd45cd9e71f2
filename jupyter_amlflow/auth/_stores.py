"""Notebook platforms' secret stores: a Databricks secret scope, Key Vault via Synapse, Synapse's token library.

The first two hold a service principal's three values (``SECRET_NAMES``) and are read with the
notebook's own access (``dbutils.secrets.get``, ``mssparkutils.credentials.getSecret``); the
third gives tokens for the notebook's (or a linked service's) identity. Their errors arrive as
py4j-wrapped Java exceptions; each is classified into a ``Failed`` that says what is missing or
forbidden and the command that fixes it. Values read go into a credential and nowhere else: no
message, log record or display names a value, only scope, vault and key names.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from ..echo import quote_input
from ._claims import printable, unverified_claims
from ._context import Context, Failed, reason

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

    from ..clouds import Cloud

__all__ = ["DatabricksScope", "KeyVault", "SecretStore", "TokenLibraryCredential", "token_library"]

_LOG = logging.getLogger(__name__)


class SecretStore(Protocol):
    """Where a notebook platform keeps a service principal's three values."""

    where: str

    def read(self, name: str, key: str) -> str:
        """The value of ``key`` (which holds ``name``: tenant-id, client-id, client-secret)."""


class DatabricksScope:
    """A Databricks secret scope, read with the notebook's own access through ``dbutils.secrets``."""

    def __init__(self, dbutils: Any, scope: str) -> None:
        self.secrets = dbutils.secrets
        self.scope = scope
        self.where = f"secret scope {quote_input(scope)}"

    def read(self, name: str, key: str) -> str:
        """The value of ``key``; ``Failed`` saying whether the scope or the key is missing, or READ is."""
        try:
            # dbutils.secrets.get(scope=, key=) (Databricks docs, "Secrets utility (dbutils.secrets)").
            # The call behind it answers RESOURCE_DOES_NOT_EXIST for a missing scope or key and
            # PERMISSION_DENIED without READ on the scope (Secrets API, GET /api/2.0/secrets/get);
            # in a notebook they arrive as py4j-wrapped Java exceptions, e.g.
            # "java.lang.IllegalArgumentException: Secret does not exist with scope: s and key: k".
            return str(self.secrets.get(scope=self.scope, key=key))
        except Exception as exc:  # boundary: the platform's errors, classified by what they say
            raise self._failure(name, key, exc) from exc

    def _failure(self, name: str, key: str, exc: BaseException) -> Failed:
        if _denied(exc):
            return self._denied(exc)
        # The message does not reliably say whether the scope or the key is missing; listing the
        # scope (key names only, never values) does.
        try:
            listed = [str(getattr(item, "key", item)) for item in self.secrets.list(self.scope)]
        except Exception as list_exc:  # boundary: as above
            if _denied(list_exc):
                return self._denied(list_exc)
            return Failed(
                f"there is no {self.where} ({platform_error(list_exc)})",
                "Check the name (dbutils.secrets.listScopes() lists the scopes you can read), or create it: "
                f"databricks secrets create-scope {self.scope}",
            )
        if key in listed:
            return Failed(f"could not read {quote_input(key)} from {self.where} ({platform_error(exc)})", "Try again")
        has = f"; it has {', '.join(quote_input(k) for k in listed[:10])}" if listed else "; it is empty"
        return Failed(
            f"{self.where} has no key {quote_input(key)}{holding(name, key)}{has}",
            f"Put the {name} there (databricks secrets put-secret {self.scope} {key}), "
            f"or name the key that holds it: --secret-keys {name}=KEY",
        )

    def _denied(self, exc: BaseException) -> Failed:
        return Failed(
            f"you may not read {self.where} ({platform_error(exc)})",
            f"Ask a workspace admin for READ on it: databricks secrets put-acl {self.scope} YOUR_USER_NAME READ",
        )


class KeyVault:
    """An Azure Key Vault read through Synapse's ``mssparkutils.credentials.getSecret``."""

    def __init__(self, credentials: Any, vault: str, linked_service: str | None) -> None:
        self.credentials = credentials
        self.vault = vault
        self.linked_service = linked_service
        self.where = f"Key Vault {quote_input(vault)}"

    def read(self, name: str, key: str) -> str:
        """The value of secret ``key``; ``Failed`` naming the missing secret, linked service or permission."""
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

    def _failure(self, name: str, key: str, exc: BaseException) -> Failed:
        detail = platform_error(exc)
        text = str(exc).lower()
        linked = quote_input(self.linked_service) if self.linked_service else None
        if linked and "linked service" in text and ("not found" in text or "does not exist" in text):
            return Failed(
                f"there is no linked service {linked} ({detail})",
                "Check its name in Synapse Studio (Manage > Linked services); it must be published",
            )
        if _denied(exc) or "forbidden" in text or "does not have secrets get permission" in text:
            who = f"the workspace's managed identity (linked service {linked})" if linked else "you"
            other = "" if linked else ", or read it as the workspace's identity: --linked-service VAULT_LINKED_SERVICE"
            return Failed(
                f"{who} may not read secrets in {self.where} ({detail})",
                f"Grant the Key Vault Secrets User role on the vault (or a Get secrets access policy){other}",
            )
        if "secretnotfound" in text or "was not found in this key vault" in text:
            return Failed(
                f"{self.where} has no secret {quote_input(key)}{holding(name, key)}",
                f"Add it (az keyvault secret set --vault-name {self.vault} --name {key} --value ...), "
                f"or name the secret that holds it: --secret-keys {name}=SECRET",
            )
        return Failed(
            f"could not read secret {quote_input(key)} from {self.where} ({detail})",
            "Check the vault's name (its full host name in national clouds) and --linked-service",
        )


def token_library(ctx: Context) -> tuple[str, Any] | None:
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

        opts: TokenRequestOptions = options or {}
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
        tid = printable(unverified_claims(cached[0]).get("tid"))
        if tenant_id and tid and tenant_id.lower() != tid.lower():
            from azure.core.exceptions import ClientAuthenticationError

            raise ClientAuthenticationError(
                message=f"the Synapse token library gives tokens of tenant {tid} only, not of {printable(tenant_id)}"
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
                message=f"mssparkutils.credentials.{call} failed: {platform_error(exc)}"
            ) from exc
        if not isinstance(token, str) or not token:
            raise ClientAuthenticationError(message=f"mssparkutils.credentials.{call} returned no token")
        exp = unverified_claims(token).get("exp")
        if not isinstance(exp, (int, float)):
            # An opaque token: its lifetime is unknown, so keep it no longer than the margin.
            _LOG.debug("The token library's %s token has no exp claim", key)
            exp = time.time() + self.REFRESH_MARGIN + 1
        return token, int(exp)

    def __repr__(self) -> str:
        via = f", linked_service={self.linked_service!r}" if self.linked_service else ""
        return f"TokenLibraryCredential({self._cloud.name}{via})"


def platform_error(exc: BaseException) -> str:
    """The informative line of a notebook platform's error, printable, short.

    dbutils and mssparkutils wrap Java exceptions (py4j): ``"An error occurred while calling
    o123.get.\\n: java.lang.IllegalArgumentException: Secret does not exist with scope: s and key:
    k\\n\\tat ..."``. The line naming the Java exception carries the message; stack lines do not.
    """
    lines = [line.strip() for line in str(exc).replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line and not line.startswith("at ")]
    java = re.compile(r"^:?\s*(?:[\w$]+\.)*[\w$]*(?:Exception|Error):\s*(.+)$")
    found = next((m.group(1) for line in lines if (m := java.match(line))), lines[0] if lines else type(exc).__name__)
    # Key Vault ends every message with a link to its troubleshooting page; the reason is before it.
    found = re.sub(r"\s*For help resolving this issue.*$", "", found)
    return reason(RuntimeError(found))


def holding(name: str, key: str) -> str:
    """`` (for the client-secret)`` when the key is not named after what it holds."""
    return "" if name == key else f" (for the {name})"


def _denied(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("PERMISSION_DENIED", "does not have READ permission", "AccessDenied", "(403)"))
