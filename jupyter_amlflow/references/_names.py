"""A workspace's three names and the tenant, each checked against Azure's rule for it.

``WorkspaceRef`` is what every form of reference resolves to. The checks here say which part is
wrong and why, in ``WorkspaceReferenceError`` s; ``where`` names the place the value came from
(`` in config.json``, `` in the link``) so the same rule reads right for every form.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ..echo import quote_input
from ..errors import WorkspaceReferenceError
from ..ids import is_guid, is_tenant

__all__ = [
    "NAMES_FIX",
    "PROVIDER",
    "WorkspaceRef",
    "check_resource_group",
    "check_subscription",
    "check_tenant",
    "check_workspace",
    "from_names",
    "join",
]

PROVIDER = "Microsoft.MachineLearningServices"
NAMES_FIX = (
    "Give all three: --subscription SUB --resource-group RG --workspace NAME "
    "(in Python: subscription=, resource_group=, workspace=)"
)


@dataclass(frozen=True)
class WorkspaceRef:
    """A checked workspace reference (names only; nothing has been looked up yet).

    Args:
        subscription_id: The subscription GUID, lower case.
        resource_group: The resource group name.
        workspace: The workspace name.
        tenant_id: The tenant, when the reference carried one (config.json, Studio link).
        host: The MLflow API host of an ``azureml://`` URI (private-link hosts keep theirs).
        source: Where the reference came from: ``"arguments"``, ``"ARM id"``, ``"tracking URI"``,
            ``"Azure ML Studio link"`` or ``"config.json (<path>)"``.
    """

    subscription_id: str
    resource_group: str
    workspace: str
    tenant_id: str | None = None
    host: str | None = None
    source: str = "arguments"

    @property
    def arm_id(self) -> str:
        """The workspace's resource id, in Resource Manager's canonical spelling."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.workspace}"
        )

    def __str__(self) -> str:
        return f"{self.workspace} ({self.resource_group}, {self.subscription_id})"


def from_names(subscription_id: str | None, resource_group: str | None, workspace: str | None) -> WorkspaceRef:
    """A reference from the three names, each checked.

    Args:
        subscription_id: The subscription GUID.
        resource_group: The resource group name.
        workspace: The workspace name.

    Returns:
        The reference (``source="arguments"``).

    Raises:
        WorkspaceReferenceError: One is missing (all missing ones are named) or malformed.
    """
    given = {"subscription": subscription_id, "resource group": resource_group, "workspace name": workspace}
    values = {label: (value or "").strip() for label, value in given.items()}
    missing = [label for label, value in values.items() if not value]
    if missing:
        raise WorkspaceReferenceError(
            f"The workspace is not fully named: {join(missing)} missing",
            "a workspace is identified by its subscription, resource group and name",
            NAMES_FIX,
        )
    for label, value in values.items():
        if _looks_like_reference(value):
            raise WorkspaceReferenceError(
                f"The {label} {quote_input(value)} is a whole workspace reference, not a name",
                "",
                "Pass it on its own: %amlflow connect <reference> (in Python: connect(reference))",
            )
    return WorkspaceRef(
        check_subscription(values["subscription"], ""),
        check_resource_group(values["resource group"], ""),
        check_workspace(values["workspace name"], ""),
    )


def check_subscription(value: str, where: str) -> str:
    """``value`` as a subscription id (a GUID, lower case); ``where`` names its source in the error."""
    if not is_guid(value):
        raise _invalid(
            "Subscription id",
            value,
            where,
            "a subscription id is a GUID like 00000000-0000-0000-0000-000000000000",
            "Copy the Subscription ID from the workspace's Overview page in the Azure portal, "
            "or run %amlflow list workspaces",
        )
    return value.lower()


def check_resource_group(value: str, where: str) -> str:
    """``value`` if it is a resource group name; ``where`` names its source in the error."""
    if problem := _resource_group_problem(value):
        raise _invalid(
            "Resource group name",
            value,
            where,
            problem,
            "Copy the resource group name from the workspace's Overview page in the Azure portal",
        )
    return value


def check_workspace(value: str, where: str) -> str:
    """``value`` if it is a workspace name; ``where`` names its source in the error."""
    if problem := _workspace_problem(value):
        raise _invalid(
            "Workspace name",
            value,
            where,
            problem,
            "Copy the workspace name from Azure ML Studio or the portal, or run %amlflow list workspaces",
        )
    return value


def check_tenant(value: str, where: str, fix: str) -> str:
    """``value`` if it names a tenant (``ids.is_tenant``), a GUID in lower case; ``fix`` ends the error."""
    if not is_tenant(value):
        raise _invalid(
            "Tenant id", value, where, "a tenant id is a GUID or a domain such as contoso.onmicrosoft.com", fix
        )
    return value.lower() if is_guid(value) else value


def _resource_group_problem(name: str) -> str | None:
    """Why ``name`` is not a resource group name, or None.

    Resource Manager's rule (resource-name-rules, Microsoft.Resources/resourcegroups): 1-90
    characters; letters, digits, underscores, hyphens, periods and parentheses, where letters and
    digits are Unicode ones (the API's pattern is ``^[-\\w\\._\\(\\)]+$`` with .NET's ``\\w``:
    categories L*, Mn, Nd, Pc); it cannot end in a period.
    """
    if not name:
        return "it is empty"
    if len(name) > 90:
        return f"it has {_count(len(name), 'character')}; the limit is 90"
    for char in name:
        if char in "-_.()":
            continue
        category = unicodedata.category(char)
        if category.startswith("L") or category in ("Mn", "Nd", "Pc"):
            continue
        return f"it contains {_char_name(char)}; allowed are letters, digits, '_', '-', '.', '(' and ')'"
    if name.endswith("."):
        return "it ends with a period"
    return None


def _workspace_problem(name: str) -> str | None:
    """Why ``name`` is not a workspace name, or None.

    Azure ML's rule: 3-33 characters, ASCII letters, digits, hyphens and underscores, starting
    with a letter or digit (``^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$``).
    """
    if not name:
        return "it is empty"
    for char in name:
        if not (char.isascii() and (char.isalnum() or char in "-_")):
            return f"it contains {_char_name(char)}; allowed are letters, digits, '-' and '_'"
    if not name[0].isalnum():
        return f"it starts with {quote_input(name[0])}; it must start with a letter or digit"
    if not 3 <= len(name) <= 33:
        return f"it has {_count(len(name), 'character')}; it must have 3 to 33"
    return None


def _invalid(what: str, value: str, where: str, why: str, fix: str) -> WorkspaceReferenceError:
    return WorkspaceReferenceError(f"{what} {quote_input(value)}{where} is not valid", why, fix)


def _looks_like_reference(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered.startswith(("/subscriptions", "azureml://", "https://", "http://"))


def join(items: list[str]) -> str:
    """``"a, b and c"``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _char_name(char: str) -> str:
    return f"{quote_input(char)} (U+{ord(char):04X})"
