"""Addresses that name a workspace: ``azureml://`` tracking URIs and Azure ML Studio links with ``wsid=``.

A tracking URI's host is kept (private-link workspaces have their own); its path is the
workspace's resource id, possibly percent-encoded. A Studio link (what ``%amlflow status`` shows,
pasted back) carries the id in ``wsid`` (long or Studio's short form) and may carry the tenant
in ``tid``.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from ..echo import quote_input
from ..errors import WorkspaceReferenceError
from ..ids import is_host_name
from ._arm_id import split_arm_id, workspace_from_segments
from ._names import PROVIDER, WorkspaceRef, check_tenant

__all__ = ["FORMS_FIX", "TRACKING_URI_FIX", "parse_studio_link", "parse_tracking_uri"]

TRACKING_URI_FIX = (
    "Copy the MLflow tracking URI from the workspace's Overview page in Azure ML Studio, "
    "or give the workspace's resource id instead"
)
FORMS_FIX = (
    "Give the workspace's resource id (/subscriptions/.../workspaces/NAME), its azureml:// tracking URI, "
    "the path of its config.json, or --subscription/--resource-group/--workspace"
)
_TRACKING_PREFIX = re.compile(r"/mlflow/(v[^/]*)(/.*)?", re.IGNORECASE)
_TRACKING_VERSIONS = ("v1.0", "v2.0")


def parse_tracking_uri(text: str) -> WorkspaceRef:
    """An ``azureml://HOST/mlflow/v1.0|v2.0/subscriptions/...`` URI: its host and workspace, checked."""
    what = f"Not an Azure ML tracking URI: {quote_input(text)}"
    parts = _split_url(text, what, TRACKING_URI_FIX)
    host = _check_host(parts.netloc, what)
    path = parts.path
    match = _TRACKING_PREFIX.fullmatch(path)
    if match is None:
        raise WorkspaceReferenceError(what, "its path must start with /mlflow/v1.0/ or /mlflow/v2.0/", TRACKING_URI_FIX)
    version = match.group(1).lower()
    if version not in _TRACKING_VERSIONS:
        raise WorkspaceReferenceError(
            what,
            f"its API version {quote_input(match.group(1))} is not one Azure ML serves (v1.0 or v2.0)",
            TRACKING_URI_FIX,
        )
    # The path proper is the workspace's resource id; copied URIs may have it percent-encoded.
    rest = match.group(2) or ""
    if rest.strip("/") == "":
        raise WorkspaceReferenceError(
            what, f"it ends after /mlflow/{version}; the workspace part /subscriptions/... is missing", TRACKING_URI_FIX
        )
    segments = split_arm_id(rest, what, TRACKING_URI_FIX)
    segments = [unquote(s) for s in segments]
    subscription, group, workspace = workspace_from_segments(segments, what, TRACKING_URI_FIX, "")
    return WorkspaceRef(subscription, group, workspace, host=host, source="tracking URI")


def parse_studio_link(text: str) -> WorkspaceRef:
    """A Studio URL with ``wsid`` (short ``/subscriptions/S/resourcegroups/R/workspaces/W`` or a full id)."""
    what = f"Not a workspace link: {quote_input(text)}"
    query = parse_qs(_split_url(text, what, FORMS_FIX).query)
    wsid = query.get("wsid", [""])[0].strip()
    if not wsid:
        raise WorkspaceReferenceError(
            what,
            "it is a web address without a wsid= workspace parameter",
            FORMS_FIX,
        )
    fix = "Copy the link again from Azure ML Studio, or give the workspace's resource id"
    segments = split_arm_id(wsid, what, fix)
    if len(segments) >= 3 and segments[2].lower() == "resourcegroups" and len(segments) <= 6:
        # Studio's short form: /subscriptions/S/resourcegroups/R/workspaces/W
        segments = [*segments[:4], "providers", PROVIDER, *segments[4:]]
    subscription, group, workspace = workspace_from_segments(segments, what, fix, "")
    tenant_values = query.get("tid", [])
    tenant = check_tenant(tenant_values[0].strip(), " in the link", fix) if tenant_values else None
    return WorkspaceRef(subscription, group, workspace, tenant_id=tenant, source="Azure ML Studio link")


def _check_host(netloc: str, what: str) -> str:
    """``HOST[:PORT]`` of an azureml:// URI, checked (the plugin sends calls to https://HOST)."""

    def fail(why: str) -> WorkspaceReferenceError:
        return WorkspaceReferenceError(what, why, TRACKING_URI_FIX)

    if not netloc:
        raise fail("it has no host")
    if "@" in netloc:
        raise fail("its host part contains '@'")
    host, _, port = netloc.partition(":")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise fail(f"its port {quote_input(port)} is not a number from 1 to 65535")
    if not is_host_name(host):
        raise fail(f"its host {quote_input(host)} is not a valid host name")
    return netloc.lower()


def _split_url(text: str, what: str, fix: str) -> SplitResult:
    """``urlsplit``, whose ValueError (an unclosed '[' of an IPv6 host) becomes a reference error."""
    try:
        return urlsplit(text)
    except ValueError as exc:
        raise WorkspaceReferenceError(what, f"it is not a well-formed address ({exc})", fix) from None
