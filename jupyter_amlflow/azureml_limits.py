"""While connected, make MLflow 3 do what Azure ML serves, and say no early to what it refuses.

Azure ML's MLflow endpoint is not an open-source mlflow server (see the README's compatibility
section and ``sandbox/fidelity.py`` for the evidence). With mlflow 3 that breaks, for every user:

* ``mlflow.<flavor>.log_model`` and every autolog that logs a model: they start with the
  logged-model API, which Azure answers with a 404 and an empty body. While the workspace refuses
  it, ``Model.log`` takes mlflow 2's path instead (mlflow's own ``Model._log_v2``: the model goes
  under the run's artifacts, a run is started if none is active) and returns a ``ModelInfo`` with
  ``model_id=None`` and ``model_uri="runs:/<run_id>/<name>"``; ``registered_model_name=`` registers
  the version from the run's artifact path, as mlflow 2 did.
* ``mlflow.register_model("runs:/...")``, ``MlflowClient.list_artifacts`` and ``runs:/`` downloads:
  mlflow 3 looks for a logged model of that name (the plugin lists run artifacts from the run's
  root, so a model folder's ``MLmodel`` is never seen). While refused, those lookups find none
  without asking, and registration uses the run's artifact path.
* Tracing: Azure answers 403. It is switched off while connected (one notice per process, no
  warning per trace) and back on at disconnect. "Off" is a trace sampling ratio of 0
  (``MLFLOW_TRACE_SAMPLING_RATIO``): traced functions run, no span is exported. Not
  ``mlflow.tracing.disable()``: in mlflow 3.15 a NoOp tracer makes nested ``@trace_disabled``
  calls (``log_model`` -> ``save_model``) wait forever on a lock they already hold.
* Queries Azure documents as unsupported (ordering runs by metrics, params or tags; ``OR``; ``!=``
  on tags; renaming experiments or registered models) raise ``AzureMLUnsupported`` before any
  request, checked with mlflow's own parsers; and mlflow 3's registered-model search no longer
  adds the prompt filter Azure refuses (Azure/azure-sdk-for-python#42155).

Whether the workspace serves logged models is learned from its answer to the first logged-model
call of a connection (nothing is asked at connect) and kept for that connection. Against a server
that serves them, mlflow's own path runs unchanged.

The attributes of mlflow this module replaces while connected (``Model.log``, the first
logged-model call, the runs repository's logged-model lookup, ``_register_model``, the prompt
registry test, ``MlflowClient.search_runs`` and the renames) are listed, with their modules, in
``compat.internals.LIMITS``; ``_Patches`` checks they all exist before touching any, and this is
the only module that replaces them.

Why one file of ~500 lines: the patches are installed, routed to their connection and undone
together, and each is a few lines beside the others; split apart, the one install/undo pair
would have to reach into several modules.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .compat import internals
from .tracking import is_azureml_uri, plugin_key

log = logging.getLogger("jupyter_amlflow")

TRACING_OFF = "off (Azure ML refuses traces)"
SAMPLING_RATIO = "MLFLOW_TRACE_SAMPLING_RATIO"


class AzureMLNotice(UserWarning):
    """Something jupyter_amlflow changed in MLflow's behaviour because Azure ML refuses it."""


def unsupported_class() -> type[Exception]:
    """``AzureMLUnsupported``: an ``MlflowException`` for a call Azure ML documents as unsupported.

    Built on first use, because it subclasses mlflow's exception and ``import jupyter_amlflow``
    must not import mlflow; ``jupyter_amlflow.azureml_limits.AzureMLUnsupported`` is the same class.
    """
    cls = globals().get("AzureMLUnsupported")
    if cls is None:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        class AzureMLUnsupported(MlflowException):
            """A call Azure ML documents as unsupported, refused before it was sent."""

            def __init__(self, message: str) -> None:
                super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

        AzureMLUnsupported.__module__ = __name__
        cls = globals()["AzureMLUnsupported"] = AzureMLUnsupported
    return cls


def __getattr__(name: str) -> Any:
    if name == "AzureMLUnsupported":
        return unsupported_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _unsupported(message: str) -> Exception:
    return unsupported_class()(message)


# -- what Azure refuses, in the client --------------------------------------------------------------
def check_search_runs(filter_string: str | None, order_by: list[str] | None) -> None:
    """Raise ``AzureMLUnsupported`` for a runs query Azure ML documents as unsupported."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    for clause in order_by or []:
        try:
            kind, key, ascending = SearchUtils.parse_order_by_for_search_runs(str(clause))
        except MlflowException:
            continue  # malformed: mlflow's own error is the right one
        if kind in ("metric", "parameter", "tag"):
            column = {"metric": "metrics", "parameter": "params", "tag": "tags"}[kind] + f".{key}"
            raise _unsupported(
                f"Azure ML does not support ordering runs by {kind}s (order_by {clause!r}): search without "
                f"order_by and sort the DataFrame instead, e.g. mlflow.search_runs(...).sort_values("
                f"{column!r}, ascending={ascending})"
            )
    text = (filter_string or "").strip()
    if not text:
        return
    import sqlparse
    from sqlparse.exceptions import SQLParseError
    from sqlparse.tokens import Keyword

    try:
        tokens = list(sqlparse.parse(text)[0].flatten())
    except SQLParseError:
        # Too deep for sqlparse (e.g. 101 "A|"): malformed, and mlflow's own error is the right one.
        return
    if any(t.ttype is Keyword and t.value.upper() == "OR" for t in tokens):
        raise _unsupported(
            "Azure ML does not support OR in run filters: run one search per condition and combine the "
            "DataFrames, e.g. pandas.concat([mlflow.search_runs(filter_string=a), "
            "mlflow.search_runs(filter_string=b)]).drop_duplicates('run_id')"
        )
    try:
        clauses = SearchUtils.parse_search_filter(text)
    except MlflowException:
        return
    for c in clauses:
        if c.get("type") == "tag" and c.get("comparator") == "!=":
            raise _unsupported(
                f"Azure ML does not support != on tags (tags.{c['key']} != ...): search without it and filter "
                f"the DataFrame instead, e.g. runs[runs['tags.{c['key']}'] != {c['value']!r}]"
            )


# -- the state of one connection ---------------------------------------------------------------------
@dataclass
class Limits:
    """What one connection learned about its workspace, and how to undo what it changed.

    The patched attributes are process-wide (see ``_Patches``): they are put in place by the first
    connection and removed with the last, and each call is handled by the connection whose
    workspace it goes to, so two sessions in one process (scripts, tests) do not undo each other.

    Args:
        tracking_uri: The connected workspace's tracking URI (the plugin's key form).
    """

    tracking_uri: str
    # None until the first logged-model call of this connection answers; then True or False.
    logged_models: bool | None = None

    @classmethod
    def install(cls, tracking_uri: str) -> Limits:
        """Start serving a new connection and switch tracing off. ``uninstall`` undoes it."""
        limits = cls(plugin_key(tracking_uri))
        _PATCHES.add(limits)
        try:
            limits.switch_tracing_off()
        except BaseException:
            limits.uninstall()
            raise
        return limits

    def reconnect(self, tracking_uri: str) -> None:
        """A new connection in the same session: forget the last workspace's answer."""
        self.tracking_uri = plugin_key(tracking_uri)
        self.logged_models = None
        self.switch_tracing_off()

    def uninstall(self) -> None:
        """Stop serving this connection; with the last one, put every patched attribute back.

        Tracing comes back (the sampling ratio as it was, the tracer rebuilt on next use) once no
        session is connected.
        """
        if _PATCHES.remove(self) == 0:
            import mlflow.tracing

            mlflow.tracing.reset()

    def switch_tracing_off(self) -> None:
        """Tracing off (Azure answers 403 to every trace); one notice per process."""
        import mlflow.tracing

        _PATCHES.sample_no_trace()
        mlflow.tracing.reset()  # the tracer reads the ratio when it is next built
        # Attributed to this line, so Python's warning registry shows it once per process.
        warnings.warn(
            "MLflow tracing is off while this kernel is connected to Azure ML, which refuses traces "
            "(%amlflow status shows it); %amlflow disconnect turns it back on.",
            AzureMLNotice,
            stacklevel=1,
        )

    @property
    def rows(self) -> list[tuple[str, str]]:
        """What ``%amlflow status`` shows about these limits."""
        models = {
            None: "not asked yet (the first log_model asks)",
            False: "refused by the workspace: log_model saves to the run's artifacts (runs:/ URIs)",
            True: "served by the workspace",
        }[self.logged_models]
        off = os.environ.get(SAMPLING_RATIO) == "0"
        tracing = TRACING_OFF if off else f"on ({SAMPLING_RATIO} was changed after connect; Azure ML refuses traces)"
        return [("Logged models", models), ("Tracing", tracing)]

    def learn(self, served: bool) -> None:
        """Keep the workspace's answer to a logged-model call."""
        if self.logged_models is None:
            log.debug("workspace %s %s logged models", self.tracking_uri, "serves" if served else "refuses")
        self.logged_models = served


def _refused(exc: BaseException) -> bool:
    """Azure's answer to the logged-model API: a 404 whose body is not an MLflow error."""
    from mlflow.exceptions import MlflowException, RestException

    return isinstance(exc, MlflowException) and not isinstance(exc, RestException) and exc.get_http_status_code() == 404


class _Patches:
    """The process-wide patched attributes, and the connections they serve (latest first)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: list[Limits] = []
        self.originals: list[tuple[Any, str, Any]] = []
        self.ratio_before: str | None = None  # MLFLOW_TRACE_SAMPLING_RATIO before the first connection
        self.asking: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("amlflow_asking", default=None)

    def add(self, limits: Limits) -> None:
        with self.lock:
            if not self.active:
                self.ratio_before = os.environ.get(SAMPLING_RATIO)
                self._patch_all()
            self.active.append(limits)

    def remove(self, limits: Limits) -> int:
        """Forget a connection; returns how many remain (0: everything was put back)."""
        with self.lock:
            if limits in self.active:
                self.active.remove(limits)
            if not self.active:
                while self.originals:
                    owner, name, original = self.originals.pop()
                    setattr(owner, name, original)
                if self.ratio_before is None:
                    os.environ.pop(SAMPLING_RATIO, None)
                else:
                    os.environ[SAMPLING_RATIO] = self.ratio_before
            return len(self.active)

    def sample_no_trace(self) -> None:
        """Set the trace sampling ratio to 0 (``add`` kept what it was before the first connection)."""
        os.environ[SAMPLING_RATIO] = "0"

    def serving(self, uri: str | None = None) -> Limits | None:
        """The connection a call to ``uri`` (the current tracking URI by default) belongs to."""
        if uri is None:
            import mlflow

            uri = mlflow.get_tracking_uri()
        if not uri:
            return None
        key = plugin_key(uri)
        with self.lock:
            return next((lim for lim in reversed(self.active) if lim.tracking_uri == key), None)

    # -- the patches --------------------------------------------------------------------------------
    def _replace(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        self.originals.append((owner, name, original))
        setattr(owner, name, make(original))

    def _patch_all(self) -> None:
        missing = internals.missing(internals.LIMITS.values())
        if missing:
            # Another mlflow: leave it alone rather than half-patch it.
            log.warning("mlflow has no %s; Azure ML workarounds are off", ", ".join(i.label for i in missing))
            return
        wrappers: dict[str, Callable[[Any], Any]] = {
            "log": self._wrap_log,
            "create_logged_model": self._wrap_create_logged_model,
            "logged_model_repo": self._wrap_model_repo,
            "register_model": self._wrap_register_model,
            "prompt_registry": _wrap_prompt_registry,
            "search_runs": _wrap_search_runs,
            "rename_experiment": _wrap_rename("experiments"),
            "rename_registered_model": _wrap_rename("registered models"),
        }
        for key, make in wrappers.items():
            self._replace(*internals.limits_target(key), make)

    def _wrap_log(self, original: Any) -> Any:
        func = original.__func__
        patches = self

        def log(cls: Any, *args: Any, **kwargs: Any) -> Any:
            limits = patches.serving()
            if limits is None or limits.logged_models is True:
                return func(cls, *args, **kwargs)
            if limits.logged_models is None:
                token = patches.asking.set(limits)
                try:
                    return func(cls, *args, **kwargs)
                except _LoggedModelsRefused:
                    pass  # nothing was written: the logged-model call is the first one Model.log sends
                finally:
                    patches.asking.reset(token)
            return _log_to_run(cls, func, args, kwargs)

        log.__doc__ = func.__doc__
        return classmethod(log)

    def _wrap_create_logged_model(self, original: Any) -> Any:
        patches = self

        def create_logged_model(*args: Any, **kwargs: Any) -> Any:
            limits = patches.asking.get()
            if limits is None:
                return original(*args, **kwargs)
            try:
                model = original(*args, **kwargs)
            except Exception as exc:
                if _refused(exc):
                    limits.learn(False)
                    raise _LoggedModelsRefused from exc
                raise
            limits.learn(True)
            return model

        return create_logged_model

    def _wrap_model_repo(self, original: Any) -> Any:
        patches = self

        def get_logged_model_artifact_repo(repo: Any, run_id: str, name: str) -> Any:
            limits = patches.serving(getattr(repo, "tracking_uri", None))
            if limits is None or limits.logged_models is True:
                return original(repo, run_id, name)
            if limits.logged_models is False:
                return None  # the workspace has no logged models: nothing to find, nothing to ask
            try:
                found = original(repo, run_id, name)
            except Exception as exc:
                if _refused(exc):
                    limits.learn(False)
                    return None
                raise
            limits.learn(True)
            return found

        return get_logged_model_artifact_repo

    def _wrap_register_model(self, original: Any) -> Any:
        patches = self
        signature = inspect.signature(original)

        def register_model(model_uri: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

            limits = patches.serving()
            runs_uri = isinstance(model_uri, str) and RunsArtifactRepository.is_runs_uri(model_uri)
            if not runs_uri or limits is None or limits.logged_models is True:
                return original(model_uri, name, *args, **kwargs)
            if limits.logged_models is None:
                try:
                    return original(model_uri, name, *args, **kwargs)
                except Exception as exc:
                    if not _refused(exc):
                        raise
                    limits.learn(False)
            bound = signature.bind(model_uri, name, *args, **kwargs)
            bound.apply_defaults()
            return register_from_run(
                model_uri, name, bound.arguments["await_registration_for"], tags=bound.arguments.get("tags")
            )

        return register_model


def _log_to_run(cls: Any, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """mlflow 2's ``log_model``: the model under the run's artifacts, registered from there."""
    from mlflow.models.model import DEFAULT_AWAIT_MAX_SLEEP_SECONDS

    bound = inspect.signature(func).bind(cls, *args, **kwargs)
    given = dict(bound.arguments)
    extra = dict(given.pop("kwargs", {}))
    extra.pop("flavor_name", None)  # mlflow 3 only: the logged model's flavor
    if given.get("model_id"):
        raise _unsupported(
            "Azure ML has no logged models, so log_model(model_id=...) cannot add to one: log the model "
            "without model_id (it is saved under the run's artifacts)"
        )
    dropped = [k for k in ("params", "model_type") if given.get(k)]
    if given.get("tags") and not given.get("registered_model_name"):
        dropped.append("tags")
    if dropped:
        warnings.warn(
            f"log_model's {', '.join(dropped)} describe a logged model, which Azure ML does not have: not stored. "
            "Log them on the run instead (mlflow.log_params / mlflow.set_tags).",
            AzureMLNotice,
            stacklevel=4,
        )
    registered_name = given.get("registered_model_name")
    await_for = given.get("await_registration_for", DEFAULT_AWAIT_MAX_SLEEP_SECONDS)
    info = internals.log_model_v2(cls)(
        given.get("name") or given.get("artifact_path") or "model",
        given["flavor"],
        registered_model_name=None,
        await_registration_for=await_for,
        metadata=given.get("metadata"),
        run_id=given.get("run_id"),
        resources=given.get("resources"),
        auth_policy=given.get("auth_policy"),
        prompts=given.get("prompts"),
        **extra,
    )
    if registered_name is not None:
        version = register_from_run(info.model_uri, registered_name, await_for, tags=given.get("tags"))
        info.registered_model_version = version.version
    return info


def _wrap_prompt_registry(original: Any) -> Any:
    def is_prompt_supported_registry(registry_uri: str | None = None) -> bool:
        import mlflow

        # Azure ML has no prompt registry, and refuses the tag filter mlflow adds for one.
        if is_azureml_uri(registry_uri or mlflow.get_registry_uri()):
            return False
        return bool(original(registry_uri))

    return is_prompt_supported_registry


def _wrap_search_runs(original: Any) -> Any:
    signature = inspect.signature(original)

    def search_runs(client: Any, *args: Any, **kwargs: Any) -> Any:
        if is_azureml_uri(client.tracking_uri):
            bound = signature.bind(client, *args, **kwargs)
            check_search_runs(bound.arguments.get("filter_string"), bound.arguments.get("order_by"))
        return original(client, *args, **kwargs)

    search_runs.__doc__ = original.__doc__
    return search_runs


def _wrap_rename(what: str) -> Callable[[Any], Any]:
    if what == "experiments":
        uri_of: Callable[[Any], str | None] = lambda client: client.tracking_uri  # noqa: E731
        fix = "create an experiment with the new name and log new runs there"
    else:
        uri_of = lambda client: internals.client_registry_uri(client) or client.tracking_uri  # noqa: E731
        fix = "register the model again under the new name (registered models are immutable in Azure ML)"

    def make(original: Any) -> Any:
        def rename(client: Any, *args: Any, **kwargs: Any) -> Any:
            if is_azureml_uri(uri_of(client)):
                raise _unsupported(f"Azure ML does not support renaming {what}: {fix}")
            return original(client, *args, **kwargs)

        rename.__doc__ = original.__doc__
        return rename

    return make


class _LoggedModelsRefused(Exception):
    """Raised inside ``Model.log`` when the workspace refused its first logged-model call."""


def register_from_run(model_uri: str, name: str, await_registration_for: Any, *, tags: Any = None) -> Any:
    """Register a ``runs:/<run_id>/<path>`` model as mlflow 2 did: a version whose source is the run's path.

    Azure ML supports registering from a run's artifacts; mlflow 3's ``register_model`` would look
    for a logged model instead, which Azure refuses.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository
    from mlflow.tracking import MlflowClient
    from mlflow.utils.logging_utils import eprint

    client = MlflowClient()
    try:
        client.create_registered_model(name)
        eprint(f"Successfully registered model '{name}'.")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
        eprint(f"Registered model '{name}' already exists. Creating a new version of this model...")
    run_id, _ = RunsArtifactRepository.parse_runs_uri(model_uri)
    source = RunsArtifactRepository.get_underlying_uri(model_uri)
    version = client.create_model_version(
        name, source, run_id, tags=tags, await_creation_for=await_registration_for or 0
    )
    eprint(f"Created version '{version.version}' of model '{version.name}'.")
    return version


#: The one set of patched attributes in this process (mlflow's own state is process-wide too).
_PATCHES = _Patches()
