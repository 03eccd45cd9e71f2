"""``%amlflow list ...``: tenants, subscriptions, workspaces and experiments as tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .arm import discover
from .display import Link, Table

if TYPE_CHECKING:
    from .connection import Session


def list_things(
    session: Session,
    what: str,
    *,
    cloud: str | None = None,
    tenant: str | None = None,
    subscriptions: Sequence[str] | None = None,
    renderer: Any = None,
    secret_scope: str | None = None,
    secret_keys: str | None = None,
    key_vault: str | None = None,
    linked_service: str | None = None,
) -> tuple[Table, list[str]]:
    """A table of ``what`` and the names in it (kept for tab completion).

    ``secret_scope`` and the others are the notebook platforms' sign-in options (``auth.platform_options``).
    """
    if what == "experiments":
        return _experiments(session)
    from .connect_request import platform_options_given

    options = platform_options_given(secret_scope, secret_keys, key_vault, linked_service)
    conn = session.connection
    chosen = session.resolve_cloud(cloud or (conn.cloud.name if conn else None))
    tenant_id = tenant or (conn.tenant_id if conn and not cloud else None)
    signin = session.call(
        f"Signing in to {chosen.name}",
        lambda: session.sign_in(chosen, tenant_id=tenant_id, renderer=renderer, options=options),
    )
    client = session.arm(chosen, signin)
    if what == "tenants":
        tenants = session.call("Resource Manager: GET tenants", client.tenants)
        rows = [[t.display_name, t.tenant_id, t.default_domain] for t in tenants]
        return Table("Tenants", ["Name", "Tenant id", "Domain"], rows), [t.tenant_id for t in tenants]
    if what == "subscriptions":
        subs = session.call("Resource Manager: GET subscriptions", client.subscriptions)
        rows = [[s.display_name, s.subscription_id, s.tenant_id, s.state] for s in subs]
        return Table("Subscriptions", ["Name", "Subscription id", "Tenant", "State"], rows), [
            s.subscription_id for s in subs
        ]
    # The panel's discovery: every tenant of the sign-in, unless --tenant names one. Many requests,
    # each under the timeout; the whole may take longer.
    found = session.call(
        "Resource Manager: workspace discovery",
        lambda: discover(client, signin.tenant_id, subscriptions=subscriptions, only_tenant=tenant is not None),
        timeout=session.timeout * 10,
    )
    workspaces = sorted(found.workspaces, key=lambda w: (w.name.lower(), w.resource_group.lower()))
    rows = [
        [w.name, w.resource_group, w.location, w.subscription_id, w.tenant_id or signin.tenant_id] for w in workspaces
    ]
    note = f"Found with {found.discovery.method}. "
    note += "Connect: %amlflow connect --subscription SUB --resource-group RG --workspace NAME"
    if len({row[4] for row in rows}) > 1:
        note += "; add --tenant TENANT for a workspace outside the tenant you signed in to"
    if found.notes:
        note += "; not listed: " + "; ".join(found.notes)
    return Table("Workspaces", ["Name", "Resource group", "Region", "Subscription", "Tenant"], rows, note), [
        w.name for w in workspaces
    ]


def _experiments(session: Session) -> tuple[Table, list[str]]:
    conn = session.require_connection()

    def search() -> list[Any]:
        from mlflow.tracking import MlflowClient

        return list(MlflowClient(tracking_uri=conn.tracking_uri).search_experiments())

    experiments = session.call("MLflow API: search experiments", search)
    rows = []
    for e in experiments:
        url = conn.cloud.studio_experiment_url(
            e.experiment_id,
            conn.workspace.subscription_id,
            conn.workspace.resource_group,
            conn.workspace.name,
            conn.tenant_id,
        )
        current = "← current" if e.experiment_id == conn.experiment.experiment_id else ""
        rows.append([e.name, e.experiment_id, Link("Studio", url) if url else None, current])
    names = sorted(e.name for e in experiments)
    return Table(f"Experiments in {conn.workspace.name}", ["Name", "Id", "Link", ""], rows), names
