"""``%amlflow list workspaces`` and the panel find the same workspaces, in every tenant of the sign-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import isolated_mlflow
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture(scope="module")
def two_tenants(sandbox_factory: Any) -> Any:
    # The service principal belongs to both tenants; each tenant holds one subscription of two workspaces.
    return sandbox_factory(subscriptions=2, workspaces_per_subscription=2, tenants=2, mlflow=False)


def workspaces_of(table: Any) -> set[tuple[str, str, str]]:
    """``(subscription, resource group, name)`` of each row of a workspaces table."""
    at = {name: i for i, name in enumerate(table.columns)}
    return {(row[at["Subscription"]], row[at["Resource group"]], row[at["Name"]]) for row in table.rows}


def test_the_list_and_the_panel_agree_for_an_identity_in_two_tenants(
    two_tenants: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from test_panel import sign_in

    from jupyter_amlflow.connection import Session
    from jupyter_amlflow.panel import ChoiceStore, WorkspacePanel

    sb = two_tenants
    for k, v in {**sb.env, **sb.service_principal}.items():  # signed in to the first tenant
        monkeypatch.setenv(k, v)
    everywhere = {(w.subscription_id, w.resource_group, w.name) for w in sb.workspaces}
    assert len(everywhere) == 4 and len({w.tenant_id for w in sb.workspaces}) == 2

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_amlflow")
    try:
        with isolated_mlflow():
            table = shell.run_line_magic("amlflow", "list workspaces")
            second = sb.tenants[1].tenant_id
            narrowed = shell.run_line_magic("amlflow", f"list workspaces --tenant {second}")
    finally:
        shell.run_line_magic("unload_ext", "jupyter_amlflow")
    listed = workspaces_of(table)
    assert listed == everywhere
    assert {row[table.columns.index("Tenant")] for row in table.rows} == {w.tenant_id for w in sb.workspaces}
    assert "add --tenant TENANT for a workspace outside the tenant you signed in to" in table.note

    panel = WorkspacePanel(Session(timeout=20), store=ChoiceStore(tmp_path / "panel.json"))
    try:
        sign_in(panel)
        shown = {arm_id for _, arm_id in panel.workspace.options}
    finally:
        panel.close()
    assert {(w.subscription_id, w.resource_group, w.name) for w in sb.workspaces if w.arm_id in shown} == listed

    # --tenant narrows the list to that tenant.
    assert workspaces_of(narrowed) == {
        (w.subscription_id, w.resource_group, w.name) for w in sb.workspaces if w.tenant_id == second
    }
