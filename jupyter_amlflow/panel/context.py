"""What every step of the panel shares: the session, the widgets, the jobs, the status line, and what is known.

A step (``signin``, ``workspaces``, ``connecting``; a new view would be one more) is a class
given one ``Context``. It changes widgets and ``state`` only under ``jobs.lock``: from a widget
callback (``Hooks``) or a job's result (``Jobs``), never directly from a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..devicecode import NotebookDeviceCodeRenderer

if TYPE_CHECKING:
    from ..arm import SubscriptionInfo, WorkspaceInfo
    from ..auth import SignIn
    from ..clouds import Cloud
    from ..connect_request import ConnectRequest
    from ..connection import Session
    from .choices import Choices, ChoiceStore
    from .jobs import Jobs, Ticket
    from .status import StatusLine
    from .widgets import Hooks, PanelWidgets


@dataclass
class PanelState:
    """What the panel knows so far (read and written under ``Jobs.lock``).

    Attributes:
        cloud_urls: Every cloud offered, by name, with the metadata URL it came from (or ``None``).
        remembered: The remembered choice; the one just made once a connect succeeds.
        cloud: The cloud signed in to (``None`` until a sign-in succeeds).
        signin: That sign-in.
        sign_in_tenant: The tenant the sign-in asked for (the session remembers sign-ins by it).
        sign_in_methods: The methods it was asked to try (``None``: the platform's order).
        subscriptions: The sign-in's subscriptions, by id.
        found: The workspaces discovered so far, by ARM id.
    """

    cloud_urls: dict[str, str | None]
    remembered: Choices
    cloud: Cloud | None = None
    signin: SignIn | None = None
    sign_in_tenant: str | None = None
    sign_in_methods: tuple[str, ...] | None = None
    subscriptions: dict[str, SubscriptionInfo] = field(default_factory=dict)
    found: dict[str, WorkspaceInfo] = field(default_factory=dict)

    def chosen(self, arm_id: str | None) -> WorkspaceInfo | None:
        """The workspace found under ``arm_id`` (the Workspace list's value)."""
        return self.found.get(arm_id or "")


@dataclass
class Context:
    """The session and the panel's parts, as every step sees them."""

    session: Session
    start: ConnectRequest  # the options %amlflow connect was given
    store: ChoiceStore
    ui: PanelWidgets
    jobs: Jobs
    hooks: Hooks
    status: StatusLine
    state: PanelState

    def renderer(self, ticket: Ticket) -> NotebookDeviceCodeRenderer:
        """A device-code renderer that shows in ``ui.device_code`` while ``ticket`` is current.

        ``NotebookDeviceCodeRenderer`` displays through an Output widget: it renders its HTML as a
        trusted output, so the prompt's own script (countdown, Copy button) runs in JupyterLab and
        Notebook 7 alike, which a script in an HTML widget would not. A prompt from an abandoned
        sign-in never shows.
        """
        return NotebookDeviceCodeRenderer(_DeviceCodeArea(self, ticket))

    def show_output(self, obj: Any) -> None:
        """Put a display object (text and HTML forms) into the ``device_code`` Output."""
        data = {"text/plain": repr(obj)}
        if hasattr(obj, "_repr_html_"):
            data["text/html"] = obj._repr_html_()
        self.ui.device_code.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)


class _DeviceCodeArea:
    """The display a ``NotebookDeviceCodeRenderer`` shows through, bound to one job's ticket."""

    def __init__(self, ctx: Context, ticket: Ticket) -> None:
        self._ctx = ctx
        self._ticket = ticket

    def __call__(self, obj: Any, display_id: Any = None) -> _DeviceCodeArea:
        self.update(obj)
        return self

    def update(self, obj: Any) -> None:
        self._ctx.jobs.apply(self._ticket, lambda: self._ctx.show_output(obj))
