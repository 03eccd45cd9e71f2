"""Resource Manager's refusals and transport failures, in the words of ``jupyter_amlflow.errors``.

Each error says what failed, why, and what to type next: a 403 names the missing permission, a
token from the wrong tenant names the tenant to sign in to (the command written inert, since the
tenant comes from the server), a 404 says which part of the reference does not exist. Server
messages are shortened to one line; no message carries a token or a URL's query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import AmlflowError, ConnectTimeout, NotFound, PermissionDenied, ServiceError, SignInError
from ..ids import GUID
from ..pasteable import magic_option

if TYPE_CHECKING:
    from azure.core.rest import HttpResponse

_ACTION_RE = re.compile(r"perform action '(?P<action>[^']+)'(?: over scope '(?P<scope>[^']*)')?")
_AUTHORIZATION_URI_RE = re.compile(r'authorization_uri="(?P<uri>[^"]+)"', re.IGNORECASE)
_MUST_MATCH_RE = re.compile(r"must match the tenant '(?P<issuer>[^']+)'", re.IGNORECASE)

_MESSAGE_LIMIT = 300

RETRY_FIX = "Try again in a minute; if it keeps failing, check the Azure status page"


class WrongTenant(SignInError):
    """Resource Manager refused a token from another tenant; ``tenant_id`` is the one it wants."""

    def __init__(self, what: str, why: str = "", fix: str = "", *, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id
        super().__init__(what, why, fix)


@dataclass(frozen=True)
class Op:
    """What a request was for, in the words its errors use."""

    endpoint: str  # "Resource Manager: GET workspace w1"
    what: str  # "Could not read workspace 'w1' (...)"
    command: str  # the command that does this again: "%amlflow connect"
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None

    def again_in_tenant(self, tenant_id: str) -> str:
        """The command to type to do this again, signed in to ``tenant_id``.

        The tenant comes from the server's answer: written inert (``pasteable``), as are the names.
        """
        if self.workspace and self.command == "%amlflow connect":
            return " ".join(
                (
                    "%amlflow connect",
                    magic_option("--tenant", tenant_id),
                    magic_option("--subscription", self.subscription_id or ""),
                    magic_option("--resource-group", self.resource_group or ""),
                    magic_option("--workspace", self.workspace),
                )
            )
        return f"{self.command} {magic_option('--tenant', tenant_id)}"


def short(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """One line, at most ``limit`` characters: service messages go into one-line errors."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- answers -----------------------------------------------------------------------------------
def status_error(op: Op, response: HttpResponse) -> AmlflowError:
    """Translate a non-200 answer."""
    status = response.status_code
    code, message = _arm_error(response)
    brief = short(message).rstrip(".")
    said = f"{status} {code}".strip() + (f": {brief}" if brief else "")
    if status == 401:
        return _unauthorized(op, response, code, said)
    if status == 403:
        return _forbidden(op, code, message, said)
    if status == 404:
        return NotFound(
            op.what,
            _not_found_why(op, code, said),
            "See the workspaces you can use: %amlflow list workspaces",
            endpoint=op.endpoint,
        )
    if status == 429:
        wait = response.headers.get("Retry-After")
        asked = f"; it asked to wait {wait} s, longer than the time left" if wait else ""
        return ServiceError(
            op.what,
            f"Resource Manager is throttling requests ({said}){asked}",
            f"Wait a minute, then run {op.command} again",
            endpoint=op.endpoint,
        )
    if status >= 500:
        return ServiceError(
            op.what, f"Resource Manager kept failing ({said}), retries included", RETRY_FIX, endpoint=op.endpoint
        )
    return ServiceError(op.what, f"Resource Manager answered {said}", RETRY_FIX, endpoint=op.endpoint)


def _arm_error(response: HttpResponse) -> tuple[str, str]:
    """ARM's ``error.code`` and ``error.message`` (either may be empty; the message is whole)."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text() or ""
    if isinstance(body, dict):
        error = body.get("error")
        inner = error if isinstance(error, dict) else body
        return str(inner.get("code") or ""), str(inner.get("message") or "")
    return "", ""


def _unauthorized(op: Op, response: HttpResponse, code: str, said: str) -> AmlflowError:
    if code == "InvalidAuthenticationTokenTenant":
        tenant = _tenant_from_challenge(response)
        where = f"Subscription {op.subscription_id}" if op.subscription_id else "The resource"
        if tenant:
            return WrongTenant(
                op.what,
                f"{where} belongs to tenant {tenant}, and this sign-in is for another tenant",
                f"Sign in to that tenant: {op.again_in_tenant(tenant)}",
                tenant_id=tenant,
            )
        return WrongTenant(
            op.what,
            f"{where} belongs to another tenant than this sign-in",
            f"Sign in to the subscription's tenant: {op.command} --tenant <tenant id or domain>",
        )
    return SignInError(
        op.what,
        f"Resource Manager refused the sign-in ({said})",
        f"Sign in again: %amlflow logout, then {op.command}",
    )


def _tenant_from_challenge(response: HttpResponse) -> str | None:
    """The tenant ARM wants, from ``WWW-Authenticate`` (or, failing that, its message)."""
    challenge = response.headers.get("WWW-Authenticate") or ""
    match = _AUTHORIZATION_URI_RE.search(challenge)
    if match:
        segments = [s for s in urlsplit(match["uri"]).path.split("/") if s]
        if segments and segments[-1].isprintable():  # it goes into a command to type
            return segments[-1]
    _code, message = _arm_error(response)
    must = _MUST_MATCH_RE.search(message)
    guid = GUID.search(must["issuer"]) if must else None
    return guid.group(0) if guid else None


def _forbidden(op: Op, code: str, message: str, said: str) -> PermissionDenied:
    match = _ACTION_RE.search(message)
    if match is None:
        return PermissionDenied(
            op.what,
            f"Resource Manager refused ({said})",
            "Ask an owner of the subscription or workspace for access, then try again",
            endpoint=op.endpoint,
        )
    action, scope = short(match["action"], 200), short(match["scope"] or "this scope", 400)
    if op.workspace:
        fix = (
            f"Ask an owner for a role that allows it, such as AzureML Data Scientist on workspace "
            f"'{op.workspace}'; then run {op.command} again"
        )
    else:
        fix = (
            "Ask an owner for a role that allows it, such as Reader or AzureML Data Scientist on the "
            f"subscription; then run {op.command} again"
        )
    return PermissionDenied(
        op.what,
        f"The signed-in identity is not allowed '{action}' on {scope} ({code or 'AuthorizationFailed'})",
        fix,
        action=action,
        endpoint=op.endpoint,
    )


def _not_found_why(op: Op, code: str, said: str) -> str:
    if code == "SubscriptionNotFound" and op.subscription_id:
        return f"Subscription {op.subscription_id} does not exist or is not visible to this sign-in"
    if code == "ResourceGroupNotFound" and op.resource_group:
        return f"Resource group '{op.resource_group}' does not exist in subscription {op.subscription_id}"
    if code == "ResourceNotFound" and op.workspace:
        return f"There is no workspace '{op.workspace}' in resource group '{op.resource_group}'"
    return f"Resource Manager answered {said}"


# -- failures on the way -----------------------------------------------------------------------
def token_error(op: Op, exc: Exception) -> SignInError:
    """No token could be had for the request (the credential raised)."""
    reason = short(getattr(exc, "message", None) or str(exc) or type(exc).__name__, 200)
    return SignInError(
        op.what,
        f"No Resource Manager token could be had: {reason}",
        f"Sign in again: %amlflow logout, then {op.command}",
    )


def timeout_error(op: Op, timeout: float, url: str) -> ConnectTimeout:
    """The request's budget of ``timeout`` seconds ran out; the fix says how to allow more."""
    host = urlsplit(url).netloc
    more = max(60, int(timeout * 2))
    return ConnectTimeout(
        f"{op.endpoint} did not answer within {timeout:g} s",
        f"{host} is slow or unreachable from this kernel",
        f"Try again; if it persists, check the network and proxy (HTTPS_PROXY) to {host}, or allow more time: "
        f"--timeout {more} (%config AmlflowMagics.timeout = {more})",
        endpoint=op.endpoint,
    )


def transport_error(op: Op, exc: Exception, timeout: float, url: str) -> AmlflowError:
    """An azure-core error on the way (DNS, TLS, a dropped connection), retries included."""
    from azure.core.exceptions import (
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )

    if isinstance(exc, (ServiceRequestTimeoutError, ServiceResponseTimeoutError)):
        return timeout_error(op, timeout, url)
    host = urlsplit(url).netloc
    if isinstance(exc, ServiceRequestError):
        why = f"{host} could not be reached ({_cause(exc)})"
    elif isinstance(exc, ServiceResponseError):
        why = f"{host} dropped the connection, retries included ({_cause(exc)})"
    else:
        why = f"The request to {host} failed ({_cause(exc)})"
    return ServiceError(
        op.what,
        why,
        f"Check the network and proxy settings (HTTPS_PROXY), then run {op.command} again",
        endpoint=op.endpoint,
    )


def _cause(exc: BaseException) -> str:
    """The innermost cause's class name: enough to tell DNS from TLS from a reset, and never a URL."""
    inner: BaseException = exc
    seen = 0
    while seen < 10:
        nested = getattr(inner, "inner_exception", None) or inner.__cause__ or inner.__context__
        if nested is None or nested is inner:
            break
        inner = nested
        seen += 1
    return type(inner).__name__
