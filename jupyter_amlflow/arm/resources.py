"""What Resource Manager answers about tenants, subscriptions and workspaces, as frozen records.

Rows come from ARM's own lists and from Resource Graph (whose ``properties`` column is kept whole
so both parse alike). A row that is not what it should be is skipped, never half-read.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

WORKSPACE_TYPE = "Microsoft.MachineLearningServices/workspaces"
_ID_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)/?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TenantInfo:
    """A tenant the signed-in identity belongs to."""

    tenant_id: str
    display_name: str
    default_domain: str


@dataclass(frozen=True)
class SubscriptionInfo:
    """A subscription visible to the signed-in identity."""

    subscription_id: str
    display_name: str
    tenant_id: str
    state: str


@dataclass(frozen=True)
class WorkspaceInfo:
    """An Azure Machine Learning workspace as Resource Manager (or Resource Graph) reports it."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    tracking_uri: str | None  # properties.mlFlowTrackingUri, verbatim (private-link hosts kept)
    workspace_id: str | None
    tenant_id: str | None
    arm_id: str
    friendly_name: str | None

    @property
    def label(self) -> str:
        """``name — resource group — region``, for pickers."""
        return f"{self.name} — {self.resource_group} — {self.location}"


def tenant_from_json(row: object) -> TenantInfo | None:
    """A tenant from ``GET /tenants`` (``None`` if the row has no tenant id)."""
    if not isinstance(row, dict) or not row.get("tenantId"):
        return None
    return TenantInfo(
        tenant_id=str(row["tenantId"]),
        display_name=str(row.get("displayName") or row.get("defaultDomain") or row["tenantId"]),
        default_domain=str(row.get("defaultDomain") or ""),
    )


def subscription_from_json(row: object, tenant_hint: str | None = None) -> SubscriptionInfo | None:
    """A subscription from ``GET /subscriptions`` (``None`` if the row has no subscription id)."""
    if not isinstance(row, dict) or not row.get("subscriptionId"):
        return None
    return SubscriptionInfo(
        subscription_id=str(row["subscriptionId"]),
        display_name=str(row.get("displayName") or row["subscriptionId"]),
        tenant_id=str(row.get("tenantId") or tenant_hint or ""),
        state=str(row.get("state") or ""),
    )


def workspace_from_json(row: object, tenant_hint: str | None = None) -> WorkspaceInfo | None:
    """A workspace from an ARM resource or a Resource Graph row (``None`` if it is not one)."""
    if not isinstance(row, dict):
        return None
    arm_id = str(row.get("id") or "")
    match = _ID_RE.match(arm_id)
    if match is None:
        log.debug("skipping a row that is not a workspace id: %.120s", arm_id)
        return None
    props = _object(row.get("properties"))
    identity = _object(row.get("identity"))
    uri = props.get("mlFlowTrackingUri")
    return WorkspaceInfo(
        subscription_id=match["sub"],
        # From the id, not Resource Graph's resourceGroup column, which is lowercased.
        resource_group=match["rg"],
        name=str(row.get("name") or match["ws"]),
        location=str(row.get("location") or ""),
        tracking_uri=uri if isinstance(uri, str) and uri else None,
        workspace_id=_str_or_none(props.get("workspaceId")),
        tenant_id=_str_or_none(props.get("tenantId") or row.get("tenantId") or identity.get("tenantId") or tenant_hint),
        arm_id=arm_id.rstrip("/"),
        friendly_name=_str_or_none(props.get("friendlyName")),
    )


def _object(value: object) -> dict[str, object]:
    """A JSON object, or an empty one for anything else (a missing or malformed field)."""
    return value if isinstance(value, dict) else {}


def _str_or_none(value: object) -> str | None:
    return str(value) if value else None
