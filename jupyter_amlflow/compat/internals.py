"""The private attributes of mlflow, azureml-mlflow and CPython that jupyter_amlflow touches: all of them.

No other module of the package names one: they call the functions below. ``INTERNALS`` lists each
attribute with what it is used for and whether connect needs it:

* *required*: connect, disconnect and the snapshot that undoes a failed connect read or write it.
  ``check()`` runs once per connect, before anything is changed, and refuses a version without
  one with ``IncompatibleVersions`` (the versions installed, and the tested pair to install),
  instead of an ``AttributeError`` halfway through a connect or a restore;
* *optional*: a feature with a fallback uses it (asynchronous logging keeps the plugin's way, the
  Azure ML workarounds are off, another thread's run goes unseen). The feature asks
  ``available()`` when it is set up at connect, and says so when it falls back.

Every function here runs once mlflow is imported (``check()`` included: the caller runs it then).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import IncompatibleVersions


@dataclass(frozen=True)
class Internal:
    """One private attribute: ``attribute`` (dotted below ``module``), and why it is touched."""

    module: str
    attribute: str
    use: str
    required: bool = True

    @property
    def label(self) -> str:
        return f"{self.module}.{self.attribute}"

    @property
    def name(self) -> str:
        return self.attribute.rsplit(".", 1)[-1]

    def owner(self) -> Any:
        """The module, class or object that holds the attribute (imports ``module``)."""
        holder: Any = importlib.import_module(self.module)
        for part in self.attribute.split(".")[:-1]:
            holder = getattr(holder, part)
        return holder

    def present(self) -> bool:
        try:
            return hasattr(self.owner(), self.name)
        except (ImportError, AttributeError):
            return False

    def get(self) -> Any:
        return getattr(self.owner(), self.name)

    def set(self, value: Any) -> None:
        setattr(self.owner(), self.name, value)


_TRACKING_UTILS = "mlflow.tracking._tracking_service.utils"
_REGISTRY_UTILS = "mlflow.tracking._model_registry.utils"
_FLUENT = "mlflow.tracking.fluent"
_LOADER = "azureml.mlflow._internal.service_context_loader"
_PLUGIN_CLOUD = "azureml.mlflow._common._cloud.cloud"
_MODEL = "mlflow.models.model"

# -- required: connect, disconnect and restore ---------------------------------------------------
TRACKING_URI = Internal(_TRACKING_UTILS, "_tracking_uri", "the tracking URI a connect sets and a disconnect restores")
REGISTRY_URI = Internal(_REGISTRY_UTILS, "_registry_uri", "the registry URI a connect sets and a disconnect restores")
ACTIVE_EXPERIMENT = Internal(_FLUENT, "_active_experiment_id", "the experiment a connect sets without a second request")
REGISTRY_TABLE = Internal(
    _REGISTRY_UTILS, "_get_store_registry", "built at connect: mlflow publishes it before it is filled"
)
TRACKING_STORES = Internal(
    "mlflow.tracking._tracking_service.registry",
    "TrackingStoreRegistry._get_store_with_resolved_uri",
    "the cached tracking stores, dropped when a workspace's credential changes",
)
REGISTRY_STORES = Internal(
    "mlflow.tracking._model_registry.registry",
    "ModelRegistryStoreRegistry._get_store_with_resolved_uri",
    "the cached model registry stores, dropped with the tracking stores",
)
SERVICE_CONTEXTS = Internal(
    _LOADER,
    "_AzureMLServiceContextLoader._tracking_uri_to_service_context",
    "the plugin's credential for each tracking URI",
)
ADD_SERVICE_CONTEXT = Internal(
    _LOADER, "_AzureMLServiceContextLoader.add_service_context", "registers the credential for a tracking URI"
)
SERVICE_CONTEXT = Internal("azureml.mlflow._internal.utils", "ServiceContext", "what that table holds")
PLUGIN_CLOUDS = Internal(_PLUGIN_CLOUD, "KNOWN_CLOUDS", "the plugin's clouds: a custom cloud is added there")
PLUGIN_CLOUD = Internal(_PLUGIN_CLOUD, "Cloud", "a cloud as the plugin describes it")
PLUGIN_ENDPOINTS = Internal(_PLUGIN_CLOUD, "CloudEndpoints", "a cloud's endpoints as the plugin describes them")
PLUGIN_SUFFIXES = Internal(_PLUGIN_CLOUD, "CloudSuffixes", "a cloud's storage suffix as the plugin describes it")

# -- optional: a feature falls back without them ---------------------------------------------------
RUN_STACKS = Internal(
    _FLUENT,
    "_active_run_stack.get_all_thread_values",
    "every thread's active runs (without it, only the calling thread's run stops a connect)",
    required=False,
)
CACHED_STORE = Internal(
    _TRACKING_UTILS,
    "_get_store",
    "the store asynchronous logging adopts and the live chart watches (without it, the plugin's way, and "
    "a live chart drawn only when its run ends)",
    required=False,
)
ASYNC_QUEUE_METHODS = tuple(
    Internal(
        "mlflow.utils.async_logging.async_logging_queue",
        f"AsyncLoggingQueue.{name}",
        "mlflow's queue of asynchronous values (without it, the plugin's way)",
        required=False,
    )
    for name in ("log_batch_async", "activate", "is_active", "is_idle", "flush", "shut_down_async_logging")
)
#: What ``azureml_limits`` replaces while connected (without them, the Azure ML workarounds are off).
LIMITS = {
    key: Internal(module, attribute, "an Azure ML workaround while connected (azureml_limits)", required=False)
    for key, (module, attribute) in {
        "log": (_MODEL, "Model.log"),
        "log_v2": (_MODEL, "Model._log_v2"),
        "create_logged_model": (_MODEL, "_create_logged_model"),
        "logged_model_repo": (
            "mlflow.store.artifact.runs_artifact_repo",
            "RunsArtifactRepository._get_logged_model_artifact_repo",
        ),
        "register_model": ("mlflow.tracking._model_registry.fluent", "_register_model"),
        "prompt_registry": ("mlflow.tracking._model_registry.client", "is_prompt_supported_registry"),
        "search_runs": ("mlflow.tracking.client", "MlflowClient.search_runs"),
        "rename_experiment": ("mlflow.tracking.client", "MlflowClient.rename_experiment"),
        "rename_registered_model": ("mlflow.tracking.client", "MlflowClient.rename_registered_model"),
    }.items()
}
ARTIFACT_BUILDERS = Internal(
    "mlflow.store.artifact.artifact_repository_registry",
    "_artifact_repository_registry._registry",
    "mlflow's artifact repository builders by scheme, where the artifact shim goes",
    required=False,
)
EXIT_HOOK = Internal(
    "threading",
    "_register_atexit",
    "the exit flush runs before Python joins the queue's worker threads (without it, atexit)",
    required=False,
)

INTERNALS: tuple[Internal, ...] = (
    TRACKING_URI,
    REGISTRY_URI,
    ACTIVE_EXPERIMENT,
    REGISTRY_TABLE,
    TRACKING_STORES,
    REGISTRY_STORES,
    SERVICE_CONTEXTS,
    ADD_SERVICE_CONTEXT,
    SERVICE_CONTEXT,
    PLUGIN_CLOUDS,
    PLUGIN_CLOUD,
    PLUGIN_ENDPOINTS,
    PLUGIN_SUFFIXES,
    RUN_STACKS,
    CACHED_STORE,
    *ASYNC_QUEUE_METHODS,
    *LIMITS.values(),
    ARTIFACT_BUILDERS,
    EXIT_HOOK,
)

#: Modules mlflow and the plugin import on first use, right after a sign-in: the plugin's store
#: and service contexts, mlflow's client, and the tracing provider ``set_tracking_uri`` resets.
#: ``tracking.import_mlflow`` loads them while the person signs in; a version without one skips it.
FIRST_USE_MODULES = (
    "azureml.mlflow.entry_point_loaders",
    _LOADER,
    "azureml.mlflow._internal.utils",
    "azureml.mlflow._store.tracking.store",
    "mlflow.tracking.client",
    "mlflow.store.artifact.artifact_repository_registry",
    "mlflow.tracing.processor.base_mlflow",
)


# -- the check at connect --------------------------------------------------------------------------
def missing(internals: Iterable[Internal] = INTERNALS) -> list[Internal]:
    """Those of ``internals`` this mlflow and plugin do not have."""
    return [internal for internal in internals if not internal.present()]


def available(*internals: Internal) -> bool:
    """Whether every one of ``internals`` is there (optional ones: is the feature on)."""
    return not missing(internals)


def check(versions: str, install: str) -> None:
    """Refuse mlflow and plugin versions without a required attribute (imports mlflow and the plugin).

    Args:
        versions: The installed versions, as the message names them.
        install: The command that installs a pair that works.

    Raises:
        IncompatibleVersions: One is missing; nothing has been changed.
    """
    gone = missing(internal for internal in INTERNALS if internal.required)
    if gone:
        raise IncompatibleVersions(
            f"jupyter_amlflow cannot work with {versions}",
            f"{gone[0].label} is missing ({gone[0].use})"
            + (f", and {len(gone) - 1} more of what connect relies on" if len(gone) > 1 else "")
            + "; nothing was changed",
            f"Install a tested pair: {install}",
        )


# -- mlflow's globals ------------------------------------------------------------------------------
def mlflow_globals() -> tuple[str | None, str | None, str | None]:
    """``(tracking URI, registry URI, active experiment id)`` as set in this process (None: unset)."""
    return TRACKING_URI.get(), REGISTRY_URI.get(), ACTIVE_EXPERIMENT.get()


def restore_mlflow_globals(tracking_uri: str | None, registry_uri: str | None, experiment_id: str | None) -> None:
    """Put the three globals back, each that this mlflow has (connect changes none before ``check``)."""
    values = {TRACKING_URI: tracking_uri, REGISTRY_URI: registry_uri, ACTIVE_EXPERIMENT: experiment_id}
    for internal, value in values.items():
        if internal.present():
            internal.set(value)


def set_active_experiment(experiment_id: str) -> None:
    """What ``mlflow.set_experiment`` sets, without its request for an experiment connect just read."""
    ACTIVE_EXPERIMENT.set(experiment_id)


def tracking_uri_set() -> bool:
    """Whether ``mlflow.set_tracking_uri`` set the tracking URI in this process (mlflow imported)."""
    return TRACKING_URI.get() is not None


def build_registry_table() -> None:
    """Build mlflow's model-registry store table now, in this thread.

    mlflow builds it lazily and publishes it before it is filled; threads that resolve the
    ``azureml`` scheme first then fail with ``KeyError: 'azureml'``.
    """
    REGISTRY_TABLE.get()()


def drop_cached_stores() -> None:
    """Forget the tracking and registry stores mlflow built (``lru_cache``: only all of them at once)."""
    TRACKING_STORES.get().cache_clear()
    REGISTRY_STORES.get().cache_clear()


def run_stacks() -> dict[int, list[Any]] | None:
    """Every thread's stack of active runs by thread id, as mlflow records them; None if unknown."""
    if not RUN_STACKS.present():
        return None
    stacks: dict[int, list[Any]] = RUN_STACKS.get()()
    return stacks


# -- the plugin's tables ---------------------------------------------------------------------------
def service_contexts() -> dict[str, Any]:
    """The plugin's table of service contexts (credentials) by tracking URI, without query string."""
    table: dict[str, Any] = SERVICE_CONTEXTS.get()
    return table


def add_service_context(key: str, context: Any) -> None:
    """Register ``context`` for the tracking URI ``key`` the way the plugin does itself."""
    ADD_SERVICE_CONTEXT.get()(key, context)


def service_context(**fields: Any) -> Any:
    """A new plugin ``ServiceContext`` (host_url, subscription_id, workspace_name, ..., auth, cloud)."""
    return SERVICE_CONTEXT.get()(**fields)


def plugin_clouds() -> dict[str, Any]:
    """The plugin's known clouds by name (filled at ``import mlflow``)."""
    clouds: dict[str, Any] = PLUGIN_CLOUDS.get()
    return clouds


def plugin_cloud(
    name: str, *, resource_manager: str, authority: str, portal: str, storage_suffix: str | None
) -> Any:
    """A cloud as the plugin describes it."""
    return PLUGIN_CLOUD.get()(
        name,
        endpoints=PLUGIN_ENDPOINTS.get()(
            resource_manager=resource_manager,
            active_directory=authority,
            management=resource_manager,
            active_directory_resource_id=resource_manager,
            portal=portal,
        ),
        suffixes=PLUGIN_SUFFIXES.get()(storage_endpoint=storage_suffix),
    )


# -- asynchronous logging --------------------------------------------------------------------------
#: What a store's queue must have, on the instance, to be adopted.
_QUEUE_NEEDS = ("_logging_func", *(internal.name for internal in ASYNC_QUEUE_METHODS))


def cached_store(tracking_uri: str) -> Any:
    """The tracking store mlflow keeps for ``tracking_uri`` (the one every client for it uses)."""
    return CACHED_STORE.get()(tracking_uri)


def async_queue(store: Any) -> Any | None:
    """The store's ``AsyncLoggingQueue`` if it has the one this package knows, else None."""
    queue = getattr(store, "_async_logging_queue", None)
    if queue is None or not all(hasattr(queue, name) for name in _QUEUE_NEEDS):
        return None
    return queue


def logging_func(queue: Any) -> Callable[..., None]:
    """What the queue's worker calls with each merged batch."""
    func: Callable[..., None] = queue._logging_func
    return func


def set_logging_func(queue: Any, func: Callable[..., None]) -> None:
    queue._logging_func = func


def register_before_thread_join(hook: Callable[[], None]) -> None:
    """Run ``hook`` at exit before ``concurrent.futures`` joins its workers (else with ``atexit``).

    ``atexit`` runs after that join, when the queue's workers can no longer take a batch.
    """
    import atexit

    try:
        if not EXIT_HOOK.present():
            raise RuntimeError("no threading._register_atexit")
        EXIT_HOOK.get()(hook)
    except RuntimeError:  # another Python, or already exiting: atexit is the next best
        atexit.register(hook)


# -- the Azure ML workarounds ----------------------------------------------------------------------
def limits_target(key: str) -> tuple[Any, str]:
    """``(owner, attribute name)`` of what ``azureml_limits`` replaces under ``key`` (see ``LIMITS``)."""
    internal = LIMITS[key]
    return internal.owner(), internal.name


def log_model_v2(model_class: Any) -> Callable[..., Any]:
    """mlflow 2's ``Model.log`` path (``Model._log_v2``) of ``model_class``, bound."""
    method: Callable[..., Any] = getattr(model_class, LIMITS["log_v2"].name)
    return method


def client_registry_uri(client: Any) -> str | None:
    """The registry URI an ``MlflowClient`` was made with (None when this mlflow keeps none)."""
    uri: str | None = getattr(client, "_registry_uri", None)
    return uri


def artifact_builders() -> dict[str, Any] | None:
    """mlflow's table of artifact repository builders by URI scheme, if it has the shape we know."""
    try:
        table = ARTIFACT_BUILDERS.get()
    except (ImportError, AttributeError):
        return None
    return table if isinstance(table, dict) else None
