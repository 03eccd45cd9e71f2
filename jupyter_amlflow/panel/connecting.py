"""The panel's last step: the chosen workspace's experiments, and connect.

Picking a workspace loads its experiment names (a job: mlflow is imported on first use, one
import at a time). The note under Experiment says what connect will do with the name typed:
use it, or create it. Connect runs ``Session.connect`` as a job; when it succeeds the status line
shows the connection and the choice is remembered (``choices``).
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import auth, tracking
from ..connect_request import ConnectRequest
from ..errors import AmlflowError
from .choices import AUTO, Choices
from .widgets import EXPERIMENT_HINT

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from ..arm import WorkspaceInfo
    from ..auth import SignIn
    from ..connection import Connection
    from .context import Context
    from .jobs import Ticket

log = logging.getLogger(__name__)


class ConnectStep:
    """Experiment and Connect: ``workspace_changed``, ``experiment_typed`` and ``connect`` are callbacks.

    Args:
        ctx: The panel's shared parts.
        on_connected: Called (under the lock) once the connection is shown: the Runs view appears.
    """

    def __init__(self, ctx: Context, on_connected: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self._on_connected = on_connected
        self._import_lock = threading.Lock()  # one import of mlflow at a time
        self._experiments_loaded = False  # experiment.options are the chosen workspace's experiments

    # -- experiments -----------------------------------------------------------------------------
    def workspace_changed(self) -> None:
        """Another workspace (or none) is selected: load its experiments."""
        ctx = self.ctx
        ui, state, jobs = ctx.ui, ctx.state, ctx.jobs
        chosen = state.chosen(ui.workspace.value)
        ui.connect_button.disabled = chosen is None or jobs.running("connect")
        jobs.drop("experiments")
        self._experiments_loaded = False
        self.experiment_typed()
        if chosen is None:
            return
        remembered = state.remembered
        if remembered.workspace == chosen.arm_id and remembered.experiment and not ui.experiment.value:
            ui.experiment.value = remembered.experiment
        ui.experiment.options = []
        ui.experiment.placeholder = EXPERIMENT_HINT
        signin, cloud = state.signin, state.cloud
        if signin is None or cloud is None or not chosen.tracking_uri:
            return
        credential = _credential_for(signin, chosen)
        ui.experiment.placeholder = f"Loading the experiments of {chosen.name}…"

        def work(_: Ticket) -> list[str]:
            with self._import_lock:
                tracking.import_mlflow()
            return tracking.list_experiment_names(chosen, cloud, credential, ctx.session.timeout)

        def done(names: list[str]) -> None:
            ui.experiment.options = names
            ui.experiment.placeholder = EXPERIMENT_HINT
            self._experiments_loaded = True
            self.experiment_typed()

        def failed() -> bool:
            ui.experiment.placeholder = "Type a name (the experiments could not be listed)"
            # Whatever else the status shows (a connect under way or done, another error) says
            # more than a missing list of names.
            return ctx.status.state not in ("info", "")

        jobs.start("experiments", work, done, failed)

    def experiment_typed(self) -> None:
        """Say what connect will do with the experiment name (and show the kernel has the name)."""
        ui = self.ctx.ui
        name = ui.experiment.value.strip()
        chosen = self.ctx.state.chosen(ui.workspace.value)
        if not name or chosen is None:
            ui.experiment_note.value = ""
            return
        if not self._experiments_loaded:
            text = f"Connect uses experiment <b>{html.escape(name)}</b> (created if missing)."
        elif name in ui.experiment.options:
            text = f"Experiment <b>{html.escape(name)}</b> exists in {html.escape(chosen.name)}."
        else:
            text = f"<b>{html.escape(name)}</b> is a new experiment: connect creates it in {html.escape(chosen.name)}."
        ui.experiment_note.value = (
            f'<span class="amlflow-experiment-note" data-experiment="{html.escape(name, quote=True)}">{text}</span>'
        )

    # -- connect ---------------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect the kernel to the chosen workspace and experiment; remember the choice."""
        ctx = self.ctx
        ui, state, session = ctx.ui, ctx.state, ctx.session
        if ctx.jobs.running("connect"):
            return  # a double click: that connect is under way
        chosen = state.chosen(ui.workspace.value)
        signin, cloud = state.signin, state.cloud
        if chosen is None or signin is None or cloud is None:
            raise AmlflowError("Pick a workspace first", "", "Sign in, then choose one in the Workspace list")
        experiment = ui.experiment.value.strip() or None
        # The session remembers sign-ins by (cloud, tenant, methods): ask with the same key as the
        # panel's sign-in, so connect reuses it; a workspace in another tenant needs that tenant.
        other_tenant = chosen.tenant_id and chosen.tenant_id != signin.tenant_id
        tenant = chosen.tenant_id if other_tenant else state.sign_in_tenant
        methods = state.sign_in_methods
        url = state.cloud_urls.get(cloud.name)
        choices = Choices(
            cloud=cloud.name,
            cloud_metadata_url=url,
            method=",".join(methods) if methods else AUTO,
            tenant=ui.tenant_input.value.strip() or None,
            subscription=ui.subscription.value or None,
            workspace=chosen.arm_id,
            experiment=experiment,
        )
        ui.connect_button.disabled = True
        ui.connect_button.description = "Connecting…"
        ctx.status.show("busy", f"Connecting to {chosen.name}…", spinner=True)

        def work(ticket: Ticket) -> Connection:
            with self._import_lock:
                tracking.import_mlflow()
            request = ConnectRequest(
                subscription=chosen.subscription_id,
                resource_group=chosen.resource_group,
                workspace=chosen.name,
                cloud=cloud.name,
                cloud_metadata_url=url,
                tenant=tenant,
                methods=methods,
                experiment=experiment,
                force=ctx.start.force,
            )
            return session.connect(request, renderer=ctx.renderer(ticket))

        def done(conn: Connection) -> None:
            self._finished()
            ui.device_code.outputs = ()  # a sign-in connect needed is over
            self.show_connected(conn)
            choices.experiment = conn.experiment.name
            state.remembered = choices
            try:
                ctx.store.save(choices)
            except OSError as exc:  # connected all the same; only the preselection is lost
                log.warning("Could not remember the panel's choices in %s: %s", ctx.store.path, exc)

        ctx.jobs.start("connect", work, done, self._finished)

    def show_connected(self, conn: Connection) -> None:
        """Show ``conn`` (also when the panel opens on a connected kernel)."""
        ui = self.ctx.ui
        with self.ctx.hooks.quietly():
            ui.experiment.value = conn.experiment.name
            if self._experiments_loaded and conn.experiment.name not in ui.experiment.options:
                ui.experiment.options = sorted([*ui.experiment.options, conn.experiment.name], key=str.lower)
        self.experiment_typed()
        self.ctx.status.connected(conn)
        if self._on_connected is not None:
            self._on_connected()

    def _finished(self) -> None:
        button = self.ctx.ui.connect_button
        button.description = "Connect"
        button.disabled = self.ctx.ui.workspace.value is None


def _credential_for(signin: SignIn, w: WorkspaceInfo) -> TokenCredential:
    """The sign-in's credential, for the workspace's own tenant when it is another one."""
    if w.tenant_id and w.tenant_id != signin.tenant_id:
        return auth.credential_for_tenant(signin, w.tenant_id)
    return signin.credential
