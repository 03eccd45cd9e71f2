"""Credentials handed to other code: a swappable one, and one pinned to a tenant.

Both forward ``get_token`` / ``get_token_info`` to the credential a sign-in produced, so the
clients holding them (azureml-mlflow's plugin, ``ArmClient``) never see which method signed in.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ._chain import check_tenant

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential, TokenRequestOptions

    from ._chain import SignIn

__all__ = ["SwappableCredential", "credential_for_tenant"]


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
    return _TenantCredential(signin.credential, check_tenant(tenant_id))


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
            return target.get_token_info(*scopes, options=merged)
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
