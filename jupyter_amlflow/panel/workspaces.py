"""The panel's second step: the workspace list, filled by discovery and narrowed by the person.

Discovery is ``arm.discover``, the same as ``%amlflow list workspaces``: the tenant and
subscription lists come first, then the workspaces page by page (the list is refilled at most
every ``REFRESH_INTERVAL`` seconds while they stream in). Tenant, Subscription and Filter narrow
what is shown; the remembered workspace is preselected until the person picks one here.
"""

from __future__ import annotations

import collections
import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..arm import discover
from .status import SPINNER
from .widgets import ALL

if TYPE_CHECKING:
    from ..arm import Discovery, SubscriptionInfo, TenantInfo, WorkspaceInfo
    from ..auth import SignIn
    from ..clouds import Cloud
    from .context import Context
    from .jobs import Ticket

#: Seconds between list refreshes while discovery streams results in.
REFRESH_INTERVAL = 0.3


class WorkspaceList:
    """Discovery and the Tenant, Subscription, Filter and Workspace widgets.

    Args:
        ctx: The panel's shared parts.
        changed: Called when the selected workspace changes (the next step loads its experiments).
    """

    def __init__(self, ctx: Context, changed: Callable[[], None]) -> None:
        self.ctx = ctx
        self._changed = changed
        self._last_refresh = 0.0
        self._picked = False  # the person chose a workspace here: no preselection any more

    def start(self, cloud: Cloud, signin: SignIn) -> None:
        """Discover the workspaces ``signin`` can use (a job; results arrive as they come)."""
        ctx = self.ctx
        client = ctx.session.arm(cloud, signin)  # the session's client for this sign-in (all its tenants)
        ctx.ui.progress.value = f"{SPINNER}Finding your tenants and subscriptions…"
        ctx.status.show("busy", "Finding your workspaces…", spinner=True)

        def work(ticket: Ticket) -> tuple[Discovery, list[str]]:
            found = discover(
                client,
                signin.tenant_id,
                on_lists=lambda tenants, subs: ctx.jobs.apply(ticket, lambda: self._show_lists(tenants, subs)),
                on_found=lambda batch: ctx.jobs.apply(ticket, lambda: self._add_found(batch)),
            )
            return found.discovery, found.notes

        ctx.jobs.start("listing", work, self._done)

    # -- widget callbacks ------------------------------------------------------------------------
    def narrowed(self) -> None:
        """Tenant, Subscription or Filter changed."""
        self._show_subscriptions()
        self._show_workspaces()

    def picked(self) -> None:
        """The person selected a workspace."""
        self._picked = self._picked or self.ctx.ui.workspace.value is not None
        self._changed()

    # -- discovery's results ---------------------------------------------------------------------
    def _show_lists(self, tenants: list[TenantInfo], subscriptions: list[SubscriptionInfo]) -> None:
        ui, state = self.ctx.ui, self.ctx.state
        state.subscriptions = {s.subscription_id: s for s in subscriptions}
        remembered = state.remembered
        with self.ctx.hooks.quietly():
            ui.tenant.options = [("All tenants", ALL)] + [
                (f"{t.display_name} ({t.default_domain or t.tenant_id})", t.tenant_id) for t in tenants
            ]
            ui.tenant.value = ALL
            self._show_subscriptions()
            if remembered.subscription and remembered.subscription in state.subscriptions:
                ui.subscription.value = remembered.subscription
        ui.progress.value = f"{SPINNER}Finding workspaces in {len(subscriptions)} subscriptions…"

    def _add_found(self, batch: list[WorkspaceInfo]) -> None:
        found = self.ctx.state.found
        for w in batch:
            found[w.arm_id] = w
        now = time.monotonic()
        if now - self._last_refresh >= REFRESH_INTERVAL:
            self._last_refresh = now
            self._show_workspaces()
            self.ctx.ui.progress.value = f"{SPINNER}Finding workspaces… {len(found)} so far"

    def _done(self, result: tuple[Discovery, list[str]]) -> None:
        discovery, notes = result
        ui, found = self.ctx.ui, self.ctx.state.found
        for w in discovery.workspaces:
            found[w.arm_id] = w
        self._show_workspaces()
        subs = len({w.subscription_id for w in found.values()})
        text = (
            f"{len(found)} workspace{'s' if len(found) != 1 else ''} in {subs} "
            f"subscription{'s' if subs != 1 else ''} ({discovery.method})"
        )
        if notes:
            text += f"; not listed: {'; '.join(notes[:3])}" + (
                f" (and {len(notes) - 3} more)" if len(notes) > 3 else ""
            )
        ui.progress.value = f'<span class="amlflow-found" data-count="{len(found)}">{html.escape(text)}</span>'
        if not found:
            self.ctx.status.show(
                "info",
                "No workspace is visible to this identity. Ask for the 'AzureML Data Scientist' role on a "
                "workspace, or sign in with another account or tenant.",
            )
        elif ui.workspace.value is None:
            self.ctx.status.show("info", "Pick a workspace, then press Connect.")
        else:
            self.ctx.status.show("info", "Press Connect to use the selected workspace.")

    # -- what is shown ---------------------------------------------------------------------------
    def _show_subscriptions(self) -> None:
        ui = self.ctx.ui
        tenant = ui.tenant.value
        keep = ui.subscription.value
        subs = [s for s in self.ctx.state.subscriptions.values() if tenant in (ALL, s.tenant_id)]
        options = [("All subscriptions", ALL)] + [
            (f"{s.display_name} ({s.subscription_id})", s.subscription_id) for s in subs
        ]
        with self.ctx.hooks.quietly():
            ui.subscription.options = options
            ui.subscription.value = keep if keep in {v for _, v in options} else ALL

    def _show_workspaces(self) -> None:
        """Refill the workspace list from what was found and the tenant/subscription/filter choice."""
        ui, state = self.ctx.ui, self.ctx.state
        tenant, subscription = ui.tenant.value, ui.subscription.value
        home = state.signin.tenant_id if state.signin is not None else None
        words = ui.filter.value.strip().lower().split()
        shown = []
        for w in state.found.values():
            if tenant not in (ALL, w.tenant_id) and not (w.tenant_id is None and tenant == home):
                continue
            if subscription not in (ALL, w.subscription_id):
                continue
            sub = state.subscriptions.get(w.subscription_id)
            haystack = f"{w.label} {w.subscription_id} {sub.display_name if sub else ''}".lower()
            if all(word in haystack for word in words):
                shown.append(w)
        shown.sort(key=lambda w: (w.name.lower(), w.resource_group.lower(), w.subscription_id))
        counts = collections.Counter(w.label for w in shown)
        repeated = {label for label, n in counts.items() if n > 1}
        options = [
            (f"{w.label} — {self._subscription_name(w)}" if w.label in repeated else w.label, w.arm_id) for w in shown
        ]
        before = ui.workspace.value
        values = {v for _, v in options}
        wanted = before if before in values else None
        if wanted is None and state.remembered.workspace in values and not self._picked:
            wanted = state.remembered.workspace
        with self.ctx.hooks.quietly():
            ui.workspace.options = options
            ui.workspace.value = wanted
        if wanted != before:
            self._changed()

    def _subscription_name(self, w: WorkspaceInfo) -> str:
        sub = self.ctx.state.subscriptions.get(w.subscription_id)
        return sub.display_name if sub else w.subscription_id
