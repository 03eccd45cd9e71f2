"""What ``%amlflow status`` shows: a kernel connected to a workspace (``Connection``), or not.

``Connection`` is what connect returns: the workspace, cloud, identity and experiment, with text
and HTML forms. ``not_connected`` says where MLflow logs instead, and who set that up (the
platform, the user by hand, or nobody).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import tracking
from .compat import internals
from .display import KeyValues, Link

if TYPE_CHECKING:
    from .arm import WorkspaceInfo
    from .auth import Identity
    from .clouds import Cloud
    from .connection import Session
    from .platform import Platform

NOT_SET = "not set: mlflow logs to its local default store in the working folder"


@dataclass(frozen=True)
class Connection:
    """A kernel connected to a workspace. ``disconnect()`` puts MLflow back as it was."""

    workspace: WorkspaceInfo
    cloud: Cloud
    tenant_id: str
    identity: Identity
    method: str
    tracking_uri: str
    experiment: tracking.ExperimentRef
    platform: Platform
    session: Session = field(repr=False, compare=False)

    @property
    def studio_url(self) -> str | None:
        """The workspace in Azure ML Studio (None in clouds without Studio)."""
        w = self.workspace
        return self.cloud.studio_workspace_url(w.subscription_id, w.resource_group, w.name, self.tenant_id)

    def run_url(self, run_id: str) -> str | None:
        """A run in Azure ML Studio: the link to follow (mlflow's own API-host link 404s)."""
        w = self.workspace
        return self.cloud.studio_run_url(run_id, w.subscription_id, w.resource_group, w.name, self.tenant_id)

    def disconnect(self) -> None:
        """Restore MLflow's tracking URI, registry URI, experiment and environment."""
        self.session.disconnect()

    def view(self) -> KeyValues:
        """The text/HTML summary shown after connect and by ``%amlflow status``."""
        w = self.workspace
        studio = self.studio_url
        created = " (created)" if self.experiment.created else ""
        return KeyValues(
            f"Connected to {w.name}",
            [
                ("Workspace", w.name),
                ("Resource group", w.resource_group),
                ("Subscription", w.subscription_id),
                ("Region", w.location),
                ("Cloud", self.cloud.name if not self.cloud.custom else f"{self.cloud.name} ({self.cloud.origin})"),
                ("Tenant", self.tenant_id),
                ("Signed in as", f"{self.identity.name} ({self.identity.kind}, {self.method})"),
                ("Experiment", f"{self.experiment.name}{created}"),
                ("Tracking URI", self.tracking_uri),
                ("Studio", Link("Open in Azure ML Studio", studio) if studio else None),
                *self.session.limits_rows(),
            ],
        )

    def __repr__(self) -> str:
        return repr(self.view())

    def _repr_html_(self) -> str:
        return self.view()._repr_html_()


def not_connected(platform: Platform, env: Mapping[str, str]) -> KeyValues:
    """The status of a kernel that is not connected: where MLflow logs, and who set that up."""
    imported = tracking.mlflow_imported()
    if imported:
        import mlflow

        current: str | None = mlflow.get_tracking_uri()
    else:
        current = env.get("MLFLOW_TRACKING_URI")
    preset = platform.preconfigured_tracking_uri
    if preset:
        note = (
            "The platform configured MLflow; it logs there. %amlflow connect --force replaces it for this kernel."
        )
        origin = f"set by the platform ({platform.label})"
    elif current and env.get("MLFLOW_TRACKING_URI") == current:
        note, origin = (
            "Set by hand (MLFLOW_TRACKING_URI); %amlflow connect replaces it until disconnect.",
            "set by hand",
        )
    elif current and imported and internals.tracking_uri_set():
        note, origin = (
            "Set by hand (mlflow.set_tracking_uri); %amlflow connect replaces it until disconnect.",
            "set by hand",
        )
    else:
        note, origin = "Run %amlflow connect (or %amlflow panel) to connect to a workspace.", ""
    # Nothing set: before connect mlflow may not be imported yet, after disconnect it reports its
    # own default; either way it logs to the same local store, so both say the same.
    shown = f"{current or preset} ({origin})" if origin else NOT_SET
    return KeyValues("Not connected", [("Platform", platform.label), ("Tracking URI", shown)], note)
