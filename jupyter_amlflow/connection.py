"""``Session.connect``: sign in, find the workspace, point MLflow at it — all or nothing.

A ``Session`` is the per-kernel state (the magics own one; ``jupyter_amlflow.connect`` makes one
per call): settings, remembered sign-ins, the cloud catalog, the connection. ``Session.connect``
takes a ``ConnectRequest`` (``connect_request.py``: checked as it was built) and works in three
stages:

1. *Plan* (no network): parse the workspace reference, pick the cloud, check the platform and
   any active run. Bad input fails here, before anything is sent.
2. *Prepare* (a worker thread, under a deadline: ``deadline.py``): sign in, read the workspace
   from Resource Manager, register the credential with the azureml-mlflow plugin, find or create
   the experiment. mlflow is imported in parallel while the person signs in; the version guard
   (``compat.check_at_connect``) runs once it is, before anything changes. The waiting thread
   enforces the timeout and handles Ctrl-C: an abandoned worker is cancelled before it can change
   anything shared.
3. *Commit* (the calling thread, no network): set tracking URI, registry URI, experiment and
   environment, and give the workspace's store mlflow's asynchronous logging queue
   (``async_logging``).

Any failure restores the snapshot taken before stage 2, so MLflow's state and the environment are
exactly as they were. ``disconnect()`` sends the values still queued for the workspace, then
restores what was there before the session's first connect.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from . import azureml_limits, compat, deadline, references, tracking
from .async_logging import AsyncLogging
from .clouds import CloudCatalog, cloud_name_from_env, clouds_from_metadata
from .display import KeyValues
from .errors import AlreadyConfigured, AmlflowError, NotConnected, WorkspaceReferenceError
from .platform import detect_platform
from .status import Connection, not_connected

if TYPE_CHECKING:
    from .arm import ArmClient, WorkspaceInfo
    from .auth import DeviceCodeRenderer, PlatformOptions, SignIn
    from .clouds import Cloud
    from .connect_request import ConnectRequest
    from .platform import Platform
    from .references import WorkspaceRef

    # cloud, tenant, methods, notebook-platform options
    _SignInKey = tuple[str, str | None, tuple[str, ...] | None, PlatformOptions | None]

DEFAULT_EXPERIMENT = "Default"
T = TypeVar("T")
# ArmClient enforces the timeout on each request itself and its error says more (the host, the
# proxy to check); the connect step's own deadline is a backstop just behind it, so which of the
# two reports a stalled Resource Manager does not depend on thread timing.
_BACKSTOP = 0.5
_CLOUD_NAME = re.compile(r"[\w .()-]{1,100}")

NO_REFERENCE_FIX = (
    "Give the workspace: %amlflow connect --subscription SUB --resource-group RG --workspace NAME, "
    "or %amlflow connect /subscriptions/SUB/resourceGroups/RG/providers/"
    "Microsoft.MachineLearningServices/workspaces/NAME, or put the portal's config.json in this "
    "folder; %amlflow panel picks one by clicking"
)


@dataclass(frozen=True)
class _Plan:
    """Stage 1's result: everything decided without the network."""

    request: ConnectRequest
    ref: WorkspaceRef
    cloud: Cloud
    tenant_id: str | None
    experiment_name: str | None
    experiment_id: str | None
    timeout: float
    async_logging: bool


@dataclass(frozen=True)
class _Prepared:
    signin: SignIn
    workspace: WorkspaceInfo
    tracking_uri: str
    experiment: tracking.ExperimentRef


class Session:
    """The connection state of one kernel (or one script).

    Args:
        env: The environment to read settings from (``os.environ`` by default); connect writes
            MLflow's variables to ``os.environ`` itself.
        user_ns: The notebook's namespace, for platform detection (``dbutils``, ``mssparkutils``).
        timeout: Seconds each network step may take.
        auth: Default sign-in methods, in order (None: by platform, see ``platform.default_methods``).
        default_cloud: Cloud used when neither the call nor ``AZUREML_CURRENT_CLOUD`` names one.
        persist: Keep the sign-in across kernels (MSAL's encrypted cache + AuthenticationRecord).
        allow_unencrypted_cache: With ``persist``, allow a plain 0600 cache file where the platform
            has no secret store.
        renderer: Shows device codes (None: the caller gets no prompt; device code then cannot work).
        async_logging: Make every ``mlflow.log_*`` call asynchronous while connected (batched, sent
            in the background; off by default because synchronous is what mlflow promises).
        device_code_timeout: Seconds to wait for a person to finish a device-code sign-in.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        user_ns: Mapping[str, object] | None = None,
        timeout: float = 30.0,
        auth: Sequence[str] | None = None,
        default_cloud: str | None = None,
        persist: bool = False,
        allow_unencrypted_cache: bool = False,
        renderer: DeviceCodeRenderer | None = None,
        async_logging: bool = False,
        device_code_timeout: float = 900.0,
    ) -> None:
        self.env = env if env is not None else os.environ
        self.user_ns = user_ns
        self.timeout = timeout
        self.auth = tuple(auth) if auth else None
        self.default_cloud = default_cloud
        self.persist = persist
        self.allow_unencrypted_cache = allow_unencrypted_cache
        self.renderer = renderer
        self.async_logging = async_logging
        self.device_code_timeout = device_code_timeout
        self.catalog: CloudCatalog = CloudCatalog()
        self.platform: Platform = detect_platform(self.env, user_ns)
        self.connection: Connection | None = None
        self._original: tracking.MlflowState | None = None
        self._signins: dict[_SignInKey, SignIn] = {}
        self._arm_clients: dict[tuple[str, int], ArmClient] = {}
        self._import: concurrent.futures.Future[None] | None = None
        self._async: AsyncLogging | None = None
        # What makes MLflow 3 work on Azure ML while connected (installed at commit, undone at disconnect).
        self._limits: azureml_limits.Limits | None = None

    # -- clouds --------------------------------------------------------------------------------
    def resolve_cloud(
        self, name: str | None = None, metadata_url: str | None = None, timeout: float | None = None
    ) -> Cloud:
        """The cloud to use: ``name``, else ``AZUREML_CURRENT_CLOUD``, else the default.

        An unknown name is looked up in the ARM metadata document at ``metadata_url`` or
        ``ARM_CLOUD_METADATA_URL`` (one request, within ``timeout``: the session's by default), so
        custom clouds work by name.
        """
        wanted = name or cloud_name_from_env(self.env) or self.default_cloud or "AzureCloud"
        url = metadata_url or self.env.get("ARM_CLOUD_METADATA_URL")
        known = {n.lower() for n in self.catalog.names()}
        # A name no metadata document could hold (control characters, shell syntax, a paragraph)
        # is a typo or worse: say so without sending a request.
        if url and wanted.lower() not in known and _CLOUD_NAME.fullmatch(wanted):
            self.add_clouds_from_metadata(url, timeout)
        return self.catalog.get(wanted)

    def add_clouds_from_metadata(self, url: str, timeout: float | None = None) -> list[Cloud]:
        """Fetch an ARM ``/metadata/endpoints`` document and add its clouds to the catalog."""
        from .arm import fetch_cloud_metadata  # arm on first use: %load_ext stays light

        document = fetch_cloud_metadata(url, timeout=self.timeout if timeout is None else timeout)
        clouds = clouds_from_metadata(document, url)
        for cloud in clouds:
            self.catalog.check(cloud)  # the whole document, before any of it is added
        for cloud in clouds:
            self.catalog.add(cloud)
        return [self.catalog.get(cloud.name) for cloud in clouds]

    def check_cloud_options(self, request: ConnectRequest) -> None:
        """Refuse, without the network, the cloud options of ``request`` that connect would refuse.

        For a request that names no workspace and starts the panel instead: an unknown cloud with
        no metadata document to find it in, a metadata URL that is not https.
        """
        from .arm import check_metadata_url

        if request.cloud_metadata_url is not None:
            check_metadata_url(request.cloud_metadata_url)
        if request.cloud is not None and request.cloud not in self.catalog:
            url = request.cloud_metadata_url or self.env.get("ARM_CLOUD_METADATA_URL")
            if not url or not _CLOUD_NAME.fullmatch(request.cloud):
                self.catalog.get(request.cloud)  # raises: no document could define it
            else:
                check_metadata_url(url)

    # -- sign-in -------------------------------------------------------------------------------
    def sign_in(
        self,
        cloud: Cloud,
        *,
        tenant_id: str | None = None,
        methods: Sequence[str] | None = None,
        renderer: DeviceCodeRenderer | None = None,
        options: PlatformOptions | None = None,
        cancel: threading.Event | None = None,
    ) -> SignIn:
        """Sign in (or reuse this session's sign-in for the same cloud, tenant, methods and options).

        Setting ``cancel`` abandons a sign-in in progress (a device-code wait stops polling).
        """
        key = self._signin_key(cloud, tenant_id, methods, options)
        signin = self._signins.get(key) or self._new_sign_in(key, renderer, cancel)
        self._signins[key] = signin
        return signin

    def _signin_key(
        self,
        cloud: Cloud,
        tenant_id: str | None,
        methods: Sequence[str] | None,
        options: PlatformOptions | None = None,
    ) -> _SignInKey:
        return (cloud.name, tenant_id, tuple(methods) if methods else self.auth, options)

    def _new_sign_in(
        self,
        key: _SignInKey,
        renderer: DeviceCodeRenderer | Any | None,
        cancel: threading.Event | None = None,
        timeout: float | None = None,
    ) -> SignIn:
        from . import auth  # on first use: %load_ext stays light

        return auth.sign_in(
            self.catalog.get(key[0]),
            methods=list(key[2]) if key[2] else None,
            tenant_id=key[1],
            platform=self.platform,
            renderer=renderer if renderer is not None else self.renderer,
            timeout=self.timeout if timeout is None else timeout,
            persist=self.persist,
            allow_unencrypted_cache=self.allow_unencrypted_cache,
            env=self.env,
            cancel=cancel,
            user_ns=self.user_ns,
            options=key[3],
        )

    def forget_sign_ins(self) -> None:
        """Drop remembered credentials (``logout`` also removes the persisted ones)."""
        self._signins.clear()
        for client in self._arm_clients.values():
            client.close()
        self._arm_clients.clear()

    def arm(self, cloud: Cloud, signin: SignIn, timeout: float | None = None) -> ArmClient:
        """The Resource Manager client for this sign-in (one per sign-in: it keeps its connections)."""
        from . import auth  # auth and arm on first use: %load_ext stays light
        from .arm import ArmClient

        timeout = self.timeout if timeout is None else timeout
        key = (cloud.name, id(signin))
        client = self._arm_clients.get(key)
        if client is None or client.timeout != timeout:
            client = ArmClient(
                signin.credential,
                cloud,
                timeout=timeout,
                credential_for_tenant=lambda tenant: auth.credential_for_tenant(signin, tenant),
            )
            self._arm_clients[key] = client
        return client

    # -- connect -------------------------------------------------------------------------------
    def connect(
        self, request: ConnectRequest | None = None, *, renderer: DeviceCodeRenderer | None = None
    ) -> Connection:
        """Connect this kernel's MLflow to the workspace of ``request``; see the module docstring.

        Args:
            request: What to connect to, and how (None: ``config.json`` here, the session's settings).
            renderer: Shows a device code (None: the session's renderer).

        Raises:
            AmlflowError: (a subclass) on any failure; nothing is changed then.
            KeyboardInterrupt: when interrupted; nothing is changed then either.
        """
        if request is None:
            from .connect_request import ConnectRequest

            request = ConnectRequest()
        plan = self._plan(request)
        # With mlflow imported, before the snapshot reads its globals; else once the import is done.
        checked = tracking.mlflow_imported()
        if checked:
            compat.check_at_connect()
        state = tracking.MlflowState.capture()
        watch = deadline.Watch(plan.timeout)
        self._start_import()
        shown = deadline.RendererWithDeadline(
            renderer if renderer is not None else self.renderer, watch, self.device_code_timeout
        )
        future = deadline.in_daemon_thread(lambda: self._prepare(plan, watch, state, shown, checked), "amlflow-connect")
        try:
            prepared = deadline.wait(future, watch)
            with watch.lock:  # no worker may still be changing shared state
                self._commit(plan, prepared, state)
        except BaseException:
            watch.cancel()
            state.restore()
            raise
        assert self.connection is not None
        return self.connection

    def _plan(self, request: ConnectRequest) -> _Plan:
        """Stage 1: what the session adds to the request's own checks (no network but a cloud's document)."""
        if request.reference:
            ref = references.parse_reference(request.reference)
        elif request.names_workspace:
            ref = references.from_names(request.subscription, request.resource_group, request.workspace)
        else:
            found = references.find_config()
            if found is None:
                raise WorkspaceReferenceError("No workspace given and no config.json found", "", NO_REFERENCE_FIX)
            ref = references.load_config(found)
        preset = self.platform.preconfigured_tracking_uri
        if preset and not request.force and self.connection is None:
            raise AlreadyConfigured(
                f"MLflow is already set up by the platform ({self.platform.label}) to log to {preset}",
                "jupyter_amlflow does not replace it silently",
                "Use it as it is, or replace it for this kernel: %amlflow connect ... --force",
            )
        tracking.refuse_active_runs("switching the workspace now would leave it orphaned", "connect again")
        tenant_id = request.tenant or ref.tenant_id or self.env.get("AZURE_TENANT_ID") or None
        if tenant_id is not None:
            from .auth import check_tenant

            check_tenant(tenant_id)  # sign-in checks it too, but after resolve_cloud may have sent a request
        timeout = self.timeout if request.timeout is None else request.timeout
        cloud = self.resolve_cloud(request.cloud, request.cloud_metadata_url, timeout)
        experiment, experiment_id = request.experiment, None
        if experiment is None:
            # Where the environment named an experiment before connect, that one.
            original_env = (self._original.env if self._original else {}) or {
                name: self.env.get(name) for name in tracking.MANAGED_ENV
            }
            experiment = original_env.get("MLFLOW_EXPERIMENT_NAME") or None
            if experiment is None:
                experiment_id = original_env.get("MLFLOW_EXPERIMENT_ID") or None
            if experiment is None and experiment_id is None:
                experiment = DEFAULT_EXPERIMENT
        async_logging = self.async_logging if request.async_logging is None else request.async_logging
        return _Plan(request, ref, cloud, tenant_id, experiment, experiment_id, timeout, async_logging)

    def _start_import(self) -> None:
        if self._import is None and not tracking.mlflow_imported():
            self._import = deadline.in_daemon_thread(tracking.import_mlflow, "amlflow-import-mlflow")

    def _wait_import(self, watch: deadline.Watch, timeout: float) -> None:
        if self._import is not None:
            watch.begin("Importing mlflow", max(timeout, 120.0))
            self._import.result()

    def _prepare(
        self,
        plan: _Plan,
        watch: deadline.Watch,
        state: tracking.MlflowState,
        renderer: deadline.RendererWithDeadline,
        checked: bool,
    ) -> _Prepared:
        """Stage 2, in the worker thread."""
        request = plan.request
        watch.begin(f"Signing in to {plan.cloud.name}")
        key = self._signin_key(plan.cloud, plan.tenant_id, request.methods, request.platform_options)
        signin = self._signins.get(key)
        if signin is None:
            signin = self._new_sign_in(key, renderer, watch.event, plan.timeout)
            with watch.lock:  # a sign-in finished after the caller gave up is not remembered
                watch.check()
                self._signins[key] = signin
        watch.begin(f"Resource Manager: GET workspace {plan.ref.workspace}", plan.timeout + _BACKSTOP)
        info = self.arm(plan.cloud, signin, plan.timeout).workspace(plan.ref)
        if not info.tracking_uri:
            raise AmlflowError(
                f"Workspace {info.name} has no MLflow tracking URI",
                "Resource Manager did not report properties.mlFlowTrackingUri",
                "Check the workspace in the portal; it may still be provisioning",
            )
        uri = tracking.plugin_key(info.tracking_uri)
        self._wait_import(watch, plan.timeout)
        if not checked:
            compat.check_at_connect()
        from .auth import SwappableCredential

        with watch.lock:
            watch.check()
            # Before the first MLflow call of this connect; undone by disconnect or a failed connect.
            state.shims.append(compat.apply_shims())
            state.note_plugin_entries(uri, plan.cloud.name)
            tracking.register_cloud(plan.cloud)
            tracking.register_workspace(
                uri,
                subscription_id=info.subscription_id,
                resource_group=info.resource_group,
                workspace=info.name,
                location=info.location,
                cloud=plan.cloud,
                credential=SwappableCredential(signin.credential),
            )
        watch.begin(f"MLflow API: experiment {plan.experiment_name or plan.experiment_id}")
        experiment = tracking.resolve_experiment(
            uri,
            plan.experiment_name,
            plan.experiment_id,
            # Raises once the caller gave up on a slow lookup: no experiment is created after
            # connect has reported that nothing changed.
            before_create=lambda: watch.begin(f"MLflow API: create experiment {plan.experiment_name}"),
        )
        watch.begin("Finishing")
        return _Prepared(signin, info, uri, experiment)

    def _commit(self, plan: _Plan, prepared: _Prepared, state: tracking.MlflowState) -> None:
        """Stage 3, in the calling thread: no network, nothing that can stall."""
        tracking.apply(prepared.tracking_uri, prepared.experiment.experiment_id, plan.cloud.name)
        if self._limits is None:
            # Raises with everything it patched undone; connect then restores the snapshot.
            self._limits = azureml_limits.Limits.install(prepared.tracking_uri)
        else:
            self._limits.reconnect(prepared.tracking_uri)
        if self._original is None:
            self._original = state
        else:
            # Keep the first snapshot's values, and learn the plugin entries this connect touched.
            for key, value in state.contexts.items():
                self._original.contexts.setdefault(key, value)
            for key, value in state.clouds.items():
                self._original.clouds.setdefault(key, value)
            self._original.shims.extend(state.shims)
        if self._async is None:
            self._async = AsyncLogging()
        self._async.default_async = plan.async_logging
        self._async.attach(prepared.tracking_uri)  # all or nothing, no network
        self.connection = Connection(
            workspace=prepared.workspace,
            cloud=plan.cloud,
            tenant_id=prepared.signin.tenant_id,
            identity=prepared.signin.identity,
            method=prepared.signin.method,
            tracking_uri=prepared.tracking_uri,
            experiment=prepared.experiment,
            platform=self.platform,
            session=self,
        )

    def set_async_logging(self, on: bool) -> None:
        """Make every ``mlflow.log_*`` call asynchronous (or not), now if connected and on later connects."""
        self.async_logging = on
        if self._async is not None:
            self._async.set_default(on)

    # -- after connect -------------------------------------------------------------------------
    def require_connection(self) -> Connection:
        """The current connection, or ``NotConnected`` saying how to get one."""
        if self.connection is None:
            raise NotConnected("Not connected to a workspace", "", "Run %amlflow connect first (or %amlflow panel)")
        return self.connection

    def set_experiment(self, name: str) -> tracking.ExperimentRef:
        """Make ``name`` the active experiment (created if missing)."""
        conn = self.require_connection()
        tracking.refuse_active_run("its experiment cannot change under it", "End it first: mlflow.end_run()")
        experiment = self.find_experiment(name)
        tracking.apply(conn.tracking_uri, experiment.experiment_id, conn.cloud.name)
        self.connection = dataclasses.replace(conn, experiment=experiment)
        return experiment

    def find_experiment(self, name: str) -> tracking.ExperimentRef:
        """The connected workspace's experiment ``name``, created if missing (under the timeout)."""
        conn = self.require_connection()
        tracking.check_experiment_name(name)

        def find(watch: deadline.Watch) -> tracking.ExperimentRef:
            # A lookup the caller gave up on must not create the experiment later.
            return tracking.resolve_experiment(
                conn.tracking_uri,
                name,
                None,
                before_create=lambda: watch.begin(f"MLflow API: create experiment {name}"),
            )

        return deadline.call(f"MLflow API: experiment {name}", find, self.timeout)

    def call(self, step: str, fn: Callable[[], T], *, timeout: float | None = None) -> T:
        """Run one network step under a deadline (the session's timeout), responsive to Ctrl-C.

        A step made of many requests that enforce their own deadlines (discovery) passes a
        longer ``timeout``.
        """
        return deadline.call(step, lambda watch: fn(), self.timeout if timeout is None else timeout)

    def disconnect(self) -> None:
        """Restore what was there before this session's first connect."""
        if self.connection is None:
            raise NotConnected("Not connected", "there is nothing to disconnect", "")
        tracking.refuse_active_runs("disconnecting now would leave it orphaned", "disconnect")
        assert self._original is not None
        if self._async is not None:
            # Sent while the credential is still registered; Ctrl-C leaves everything connected.
            self._async.release()
            self._async = None
        self._original.restore()
        self._original = None
        if self._limits is not None:
            self._limits.uninstall()
            self._limits = None
        self.connection = None

    def limits_rows(self) -> list[tuple[str, str]]:
        """What the status shows about Azure ML's limits while connected (logged models, tracing)."""
        return self._limits.rows if self._limits is not None else []

    def status(self) -> KeyValues:
        """What ``%amlflow status`` shows: the connection, or what MLflow is set to instead."""
        if self.connection is None:
            return not_connected(self.platform, self.env)
        view = self.connection.view()
        queued = self._async.status_rows() if self._async is not None else []
        return KeyValues(view.title, [*view.rows, ("Platform", self.platform.label), *queued])

