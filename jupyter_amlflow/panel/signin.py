"""The panel's first step: the cloud (a custom one added by its metadata URL) and the sign-in.

A sign-in runs as a job (a device code may wait minutes); once it succeeds, discovery starts
(``workspaces``). Changing the cloud forgets the sign-in and everything found with it; a newer
sign-in, or ``close()``, cancels one still waiting for a device code.
"""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING

from ..errors import AmlflowError
from .choices import AUTO
from .widgets import ALL

if TYPE_CHECKING:
    from ..auth import SignIn
    from ..clouds import Cloud
    from .context import Context
    from .jobs import Ticket
    from .workspaces import WorkspaceList


class SignInStep:
    """Cloud and sign-in: ``cloud_changed``, ``add_cloud`` and ``sign_in`` are widget callbacks.

    Args:
        ctx: The panel's shared parts.
        workspaces: The next step, started once signed in.
    """

    def __init__(self, ctx: Context, workspaces: WorkspaceList) -> None:
        self.ctx = ctx
        self.workspaces = workspaces
        self._cancel = threading.Event()  # set to abandon the sign-in in progress

    def cancel(self) -> None:
        """Abandon a sign-in still waiting (a device code stops polling)."""
        self._cancel.set()

    # -- clouds ----------------------------------------------------------------------------------
    def cloud_changed(self) -> None:
        """Another cloud needs another sign-in: forget this one's (and any sign-in under way)."""
        ui, state, jobs = self.ctx.ui, self.ctx.state, self.ctx.jobs
        if jobs.running("signin"):
            # The session cannot cancel it; it may finish in its thread, unseen.
            jobs.drop("signin")
            ui.device_code.outputs = ()
            self._finished(signed_in=False)
        elif state.cloud is None or state.cloud.name.lower() == (ui.cloud.value or "").lower():
            return
        self._start_over()
        self.ctx.status.show("info", f"Sign in to {ui.cloud.value} to list its workspaces.")

    def add_cloud(self) -> None:
        """Read the clouds of the metadata URL in Custom cloud, and offer them."""
        ui, state = self.ctx.ui, self.ctx.state
        url = ui.cloud_url.value.strip()
        if not url:
            raise AmlflowError(
                "Give the custom cloud's metadata URL first",
                "the clouds are read from Resource Manager's /metadata/endpoints document",
                "Paste it into Custom cloud, e.g. https://HOST/metadata/endpoints?api-version=2019-05-01",
            )
        ui.add_cloud_button.disabled = True
        self.ctx.status.show("busy", "Reading the cloud metadata document…", spinner=True)

        def work(_: Ticket) -> list[Cloud]:
            return self.ctx.session.add_clouds_from_metadata(url)

        def done(added: list[Cloud]) -> None:
            ui.add_cloud_button.disabled = False
            for cloud in added:
                state.cloud_urls[cloud.name] = url
            ui.cloud.options = [(n, n) for n in state.cloud_urls]
            if added:
                ui.cloud.value = added[0].name
            self.ctx.status.show("info", f"Added {', '.join(c.name for c in added)}. Press Sign in.")

        def failed() -> None:
            ui.add_cloud_button.disabled = False

        self.ctx.jobs.start("cloud", work, done, failed)

    # -- sign-in ---------------------------------------------------------------------------------
    def sign_in(self) -> None:
        """Sign in to the chosen cloud (tenant and method as chosen); discovery follows."""
        ctx = self.ctx
        ui, session = ctx.ui, ctx.session
        if ctx.jobs.running("signin"):
            return  # a double click: that sign-in is under way
        name = ui.cloud.value
        if not name:
            raise AmlflowError("Choose a cloud first", "", "Pick one in Cloud, or add a custom cloud by its URL")
        url = ctx.state.cloud_urls.get(name)
        tenant = ui.tenant_input.value.strip() or session.env.get("AZURE_TENANT_ID") or None
        methods = None if ui.method.value == AUTO else tuple(ui.method.value.split(","))
        self._start_over()
        ui.device_code.outputs = ()
        ui.sign_in_button.disabled = True
        ui.sign_in_button.description = "Signing in…"
        ctx.status.show("busy", f"Signing in to {name}…", spinner=True)

        # A sign-in this panel no longer waits for (closed, or a newer sign-in) stops polling.
        self._cancel.set()
        cancel = self._cancel = threading.Event()

        def work(ticket: Ticket) -> tuple[Cloud, SignIn]:
            cloud = session.resolve_cloud(name, url)
            renderer = ctx.renderer(ticket)
            return cloud, session.sign_in(cloud, tenant_id=tenant, methods=methods, renderer=renderer, cancel=cancel)

        def done(result: tuple[Cloud, SignIn]) -> None:
            cloud, signin = result
            self._finished()
            ui.device_code.outputs = ()  # the line below says who signed in
            state = ctx.state
            state.cloud, state.signin = cloud, signin
            state.sign_in_tenant, state.sign_in_methods = tenant, methods
            who = signin.identity
            ui.signed_in.value = (
                f'<div class="amlflow-signed-in">Signed in to {html.escape(cloud.name)} as '
                f"<b>{html.escape(who.name)}</b> ({html.escape(who.kind)}, {html.escape(signin.method)}), "
                f"tenant <code>{html.escape(signin.tenant_id)}</code></div>"
            )
            ui.picker.layout.display = "flex"
            self.workspaces.start(cloud, signin)

        ctx.jobs.start("signin", work, done, lambda: self._finished(signed_in=False))

    def _finished(self, *, signed_in: bool = True) -> None:
        button = self.ctx.ui.sign_in_button
        button.disabled = False
        button.description = "Sign in again" if signed_in else "Sign in"

    def _start_over(self) -> None:
        """Forget the sign-in and all it found: lists, workspaces, experiments."""
        ui, state, jobs = self.ctx.ui, self.ctx.state, self.ctx.jobs
        for kind in ("listing", "experiments"):
            jobs.drop(kind)
        state.cloud = state.signin = None
        state.subscriptions, state.found = {}, {}
        ui.signed_in.value = ""
        ui.picker.layout.display = "none"
        with self.ctx.hooks.quietly():
            ui.tenant.options = [("All tenants", ALL)]
            ui.subscription.options = [("All subscriptions", ALL)]
            ui.workspace.options = []
            ui.workspace.value = None
            ui.experiment.options = []
        ui.progress.value = ""
        ui.connect_button.disabled = True
