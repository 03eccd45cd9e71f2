"""The panel's status line: what is happening, the error and its fix, or the connection made.

Every value shown is escaped: workspace and experiment names, messages and links come from
servers. The ``amlflow-status`` element carries ``data-state`` (``info``, ``busy``, ``error``,
``connected``) for tests and the browser checks.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

from ..errors import AmlflowError

if TYPE_CHECKING:
    import ipywidgets as widgets

    from ..connection import Connection

log = logging.getLogger(__name__)

SPINNER = (
    "<style>@keyframes amlflow-spin{to{transform:rotate(360deg)}}</style>"
    '<span class="amlflow-spinner" style="display:inline-block;width:0.8em;height:0.8em;margin-right:0.4em;'
    "border:2px solid #0078d4;border-right-color:transparent;border-radius:50%;"
    'animation:amlflow-spin 0.8s linear infinite;vertical-align:-0.1em"></span>'
)


class StatusLine:
    """Writes the status widget (an ``ipywidgets.HTML``); ``state`` is what it shows now.

    Args:
        widget: The HTML widget to write.
    """

    def __init__(self, widget: widgets.HTML) -> None:
        self.widget = widget
        self.state = ""

    def show(self, state: str, text: str, *, spinner: bool = False) -> None:
        """Show ``text`` (escaped here) in ``state``, with a spinner while something runs."""
        self.state = state
        self.widget.value = (
            f'<div class="amlflow-status" data-state="{state}" style="padding:4px 0">'
            f"{SPINNER if spinner else ''}{html.escape(text)}</div>"
        )

    def error(self, exc: BaseException) -> None:
        """Show an error: what failed, why and what to do next; anything unexpected is logged as a bug."""
        self.state = "error"
        if isinstance(exc, AmlflowError):
            log.info("Panel: %s", exc)
            shown = exc
        else:
            log.warning("Panel: unexpected error", exc_info=exc)
            shown = AmlflowError(
                f"The panel hit an unexpected error: {type(exc).__name__}: {str(exc)[:300]}",
                "this is a bug in jupyter_amlflow",
                "Connect by command instead: %amlflow connect --subscription SUB --resource-group RG "
                "--workspace NAME (%amlflow list workspaces finds them), and please report the error",
            )
        self.widget.value = f'<div class="amlflow-status" data-state="error">{shown._repr_html_()}</div>'

    def connected(self, conn: Connection) -> None:
        """Show the connection: workspace, experiment, the Studio link, and what to type next."""
        w = conn.workspace
        created = " (created)" if conn.experiment.created else ""
        studio = conn.studio_url
        link = (
            f' <a href="{html.escape(studio, quote=True)}" target="_blank" rel="noopener noreferrer" '
            'style="color:#0078d4;text-decoration:underline">'
            "Open in Azure ML Studio</a>"
            if studio
            else ""
        )
        self.state = "connected"
        self.widget.value = (
            '<div class="amlflow-status" data-state="connected" '
            'style="border-left:4px solid #107c10;padding:4px 8px">'
            f"<b>Connected to {html.escape(w.name)}</b> ({html.escape(w.resource_group)}, "
            f"{html.escape(w.location)}), experiment <b>{html.escape(conn.experiment.name)}</b>{created}.{link}"
            "<div>Every mlflow.* call in this kernel now logs there. "
            "<code>%amlflow status</code> shows the details; <code>%amlflow disconnect</code> undoes it.</div></div>"
        )
