"""The workspaces one sign-in can use, in every tenant it belongs to: one rule for the panel and the list.

``%amlflow list workspaces`` and the panel used to disagree for an identity in several tenants
(the list looked in the signed-in tenant only). Both call ``discover`` now: the tenants, their
subscriptions (the panel's lists), then the workspaces of every tenant at once
(``ArmClient.discover_workspaces(tenant_ids=...)``, Resource Graph first). ``only_tenant``
narrows it to one tenant, for ``%amlflow list workspaces --tenant T``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import AmlflowError

if TYPE_CHECKING:
    from .arm import ArmClient, Discovery, SubscriptionInfo, TenantInfo, WorkspaceInfo

__all__ = ["Found", "discover"]


@dataclass
class Found:
    """What ``discover`` found.

    Attributes:
        tenants: The identity's tenants (empty when they could not be listed).
        subscriptions: The subscriptions of those tenants, by display name.
        discovery: The workspaces, and how they were found.
        notes: What could not be listed, one short line each; the rest was listed all the same.
    """

    tenants: list[TenantInfo]
    subscriptions: list[SubscriptionInfo]
    discovery: Discovery
    notes: list[str] = field(default_factory=list)

    @property
    def workspaces(self) -> list[WorkspaceInfo]:
        """Every workspace found, sorted by name, resource group and subscription."""
        return self.discovery.workspaces


def discover(
    client: ArmClient,
    signed_in_tenant: str,
    *,
    subscriptions: Sequence[str] | None = None,
    only_tenant: bool = False,
    on_lists: Callable[[list[TenantInfo], list[SubscriptionInfo]], None] | None = None,
    on_found: Callable[[list[WorkspaceInfo]], None] | None = None,
) -> Found:
    """Tenants, subscriptions and workspaces visible to the client's sign-in.

    Args:
        client: The sign-in's Resource Manager client (``Session.arm``: it reaches other tenants).
        signed_in_tenant: The tenant the sign-in is for.
        subscriptions: Only these subscription ids.
        only_tenant: Stay in ``signed_in_tenant`` instead of covering every tenant.
        on_lists: Called with the tenants and subscriptions once they are known (before the
            workspaces), from the calling thread.
        on_found: Called with each batch of workspaces as it arrives (``discover_workspaces``).

    Raises:
        SignInError: The signed-in tenant gave no token, or refused it.
        AmlflowError: Listing the signed-in tenant's subscriptions failed.
    """
    notes: list[str] = []
    tenants: list[TenantInfo] = []
    if not only_tenant:
        try:
            tenants = client.tenants()
        except AmlflowError as exc:  # the signed-in tenant's lists still work without the tenant list
            notes.append(exc.what)
    found = {s.subscription_id: s for s in client.subscriptions()}
    others = [t.tenant_id for t in tenants if t.tenant_id != signed_in_tenant]
    for tenant_id in others:
        try:
            found.update({s.subscription_id: s for s in client.subscriptions(tenant_id=tenant_id)})
        except AmlflowError as exc:  # another tenant may demand its own sign-in; the rest still lists
            notes.append(exc.what)
    listed = sorted(found.values(), key=lambda s: s.display_name.lower())
    if on_lists is not None:
        on_lists(tenants, listed)
    tenant_ids = [signed_in_tenant, *others] if others else None
    discovery = client.discover_workspaces(subscriptions, on_found=on_found, tenant_ids=tenant_ids)
    notes.extend(f"{where}: {error.what}" for where, error in discovery.errors.items())
    return Found(tenants, listed, discovery, notes)
