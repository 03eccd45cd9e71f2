"""ARM resource ids: ``/subscriptions/S/resourceGroups/R/providers/Microsoft.MachineLearningServices/workspaces/W``.

Segment by segment, so the error names the first one that is wrong (a registry instead of a
workspace, another provider, a missing or extra part). Tracking URIs and Studio links carry the
same path and are read with the same functions.
"""

from __future__ import annotations

from ..echo import quote_input
from ..errors import WorkspaceReferenceError
from ._names import PROVIDER, WorkspaceRef, check_resource_group, check_subscription, check_workspace

__all__ = ["ARM_ID_FIX", "ARM_ID_SHAPE", "parse_arm_id", "split_arm_id", "workspace_from_segments"]

ARM_ID_SHAPE = f"/subscriptions/<id>/resourceGroups/<group>/providers/{PROVIDER}/workspaces/<name>"
ARM_ID_FIX = f"A workspace resource id looks like {ARM_ID_SHAPE} (portal: the workspace's Properties > Resource ID)"


def parse_arm_id(text: str, where: str = "") -> WorkspaceRef:
    """A workspace's resource id, checked segment by segment; ``where`` names its source in errors."""
    what = f"Not a workspace resource id{where}: {quote_input(text)}"
    segments = split_arm_id(text, what, ARM_ID_FIX)
    subscription, group, workspace = workspace_from_segments(segments, what, ARM_ID_FIX, where)
    return WorkspaceRef(subscription, group, workspace, source="ARM id")


def split_arm_id(text: str, what: str, fix: str) -> list[str]:
    """The segments of an ARM id (leading ``/`` and one trailing ``/`` removed)."""

    def fail(why: str) -> WorkspaceReferenceError:
        return WorkspaceReferenceError(what, why, fix)

    if not text.startswith("/"):
        raise fail("it must start with /subscriptions/")
    body = text[1:-1] if text.endswith("/") and len(text) > 1 else text[1:]
    segments = body.split("/")
    if "" in segments:
        raise fail("it has an empty segment ('//')")
    return segments


def workspace_from_segments(segments: list[str], what: str, fix: str, where: str) -> tuple[str, str, str]:
    """Subscription, resource group and workspace from ARM id segments, all checked."""

    def fail(why: str) -> WorkspaceReferenceError:
        return WorkspaceReferenceError(what, why, fix)

    # (segment index, expected name, what follows it) for the fixed names of the path.
    expected = (
        (0, "subscriptions", "the subscription id"),
        (2, "resourceGroups", "the resource group name"),
        (4, "providers", f"'{PROVIDER}'"),
        (6, "workspaces", "the workspace name"),
    )
    for index, name, follows in expected:
        if len(segments) <= index:
            raise fail(f"it ends after {quote_input(segments[index - 1])}; '/{name}/...' is missing")
        found = segments[index]
        if found.lower() != name.lower():
            if index == 6:
                kind = quote_input(found)
                if found.lower() == "registries":
                    raise fail(f"it names an Azure ML registry ({kind}); MLflow tracking needs a workspace")
                raise fail(f"it names resource type {kind}; expected 'workspaces'")
            before = f"after {quote_input(segments[index - 1])}" if index else "first"
            raise fail(f"expected '{name}' {before}, found {quote_input(found)}")
        if len(segments) <= index + 1:
            raise fail(f"it ends after '{name}'; {follows} is missing")
        if index == 4 and segments[5].lower() != PROVIDER.lower():
            raise fail(f"it names provider {quote_input(segments[5])}; a workspace is under {PROVIDER}")
    if len(segments) > 8:
        extra = "/" + "/".join(segments[8:])
        raise fail(f"it has extra segments after the workspace name: {quote_input(extra)}")
    return (
        check_subscription(segments[1], where),
        check_resource_group(segments[3], where),
        check_workspace(segments[7], where),
    )
