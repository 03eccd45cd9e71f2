"""``Sandbox``: one sandbox's life (start, stop, listeners), its knobs, and what tests and clients ask of it.

The endpoints are served by parts in modules of their own, each seeing the sandbox as a
``_host.Host``: Entra ID (``_entra``, with ``_devicecode`` and ``_msi``), Resource Manager (``_arm``)
and the MLflow front (``_mlflow``), behind the check in front of every route (``_gate``). Who
exists in the sandbox, and the methods that add to it, are ``World``'s (``_world``), which
``Sandbox`` extends; the per-run secrets are ``_access``'s. ``Sandbox`` holds them
together and is the one object a test talks to.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._access import Access
from ._arm import ResourceManager, cloud_metadata
from ._client_env import (
    certificate_env,
    client_env,
    managed_identity_env,
    msi_endpoint_env,
    service_principal_env,
    workload_identity_env,
)
from ._devicecode import PendingSignIn
from ._entra import Entra
from ._gate import Gate
from ._http import Fault, Faults, RequestRecord, Route, SandboxHTTPServer, serve_in_thread
from ._model import Directory, Identity, Subscription, Tenant, Workspace
from ._tls import make_server_tls
from ._tokens import FederationIssuer, TokenAuthority
from ._watchdog import Watchdog
from ._world import FEDERATED_SUBJECT, World
from .fidelity import MODES

if TYPE_CHECKING:  # start() imports it, and only for a sandbox with mlflow: the others never load it
    from ._mlflow import MlflowService

__all__ = ["DEFAULT_CLOUD", "STORAGE_SUFFIX", "Sandbox"]

DEFAULT_CLOUD = "AzureSandbox"
STORAGE_SUFFIX = "core.sandbox.test"


class Sandbox(World):
    """Entra ID, Resource Manager and the Azure ML MLflow API, on 127.0.0.1 over HTTPS.

    Its tenants, identities, roles and workspaces, and the methods that add to them, are
    ``World``'s (``_world``).

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
            (see ``fidelity`` and the README's sandbox table).
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
        if mlflow_api not in MODES:
            raise ValueError(f"mlflow_api must be one of {', '.join(MODES)}, not {mlflow_api!r}")
        self.mlflow_api: str = mlflow_api
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
        folder = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="amlflow-sandbox-"))
        super().__init__(Directory(), folder)
        self.root.mkdir(parents=True, exist_ok=True)
        # Cleans up if this process dies without stop(): SIGKILL, a CI timeout, an unhandled SIGTERM.
        self._watchdog = Watchdog(self.root if self._own_root else None)
        self.faults = Faults()
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._gate = Gate(self)
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tls: ssl.SSLContext | None = None
        self._listeners: list[tuple[SandboxHTTPServer, threading.Thread]] = []
        self.mlflow: MlflowService | None = None  # the MLflow front, when enabled
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
        self._tls = tls.context
        routes: list[Route] = []
        self._server = SandboxHTTPServer(routes, self.faults, self._record, self._gate, self._stopping, tls.context)
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
        cast = self._populate(*self._sizes)
        self.sp, self.cert_sp, self.workload_sp = cast.sp, cast.cert_sp, cast.workload_sp
        self.alice, self.bob, self.vm_identity, self.norole_sp = cast.alice, cast.bob, cast.vm_identity, cast.norole_sp
        self._thread = serve_in_thread(self._server, f"amlflow-sandbox-{self._server.port}")
        self.started = True

    def add_listener(self, routes: list[Route], *, tls: bool = False) -> SandboxHTTPServer:
        """Serve ``routes`` on another 127.0.0.1 port, sharing faults and the request log.

        Plain HTTP, or with ``tls`` HTTPS with the sandbox's certificate (which ``env`` makes
        clients trust). Build routes with ``route``: a handler takes a ``Request`` and returns a
        ``Response`` (or raises ``HttpError``). The listener's ``base_url`` and ``port`` say where
        it is; it stops with the sandbox, or at ``remove_listener``.
        """
        if tls and self._tls is None:
            raise RuntimeError("start the sandbox first: its certificate is made at start")
        context = self._tls if tls else None
        server = SandboxHTTPServer(routes, self.faults, self._record, self._gate, self._stopping, context)
        self._listeners.append((server, serve_in_thread(server, f"amlflow-sandbox-{server.port}")))
        return server

    def remove_listener(self, listener: SandboxHTTPServer) -> None:
        """Stop a listener ``add_listener`` made (its open connections are closed)."""
        found = [(server, thread) for server, thread in self._listeners if server is listener]
        self._listeners = [(server, thread) for server, thread in self._listeners if server is not listener]
        for server, thread in found:
            _close(server, thread)

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
            _close(server, thread)
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

    # -- population (``World``'s, but for this) ---------------------------------------------------
    def _workspace_host(self, private_link: bool) -> str:
        """Where a workspace is served: this listener, on the ``localhost`` name for a private-link one."""
        assert self._server is not None, "start the sandbox first"
        return f"localhost:{self._server.port}" if private_link else f"127.0.0.1:{self._server.port}"

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
        return client_env(
            ca_bundle=self.ca_bundle,
            metadata_url=self.metadata_url,
            cloud=self.cloud,
            authority_url=self.authority_url,
            base_url=self.base_url,
        )

    @property
    def service_principal(self) -> dict[str, str]:
        """``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET`` of the default principal."""
        return service_principal_env(self.tenant_id, self.sp)

    @property
    def certificate_principal(self) -> dict[str, str]:
        """Environment for the certificate principal (PEM, unencrypted)."""
        return certificate_env(self.tenant_id, self.cert_sp, pfx=False)

    @property
    def certificate_principal_pfx(self) -> dict[str, str]:
        """Environment for the certificate principal (PKCS12 with a password)."""
        return certificate_env(self.tenant_id, self.cert_sp, pfx=True)

    def workload_identity_env(self, lifetime: float = 3600.0) -> dict[str, str]:
        """Write a federated token file, as a cluster would project it; return the variables."""
        token = self.directory.remember_secret(self.federation.token(FEDERATED_SUBJECT, lifetime))
        path = self.root / "federated-token"
        path.write_text(token)
        path.chmod(0o600)
        return workload_identity_env(self.tenant_id, self.workload_sp, path, self.authority_url)

    @property
    def managed_identity_env(self) -> dict[str, str]:
        """App Service style identity endpoint (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``)."""
        return managed_identity_env(self.base_url, self.identity_header)

    @property
    def msi_endpoint_env(self) -> dict[str, str]:
        """Azure ML compute style identity endpoint (``MSI_ENDPOINT`` with ``MSI_SECRET``).

        Not the Cloud Shell form (``MSI_ENDPOINT`` alone): on a shared machine's loopback an
        endpoint without a secret would give any local process the identity's tokens.
        """
        return msi_endpoint_env(self.base_url, self.identity_header)

    def cloud_metadata(self) -> list[dict[str, Any]]:
        """The ``/metadata/endpoints`` document: one cloud, this sandbox (``_arm.cloud_metadata``)."""
        return cloud_metadata(self.base_url, self.cloud, self.studio_url, STORAGE_SUFFIX)

    # -- device code ---------------------------------------------------------------------------
    def pending_device_codes(self) -> list[PendingSignIn]:
        """Sign-ins waiting for a person, oldest first."""
        return self.entra.device.pending()

    def wait_for_device_code(self, timeout: float = 30.0, *, newer_than: float | None = None) -> PendingSignIn:
        """Block until a sign-in is pending; returns the newest.

        ``newer_than`` (a ``time.time()`` value) ignores codes requested before it, such as one
        an earlier, abandoned sign-in left pending.
        """
        return self.entra.device.wait(timeout, newer_than)

    def approve_device_code(self, code: str, user: str | None = None) -> Identity:
        """Approve a pending sign-in as ``user`` (username or object id; Alice when None)."""
        return self.entra.device.approve(code, user or self.alice.username)

    def decline_device_code(self, code: str) -> None:
        """Decline a pending sign-in."""
        self.entra.device.decline(code)

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

    # -- authentication (``_gate``) ------------------------------------------------------------------------
    @property
    def arm_audiences(self) -> tuple[str, ...]:
        """Audiences Resource Manager and the MLflow API accept."""
        return (f"{self.base_url}/",)

    # -- MLflow ----------------------------------------------------------------------------------
    def backend_tracking_uri(self, workspace: Workspace) -> str:
        """The plain mlflow URI behind a workspace (no Azure auth), to verify what landed."""
        if self.mlflow is None:
            raise RuntimeError("this sandbox was started with mlflow=False")
        return self.mlflow.backend_tracking_uri(workspace)

    def iter_workspaces(self, subscription: Subscription) -> Iterator[Workspace]:
        """The workspaces of one subscription."""
        return (w for w in self.workspaces if w.subscription_id == subscription.subscription_id)


def _close(server: SandboxHTTPServer, thread: threading.Thread) -> None:
    """Stop one listener: its loop, its open connections, its socket."""
    server.shutdown()
    server.close_all()
    server.server_close()
    thread.join(timeout=5)
