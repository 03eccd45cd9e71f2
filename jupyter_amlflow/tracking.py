"""The MLflow side: the azureml-mlflow plugin's registration, the kernel's MLflow state, experiments.

Everything here imports mlflow lazily: ``import jupyter_amlflow`` stays cheap, and connect
imports mlflow in a background thread while the person signs in. The private attributes of
mlflow and the plugin this module reads and writes are reached through ``compat.internals``.

Three pieces of process-wide state belong to MLflow and the plugin, not to us, and this module is
the only place that touches them:

* mlflow's tracking URI, registry URI and active experiment (module globals plus the
  ``MLFLOW_*`` environment variables mlflow mirrors them into);
* the plugin's table of service contexts, keyed by tracking URI: the credential the plugin
  uses for a URI. We register a ``SwappableCredential`` there once per URI; mlflow caches the
  tracking store per URI, so a later connect with another identity swaps the inner credential
  instead of registering a new object the cached store would never see;
* the plugin's table of known clouds (filled at ``import mlflow``): a custom cloud chosen later
  is added there, so artifact downloads find its storage suffix.

``MlflowState`` snapshots all of it so a failed connect, or ``disconnect()``, restores exactly
what was there, and undoes the version shims connect applied (``compat.py``).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .compat import internals
from .errors import ActiveRunError, AmlflowError, PermissionDenied, ServiceError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from .arm import WorkspaceInfo
    from .clouds import Cloud
    from .compat import AppliedShims

#: Environment variables connect may set; snapshots restore them exactly.
MANAGED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
    "AZUREML_CURRENT_CLOUD",
)

_TRACKING_PATH = re.compile(
    r"/mlflow/v\d+\.\d+/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/[^/?]+$",
    re.IGNORECASE,
)

MLFLOW_DATA_PERMISSIONS = (
    "Microsoft.MachineLearningServices/workspaces/experiments/*",
    "Microsoft.MachineLearningServices/workspaces/jobs/*",
)
#: Most experiment names ``list_experiment_names`` returns (a workspace may have thousands).
MAX_EXPERIMENTS = 2000

MLFLOW_REGISTRY_PERMISSIONS = ("Microsoft.MachineLearningServices/workspaces/models/*/*",)



def import_mlflow() -> None:
    """Import mlflow and the plugin (2-3 s cold), and what their first use loads; thread-safe.

    Connect runs this while the person signs in, so the first-use work (about 0.1-0.2 s: the
    modules of ``internals.FIRST_USE_MODULES``, mlflow's request-header providers and their
    platform checks) happens during the wait instead of after the token arrives. Nothing here
    changes mlflow's state.
    """
    import azureml.mlflow  # noqa: F401
    import mlflow  # noqa: F401 - the import is the point

    for name in internals.FIRST_USE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # another mlflow or plugin version: that module loads when needed, if at all
            continue
    from mlflow.tracking.request_header.registry import resolve_request_headers

    resolve_request_headers()  # builds mlflow's header-provider table; pure, no network


def mlflow_imported() -> bool:
    """Whether this process already imported mlflow (then ``active_run`` etc. are meaningful)."""
    return "mlflow" in sys.modules


# -- the plugin's tables --------------------------------------------------------------------------
def register_cloud(cloud: Cloud) -> None:
    """Put ``cloud`` into the plugin's cloud table (filled at ``import mlflow``, fixed after)."""
    internals.plugin_clouds()[cloud.name] = plugin_cloud_for(cloud)


def plugin_cloud_for(cloud: Cloud) -> Any:
    """The plugin's ``Cloud`` object for one of ours."""
    return internals.plugin_cloud(
        cloud.name,
        resource_manager=cloud.resource_manager,
        authority=cloud.authority,
        portal=cloud.portal or cloud.resource_manager,
        storage_suffix=cloud.storage_suffix,
    )


def plugin_key(tracking_uri: str) -> str:
    """The plugin's key for a tracking URI: the URI up to its query string."""
    return tracking_uri.split("?", 1)[0]


def host_url(tracking_uri: str) -> str:
    """``https://HOST[:PORT]`` of an ``azureml://`` URI: where the plugin sends its calls."""
    return "https://" + urlsplit(tracking_uri).netloc


def registered_context(tracking_uri: str) -> Any | None:
    """The plugin's service context for this URI, if one is registered."""
    return internals.service_contexts().get(plugin_key(tracking_uri))


def set_registered_context(tracking_uri: str, context: Any | None) -> None:
    """Register (or, with None, remove) the plugin's service context for a URI."""
    key = plugin_key(tracking_uri)
    contexts = internals.service_contexts()
    previous = contexts.get(key)
    if context is None:
        contexts.pop(key, None)
    else:
        internals.add_service_context(key, context)
    if previous is not None and getattr(previous, "auth", None) is not getattr(context, "auth", None):
        # A store built for this URI holds the context registered when it was built (the plugin's
        # own, if the workspace was used before connect): it would keep signing in as that identity.
        # mlflow caches one store per URI; only the whole cache can be cleared, and other URIs'
        # stores are rebuilt on their next use, which costs no request.
        internals.drop_cached_stores()


def register_workspace(
    tracking_uri: str,
    *,
    subscription_id: str,
    resource_group: str,
    workspace: str,
    location: str | None,
    cloud: Cloud,
    credential: Any,
) -> Any:
    """Register ``credential`` for ``tracking_uri`` with the plugin; returns the credential used.

    ``credential`` is a ``SwappableCredential``. If the URI already has one of ours (an earlier
    connect in this process), its inner credential is swapped and that object is kept: mlflow
    may hold a cached store built with it.
    """
    existing = registered_context(tracking_uri)
    current = getattr(existing, "auth", None)
    if current is not None and hasattr(current, "swap") and current is not credential:
        current.swap(credential.inner)
        credential = current
    context = internals.service_context(
        host_url=host_url(tracking_uri),
        subscription_id=subscription_id,
        workspace_name=workspace,
        resource_group_name=resource_group,
        auth=credential,
        location=location,
        cloud=plugin_cloud_for(cloud),
    )
    set_registered_context(tracking_uri, context)
    return credential


# -- the kernel's MLflow state --------------------------------------------------------------------
@dataclass
class MlflowState:
    """What connect changes, captured so it can be put back exactly."""

    tracking_uri: str | None
    registry_uri: str | None
    experiment_id: str | None
    env: dict[str, str | None]
    contexts: dict[str, Any] = field(default_factory=dict)
    clouds: dict[str, Any] = field(default_factory=dict)
    # Our stable credentials registered for a URI, with the inner credential each held: a
    # failed connect may have swapped it.
    swaps: list[tuple[Any, Any]] = field(default_factory=list)
    # Shims for this mlflow and plugin that connect applied (compat.apply_shims), undone last.
    shims: list[AppliedShims] = field(default_factory=list)

    @classmethod
    def capture(cls) -> MlflowState:
        """Snapshot mlflow's globals (when mlflow is imported) and the environment."""
        env = {name: os.environ.get(name) for name in MANAGED_ENV}
        if not mlflow_imported():
            return cls(None, None, None, env)
        return cls(*internals.mlflow_globals(), env=env)

    def note_plugin_entries(self, tracking_uri: str, cloud_name: str) -> None:
        """Remember the plugin's entries for this URI and cloud before connect changes them.

        Called just before registering (the URI is known only after Resource Manager answers);
        an entry noted once keeps its first, original value.
        """
        context = registered_context(tracking_uri)
        self.contexts.setdefault(plugin_key(tracking_uri), context)
        self.clouds.setdefault(cloud_name, internals.plugin_clouds().get(cloud_name))
        auth = getattr(context, "auth", None)
        if auth is not None and hasattr(auth, "swap") and all(held is not auth for held, _ in self.swaps):
            self.swaps.append((auth, auth.inner))

    def restore(self) -> None:
        """Put everything back as it was at ``capture`` time."""
        for name, value in self.env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if not mlflow_imported():
            return
        internals.restore_mlflow_globals(self.tracking_uri, self.registry_uri, self.experiment_id)
        for key, context in self.contexts.items():
            current = getattr(registered_context(key), "auth", None)
            if context is None and current is not None and hasattr(current, "swap"):
                # Keep our stable credential registered, signed out: mlflow caches the store built
                # with it, and the next connect to this URI must reach that store through it.
                current.swap(None)
                continue
            set_registered_context(key, context)
        for credential, inner in self.swaps:
            credential.swap(inner)
        clouds = internals.plugin_clouds() if self.clouds else {}
        for name, cloud in self.clouds.items():
            if cloud is None:
                clouds.pop(name, None)
            else:
                clouds[name] = cloud
        for shims in reversed(self.shims):
            shims.undo_all()


def active_run_id() -> str | None:
    """The active MLflow run's id, if mlflow is imported and a run is active."""
    if not mlflow_imported():
        return None
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run else None


def active_run_elsewhere() -> tuple[str, str] | None:
    """``(run id, thread name)`` of a run active in another live thread of this process, if any.

    mlflow keeps one stack of active runs per thread (``internals.RUN_STACKS``, as mlflow's own
    ``_get_latest_active_run`` reads them), so ``mlflow.active_run()`` sees the calling thread's
    only. A run a worker thread keeps open must stop connect and disconnect as one in this thread
    does: its next call would go to another workspace, or to a local ``mlflow.db``. A thread that
    has ended cannot log any more; its leftover stack is not counted.
    """
    if not mlflow_imported():
        return None
    stacks = internals.run_stacks()
    if stacks is None:  # another mlflow: only the calling thread's runs can be seen
        return None
    me = threading.get_ident()
    alive = {t.ident: t.name for t in threading.enumerate()}
    for ident, stack in stacks.items():
        if ident != me and ident in alive and stack:
            return stack[-1].info.run_id, alive[ident]
    return None


def refuse_active_run(why: str, fix: str, *, already: bool = False) -> None:
    """Raise ``ActiveRunError`` if an MLflow run is active in this thread.

    Args:
        why: Why the run stops what was asked.
        fix: What to do about it.
        already: Say "already active" (what was asked starts a run of its own).
    """
    if run_id := active_run_id():
        raise ActiveRunError(f"An MLflow run is {'already ' if already else ''}active ({run_id})", why, fix)


def refuse_active_runs(why: str, then: str) -> None:
    """Raise ``ActiveRunError`` if an MLflow run is active in this thread or in another one.

    Args:
        why: Why the run stops what was asked.
        then: What to type once the run has ended.
    """
    refuse_active_run(why, f"End it first: mlflow.end_run(), then {then}")
    if elsewhere := active_run_elsewhere():
        run_id, thread = elsewhere
        raise ActiveRunError(
            f"An MLflow run is active in another thread ({run_id}, thread {thread!r})",
            why,
            f"Let that thread end its run first (mlflow.end_run() there, or leave its 'with mlflow.start_run()' "
            f"block), then {then}",
        )


def apply(tracking_uri: str, experiment_id: str, cloud_name: str) -> None:
    """Point this kernel's MLflow at the workspace (the commit step of connect).

    Sets what ``mlflow.set_tracking_uri``/``set_registry_uri``/``set_experiment`` set, without
    ``set_experiment``'s second round trip for an experiment connect has just read.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    internals.set_active_experiment(experiment_id)
    os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    # The plugin's LocalUpload artifact client (registered model files) finds its storage
    # suffix through this variable; and mlflow's "View run at" links point at the API host,
    # which 404s in a browser: connect offers the Studio link instead.
    os.environ["AZUREML_CURRENT_CLOUD"] = cloud_name
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    internals.build_registry_table()


@dataclass(frozen=True)
class ExperimentRef:
    """An experiment as connect reports it."""

    experiment_id: str
    name: str
    created: bool


def check_experiment_name(name: str) -> None:
    """Refuse, before any request, a name MLflow refuses (its ``_validate_experiment_name``: empty).

    Blank names go too: a name of spaces alone is a typo, and the server's refusal of an empty
    one reads as if the workspace were at fault.
    """
    if not name.strip():
        raise AmlflowError(
            f"The experiment name {name!r} is blank",
            "MLflow needs a name to find or create an experiment",
            "Give a name, e.g. my-experiment (quote a name with spaces: 'my experiment')",
        )


def resolve_experiment(
    tracking_uri: str,
    name: str | None,
    experiment_id: str | None,
    *,
    before_create: Callable[[], None] | None = None,
) -> ExperimentRef:
    """Find the experiment by id or name, creating it by name if missing (network).

    ``before_create`` runs just before the experiment is created and may raise to stop it: a
    caller that gave up on a slow lookup must not create the experiment later behind its back.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if experiment_id is not None:
            by_id = client.get_experiment(experiment_id)
            return ExperimentRef(by_id.experiment_id, by_id.name, False)
        assert name is not None
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage != "active":
                raise AmlflowError(
                    f"Experiment '{name}' is deleted",
                    "MLflow cannot log to a deleted experiment",
                    "Restore it in Studio, or pick another name: %amlflow experiment NEW_NAME",
                )
            return ExperimentRef(found.experiment_id, found.name, False)
        if before_create is not None:
            before_create()
        return ExperimentRef(client.create_experiment(name), name, True)
    except MlflowException as exc:
        raise translate_mlflow_error(exc, "MLflow API: experiment lookup") from exc


def translate_mlflow_error(exc: BaseException, endpoint: str) -> AmlflowError:
    """An ``AmlflowError`` for an MLflow client exception (403 names the permissions needed)."""
    text = str(exc)
    status = getattr(exc, "get_http_status_code", lambda: None)()
    if "PERMISSION_DENIED" in text or status == 403 or " 403" in text:
        action = re.search(r"perform action '([^']+)'", text)
        needed = (
            MLFLOW_REGISTRY_PERMISSIONS
            if "/models/" in (action.group(1) if action else "")
            else MLFLOW_DATA_PERMISSIONS
        )
        return PermissionDenied(
            "Azure ML refused the MLflow call" + (f" ({action.group(1)})" if action else ""),
            "the signed-in identity lacks data-plane permissions on the workspace: " + " and ".join(needed),
            "Ask for the 'AzureML Data Scientist' role on the workspace (or a custom role with those "
            "actions), then run %amlflow connect again",
            action=action.group(1) if action else None,
            endpoint=endpoint,
        )
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ServiceError(
        f"{endpoint} failed",
        first_line[:300],
        "Check the workspace in %amlflow status and try again; "
        'logging.getLogger("azure").setLevel(logging.DEBUG) shows the requests',
        endpoint=endpoint,
    )


def is_azureml_uri(uri: str | None) -> bool:
    """Whether a tracking URI is an Azure ML workspace URI."""
    if uri is None or not uri.lower().startswith("azureml://"):
        return False
    return bool(_TRACKING_PATH.search(uri.split("?", 1)[0]))


def list_experiment_names(
    workspace: WorkspaceInfo, cloud: Cloud, credential: TokenCredential, timeout: float
) -> list[str]:
    """The workspace's active experiments, read through the Azure ML MLflow API before connecting.

    Calls the MLflow REST API the way azureml-mlflow does (same path, a Resource Manager token),
    without registering anything with the plugin: that is connect's job, and disconnect must
    find nothing of ours. Few retries and a timeout: a worker thread must not outlive the panel
    by minutes.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request, verify_rest_response

    assert workspace.tracking_uri is not None
    host = (
        f"{host_url(workspace.tracking_uri)}/mlflow/v2.0/subscriptions/{workspace.subscription_id}"
        f"/resourceGroups/{workspace.resource_group}/providers/Microsoft.MachineLearningServices"
        f"/workspaces/{workspace.name}"
    )
    endpoint = "/api/2.0/mlflow/experiments/search"
    names: list[str] = []
    page_token: str | None = None
    try:
        while len(names) < MAX_EXPERIMENTS:
            creds = MlflowHostCreds(host, token=credential.get_token(cloud.arm_scope).token)
            body: dict[str, Any] = {"max_results": 500, "view_type": "ACTIVE_ONLY"}
            if page_token:
                body["page_token"] = page_token
            response = http_request(
                creds, endpoint, "POST", max_retries=2, backoff_factor=1, timeout=timeout, json=body
            )
            page = verify_rest_response(response, endpoint).json()
            names.extend(str(e["name"]) for e in page.get("experiments", []) if isinstance(e, dict) and "name" in e)
            page_token = page.get("next_page_token")
            if not page_token:
                break
    except MlflowException as exc:
        raise translate_mlflow_error(exc, "MLflow API: search experiments") from exc
    return sorted(set(names), key=str.lower)
