"""``connect()``: sign in, find the workspace, point MLflow at it — all or nothing.

A ``Session`` is the per-kernel state (the magics own one; ``jupyter_amlflow.connect`` makes one
per call). ``Session.connect`` works in three stages:

1. *Plan* (no network): parse the workspace reference, pick the cloud, check the platform and
   any active run. Bad input fails here, before anything is sent.
2. *Prepare* (a worker thread, under a deadline): sign in, read the workspace from Resource
   Manager, register the credential with the azureml-mlflow plugin, find or create the
   experiment. mlflow is imported in parallel while the person signs in. The waiting thread
   enforces the timeout and handles Ctrl-C: an abandoned worker is cancelled before it can
   change anything shared.
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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from . import azureml_limits, compat, tracking
from .display import KeyValues, Link
from .errors import (
    ActiveRunError,
    AlreadyConfigured,
    AmlflowError,
    ConnectTimeout,
    NotConnected,
    WorkspaceReferenceError,
)

if TYPE_CHECKING:
    from .arm import ArmClient, WorkspaceInfo
    from .async_logging import AsyncLogging
    from .auth import DeviceCodePrompt, DeviceCodeRenderer, Identity, PlatformOptions, SignIn
    from .clouds import Cloud, CloudCatalog
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
class Connection:
    """A kernel connected to a workspace. ``disconnect()`` puts MLflow back as it was."""

    workspace: WorkspaceInfo
    cloud: Cloud
    tenant_id: str
    identity: Identity
    method: str
    tracking_uri: str
    experiment: tracking.ExperimentRef
    platform: Platform
    session: Session = field(repr=False, compare=False)

    @property
    def studio_url(self) -> str | None:
        """The workspace in Azure ML Studio (None in clouds without Studio)."""
        w = self.workspace
        return self.cloud.studio_workspace_url(w.subscription_id, w.resource_group, w.name, self.tenant_id)

    def run_url(self, run_id: str) -> str | None:
        """A run in Azure ML Studio: the link to follow (mlflow's own API-host link 404s)."""
        w = self.workspace
        return self.cloud.studio_run_url(run_id, w.subscription_id, w.resource_group, w.name, self.tenant_id)

    def disconnect(self) -> None:
        """Restore MLflow's tracking URI, registry URI, experiment and environment."""
        self.session.disconnect()

    def view(self) -> KeyValues:
        """The text/HTML summary shown after connect and by ``%amlflow status``."""
        w = self.workspace
        studio = self.studio_url
        created = " (created)" if self.experiment.created else ""
        return KeyValues(
            f"Connected to {w.name}",
            [
                ("Workspace", w.name),
                ("Resource group", w.resource_group),
                ("Subscription", w.subscription_id),
                ("Region", w.location),
                ("Cloud", self.cloud.name if not self.cloud.custom else f"{self.cloud.name} ({self.cloud.origin})"),
                ("Tenant", self.tenant_id),
                ("Signed in as", f"{self.identity.name} ({self.identity.kind}, {self.method})"),
                ("Experiment", f"{self.experiment.name}{created}"),
                ("Tracking URI", self.tracking_uri),
                ("Studio", Link("Open in Azure ML Studio", studio) if studio else None),
                *self.session.limits_rows(),
            ],
        )

    def __repr__(self) -> str:
        return repr(self.view())

    def _repr_html_(self) -> str:
        return self.view()._repr_html_()


class _Cancelled(Exception):
    """Raised inside an abandoned worker so it stops before touching shared state."""


class _Watch:
    """Shared by connect's worker and the waiting thread: current step, its deadline, cancellation."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.lock = threading.Lock()
        self.step = "starting"
        self.deadline = time.monotonic() + timeout
        self.cancelled = False
        self.event = threading.Event()  # tells a sign-in in progress to stop polling

    def begin(self, step: str, seconds: float | None = None) -> None:
        """Start a step with its own deadline (``timeout`` unless given)."""
        with self.lock:
            if self.cancelled:
                raise _Cancelled
            self.step = step
            self.deadline = time.monotonic() + (self.timeout if seconds is None else seconds)

    def expired(self) -> bool:
        with self.lock:
            return time.monotonic() > self.deadline

    def cancel(self) -> str:
        """Cancel and return the step that was running. Waits for a shared-state change in flight."""
        with self.lock:
            self.cancelled = True
            self.event.set()
            return self.step


def _in_daemon_thread(fn: Callable[[], T], name: str) -> concurrent.futures.Future[T]:
    """Run ``fn`` in a daemon thread: a stalled call must never keep the kernel from exiting."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _wait(future: concurrent.futures.Future[T], watch: _Watch) -> T:
    """Wait for the worker; enforce the step deadline; stay responsive to Ctrl-C."""
    while True:
        try:
            return future.result(timeout=0.05)
        except concurrent.futures.TimeoutError:
            if watch.expired():
                step = watch.cancel()
                raise ConnectTimeout(
                    f"{step} did not answer within {watch.timeout:g} s",
                    "the service is slow or unreachable from this kernel; nothing was changed",
                    "Try again, or allow more time: %amlflow connect ... --timeout 120 "
                    "(%config AmlflowMagics.timeout = 120)",
                    endpoint=step,
                ) from None


class _RendererWithDeadline:
    """Passes the device-code prompt on and gives the person until the code expires."""

    def __init__(self, inner: DeviceCodeRenderer | None, watch: _Watch, limit: float) -> None:
        self.inner = inner
        self.watch = watch
        self.limit = limit

    def show(self, prompt: DeviceCodePrompt) -> None:
        remaining = prompt.expires_at.timestamp() - time.time()
        self.watch.begin("Waiting for you to sign in with the device code", min(self.limit, max(remaining, 1.0)) + 5)
        if self.inner is not None:
            self.inner.show(prompt)

    def finish(self, outcome: str, detail: str = "") -> None:
        if self.inner is not None:
            self.inner.finish(outcome, detail)


@dataclass
class _Plan:
    """Stage 1's result: everything decided without the network."""

    ref: WorkspaceRef
    cloud: Cloud
    tenant_id: str | None
    methods: tuple[str, ...] | None
    experiment_name: str | None
    experiment_id: str | None
    options: PlatformOptions | None = None
    async_logging: bool = False


@dataclass
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
    ) -> None:
        from .clouds import CloudCatalog
        from .platform import detect_platform

        self.env = env if env is not None else os.environ
        self.user_ns = user_ns
        self.timeout = timeout
        self.auth = tuple(auth) if auth else None
        self.default_cloud = default_cloud
        self.persist = persist
        self.allow_unencrypted_cache = allow_unencrypted_cache
        self.renderer = renderer
        self.async_logging = async_logging
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
    def resolve_cloud(self, name: str | None = None, metadata_url: str | None = None) -> Cloud:
        """The cloud to use: ``name``, else ``AZUREML_CURRENT_CLOUD``, else the default.

        An unknown name is looked up in the ARM metadata document at ``metadata_url`` or
        ``ARM_CLOUD_METADATA_URL`` (one request), so custom clouds work by name.
        """
        from .clouds import cloud_name_from_env

        wanted = name or cloud_name_from_env(self.env) or self.default_cloud or "AzureCloud"
        url = metadata_url or self.env.get("ARM_CLOUD_METADATA_URL")
        known = {n.lower() for n in self.catalog.names()}
        # A name no metadata document could hold (control characters, shell syntax, a paragraph)
        # is a typo or worse: say so without sending a request.
        if url and wanted.lower() not in known and _CLOUD_NAME.fullmatch(wanted):
            self.add_clouds_from_metadata(url)
        return self.catalog.get(wanted)

    def add_clouds_from_metadata(self, url: str) -> list[Cloud]:
        """Fetch an ARM ``/metadata/endpoints`` document and add its clouds to the catalog."""
        from .arm import fetch_cloud_metadata
        from .clouds import clouds_from_metadata

        clouds = clouds_from_metadata(fetch_cloud_metadata(url, timeout=self.timeout), url)
        for cloud in clouds:
            self.catalog.check(cloud)  # the whole document, before any of it is added
        for cloud in clouds:
            self.catalog.add(cloud)
        return [self.catalog.get(cloud.name) for cloud in clouds]

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
    ) -> SignIn:
        from . import auth

        return auth.sign_in(
            self.catalog.get(key[0]),
            methods=list(key[2]) if key[2] else None,
            tenant_id=key[1],
            platform=self.platform,
            renderer=renderer if renderer is not None else self.renderer,
            timeout=self.timeout,
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

    def arm(self, cloud: Cloud, signin: SignIn) -> ArmClient:
        """The Resource Manager client for this sign-in (one per sign-in: it keeps its connections)."""
        from . import auth
        from .arm import ArmClient

        key = (cloud.name, id(signin))
        client = self._arm_clients.get(key)
        if client is None or client.timeout != self.timeout:
            client = ArmClient(
                signin.credential,
                cloud,
                timeout=self.timeout,
                credential_for_tenant=lambda tenant: auth.credential_for_tenant(signin, tenant),
            )
            self._arm_clients[key] = client
        return client

    # -- connect -------------------------------------------------------------------------------
    def connect(
        self,
        reference: str | None = None,
        *,
        subscription: str | None = None,
        resource_group: str | None = None,
        workspace: str | None = None,
        cloud: str | None = None,
        cloud_metadata_url: str | None = None,
        tenant: str | None = None,
        auth: Sequence[str] | str | None = None,
        experiment: str | None = None,
        force: bool = False,
        renderer: DeviceCodeRenderer | None = None,
        device_code_timeout: float = 900.0,
        secret_scope: str | None = None,
        secret_keys: str | Mapping[str, str] | None = None,
        key_vault: str | None = None,
        linked_service: str | None = None,
        async_logging: bool | None = None,
    ) -> Connection:
        """Connect this kernel's MLflow to a workspace; see the module docstring for the stages.

        ``secret_scope`` (Databricks), ``key_vault`` and ``linked_service`` (Synapse) and
        ``secret_keys`` say where the notebook platform keeps the identity to sign in with
        (``auth.platform_options``). ``async_logging`` overrides the session's setting for this
        connection.

        Raises:
            AmlflowError: (a subclass) on any failure; nothing is changed then.
            KeyboardInterrupt: when interrupted; nothing is changed then either.
        """
        options = None
        if secret_scope or secret_keys or key_vault or linked_service:
            from .auth import platform_options

            options = platform_options(
                secret_scope=secret_scope, secret_keys=secret_keys, key_vault=key_vault, linked_service=linked_service
            )
        plan = self._plan(
            reference,
            subscription,
            resource_group,
            workspace,
            cloud,
            cloud_metadata_url,
            tenant,
            auth,
            experiment,
            force,
        )
        plan.options = options
        plan.async_logging = self.async_logging if async_logging is None else async_logging
        state = tracking.MlflowState.capture()
        watch = _Watch(self.timeout)
        self._start_import()
        shown = _RendererWithDeadline(renderer if renderer is not None else self.renderer, watch, device_code_timeout)
        future = _in_daemon_thread(lambda: self._prepare(plan, watch, state, shown), "amlflow-connect")
        try:
            prepared = _wait(future, watch)
            with watch.lock:  # no worker may still be changing shared state
                self._commit(plan, prepared, state)
        except BaseException:
            watch.cancel()
            state.restore()
            raise
        assert self.connection is not None
        return self.connection

    def _plan(
        self,
        reference: str | None,
        subscription: str | None,
        resource_group: str | None,
        workspace: str | None,
        cloud_name: str | None,
        cloud_metadata_url: str | None,
        tenant: str | None,
        auth: Sequence[str] | str | None,
        experiment: str | None,
        force: bool,
    ) -> _Plan:
        from . import references

        if experiment is not None:
            tracking.check_experiment_name(experiment)
        if reference and (subscription or resource_group or workspace):
            raise WorkspaceReferenceError(
                "Give the workspace either as one reference or as --subscription/--resource-group/--workspace",
                "both were given",
                "Drop one of them",
            )
        if reference:
            ref = references.parse_reference(reference)
        elif subscription or resource_group or workspace:
            ref = references.from_names(subscription, resource_group, workspace)
        else:
            found = references.find_config()
            if found is None:
                raise WorkspaceReferenceError("No workspace given and no config.json found", "", NO_REFERENCE_FIX)
            ref = references.load_config(found)
        methods = _methods(auth)
        preset = self.platform.preconfigured_tracking_uri
        if preset and not force and self.connection is None:
            raise AlreadyConfigured(
                f"MLflow is already set up by the platform ({self.platform.label}) to log to {preset}",
                "jupyter_amlflow does not replace it silently",
                "Use it as it is, or replace it for this kernel: %amlflow connect ... --force",
            )
        _refuse_active_runs("switching the workspace now would leave it orphaned", "connect again")
        tenant_id = tenant or ref.tenant_id or self.env.get("AZURE_TENANT_ID") or None
        if tenant_id is not None:
            from .auth import check_tenant

            check_tenant(tenant_id)  # sign-in checks it too, but after resolve_cloud may have sent a request
        cloud = self.resolve_cloud(cloud_name, cloud_metadata_url)
        original_env = (self._original.env if self._original else {}) or {
            name: self.env.get(name) for name in tracking.MANAGED_ENV
        }
        experiment_id = None
        if experiment is None:
            experiment = original_env.get("MLFLOW_EXPERIMENT_NAME") or None
            if experiment is None:
                experiment_id = original_env.get("MLFLOW_EXPERIMENT_ID") or None
            if experiment is None and experiment_id is None:
                experiment = DEFAULT_EXPERIMENT
        return _Plan(ref, cloud, tenant_id, methods, experiment, experiment_id)

    def _start_import(self) -> None:
        if self._import is None and not tracking.mlflow_imported():
            self._import = _in_daemon_thread(tracking.import_mlflow, "amlflow-import-mlflow")

    def _wait_import(self, watch: _Watch) -> None:
        if self._import is not None:
            watch.begin("Importing mlflow", max(self.timeout, 120.0))
            self._import.result()

    def _prepare(
        self, plan: _Plan, watch: _Watch, state: tracking.MlflowState, renderer: _RendererWithDeadline
    ) -> _Prepared:
        """Stage 2, in the worker thread."""
        watch.begin(f"Signing in to {plan.cloud.name}")
        key = self._signin_key(plan.cloud, plan.tenant_id, plan.methods, plan.options)
        signin = self._signins.get(key)
        if signin is None:
            signin = self._new_sign_in(key, renderer, watch.event)
            with watch.lock:  # a sign-in finished after the caller gave up is not remembered
                if watch.cancelled:
                    raise _Cancelled
                self._signins[key] = signin
        watch.begin(f"Resource Manager: GET workspace {plan.ref.workspace}", self.timeout + _BACKSTOP)
        info = self.arm(plan.cloud, signin).workspace(plan.ref)
        if not info.tracking_uri:
            raise AmlflowError(
                f"Workspace {info.name} has no MLflow tracking URI",
                "Resource Manager did not report properties.mlFlowTrackingUri",
                "Check the workspace in the portal; it may still be provisioning",
            )
        uri = tracking.plugin_key(info.tracking_uri)
        self._wait_import(watch)
        compat.check_plugin_compatibility()
        from .auth import SwappableCredential

        with watch.lock:
            if watch.cancelled:
                raise _Cancelled
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
        self._attach_async_logging(prepared.tracking_uri, plan.async_logging)
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

    def _attach_async_logging(self, tracking_uri: str, default_async: bool) -> None:
        """Commit: the store batches asynchronous values (all or nothing, no network)."""
        from .async_logging import AsyncLogging

        if self._async is None:
            self._async = AsyncLogging()
        self._async.default_async = default_async
        self._async.attach(tracking_uri)

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
        if run_id := tracking.active_run_id():
            raise ActiveRunError(
                f"An MLflow run is active ({run_id})",
                "its experiment cannot change under it",
                "End it first: mlflow.end_run()",
            )
        experiment = self.find_experiment(name)
        tracking.apply(conn.tracking_uri, experiment.experiment_id, conn.cloud.name)
        self.connection = dataclasses.replace(conn, experiment=experiment)
        return experiment

    def find_experiment(self, name: str) -> tracking.ExperimentRef:
        """The connected workspace's experiment ``name``, created if missing (under the timeout)."""
        conn = self.require_connection()
        tracking.check_experiment_name(name)

        def find(watch: _Watch) -> tracking.ExperimentRef:
            # A lookup the caller gave up on must not create the experiment later.
            return tracking.resolve_experiment(
                conn.tracking_uri,
                name,
                None,
                before_create=lambda: watch.begin(f"MLflow API: create experiment {name}"),
            )

        return self._call(f"MLflow API: experiment {name}", find, self.timeout)

    def call(self, step: str, fn: Callable[[], T], *, timeout: float | None = None) -> T:
        """Run one network step under a deadline (the session's timeout), responsive to Ctrl-C.

        A step made of many requests that enforce their own deadlines (discovery) passes a
        longer ``timeout``.
        """
        return self._call(step, lambda watch: fn(), self.timeout if timeout is None else timeout)

    def _call(self, step: str, fn: Callable[[_Watch], T], timeout: float) -> T:
        watch = _Watch(timeout)
        watch.begin(step)
        future = _in_daemon_thread(lambda: fn(watch), "amlflow-call")
        try:
            return _wait(future, watch)
        except BaseException:
            watch.cancel()
            raise

    def disconnect(self) -> None:
        """Restore what was there before this session's first connect."""
        if self.connection is None:
            raise NotConnected("Not connected", "there is nothing to disconnect", "")
        _refuse_active_runs("disconnecting now would leave it orphaned", "disconnect")
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
        platform = self.platform.label
        if self.connection is not None:
            view = self.connection.view()
            queued = self._async.status_rows() if self._async is not None else []
            return KeyValues(view.title, [*view.rows, ("Platform", platform), *queued])
        current = None
        if tracking.mlflow_imported():
            import mlflow

            current = mlflow.get_tracking_uri()
        else:
            current = self.env.get("MLFLOW_TRACKING_URI")
        preset = self.platform.preconfigured_tracking_uri
        if preset:
            note = (
                "The platform configured MLflow; it logs there. %amlflow connect --force replaces it for this kernel."
            )
            origin = f"set by the platform ({platform})"
        elif current and self.env.get("MLFLOW_TRACKING_URI") == current:
            note, origin = (
                "Set by hand (MLFLOW_TRACKING_URI); %amlflow connect replaces it until disconnect.",
                "set by hand",
            )
        elif current and tracking.mlflow_imported() and _set_by_hand():
            note, origin = (
                "Set by hand (mlflow.set_tracking_uri); %amlflow connect replaces it until disconnect.",
                "set by hand",
            )
        else:
            note, origin = "Run %amlflow connect (or %amlflow panel) to connect to a workspace.", ""
        # Nothing set: before connect mlflow may not be imported yet, after disconnect it reports its
        # own default; either way it logs to the same local store, so both say the same.
        shown = f"{current or preset} ({origin})" if origin else NOT_SET
        return KeyValues("Not connected", [("Platform", platform), ("Tracking URI", shown)], note)


NOT_SET = "not set: mlflow logs to its local default store in the working folder"


def _refuse_active_runs(why: str, then: str) -> None:
    """Raise ``ActiveRunError`` if an MLflow run is active in this thread or in another one."""
    if run_id := tracking.active_run_id():
        raise ActiveRunError(f"An MLflow run is active ({run_id})", why, f"End it first: mlflow.end_run(), then {then}")
    if elsewhere := tracking.active_run_elsewhere():
        run_id, thread = elsewhere
        raise ActiveRunError(
            f"An MLflow run is active in another thread ({run_id}, thread {thread!r})",
            why,
            f"Let that thread end its run first (mlflow.end_run() there, or leave its 'with mlflow.start_run()' "
            f"block), then {then}",
        )


def _set_by_hand() -> bool:
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri is not None


def _methods(auth: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """``--auth`` input (``"env,device-code"`` or a list) checked by ``auth.parse_methods``; None: not given."""
    from .auth import parse_methods

    methods = parse_methods(auth, example="%amlflow connect ... --auth env,device-code")
    return tuple(methods) if methods else None


def connect(reference: str | None = None, **kwargs: Any) -> Connection:
    """Connect MLflow in this process to an Azure ML workspace.

    ``reference`` is an ARM resource id, an ``azureml://`` tracking URI or a path to the portal's
    ``config.json``; or pass ``subscription=``, ``resource_group=``, ``workspace=``; with neither,
    a ``config.json`` in this folder (or ``.azureml/``, or a parent) is used. Other keywords:
    ``cloud``, ``cloud_metadata_url``, ``tenant``, ``auth`` (methods in order), ``experiment``,
    ``force``, ``renderer``, ``async_logging`` (every ``mlflow.log_*`` call asynchronous while
    connected), and the ``Session`` settings ``timeout``, ``persist``.

    Returns a ``Connection``; ``conn.disconnect()`` restores what was there before.
    """
    session_keys = {"env", "user_ns", "timeout", "default_cloud", "persist", "allow_unencrypted_cache"}
    session_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in session_keys}
    if "renderer" not in kwargs:
        from .devicecode import TextDeviceCodeRenderer

        kwargs["renderer"] = TextDeviceCodeRenderer()
    return Session(**session_kwargs).connect(reference, **kwargs)
