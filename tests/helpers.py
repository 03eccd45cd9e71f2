"""Shared test helpers: MLflow state isolation, backend checks, device-code answering, kernels."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
    "AZUREML_CURRENT_CLOUD",
)


def mlflow_state() -> dict[str, Any]:
    """Everything connect may change, for before/after comparisons."""
    import mlflow
    from mlflow.tracking import fluent

    return {
        "tracking_uri": mlflow.get_tracking_uri(),
        "registry_uri": mlflow.get_registry_uri(),
        "experiment_id": fluent._active_experiment_id,
        "env": {k: os.environ.get(k) for k in MLFLOW_ENV},
    }


@contextmanager
def isolated_mlflow() -> Iterator[None]:
    """Undo whatever a test did to mlflow's process-wide state (runs ended, URIs and env reset)."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id)
    env = {k: os.environ.get(k) for k in MLFLOW_ENV}
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        tracking_utils._tracking_uri, registry_utils._registry_uri, fluent._active_experiment_id = saved
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def backend_client(sb: Any, workspace: Any) -> Any:
    """A plain MlflowClient on the real mlflow server behind a sandbox workspace."""
    from mlflow.tracking import MlflowClient

    uri = sb.backend_tracking_uri(workspace)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def backend_runs(sb: Any, workspace: Any, experiment: str | None = None) -> list[Any]:
    """Every run in a workspace's backend (optionally of one experiment, by name)."""
    client = backend_client(sb, workspace)
    experiments = client.search_experiments()
    ids = [e.experiment_id for e in experiments if experiment is None or e.name == experiment]
    return list(client.search_runs(ids)) if ids else []


def answer_device_code(
    sb: Any,
    action: str = "approve",
    user: str | None = None,
    timeout: float = 60,
    *,
    seen: Callable[[], Any] | None = None,
) -> threading.Thread:
    """Approve (or decline) the next device-code sign-in from a background thread, as a person would.

    With ``seen``, the answer waits until ``seen()`` is truthy (the code is on screen), as a person
    reads the code before typing it, and keeps what it read in ``thread.result["seen"]``: a test
    checks the prompt there, which the sign-in that follows may clear within milliseconds.
    """
    result: dict[str, Any] = {}
    started = time.time()

    def run() -> None:
        pending = sb.wait_for_device_code(timeout, newer_than=started)
        result["code"] = pending.user_code
        deadline = time.monotonic() + timeout
        while seen is not None and time.monotonic() < deadline:
            result["seen"] = seen()
            if result["seen"]:
                break
            time.sleep(0.02)
        if action == "approve":
            sb.approve_device_code(pending.user_code, user)
        else:
            sb.decline_device_code(pending.user_code)

    thread = threading.Thread(target=run, daemon=True)
    thread.result = result  # type: ignore[attr-defined]
    thread.start()
    return thread


def write_config(directory: Path, workspace: Any, tenant_id: str | None = None) -> Path:
    """A config.json as the Azure portal downloads it."""
    import json

    config = {
        "subscription_id": workspace.subscription_id,
        "resource_group": workspace.resource_group,
        "workspace_name": workspace.name,
    }
    if tenant_id:
        config["tenant_id"] = tenant_id
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def magic(ip: Any, line: str, cell: str | None = None) -> Any:
    """``%amlflow line`` in ``ip``, or ``%%amlflow line`` over ``cell``."""
    if cell is None:
        return ip.run_line_magic("amlflow", line)
    return ip.run_cell_magic("amlflow", line, cell)


@contextmanager
def extension_shell(sandbox: Any, setenv: Any, *, load: bool = True) -> Iterator[Any]:
    """The in-process IPython shell, its environment pointed at the sandbox and its service principal.

    ``setenv`` is a ``MonkeyPatch.setenv`` (undone by its owner). With ``load``, the extension is
    loaded first. On the way out the shell is disconnected and the extension unloaded; MLflow's
    process-wide state is restored.
    """
    from IPython.core.interactiveshell import InteractiveShell

    for k, v in {**sandbox.env, **sandbox.service_principal}.items():
        setenv(k, v)
    ip = InteractiveShell.instance()
    if load:
        ip.run_line_magic("load_ext", "jupyter_amlflow")
    with isolated_mlflow():
        try:
            yield ip
        finally:
            magics = ip.magics_manager.registry.get("AmlflowMagics")
            if magics is not None and magics.session.connection is not None:
                magics.session.disconnect()
            ip.run_line_magic("unload_ext", "jupyter_amlflow")


@contextmanager
def sp_shell(sandbox: Any, setenv: Any) -> Iterator[Any]:
    """``extension_shell`` signing in with the environment's service principal only (``--auth env``)."""
    with extension_shell(sandbox, setenv) as ip:
        ip.magics_manager.registry["AmlflowMagics"].auth = ["env"]
        yield ip
