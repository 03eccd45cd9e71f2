"""One sign-in's settings, and how a sign-in method answers: unavailable, failed, or a success.

Every method (``_methods``) takes the ``Context`` that ``sign_in`` built and either returns a
``Success`` or raises ``Unavailable`` (it cannot run here: the chain moves on) or ``Failed`` (it
ran and was refused: the chain stops). The context also holds the keyword arguments every
azure-identity credential gets: short timeouts, few retries, the cancel gate's hooks, the CA
bundle, and the cloud's authority.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..platform import Platform, detect_platform
from ._claims import Identity, describe_token_identity
from ._gate import Gate
from ._options import PlatformOptions

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.identity import AuthenticationRecord

    from ..clouds import Cloud
    from ._prompt import DeviceCodeRenderer, PromptRelay

__all__ = ["RETRIES", "Context", "Failed", "Success", "Unavailable", "chain_text", "reason", "verified"]

# Token requests are retried by azure-core; a sign-in chain should fail fast instead of spending
# the default ten retries (minutes) on an endpoint that is down.
RETRIES = 2


class Unavailable(Exception):
    """The method cannot run here (not configured, tool missing): try the next one."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason, self.hint = reason, hint


class Failed(Exception):
    """The method ran and was refused: stop."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason, self.hint = reason, hint


@dataclass
class Success:
    """A method that worked: its credential, who it signed in, and the attempt's reason."""

    credential: TokenCredential
    identity: Identity
    reason: str
    # An interactive sign-in's account, saved once the sign-in is complete (with ``persist``).
    record: AuthenticationRecord | None = None
    # A device-code sign-in's relay, told "signed-in" once the sign-in is complete.
    relay: PromptRelay | None = None


@dataclass
class Context:
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
    gate: Gate
    user_ns: Mapping[str, object] | None = None
    options: PlatformOptions = dataclasses.field(default_factory=PlatformOptions)

    def platform(self) -> Platform:
        """Where the kernel runs (detected on first use when the caller did not say)."""
        if self.given_platform is None:
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


def verified(ctx: Context, credential: Any, what: str) -> Success:
    """``credential`` once it got a Resource Manager token (which says who signed in)."""
    info = credential.get_token_info(ctx.cloud.arm_scope)
    identity = describe_token_identity(info.token)
    return Success(credential, identity, f"signed in as {identity.name} ({what})")


def reason(exc: BaseException) -> str:
    """An exception's message as one short line (Entra ID appends trace ids on later lines)."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    line = str(text).replace("\r", "\n").split("\n", 1)[0].strip()
    line = line.removeprefix("Authentication failed: ").strip()
    line = "".join(ch for ch in line if ch.isprintable())
    return (line[:237] + "...") if len(line) > 240 else (line or type(exc).__name__)


def chain_text(exc: BaseException) -> str:
    """Every exception in ``exc``'s cause chain as ``Type: message`` lines (for classifying it)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)
