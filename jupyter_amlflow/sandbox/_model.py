"""The sandbox's world: tenants, identities, subscriptions, workspaces, roles and their checks."""

from __future__ import annotations

import fnmatch
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ._tls import ClientCertificate

IdentityKind = Literal["service_principal", "user", "managed_identity"]

ML_PROVIDER = "Microsoft.MachineLearningServices"
WORKSPACE_TYPE = f"{ML_PROVIDER}/workspaces"

#: Built-in roles and the actions they allow (``*`` matches any run of characters, as in Azure RBAC).
ROLES: dict[str, tuple[str, ...]] = {
    "Owner": ("*",),
    "Contributor": ("*",),
    "Reader": ("*/read",),
    "AzureML Data Scientist": (
        f"{ML_PROVIDER}/workspaces/*/read",
        f"{ML_PROVIDER}/workspaces/read",
        f"{ML_PROVIDER}/workspaces/experiments/*",
        f"{ML_PROVIDER}/workspaces/jobs/*",
        f"{ML_PROVIDER}/workspaces/models/*/*",
    ),
}

LOCATIONS = ("eastus", "westeurope", "southeastasia", "australiaeast", "uksouth")

# MLflow calls that read although they are POSTs.
_READ_POSTS = ("search", "get-by-name", "batch-get")


def mlflow_action(method: str, api: str) -> str:
    """The Azure RBAC action an MLflow REST call needs (``api`` is the path after ``/api/``).

    Microsoft Learn, "Configure MLflow for Azure Machine Learning" ("Configure authorization and
    permission levels"): MLflow tracking needs ``workspaces/experiments/*`` and ``workspaces/jobs/*``,
    the model registry ``workspaces/models/*/*``. Which of ``read``, ``write`` and ``delete`` each
    call needs is not public: the sandbox's reading, assumed.
    """
    parts = api.strip("/").split("/")
    resource = parts[parts.index("mlflow") + 1] if "mlflow" in parts[:-1] else ""
    last = parts[-1]
    if resource == "experiments":
        kind = "experiments"
    elif resource in ("registered-models", "model-versions"):
        kind = "models/versions"
    else:
        kind = "jobs"
    if method in ("GET", "HEAD") or (method == "POST" and last.startswith(_READ_POSTS)):
        verb = "read"
    elif last == "delete" and kind != "jobs":
        verb = "delete"
    else:
        verb = "write"
    return f"{ML_PROVIDER}/workspaces/{kind}/{verb}"


@dataclass
class Tenant:
    """A Microsoft Entra tenant."""

    tenant_id: str
    display_name: str
    default_domain: str


@dataclass
class Identity:
    """A principal that can sign in: service principal, user or managed identity."""

    kind: IdentityKind
    object_id: str
    display_name: str
    home_tenant: str
    tenants: list[str]
    client_id: str | None = None
    client_secret: str | None = None
    certificate: ClientCertificate | None = None
    federated_subject: str | None = None
    username: str | None = None
    password: str | None = None  # users: what the device-login page asks for
    resource_graph_allowed: bool = True

    @property
    def name(self) -> str:
        """What the request log and error messages call this identity."""
        return self.username or self.display_name


@dataclass
class Subscription:
    """An Azure subscription, owned by one tenant."""

    subscription_id: str
    display_name: str
    tenant_id: str


@dataclass
class Workspace:
    """An Azure Machine Learning workspace record, as tests and users see it."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    workspace_id: str
    tenant_id: str
    tracking_host: str
    private_link: bool = False

    @property
    def arm_id(self) -> str:
        """The workspace's ARM resource id."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{WORKSPACE_TYPE}/{self.name}"
        )

    @property
    def tracking_uri(self) -> str:
        """The ``azureml://`` tracking URI ARM reports in ``properties.mlFlowTrackingUri``."""
        return f"azureml://{self.tracking_host}/mlflow/v1.0{self.arm_id}"

    @property
    def backend_workspace(self) -> str:
        """The name of this workspace inside its backing mlflow server (lowercase, as it requires)."""
        return self.workspace_id.lower()

    @property
    def storage_account(self) -> str:
        """The name of the workspace's storage account (its ARM record's ``storageAccount``)."""
        return f"sa{self.workspace_id.replace('-', '')[:20]}"


@dataclass(frozen=True)
class RoleAssignment:
    """A role held by a principal over a scope (an ARM id prefix)."""

    principal_id: str
    role: str
    scope: str


@dataclass
class DeviceCode:
    """One device-code sign-in in progress."""

    device_code: str
    user_code: str
    tenant: str
    client_id: str
    scope: str
    expires_at: float
    interval: int
    state: Literal["pending", "approved", "declined", "redeemed"] = "pending"
    user_object_id: str | None = None
    created_at: float = field(default_factory=time.time)


class Directory:
    """Everything the sandbox knows about principals and resources; safe to use from threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.identities: dict[str, Identity] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.workspaces: list[Workspace] = []
        self.assignments: list[RoleAssignment] = []
        self.device_codes: dict[str, DeviceCode] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (object id, client id)
        self._secrets: list[str] = []

    # -- secrets -------------------------------------------------------------------------------
    def remember_secret(self, value: str) -> str:
        """Record a value the sandbox handed out, so tests can prove it never leaks."""
        with self.lock:
            self._secrets.append(value)
        return value

    def issued_secrets(self) -> list[str]:
        """Every secret, token, device code and SAS signature handed out so far."""
        with self.lock:
            return list(self._secrets)

    def new_secret(self, nbytes: int = 24) -> str:
        """A fresh random secret, recorded."""
        return self.remember_secret(secrets.token_urlsafe(nbytes))

    # -- building ------------------------------------------------------------------------------
    def add_tenant(self, display_name: str, domain: str, tenant_id: str | None = None) -> Tenant:
        """Create a tenant."""
        tenant = Tenant(tenant_id or str(uuid.uuid4()), display_name, domain)
        with self.lock:
            self.tenants[tenant.tenant_id] = tenant
        return tenant

    def add_identity(self, identity: Identity) -> Identity:
        """Register a principal."""
        with self.lock:
            self.identities[identity.object_id] = identity
        return identity

    def add_subscription(self, display_name: str, tenant_id: str) -> Subscription:
        """Create a subscription in a tenant."""
        sub = Subscription(str(uuid.uuid4()), display_name, tenant_id)
        with self.lock:
            self.subscriptions[sub.subscription_id] = sub
        return sub

    def add_workspace(self, workspace: Workspace) -> Workspace:
        """Create a workspace."""
        with self.lock:
            self.workspaces.append(workspace)
        return workspace

    def assign(self, principal_id: str, role: str, scope: str) -> RoleAssignment:
        """Grant a built-in role over a scope."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; the sandbox knows {', '.join(ROLES)}")
        assignment = RoleAssignment(principal_id, role, scope.rstrip("/"))
        with self.lock:
            self.assignments.append(assignment)
        return assignment

    def revoke(self, principal_id: str, scope: str | None = None) -> int:
        """Remove a principal's assignments (over ``scope`` only, when given); returns how many."""
        with self.lock:
            keep = [
                a
                for a in self.assignments
                if a.principal_id != principal_id
                or (scope is not None and a.scope.lower() != scope.rstrip("/").lower())
            ]
            removed = len(self.assignments) - len(keep)
            self.assignments = keep
        return removed

    # -- queries -------------------------------------------------------------------------------
    def tenant_by_name(self, name: str) -> Tenant | None:
        """A tenant by id or domain (case-insensitive)."""
        with self.lock:
            for tenant in self.tenants.values():
                if name.lower() in (tenant.tenant_id.lower(), tenant.default_domain.lower()):
                    return tenant
        return None

    def identity_by_client_id(self, client_id: str) -> Identity | None:
        """A service principal or managed identity by its application (client) id."""
        with self.lock:
            for identity in self.identities.values():
                if identity.client_id and identity.client_id.lower() == client_id.lower():
                    return identity
        return None

    def users(self, tenant_id: str | None = None) -> list[Identity]:
        """The users, optionally only those who belong to a tenant."""
        with self.lock:
            return [
                i
                for i in self.identities.values()
                if i.kind == "user" and (tenant_id is None or tenant_id in i.tenants)
            ]

    def allowed(self, principal_id: str, action: str, scope: str) -> bool:
        """Whether any assignment over ``scope`` (or a parent) grants ``action``."""
        scope_l = scope.lower()
        action_l = action.lower()
        with self.lock:
            assignments = [a for a in self.assignments if a.principal_id == principal_id]
        for a in assignments:
            a_scope = a.scope.lower()
            if scope_l != a_scope and not scope_l.startswith(a_scope + "/"):
                continue
            if any(fnmatch.fnmatchcase(action_l, p.lower()) for p in ROLES[a.role]):
                return True
        return False

    def has_any_role_under(self, principal_id: str, scope: str) -> bool:
        """Whether the principal holds any role at ``scope``, above it or below it."""
        scope_l = scope.lower()
        with self.lock:
            for a in self.assignments:
                if a.principal_id != principal_id:
                    continue
                a_scope = a.scope.lower()
                if a_scope.startswith(scope_l) or scope_l.startswith(a_scope + "/"):
                    return True
        return False

    def visible_subscriptions(self, principal_id: str, tenant_id: str) -> list[Subscription]:
        """Subscriptions of the token's tenant where the principal has any role."""
        with self.lock:
            subs = [s for s in self.subscriptions.values() if s.tenant_id == tenant_id]
        return [s for s in subs if self.has_any_role_under(principal_id, f"/subscriptions/{s.subscription_id}")]

    def readable_workspaces(self, principal_id: str, workspaces: Iterable[Workspace]) -> list[Workspace]:
        """The workspaces among ``workspaces`` the principal may read."""
        return [w for w in workspaces if self.allowed(principal_id, f"{WORKSPACE_TYPE}/read", w.arm_id)]

    def find_workspace(self, subscription_id: str, resource_group: str, name: str) -> Workspace | None:
        """A workspace by its triple; names compare case-insensitively as ARM does."""
        key = (subscription_id.lower(), resource_group.lower(), name.lower())
        with self.lock:
            for w in self.workspaces:
                if (w.subscription_id.lower(), w.resource_group.lower(), w.name.lower()) == key:
                    return w
        return None

    def resource_group_exists(self, subscription_id: str, resource_group: str) -> bool:
        """Whether any workspace lives in that resource group (the sandbox has no empty groups)."""
        with self.lock:
            return any(
                w.subscription_id.lower() == subscription_id.lower()
                and w.resource_group.lower() == resource_group.lower()
                for w in self.workspaces
            )
