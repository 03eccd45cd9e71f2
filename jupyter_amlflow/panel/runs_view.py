"""The panel's Runs view: the connected experiment's latest runs, in the table ``%amlflow runs`` shows.

Shown once the kernel is connected (by the panel or before it opened). Nothing is read until the
person asks: ``runs_button`` reads the runs in a job of its own kind (``"runs"``), so it never
waits for, or overwrites, a sign-in, a discovery or a connect; pressing it again reads them
anew. The table's HTML escapes every name and link (they come from the workspace); a failure is
shown in the view, what failed and what to do, and the status line keeps saying what is connected.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..errors import AmlflowError, NotConnected
from ..runs import DEFAULT_LAST

if TYPE_CHECKING:
    from ..runs import RunsTable
    from .context import Context
    from .jobs import Ticket

@dataclass
class RunsWidgets:
    """The view's widgets: ``runs_button`` reads the runs, ``runs`` shows them; ``box`` holds both."""

    runs_button: widgets.Button
    runs: widgets.HTML
    box: widgets.VBox


def build() -> RunsWidgets:
    runs_button = widgets.Button(description="Show runs", icon="table", tooltip="The experiment's latest runs")
    runs = widgets.HTML()
    box = widgets.VBox(
        [widgets.HTML("<b>Runs</b>"), runs_button, runs],
        layout=widgets.Layout(display="none", margin="8px 0 0 0"),
    )
    return RunsWidgets(runs_button, runs, box)


class RunsView:
    """Reads and shows the connected experiment's runs when asked."""

    def __init__(self, ctx: Context, ui: RunsWidgets) -> None:
        self.ctx = ctx
        self.ui = ui

    def connected(self) -> None:
        """Show the view, empty (the kernel is connected, maybe to another experiment than before)."""
        self.ctx.jobs.drop("runs")  # runs being read for an earlier connection are not shown
        self.ui.box.layout.display = "flex"
        self.ui.runs.value = ""
        self.ui.runs_button.description = "Show runs"
        self.ui.runs_button.disabled = False

    def show_runs(self) -> None:
        """Read the latest runs of the connected experiment in the background, then show them."""
        from .. import runs

        ui = self.ui
        conn = self.ctx.session.connection
        if conn is None:  # disconnected since (%amlflow disconnect in another cell)
            fix = "Connect first: above, or %amlflow connect"
            self._show_error(NotConnected("Not connected to a workspace", "", fix))
            return
        ui.runs_button.disabled = True
        ui.runs.value = (
            f'<div class="amlflow-runs" data-state="busy">Reading the runs of experiment '
            f"{html.escape(conn.experiment.name)}…</div>"
        )

        def work(_: Ticket) -> RunsTable | AmlflowError:
            try:
                return runs.run_table(conn, last=DEFAULT_LAST)  # as %amlflow runs shows them
            except AmlflowError as exc:  # shown in the view: the status line keeps saying what is connected
                return exc

        def done(result: RunsTable | AmlflowError) -> None:
            if isinstance(result, AmlflowError):
                self._show_error(result)
                return
            ui.runs.value = f'<div class="amlflow-runs" data-state="shown">{result._repr_html_()}</div>'
            ui.runs_button.description = "Refresh runs"
            ui.runs_button.disabled = False

        self.ctx.jobs.start("runs", work, done, self._enable)

    def _enable(self) -> bool:
        self.ui.runs_button.disabled = False
        return False  # an unexpected error: the status line reports it as a bug

    def _show_error(self, exc: AmlflowError) -> None:
        self.ui.runs.value = f'<div class="amlflow-runs" data-state="error">{exc._repr_html_()}</div>'
        self.ui.runs_button.disabled = False
