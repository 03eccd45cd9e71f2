"""Who and what exists in a sandbox: its tenants, principals, users, subscriptions and workspaces.

``Sandbox`` is a ``World``: ``_populate`` makes the default world (``Cast`` names its people) that
``Sandbox.start`` serves, and the public methods here (``add_user``, ``assign_role``, ...) add to
or change a running sandbox. Each principal gets a fresh object id, client id and secret (the
directory registers every secret, so the test suite can prove none leaks); a role named here is
granted over every subscription of the principal's tenants (``_model.ROLES`` says what each role
allows).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from ._model import LOCATIONS, Directory, Identity, Subscription, Tenant, Workspace
from ._tls import make_client_certificate

__all__ = ["FEDERATED_SUBJECT", "Cast", "World"]

FEDERATED_SUBJECT = "system:serviceaccount:default:notebook"


@dataclass(frozen=True)
class Cast:
    """The principals and users of the default world (``Sandbox.sp``, ``Sandbox.alice``, ...)."""

    sp: Identity
    cert_sp: Identity
    workload_sp: Identity
    alice: Identity
    bob: Identity
    vm_identity: Identity
    norole_sp: Identity


class World:
    """The tenants, identities, roles and workspaces of a sandbox, and the methods that add to them.

    A subclass says where its workspaces are served (``_workspace_host``): ``Sandbox`` does.

    Args:
        directory: The sandbox's directory.
        root: The sandbox's folder (client certificates are written there).
    """

    def __init__(self, directory: Directory, root: Path) -> None:
        self.directory = directory
        self.root = root

    def _populate(self, n_subs: int, n_ws: int, n_tenants: int) -> Cast:
        """The default world: tenants, the principals and users of ``Cast``, subscriptions, workspaces."""
        d = self.directory
        tenants = [
            d.add_tenant(
                "Sandbox Tenant" if i == 0 else f"Sandbox Tenant {i + 1}",
                "sandbox.onmicrosoft.test" if i == 0 else f"sandbox{i + 1}.onmicrosoft.test",
            )
            for i in range(n_tenants)
        ]
        all_tenants = [t.tenant_id for t in tenants]
        home = tenants[0].tenant_id
        sp = self.add_service_principal("sandbox-sp", tenants=all_tenants)
        cert_sp = self.add_service_principal("sandbox-sp-cert", tenants=all_tenants, secret=False, certificate=True)
        workload_sp = self.add_service_principal(
            "sandbox-workload", tenants=all_tenants, secret=False, federated_subject=FEDERATED_SUBJECT
        )
        alice = self.add_user("alice", "Alice Example", tenants=all_tenants)
        bob = self.add_user("bob", "Bob Example", tenants=[home])
        vm_identity = self.add_managed_identity("sandbox-vm", tenant=home)
        norole_sp = self.add_service_principal("sandbox-sp-norole", tenants=all_tenants, role=None)
        for i in range(n_subs):
            tenant = tenants[i % n_tenants]
            sub = d.add_subscription(f"Sandbox Subscription {i + 1}", tenant.tenant_id)
            for principal in (sp, cert_sp, workload_sp, alice, bob, vm_identity):
                if tenant.tenant_id in principal.tenants:
                    d.assign(principal.object_id, "AzureML Data Scientist", f"/subscriptions/{sub.subscription_id}")
            for j in range(n_ws):
                self.add_workspace(sub, f"rg-ml-{i + 1}", f"mlw-{i + 1}-{j + 1}", LOCATIONS[(i + j) % len(LOCATIONS)])
        return Cast(sp, cert_sp, workload_sp, alice, bob, vm_identity, norole_sp)

    def add_service_principal(
        self,
        name: str,
        *,
        tenants: list[str] | None = None,
        secret: bool = True,
        certificate: bool = False,
        federated_subject: str | None = None,
        role: str | None = "AzureML Data Scientist",
    ) -> Identity:
        """Register an app and its service principal; ``role`` is granted on every subscription."""
        d = self.directory
        tenant_ids = tenants or [next(iter(d.tenants))]
        cert = None
        if certificate:
            cert = make_client_certificate(self.root, name, d.new_secret(12))
        return self._register(
            Identity(
                kind="service_principal",
                object_id=str(uuid.uuid4()),
                display_name=name,
                home_tenant=tenant_ids[0],
                tenants=list(tenant_ids),
                client_id=str(uuid.uuid4()),
                client_secret=d.new_secret() if secret else None,
                certificate=cert,
                federated_subject=federated_subject,
            ),
            role,
        )

    def add_user(
        self,
        alias: str,
        display_name: str,
        *,
        tenants: list[str] | None = None,
        role: str | None = "AzureML Data Scientist",
    ) -> Identity:
        """Add a user who can sign in by device code, ``alias@<home tenant domain>``."""
        d = self.directory
        tenant_ids = tenants or [next(iter(d.tenants))]
        domain = d.tenants[tenant_ids[0]].default_domain
        return self._register(
            Identity(
                kind="user",
                object_id=str(uuid.uuid4()),
                display_name=display_name,
                home_tenant=tenant_ids[0],
                tenants=list(tenant_ids),
                username=f"{alias}@{domain}",
                password=d.new_secret(12),
            ),
            role,
        )

    def add_managed_identity(
        self, name: str, *, tenant: str | None = None, role: str | None = "AzureML Data Scientist"
    ) -> Identity:
        """Add a managed identity served by the identity endpoints (``managed_identity_env``)."""
        d = self.directory
        tenant_id = tenant or next(iter(d.tenants))
        return self._register(
            Identity(
                kind="managed_identity",
                object_id=str(uuid.uuid4()),
                display_name=name,
                home_tenant=tenant_id,
                tenants=[tenant_id],
                client_id=str(uuid.uuid4()),
            ),
            role,
        )

    def _register(self, identity: Identity, role: str | None) -> Identity:
        """Add ``identity`` to the directory, with ``role`` over every subscription of its tenants."""
        self.directory.add_identity(identity)
        if role is not None:
            self._grant_everywhere(identity, role)
        return identity

    def _grant_everywhere(self, identity: Identity, role: str) -> None:
        """Grant ``role`` over every subscription of the identity's tenants."""
        for sub in list(self.directory.subscriptions.values()):
            if sub.tenant_id in identity.tenants:
                self.directory.assign(identity.object_id, role, f"/subscriptions/{sub.subscription_id}")

    def _workspace_host(self, private_link: bool) -> str:
        """The host a workspace's tracking URI names (the sandbox's listener: ``Sandbox`` knows it)."""
        raise NotImplementedError

    def add_workspace(
        self,
        subscription: Subscription,
        resource_group: str,
        name: str,
        location: str = "eastus",
        *,
        private_link: bool = False,
    ) -> Workspace:
        """Create a workspace. A private-link one is served on the ``localhost`` host name."""
        host = self._workspace_host(private_link)
        return self.directory.add_workspace(
            Workspace(
                subscription_id=subscription.subscription_id,
                resource_group=resource_group,
                name=name,
                location=location,
                workspace_id=str(uuid.uuid4()),
                tenant_id=subscription.tenant_id,
                tracking_host=host,
                private_link=private_link,
            )
        )

    def add_tenant(self, display_name: str, domain: str) -> Tenant:
        """Create another tenant."""
        return self.directory.add_tenant(display_name, domain)

    def add_subscription(self, display_name: str, tenant_id: str) -> Subscription:
        """Create another subscription (no role is granted on it)."""
        return self.directory.add_subscription(display_name, tenant_id)

    def assign_role(self, identity: Identity, role: str, scope: str) -> None:
        """Grant a built-in role (see ``ROLES``) over an ARM scope."""
        self.directory.assign(identity.object_id, role, scope)

    def revoke_roles(self, identity: Identity, scope: str | None = None) -> int:
        """Remove an identity's role assignments (over one scope, when given)."""
        return self.directory.revoke(identity.object_id, scope)

    def deny_resource_graph(self, identity: Identity, denied: bool = True) -> None:
        """Make Resource Graph answer 403 to this identity (or allow it again)."""
        identity.resource_graph_allowed = not denied
