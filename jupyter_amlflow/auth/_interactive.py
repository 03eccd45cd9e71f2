"""A person at a browser or a device-code page: silent reuse of a saved sign-in, then the prompt.

``browser`` and ``device-code`` first try the saved account with the persisted token cache, with
no person involved; only when that cannot work do they ask. What the person did (declined, let
the code expire, gave up) becomes the attempt's reason and the renderer's last word; an
interrupt or a cancel saves nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ._claims import describe_token_identity, printable
from ._context import Context, Failed, Success, Unavailable, reason
from ._gate import Cancelled
from ._hints import UNAVAILABLE_HINTS, failure_hint
from ._persistence import cache_options, load_record, no_secret_store, no_secret_store_failure
from ._prompt import PromptRelay

if TYPE_CHECKING:
    from azure.identity import TokenCachePersistenceOptions

__all__ = ["browser", "device_code"]

_LOG = logging.getLogger(__name__)


def browser(ctx: Context) -> Success:
    """The ``browser`` method: InteractiveBrowserCredential, where a page can open."""
    platform = ctx.platform()
    if not platform.can_open_browser:
        raise Unavailable(f"no browser can be opened here ({platform.label})", UNAVAILABLE_HINTS["browser"])
    from azure.identity import InteractiveBrowserCredential

    options = cache_options(ctx)
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


def device_code(ctx: Context) -> Success:
    """The ``device-code`` method: DeviceCodeCredential, its prompt shown by the caller's renderer."""
    if ctx.renderer is None:
        raise Unavailable("there is nothing to show a device code on (no renderer)", UNAVAILABLE_HINTS["device-code"])
    from azure.identity import DeviceCodeCredential

    options = cache_options(ctx)
    saved = _silent(ctx, DeviceCodeCredential, options)
    if saved is not None:
        return saved
    relay = PromptRelay(ctx.renderer, ctx.gate, ctx.cloud.device_login_hosts)
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


def _silent(ctx: Context, credential_class: Any, options: TokenCachePersistenceOptions | None) -> Success | None:
    """Sign in with the saved account and the persisted cache, without a person; None if that can't be done."""
    if options is None:
        return None
    record = load_record(ctx.cloud)
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
            raise Cancelled from None
        if no_secret_store(exc):
            raise no_secret_store_failure() from exc
        _LOG.info("The saved sign-in of %s needs you again (%s)", printable(record.username), reason(exc))
        return None
    identity = describe_token_identity(info.token)
    return Success(credential, identity, f"signed in as {identity.name} with the saved sign-in, no prompt")


def _interactive(ctx: Context, method: str, credential: Any, relay: PromptRelay | None) -> Success:
    """Authenticate with a person; classify what they did into the attempt's outcome."""
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
        if isinstance(exc, Cancelled) or ctx.gate.cancelled():
            if relay is not None:
                relay.finish("cancelled", "Sign-in cancelled; nothing was saved.")
            raise Cancelled from None
        if no_secret_store(exc):
            raise no_secret_store_failure() from exc
        from azure.identity import CredentialUnavailableError

        if isinstance(exc, CredentialUnavailableError):
            raise Unavailable(reason(exc), UNAVAILABLE_HINTS[method]) from exc
        outcome, why, hint = _interactive_failure(method, exc, relay, ctx)
        if relay is not None:
            relay.finish(outcome, why[0].upper() + why[1:] + ".")
        raise Failed(why, hint) from exc
    identity = describe_token_identity(info.token)
    return Success(credential, identity, f"signed in as {identity.name}", record=record, relay=relay)


def _interactive_failure(
    method: str, exc: BaseException, relay: PromptRelay | None, ctx: Context
) -> tuple[str, str, str]:
    """``(outcome, reason, hint)`` for a failed browser / device-code sign-in."""
    prompt = relay.prompt if relay is not None else None
    error = _entra_error(exc)
    again = "Run the command again"
    if error in ("authorization_declined", "access_denied"):
        return "declined", "the sign-in was declined", f"{again} and approve it, or choose another method with --auth"
    timed_out = "Timed out waiting" in reason(exc) or error in ("expired_token", "code_expired")
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
    why = reason(exc)
    if prompt is None and method == "device-code":
        why = f"could not start a device-code sign-in ({why})"
    return "failed", why, failure_hint(method, exc, ctx)


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
