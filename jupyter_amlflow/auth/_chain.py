"""The sign-in chain: try the methods in order, stop at the first that works or the first that failed.

Like azure-identity's ``ChainedTokenCredential``: "unavailable" moves on, "failed" stops, and
every attempt lands in the one ``SignInError``. Arguments (tenant, method names) are checked
before any request. The sign-in is handed to the caller only after the cancel gate agreed; only
then is anything saved and the renderer told "signed-in".
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .. import _redact
from ..echo import quote_input
from ..errors import SignInError
from ..ids import is_tenant
from ..platform import Platform, default_methods
from ._claims import Identity
from ._context import Context, Failed, Success, Unavailable, reason
from ._gate import Cancelled, Gate
from ._hints import UNAVAILABLE_HINTS, failure_hint
from ._methods import METHODS, RUNNERS, parse_methods
from ._options import PlatformOptions
from ._persistence import save_record

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from ..clouds import Cloud
    from ._prompt import DeviceCodeRenderer

__all__ = ["Attempt", "Outcome", "SignIn", "check_tenant", "sign_in"]

_LOG = logging.getLogger(__name__)

Outcome = Literal["unavailable", "failed", "ok"]


@dataclass(frozen=True)
class Attempt:
    """One method tried: ``outcome``, ``reason`` (why) and ``hint`` (what to do next)."""

    method: str
    outcome: Outcome
    reason: str
    hint: str

    def __str__(self) -> str:
        return f"{self.method}: {self.outcome}, {self.reason}"


@dataclass
class SignIn:
    """A sign-in that worked: the credential (a plain azure-identity one), how, and who."""

    credential: TokenCredential
    method: str
    identity: Identity
    tenant_id: str
    attempts: list[Attempt]


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
        cancel: Set it to abandon the sign-in (see the package docstring).
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
    ctx = Context(
        cloud=cloud,
        env=environ,
        tenant_id=check_tenant(wanted) if wanted is not None else None,
        given_platform=platform,
        renderer=renderer,
        timeout=timeout,
        device_code_timeout=device_code_timeout,
        persist=persist,
        allow_unencrypted_cache=allow_unencrypted_cache,
        gate=Gate(cancel),
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
        except Cancelled:
            raise SignInError(
                f"Sign-in to {cloud.name} was cancelled",
                "nothing was saved",
                "Run the command again to sign in",
                attempts=attempts,
            ) from None
    raise _chain_error(cloud, attempts)


def check_tenant(tenant_id: str) -> str:
    """``tenant_id`` if it names a tenant (``ids.is_tenant``: a GUID or a domain).

    Raises:
        SignInError: It does not; the message says where a tenant is given.
    """
    if not is_tenant(tenant_id):
        raise SignInError(
            f"Tenant {quote_input(tenant_id)} is not a tenant id",
            "a tenant is a GUID or a domain such as contoso.onmicrosoft.com",
            "Check --tenant, AZURE_TENANT_ID or tenant_id in config.json",
        )
    return tenant_id


def _choose_methods(methods: Sequence[str] | None, ctx: Context) -> list[str]:
    if methods is None:
        return list(default_methods(ctx.platform()))
    chosen = parse_methods(methods)
    if not chosen:
        raise SignInError("No sign-in method was given", f"the methods are {', '.join(METHODS)}", "Name at least one")
    return chosen


def _attempt(ctx: Context, method: str) -> tuple[Attempt, Success | None]:
    """Run one method; whatever it raised (but a cancel) becomes the attempt's outcome."""
    try:
        success = RUNNERS[method](ctx)
    except Cancelled:
        raise
    except Unavailable as exc:
        return Attempt(method, "unavailable", exc.reason, exc.hint), None
    except Failed as exc:
        return Attempt(method, "failed", exc.reason, exc.hint), None
    except Exception as exc:  # boundary: whatever a credential raised becomes this attempt's reason
        if ctx.gate.cancelled():
            raise Cancelled from None
        _LOG.debug("Sign-in method %s raised %s", method, type(exc).__name__, exc_info=True)
        from azure.identity import CredentialUnavailableError

        if isinstance(exc, CredentialUnavailableError):
            return Attempt(method, "unavailable", reason(exc), UNAVAILABLE_HINTS[method]), None
        return Attempt(method, "failed", reason(exc), failure_hint(method, exc, ctx)), None
    return Attempt(method, "ok", success.reason, ""), success


def _complete(ctx: Context, method: str, success: Success, attempts: list[Attempt]) -> SignIn:
    """Mark the sign-in done (unless cancelled), then save it, then tell the renderer."""
    relay = success.relay
    try:
        ctx.gate.complete()
    except Cancelled:
        if relay is not None:
            relay.finish("cancelled", "Sign-in cancelled; nothing was saved.")
        raise
    identity = success.identity
    if method == "managed-identity":
        identity = dataclasses.replace(identity, kind="managed identity")
    if success.record is not None and ctx.persist:
        note = save_record(ctx.cloud, success.record)
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
