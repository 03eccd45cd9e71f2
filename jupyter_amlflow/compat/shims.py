"""Shims that make a plugin older than the mlflow it runs with work: applied at connect, undone after.

Why shims at all. Platforms (Databricks, Synapse/Fabric, Azure ML images) ship their own mlflow,
often newer than any azureml-mlflow release allows: 1.62.0.post6 declares ``mlflow-skinny<=3.15.0``,
every release back to 1.60.0.post1 caps it lower, and installing the plugin the ordinary way
replaces the platform's mlflow-skinny with an older one. azureml-mlflow 1.60.0 declares no cap, so
pip, told to keep the installed mlflow (README, "Databricks and Synapse"), picks it; its code
differs from 1.62.0.post6 for mlflow 3 in one place only, the artifact repository builder, which
does not take the ``tracking_uri`` and ``registry_uri`` that mlflow >= 3.5 passes. The shim below
supplies exactly that difference while connected.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .internals import artifact_builders

ARTIFACT_SHIM = "azureml artifact repository builder given tracking_uri and registry_uri"


def active_shims() -> list[str]:
    """The shims in effect in this process now (mlflow imported): applied at connect, gone after disconnect."""
    table = artifact_builders()
    builder = table.get("azureml") if table is not None else None
    return [ARTIFACT_SHIM] if getattr(builder, "_amlflow_shim", False) else []


@dataclass
class AppliedShims:
    """Shims applied at one connect, with what undoes each (disconnect, or a failed connect)."""

    names: list[str] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)

    def undo_all(self) -> None:
        """Undo in reverse order; safe to call twice."""
        while self.undo:
            self.undo.pop()()
        self.names.clear()


def apply_shims() -> AppliedShims:
    """Apply every shim this mlflow and plugin need (mlflow imported); none is applied twice."""
    applied = AppliedShims()
    undo = _shim_artifact_builder()
    if undo is not None:
        applied.names.append(ARTIFACT_SHIM)
        applied.undo.append(undo)
    return applied


def _plugin_builder() -> Callable[..., Any]:
    from azureml.mlflow import entry_point_loaders

    builder: Callable[..., Any] = entry_point_loaders.azureml_artifacts_builder
    return builder


def artifact_arguments_refused() -> list[str]:
    """The keyword arguments mlflow passes to artifact builders that the plugin's builder refuses."""
    from mlflow.store.artifact.artifact_repository_registry import ArtifactRepositoryRegistry

    passes = set(inspect.signature(ArtifactRepositoryRegistry.get_artifact_repository).parameters)
    accepts = inspect.signature(_plugin_builder()).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepts.values()):
        return []
    return sorted({"tracking_uri", "registry_uri"} & passes - set(accepts))


def _shim_artifact_builder() -> Callable[[], None] | None:
    """Wrap the plugin's ``azureml`` artifact builder so it takes what mlflow passes; returns the undo.

    azureml-mlflow 1.62.0.post6 accepts ``tracking_uri`` and ``registry_uri`` and hands them to
    mlflow's ``ArtifactRepository.__init__``, which stores them as attributes; 1.60.0's builder
    accepts neither (``TypeError: azureml_artifacts_builder() got an unexpected keyword argument
    'tracking_uri'``). The wrapper calls the old builder without them and sets the attributes
    the newer plugin would have set.
    """
    refused = artifact_arguments_refused()
    table = artifact_builders()
    if not refused or table is None:
        return None
    original = table.get("azureml")
    if original is None or getattr(original, "_amlflow_shim", False):
        return None

    def azureml_artifacts_builder(artifact_uri: str | None = None, **kwargs: Any) -> Any:
        repository = original(artifact_uri, **{k: v for k, v in kwargs.items() if k not in refused})
        for name in refused:
            if getattr(repository, name, None) is None:
                setattr(repository, name, kwargs.get(name))
        return repository

    azureml_artifacts_builder._amlflow_shim = True  # type: ignore[attr-defined]
    table["azureml"] = azureml_artifacts_builder

    def undo() -> None:
        if table.get("azureml") is azureml_artifacts_builder:
            table["azureml"] = original

    return undo
