"""A local stand-in for Microsoft Entra ID, Azure Resource Manager and the Azure ML MLflow API.

The unmodified azure-identity, MSAL, Azure management clients and the azureml-mlflow plugin talk
to it over HTTPS (a CA generated per run) on 127.0.0.1, as if it were Azure::

    from jupyter_amlflow.sandbox import Sandbox

    with Sandbox(subscriptions=2, workspaces_per_subscription=2) as sb:
        os.environ.update(sb.env)
        os.environ.update(sb.service_principal)
        ...

Every local process reaches 127.0.0.1: what is not public on Azure needs the sandbox's per-run
secrets (``_access``): the backend URI's access key, the identity secret, the users' passwords on
the device-login page, the Studio key in ``studio_url``; the ``mlflow server`` processes listen
only on Unix sockets in a 0700 folder.

See ``README.md`` (section "The sandbox") for every knob.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ._access import Access
from ._arm import ResourceManager
from ._entra import Entra
from ._fidelity import MODES
from ._http import (
    Fault,
    Faults,
    HttpError,
    Request,
    RequestRecord,
    Route,
    SandboxHTTPServer,
    serve_in_thread,
)
from ._model import LOCATIONS, ROLES, Directory, Identity, Subscription, Tenant, Workspace
from ._tls import make_client_certificate, make_server_tls
from ._tokens import FederationIssuer, TokenAuthority, TokenRejected
from ._watchdog import Watchdog

__all__ = [
    "FOREIGN_ENV",
    "MLFLOW_API_MODES",
    "ROLES",
    "Fault",
    "Identity",
    "PendingSignIn",
    "RequestRecord",
    "Sandbox",
    "Subscription",
    "Tenant",
    "Workspace",
]

#: Variables that would point a client process at a real Azure identity, cloud or platform, or
#: change its MLflow state: a process meant to talk to the sandbox alone must not inherit them.
FOREIGN_ENV = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_TOKEN",
    "AZUREML_CURRENT_CLOUD",
    "ARM_CLOUD_METADATA_URL",
    "DATABRICKS_RUNTIME_VERSION",
    "AZURE_SERVICE",
    "JUPYTERHUB_API_TOKEN",
    "CI_AZUREML",
)

DEFAULT_CLOUD = "AzureSandbox"
#: ``Sandbox(mlflow_api=...)``: answer as Azure ML does, or forward every MLflow call.
MLFLOW_API_MODES = MODES
STORAGE_SUFFIX = "core.sandbox.test"
FEDERATED_SUBJECT = "system:serviceaccount:default:notebook"


@dataclass(frozen=True)
class PendingSignIn:
    """A device-code sign-in waiting for a person: what the sign-in page would show them."""

    user_code: str
    tenant: str
    client_id: str
    expires_at: float
    created_at: float


class Sandbox:
    """Entra ID, Resource Manager and (part 2) the Azure ML MLflow API, on 127.0.0.1 over HTTPS.

    Args:
        subscriptions: How many subscriptions to create (spread over the tenants in turn).
        workspaces_per_subscription: Workspaces in each subscription.
        tenants: How many tenants. The service principals and the first user belong to all of
            them; the second user only to the first.
        token_lifetime: Seconds an access token lives (changeable while running).
        async_batch_delay: Seconds between accepting a ``log-batch-async`` and writing its metrics
            (changeable while running; Azure's is not public, see ``_batches``).
        device_code_interval: Polling interval the device-code endpoint asks for, in seconds.
        device_code_lifetime: Seconds a device code stays valid.
        page_size: Items per page of ARM lists (tenants, subscriptions, workspaces).
        resource_graph_page_size: Rows per Resource Graph page.
        mlflow: Serve the MLflow API over real ``mlflow server`` processes (needs the
            ``[sandbox]`` extra). Without it only identity and Resource Manager are served.
        max_backends: At most this many ``mlflow server`` processes run at once.
        prestart_backend: Start the first backend with the sandbox, so the first MLflow call
            does not wait for it.
        mlflow_api: ``"azure"`` (default) answers MLflow calls as Azure ML does: it refuses what Azure
            refuses (logged models, traces, some queries) and marks calls nobody has verified;
            ``"open-source"`` forwards everything to the mlflow server except its workspace API
            (see ``_fidelity`` and the README's sandbox table).
        cloud: The sandbox cloud's name.
        root: Where to keep the sandbox's files (a fresh temp dir, removed at stop, when None).
            Should this process end without ``stop()`` (SIGKILL, a CI timeout), a watchdog
            process (``_watchdog.py``) stops the mlflow servers and removes that temp dir.
    """

    def __init__(
        self,
        subscriptions: int = 2,
        workspaces_per_subscription: int = 2,
        tenants: int = 1,
        *,
        token_lifetime: float = 3600.0,
        async_batch_delay: float = 0.5,
        device_code_interval: int = 1,
        device_code_lifetime: float = 900.0,
        page_size: int = 100,
        resource_graph_page_size: int = 1000,
        mlflow: bool = True,
        max_backends: int = 2,
        prestart_backend: bool = True,
        mlflow_api: str = "azure",
        cloud: str = DEFAULT_CLOUD,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        if subscriptions < 0 or workspaces_per_subscription < 0 or tenants < 1:
            raise ValueError("subscriptions and workspaces_per_subscription must be >= 0, tenants >= 1")
        if mlflow_api not in MLFLOW_API_MODES:
            raise ValueError(f"mlflow_api must be one of {', '.join(MLFLOW_API_MODES)}, not {mlflow_api!r}")
        self.mlflow_api = mlflow_api
        self.cloud = cloud
        self.token_lifetime = float(token_lifetime)
        self.async_batch_delay = float(async_batch_delay)
        self.device_code_interval = int(device_code_interval)
        self.device_code_lifetime = float(device_code_lifetime)
        self.page_size = int(page_size)
        self.resource_graph_page_size = int(resource_graph_page_size)
        self._sizes = (subscriptions, workspaces_per_subscription, tenants)
        self._want_mlflow = mlflow
        self._max_backends = max_backends
        self._prestart_backend = prestart_backend
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="amlflow-sandbox-"))
        self.root.mkdir(parents=True, exist_ok=True)
        # Cleans up if this process dies without stop(): SIGKILL, a CI timeout, an unhandled SIGTERM.
        self._watchdog = Watchdog(self.root if self._own_root else None)
        self.directory = Directory()
        self.faults = Faults()
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._listeners: list[tuple[SandboxHTTPServer, threading.Thread]] = []
        self.mlflow: Any = None  # the MLflow part (``_mlflow.MlflowService``) when enabled
        # The per-run secrets of ``_access``: a local process without them gets 401.
        self.access = Access(self.directory.new_secret(32))
        self.identity_header = ""
        self.started = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Generate certificates, populate the directory, start listening. Returns ``self``.

        With ``prestart_backend``, returns once the first mlflow server answers too.
        """
        if self.started:
            return self
        if self._want_mlflow:
            from ._mlflow import MlflowService

            self.mlflow = MlflowService(self, max_backends=self._max_backends)
            self.mlflow.pool.watch_with(self._watchdog)
            if self._prestart_backend:
                # An mlflow server needs seconds to come up: spawn it first, so that time overlaps
                # everything below instead of adding to it.
                self.mlflow.prelaunch()
        try:
            self._start_listening()
            if self.mlflow is not None:
                self.mlflow.start(prestart=self._prestart_backend)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_listening(self) -> None:
        tls = make_server_tls(self.root)
        self.ca_bundle = str(tls.ca_bundle)
        self.ca_cert = str(tls.ca_pem)
        routes: list[Route] = []
        self._server = SandboxHTTPServer(
            routes, self.faults, self._record, self._authenticate, self._stopping, tls.context
        )
        self.base_url = self._server.base_url
        self.authority_url = self.base_url
        self.arm_url = self.base_url + "/"
        self.authority = TokenAuthority(self.base_url)
        self.federation = FederationIssuer(f"{self.base_url}/federation")
        self.identity_header = self.directory.new_secret()
        self.entra = Entra(self)
        self.arm = ResourceManager(self)
        if self.mlflow is not None:
            routes.extend(self.mlflow.routes())
        routes.extend(self.entra.routes())
        routes.extend(self.arm.routes())
        self._populate(*self._sizes)
        self._thread = serve_in_thread(self._server, f"amlflow-sandbox-{self._server.port}")
        self.started = True

    def add_listener(self, routes: list[Route]) -> SandboxHTTPServer:
        """Serve ``routes`` on another 127.0.0.1 port, plain HTTP, sharing faults and the request log.

        The listener stops with the sandbox.
        """
        server = SandboxHTTPServer(routes, self.faults, self._record, self._authenticate, self._stopping, None)
        self._listeners.append((server, serve_in_thread(server, f"amlflow-sandbox-{server.port}")))
        return server

    def stop(self) -> None:
        """Stop listening, stop every child process, remove the temp dir (when it made one).

        Safe to call more than once, and after a start that failed half-way.
        """
        self._stopping.set()
        if self.mlflow is not None:
            self.mlflow.stop()
        listeners, self._listeners = self._listeners, []
        if self.started and self._server is not None and self._thread is not None:
            listeners.insert(0, (self._server, self._thread))
        elif self._server is not None:
            self._server.server_close()  # it never served: shutdown() would wait for a loop that never ran
        for server, thread in listeners:
            server.shutdown()
            server.close_all()
            server.server_close()
            thread.join(timeout=5)
        self.started = False
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        self._watchdog.release()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- population ----------------------------------------------------------------------------
    def _populate(self, n_subs: int, n_ws: int, n_tenants: int) -> None:
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
        self.sp = self.add_service_principal("sandbox-sp", tenants=all_tenants)
        self.cert_sp = self.add_service_principal(
            "sandbox-sp-cert", tenants=all_tenants, secret=False, certificate=True
        )
        self.workload_sp = self.add_service_principal(
            "sandbox-workload", tenants=all_tenants, secret=False, federated_subject=FEDERATED_SUBJECT
        )
        self.alice = self.add_user("alice", "Alice Example", tenants=all_tenants)
        self.bob = self.add_user("bob", "Bob Example", tenants=[home])
        self.vm_identity = self.add_managed_identity("sandbox-vm", tenant=home)
        self.norole_sp = self.add_service_principal("sandbox-sp-norole", tenants=all_tenants, role=None)
        for i in range(n_subs):
            tenant = tenants[i % n_tenants]
            sub = d.add_subscription(f"Sandbox Subscription {i + 1}", tenant.tenant_id)
            for principal in (self.sp, self.cert_sp, self.workload_sp, self.alice, self.bob, self.vm_identity):
                if tenant.tenant_id in principal.tenants:
                    d.assign(principal.object_id, "AzureML Data Scientist", f"/subscriptions/{sub.subscription_id}")
            for j in range(n_ws):
                self.add_workspace(sub, f"rg-ml-{i + 1}", f"mlw-{i + 1}-{j + 1}", LOCATIONS[(i + j) % len(LOCATIONS)])

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
        identity = d.add_identity(
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
            )
        )
        if role is not None:
            self._grant_everywhere(identity, role)
        return identity

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
        identity = d.add_identity(
            Identity(
                kind="user",
                object_id=str(uuid.uuid4()),
                display_name=display_name,
                home_tenant=tenant_ids[0],
                tenants=list(tenant_ids),
                username=f"{alias}@{domain}",
                password=d.new_secret(12),
            )
        )
        if role is not None:
            self._grant_everywhere(identity, role)
        return identity

    def add_managed_identity(
        self, name: str, *, tenant: str | None = None, role: str | None = "AzureML Data Scientist"
    ) -> Identity:
        """Add a managed identity served by the identity endpoints (``managed_identity_env``)."""
        d = self.directory
        tenant_id = tenant or next(iter(d.tenants))
        identity = d.add_identity(
            Identity(
                kind="managed_identity",
                object_id=str(uuid.uuid4()),
                display_name=name,
                home_tenant=tenant_id,
                tenants=[tenant_id],
                client_id=str(uuid.uuid4()),
            )
        )
        if role is not None:
            self._grant_everywhere(identity, role)
        return identity

    def _grant_everywhere(self, identity: Identity, role: str) -> None:
        for sub in list(self.directory.subscriptions.values()):
            if sub.tenant_id in identity.tenants:
                self.directory.assign(identity.object_id, role, f"/subscriptions/{sub.subscription_id}")

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
        assert self._server is not None, "start the sandbox first"
        host = f"localhost:{self._server.port}" if private_link else f"127.0.0.1:{self._server.port}"
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

    # -- what clients need ---------------------------------------------------------------------
    @property
    def tenants(self) -> list[Tenant]:
        """All tenants, the home tenant first."""
        return list(self.directory.tenants.values())

    @property
    def tenant_id(self) -> str:
        """The first (home) tenant's id."""
        return self.tenants[0].tenant_id

    @property
    def subscriptions(self) -> list[Subscription]:
        """All subscriptions."""
        return list(self.directory.subscriptions.values())

    @property
    def workspaces(self) -> list[Workspace]:
        """All workspaces, in creation order."""
        with self.directory.lock:
            return list(self.directory.workspaces)

    @property
    def metadata_url(self) -> str:
        """The ARM cloud-metadata URL (``ARM_CLOUD_METADATA_URL``)."""
        return f"{self.base_url}/metadata/endpoints?api-version=2019-05-01"

    @property
    def storage_suffix(self) -> str:
        """The cloud's storage suffix; blob URLs carry ``<account>.blob.<suffix>`` in their path."""
        return STORAGE_SUFFIX

    @property
    def studio_url(self) -> str:
        """The sandbox's stand-in for Azure ML Studio (its path carries the read-only Studio key)."""
        return f"{self.base_url}/studio/{self.access.studio_key}"

    @property
    def access_key(self) -> str:
        """The per-run secret the plain backend listener wants (``backend_tracking_uri`` carries it)."""
        return self.access.access_key

    def user_password(self, user: Identity | str) -> str:
        """A sandbox user's password, which the device-login page asks for (an identity or username)."""
        name = user if isinstance(user, str) else (user.username or "")
        found = next((i for i in self.directory.users() if (i.username or "").lower() == name.lower()), None)
        if found is None or found.password is None:
            raise LookupError(f"no sandbox user {name!r}")
        return found.password

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs to use the sandbox cloud (no credential in it)."""
        return {
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "SSL_CERT_FILE": self.ca_bundle,
            "CURL_CA_BUNDLE": self.ca_bundle,
            "ARM_CLOUD_METADATA_URL": self.metadata_url,
            "AZUREML_CURRENT_CLOUD": self.cloud,
            "AZURE_AUTHORITY_HOST": self.authority_url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "AMLFLOW_SANDBOX_URL": self.base_url,
        }

    @property
    def service_principal(self) -> dict[str, str]:
        """``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET`` of the default principal."""
        assert self.sp.client_id and self.sp.client_secret
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.sp.client_id,
            "AZURE_CLIENT_SECRET": self.sp.client_secret,
        }

    @property
    def certificate_principal(self) -> dict[str, str]:
        """Environment for the certificate principal (PEM, unencrypted)."""
        assert self.cert_sp.client_id and self.cert_sp.certificate
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.cert_sp.client_id,
            "AZURE_CLIENT_CERTIFICATE_PATH": str(self.cert_sp.certificate.pem_path),
        }

    @property
    def certificate_principal_pfx(self) -> dict[str, str]:
        """Environment for the certificate principal (PKCS12 with a password)."""
        assert self.cert_sp.client_id and self.cert_sp.certificate
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.cert_sp.client_id,
            "AZURE_CLIENT_CERTIFICATE_PATH": str(self.cert_sp.certificate.pfx_path),
            "AZURE_CLIENT_CERTIFICATE_PASSWORD": self.cert_sp.certificate.pfx_password,
        }

    def workload_identity_env(self, lifetime: float = 3600.0) -> dict[str, str]:
        """Write a federated token file, as a cluster would project it; return the variables."""
        assert self.workload_sp.client_id
        token = self.directory.remember_secret(self.federation.token(FEDERATED_SUBJECT, lifetime))
        path = self.root / "federated-token"
        path.write_text(token)
        path.chmod(0o600)
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.workload_sp.client_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(path),
            "AZURE_AUTHORITY_HOST": self.authority_url,
        }

    @property
    def managed_identity_env(self) -> dict[str, str]:
        """App Service style identity endpoint (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``)."""
        return {"IDENTITY_ENDPOINT": f"{self.base_url}/msi/appservice", "IDENTITY_HEADER": self.identity_header}

    @property
    def msi_endpoint_env(self) -> dict[str, str]:
        """Azure ML compute style identity endpoint (``MSI_ENDPOINT`` with ``MSI_SECRET``).

        Not the Cloud Shell form (``MSI_ENDPOINT`` alone): on a shared machine's loopback an
        endpoint without a secret would give any local process the identity's tokens.
        """
        return {"MSI_ENDPOINT": f"{self.base_url}/msi/token", "MSI_SECRET": self.identity_header}

    def cloud_metadata(self) -> list[dict[str, Any]]:
        """The ``/metadata/endpoints`` document: one cloud, this sandbox."""
        base = self.base_url
        return [
            {
                "portal": f"{base}/portal",
                # Not in Azure's document: custom clouds have no Studio. jupyter_amlflow reads this
                # extension field to link runs to the sandbox's Studio stand-in.
                "amlStudio": self.studio_url,
                "authentication": {
                    "loginEndpoint": f"{base}/",
                    "audiences": [f"{base}/"],
                    "tenant": "common",
                    "identityProvider": "AAD",
                },
                "media": f"{base}/media",
                "graphAudience": f"{base}/graph/",
                "graph": f"{base}/graph/",
                "name": self.cloud,
                "suffixes": {
                    "azureDataLakeStoreFileSystem": "azuredatalakestore.sandbox.test",
                    "acrLoginServer": "azurecr.sandbox.test",
                    "sqlServerHostname": "database.sandbox.test",
                    "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.sandbox.test",
                    "keyVaultDns": "vault.sandbox.test",
                    "storage": STORAGE_SUFFIX,
                    "azureFrontDoorEndpointSuffix": "azurefd.sandbox.test",
                    "storageSyncEndpointSuffix": "afs.sandbox.test",
                    "mhsmDns": "managedhsm.sandbox.test",
                    "mysqlServerEndpoint": "mysql.database.sandbox.test",
                    "postgresqlServerEndpoint": "postgres.database.sandbox.test",
                    "mariadbServerEndpoint": "mariadb.database.sandbox.test",
                    "synapseAnalytics": "dev.azuresynapse.sandbox.test",
                    "attestationEndpoint": "attest.sandbox.test",
                },
                "batch": f"{base}/batch/",
                "resourceManager": f"{base}/",
                "vmImageAliasDoc": f"{base}/aliases.json",
                "activeDirectoryDataLake": f"{base}/datalake/",
                "sqlManagement": f"{base}/sql/",
                "microsoftGraphResourceId": f"{base}/msgraph/",
                "appInsightsResourceId": f"{base}/appinsights",
                "appInsightsTelemetryChannelResourceId": f"{base}/appinsights/v2/track",
                "attestationResourceId": f"{base}/attest",
                "synapseAnalyticsResourceId": f"{base}/synapse",
                "logAnalyticsResourceId": f"{base}/loganalytics",
                "ossrDbmsResourceId": f"{base}/ossrdbms",
                "gallery": f"{base}/gallery/",
            }
        ]

    # -- device code ---------------------------------------------------------------------------
    def pending_device_codes(self) -> list[PendingSignIn]:
        """Sign-ins waiting for a person, oldest first."""
        now = time.time()
        with self.directory.lock:
            return [
                PendingSignIn(r.user_code, r.tenant, r.client_id, r.expires_at, r.created_at)
                for r in self.directory.device_codes.values()
                if r.state == "pending" and r.expires_at > now
            ]

    def wait_for_device_code(self, timeout: float = 30.0, *, newer_than: float | None = None) -> PendingSignIn:
        """Block until a sign-in is pending; returns the newest.

        ``newer_than`` (a ``time.time()`` value) ignores codes requested before it, such as one
        an earlier, abandoned sign-in left pending.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [p for p in self.pending_device_codes() if newer_than is None or p.created_at >= newer_than]
            if pending:
                return pending[-1]
            time.sleep(0.05)
        raise TimeoutError(f"no device-code sign-in started within {timeout:g} s")

    def approve_device_code(self, code: str, user: str | None = None) -> Identity:
        """Approve a pending sign-in as ``user`` (username or object id; Alice when None)."""
        return self.entra.approve(code, user or self.alice.username)

    def decline_device_code(self, code: str) -> None:
        """Decline a pending sign-in."""
        self.entra.decline(code)

    # -- faults, log, secrets ------------------------------------------------------------------
    def inject(
        self,
        endpoint: str,
        *,
        latency: float = 0.0,
        status: int | None = None,
        retry_after: float | None = None,
        drop: bool = False,
        stall: float | None = None,
        times: int | None = None,
        identity: Identity | None = None,
    ) -> Fault:
        """Inject a fault on an endpoint name (see ``endpoints``) or ``"*"`` for all.

        ``latency`` delays the answer; ``status`` answers with that code (and ``Retry-After``);
        ``drop`` closes the connection without an answer; ``stall`` waits that long, then drops.
        ``times`` limits it to the next N matching requests; ``identity`` to one caller.
        """
        return self.faults.add(
            Fault(
                endpoint=endpoint,
                latency=latency,
                status=status,
                retry_after=retry_after,
                drop=drop,
                stall=stall,
                times=times,
                identity=identity.object_id if identity else None,
            )
        )

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()

    @property
    def endpoints(self) -> list[str]:
        """The endpoint names faults and the request log use."""
        assert self._server is not None
        servers = [self._server, *(server for server, _ in self._listeners)]
        return sorted({r.endpoint for server in servers for r in server.routes})

    def _record(self, record: RequestRecord) -> None:
        with self._log_lock:
            self._log.append(record)

    @property
    def requests(self) -> list[RequestRecord]:
        """The request log so far (a copy)."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._log_lock:
            self._log.clear()

    def issued_secrets(self) -> list[str]:
        """Every secret, token, device code and SAS signature the sandbox handed out."""
        return self.directory.issued_secrets()

    # -- authentication ------------------------------------------------------------------------
    @property
    def arm_audiences(self) -> tuple[str, ...]:
        """Audiences Resource Manager and the MLflow API accept."""
        return (f"{self.base_url}/",)

    def _authenticate(self, req: Request, route: Route) -> None:
        if route.key:
            self.access.require_key(req)
        if not route.auth:
            return
        header = req.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise self._unauthorized(
                "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        try:
            claims = self.authority.verify(token.strip(), audiences=self.arm_audiences)
        except TokenRejected as exc:
            raise self._unauthorized(exc.code, exc.message) from exc
        identity = self.directory.identities.get(claims.object_id)
        if identity is None:
            raise self._unauthorized(
                "InvalidAuthenticationToken", "The principal of the access token no longer exists."
            )
        req.claims = claims
        req.identity, req.identity_name = identity.object_id, identity.name
        req.token_id, req.tenant = claims.token_id, claims.tenant_id

    def _unauthorized(self, code: str, message: str) -> HttpError:
        return HttpError(
            401,
            {"error": {"code": code, "message": message}},
            {
                "WWW-Authenticate": f'Bearer authorization_uri="{self.authority_url}/{self.tenant_id}", '
                f'error="invalid_token", error_description="{code}"'
            },
        )

    # -- MLflow (part 2) -----------------------------------------------------------------------
    def backend_tracking_uri(self, workspace: Workspace) -> str:
        """The plain mlflow URI behind a workspace (no Azure auth), to verify what landed."""
        if self.mlflow is None:
            raise RuntimeError("this sandbox was started with mlflow=False")
        return self.mlflow.backend_tracking_uri(workspace)

    def iter_workspaces(self, subscription: Subscription) -> Iterator[Workspace]:
        """The workspaces of one subscription."""
        return (w for w in self.workspaces if w.subscription_id == subscription.subscription_id)
