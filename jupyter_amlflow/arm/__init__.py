"""Azure Resource Manager: tenants, subscriptions, workspaces, and cloud metadata documents.

This package is the only part of jupyter_amlflow that speaks HTTP to Resource Manager, and inside
it ``transport`` alone sends. One job per module:

- ``transport``: the azure-core pipeline and connection pool every request leaves through, with
  retries bounded by one deadline per request and a timeout per attempt.
- ``failures``: what Resource Manager refused, or what failed on the way, as ``errors`` types
  that say what failed, why, and what to type next; no message carries a token.
- ``resources``: the records it answers with (``TenantInfo``, ``SubscriptionInfo``,
  ``WorkspaceInfo``) and how its rows are read.
- ``client``: ``ArmClient``, the calls one sign-in makes (URLs, API versions, paging).
- ``discovery``: every workspace a sign-in can use (Resource Graph, then the per-subscription
  fallback); ``discover`` is the one discovery the panel and ``%amlflow list workspaces`` share.
- ``metadata``: a cloud's ``/metadata/endpoints`` document (https only, no token).

azure-core is imported when a client first sends, never at import.
"""

from .client import ArmClient, WorkspaceReference
from .discovery import Discovery, Found, discover, discover_workspaces
from .failures import WrongTenant
from .metadata import check_metadata_url, fetch_cloud_metadata
from .resources import SubscriptionInfo, TenantInfo, WorkspaceInfo
from .transport import MAX_WORKERS

__all__ = [
    "MAX_WORKERS",
    "ArmClient",
    "Discovery",
    "Found",
    "SubscriptionInfo",
    "TenantInfo",
    "WorkspaceInfo",
    "WorkspaceReference",
    "WrongTenant",
    "check_metadata_url",
    "discover",
    "discover_workspaces",
    "fetch_cloud_metadata",
]
