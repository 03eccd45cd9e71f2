"""The device-code prompt: what sign-in hands a renderer, and the relay that builds it.

azure-identity's ``DeviceCodeCredential`` calls a ``prompt_callback`` with the page, the user code
and the expiry as soon as Entra ID issued the code. ``PromptRelay`` is that callback: it turns them
into a ``DeviceCodePrompt`` for the caller's renderer (``jupyter_amlflow.devicecode`` has a
notebook one and a terminal one) and tells the renderer, once, how the sign-in ended. The secret
device code itself never reaches a renderer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from ._gate import Gate

__all__ = ["DeviceCodePrompt", "DeviceCodeRenderer", "PromptRelay"]


@dataclass(frozen=True)
class DeviceCodePrompt:
    """What a person needs to finish a device-code sign-in. The user code is meant to be shown.

    The secret device code itself never leaves the sign-in.
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


class PromptRelay:
    """The device-code ``prompt_callback``: turns the flow into a ``DeviceCodePrompt`` for the renderer.

    Args:
        renderer: Shows the prompt and the outcome.
        gate: The sign-in's cancel gate: a cancelled sign-in shows no prompt.
        link_hosts: ``DeviceCodePrompt.link_hosts``.
    """

    def __init__(self, renderer: DeviceCodeRenderer, gate: Gate, link_hosts: tuple[str, ...] = ()) -> None:
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
        """Tell the renderer how the sign-in ended (once, and only if a prompt was shown)."""
        if self.prompt is not None and not self._finished:
            self._finished = True
            self.renderer.finish(outcome, detail)
