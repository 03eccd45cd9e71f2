"""Run artifacts as Azure ML serves them: ``azureml://`` locations, run history, artifact v2, SAS URLs.

Artifact locations in the backends' answers are rewritten from ``mlflow-artifacts:/workspaces/<w>/...``
to the ``azureml://`` forms the azureml-mlflow plugin parses (``azure_artifact_uri``), and back on
the way in (``backend_artifact_uri``):

- run ``<e>/<r>/artifacts/...`` is ``azureml://experiments/<e>/runs/<r>/artifacts/...``;
- logged model ``<e>/models/<m>/artifacts/...`` is ``azureml://artifacts/LoggedModel/<m>/artifacts/...``;
- registry upload ``LocalUpload/<c>/...`` is ``azureml://artifacts/LocalUpload/<c>/...``.

The plugin then reads and writes the files through two Azure APIs, with ``WSP`` the workspace's
ARM path (``_gateway``):

* ``B/history/v1.0{WSP}/experiments/<e>/runs/<r>/artifacts[/batch/metadata|/contentinfo]``
  (endpoint ``history``): a run's artifacts;
* ``B/artifact/v2.0{WSP}/artifacts/<origin>/<container>[...]`` (``artifact``): registry uploads
  (``LocalUpload``) and logged models (``LoggedModel``, refused as Azure refuses logged models).

Both answer with SAS URLs of ``_blob`` (endpoint ``blob``). A run's container is the backend's own
artifact directory for that run, so ``mlflow`` pointed at the backend sees the files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from ._backends import Backend, BackendPool, BackendUnavailable
from ._blob import BlobStore, safe_relative
from ._gateway import WSP, Gateway, error, refuse
from ._http import Request, Response, Route, route
from ._model import ML_PROVIDER, Workspace
from .fidelity import LOGGED_MODEL_ARTIFACTS

__all__ = ["ARTIFACT_PAGE_SIZE", "Artifacts", "azure_artifact_uri", "backend_artifact_uri", "rewrite_locations"]

ARTIFACT_PAGE_SIZE = 500
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MLFLOW_ARTIFACTS = "mlflow-artifacts:"
# Response fields holding artifact locations, in any mlflow entity.
_URI_FIELDS = frozenset({"artifact_uri", "artifact_location", "source", "storage_location"})


# -- artifact locations ------------------------------------------------------------------------
def _workspace_relative(uri: str, workspace: str) -> str | None:
    """The path of a backend ``mlflow-artifacts:`` URI below ``workspaces/<workspace>/``."""
    if not uri.startswith(_MLFLOW_ARTIFACTS):
        return None
    path = uri[len(_MLFLOW_ARTIFACTS) :].lstrip("/")
    prefix = f"workspaces/{workspace}"
    if path == prefix:
        return ""
    if not path.startswith(prefix + "/"):
        return None
    return path[len(prefix) + 1 :]


def azure_artifact_uri(uri: str, workspace: str) -> str:
    """The ``azureml://`` form of a backend artifact location (other values unchanged)."""
    rel = _workspace_relative(uri, workspace)
    if not rel:
        return uri
    parts = rel.split("/")
    if len(parts) == 1:
        return f"azureml://experiments/{parts[0]}"
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        return "azureml://artifacts/LoggedModel/" + "/".join(parts[2:])
    if len(parts) >= 3 and parts[2] == "artifacts":
        return f"azureml://experiments/{parts[0]}/runs/{parts[1]}/" + "/".join(parts[2:])
    if len(parts) >= 3 and parts[0] == "LocalUpload":
        return "azureml://artifacts/" + rel
    return uri


def backend_artifact_uri(uri: str, workspace: str) -> str | None:
    """The backend location of a run or upload ``azureml://`` URI; None for any other value."""
    run = re.fullmatch(r"azureml://experiments/([^/]+)/runs/([^/]+)/(artifacts(?:/.*)?)", uri)
    if run:
        rest = safe_relative("/".join(run.groups()))
        return f"{_MLFLOW_ARTIFACTS}/workspaces/{workspace}/{rest}" if rest else None
    upload = re.fullmatch(r"azureml://artifacts/(LocalUpload/.+)", uri)
    if upload:
        rest = safe_relative(upload.group(1))
        return f"{_MLFLOW_ARTIFACTS}/workspaces/{workspace}/{rest}" if rest else None
    return None


def rewrite_locations(value: Any, convert: Callable[[str], str]) -> Any:
    """A parsed mlflow answer with ``convert`` applied to every artifact location in it."""
    if isinstance(value, dict):
        return {
            k: convert(v) if k in _URI_FIELDS and isinstance(v, str) else rewrite_locations(v, convert)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [rewrite_locations(v, convert) for v in value]
    return value


def _files(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def _jobs_action(req: Request) -> str:
    return f"{ML_PROVIDER}/workspaces/jobs/{'write' if req.method == 'POST' else 'read'}"


# -- the endpoints -----------------------------------------------------------------------------
class Artifacts:
    """The ``history`` and ``artifact`` endpoints of one sandbox, and where each run's files are.

    Args:
        gateway: The checks and backend calls of the workspace endpoints.
        pool: The backends the workspaces are placed on.
        blobs: The blob store whose SAS URLs the answers carry.
        mode: ``Sandbox.mlflow_api``: ``"azure"`` refuses logged models' containers.
    """

    def __init__(self, gateway: Gateway, pool: BackendPool, blobs: BlobStore, mode: str) -> None:
        self.gateway = gateway
        self.pool = pool
        self.blobs = blobs
        self.mode = mode
        self.page_size = ARTIFACT_PAGE_SIZE

    def routes(self) -> list[Route]:
        """The run-history and artifact v2 routes."""
        history = (
            r"/history/v1\.0" + WSP + r"/experiments/(?P<exp>[^/]+)/runs/(?P<run>[^/]+)/artifacts"
            r"(?P<op>/batch/metadata|/contentinfo)?"
        )
        artifact = (
            r"/artifact/v2\.0" + WSP + r"/artifacts/(?P<origin>[^/]+)/(?P<container>[^/]+)"
            r"(?P<op>/batch/metadata|/contentinfo)?"
        )
        return [
            route("GET", history, "history", self.history, auth=True),
            route("POST", history, "history", self.history, auth=True),
            route("GET", artifact, "artifact", self.artifact, auth=True),
            route("POST", artifact, "artifact", self.artifact, auth=True),
        ]

    # -- where the files are ----------------------------------------------------------------------
    def _run(self, backend: Backend, workspace: Workspace, run_id: str, experiment: str) -> dict[str, Any]:
        """The run's info, if it belongs to this workspace and experiment; 404 otherwise."""
        not_found = error("azure", 404, "RunNotFound", f"Run {run_id} was not found in experiment {experiment}.")
        if not ID_RE.fullmatch(run_id):
            raise not_found
        reply = self.gateway.call(
            backend, workspace, "GET", "/api/2.0/mlflow/runs/get", "azure", query=urlencode({"run_id": run_id})
        )
        if reply.status != 200:
            raise not_found
        info: dict[str, Any] = reply.json()["run"]["info"]
        if experiment != info["experiment_id"]:
            # Azure ML addresses the experiment by name; the sandbox's URIs use the id. Accept both.
            exp = self.gateway.call(
                backend,
                workspace,
                "GET",
                "/api/2.0/mlflow/experiments/get",
                "azure",
                query=urlencode({"experiment_id": info["experiment_id"]}),
            )
            if exp.status != 200 or exp.json()["experiment"]["name"] != experiment:
                raise not_found
        return info

    def local_directory(self, backend: Backend, uri: str, workspace: Workspace) -> Path | None:
        """Where a backend ``mlflow-artifacts:`` location of this workspace is on disk."""
        rel = _workspace_relative(uri, workspace.backend_workspace)
        if rel is None:
            return None
        base = backend.artifacts_dir / "workspaces" / workspace.backend_workspace
        if not rel:
            return base
        clean = safe_relative(rel)
        return base / clean if clean else None

    def run_directory(self, workspace: Workspace, run_id: str) -> Path | None:
        """The run's artifact directory, if the workspace has a backend and the run is in it."""
        backend = self.pool.placed(workspace)
        if backend is None or not ID_RE.fullmatch(run_id):
            return None
        try:
            reply = backend.request(
                "GET",
                "/api/2.0/mlflow/runs/get",
                workspace=workspace.backend_workspace,
                query=urlencode({"run_id": run_id}),
            )
        except BackendUnavailable:
            return None
        if reply.status != 200:
            return None
        return self.local_directory(backend, reply.json()["run"]["info"]["artifact_uri"], workspace)

    def iter_run_artifacts(self, workspace: Workspace, run_id: str) -> Iterator[str]:
        """The artifact paths of a run (none when the run or its backend is unknown)."""
        directory = self.run_directory(workspace, run_id)
        yield from _files(directory) if directory is not None else []

    # -- run history (run artifacts) -------------------------------------------------------------
    def history(self, req: Request) -> Response:
        op = req.params.get("op") or ""
        if (req.method, op) not in (("POST", "/batch/metadata"), ("GET", ""), ("GET", "/contentinfo")):
            raise error("azure", 404, "NotFound", f"The sandbox serves no {req.method} run-history {op or 'list'}.")
        workspace = self.gateway.authorize(req, _jobs_action(req), "azure")
        run_id, experiment = unquote(req.params["run"]), unquote(req.params["exp"])
        backend = self.pool.placed(workspace)
        if backend is None:  # no MLflow call ever reached this workspace, so the run cannot exist
            raise error("azure", 404, "RunNotFound", f"Run {run_id} was not found in experiment {experiment}.")
        backend = self.gateway.backend(workspace, "azure")
        info = self._run(backend, workspace, run_id, experiment)
        directory = self.local_directory(backend, info["artifact_uri"], workspace)
        if directory is None:
            raise error(
                "azure", 409, "UnsupportedArtifactLocation", f"Run {run_id} keeps its artifacts outside the sandbox."
            )
        container = f"dcid.{run_id}"
        self.blobs.mount(workspace.storage_account, container, directory)
        writable = req.method == "POST"  # the action authorised above: jobs/write
        return self._artifacts_op(req, op, workspace, "ExperimentRun", container, directory, writable=writable)

    # -- artifact v2 (registry uploads, logged models) ------------------------------------------
    def artifact(self, req: Request) -> Response:
        op = req.params.get("op") or ""
        origin, container = req.params["origin"], unquote(req.params["container"])
        if (req.method, op) not in (("POST", "/batch/metadata"), ("GET", ""), ("GET", "/contentinfo")):
            raise error("azure", 404, "NotFound", f"The sandbox serves no {req.method} artifact {op or 'list'}.")
        workspace = self.gateway.authorize(req, _jobs_action(req), "azure")
        missing = error("azure", 404, "ContainerNotFound", f"No artifact container {origin}/{container}.")
        if origin not in ("LocalUpload", "LoggedModel") or not ID_RE.fullmatch(container):
            raise missing
        if origin == "LocalUpload":
            backend = self.pool.place(workspace)  # its directory only: no server needed to upload
            directory = backend.artifacts_dir / "workspaces" / workspace.backend_workspace / "LocalUpload" / container
        else:
            # Logged models do not exist on Azure ML, so neither do their artifact containers.
            if self.mode == "azure":
                return refuse(req, LOGGED_MODEL_ARTIFACTS)
            req.fidelity = "unverified"
            if self.pool.placed(workspace) is None:
                raise missing
            backend = self.gateway.backend(workspace, "azure")
            reply = self.gateway.call(backend, workspace, "GET", f"/api/2.0/mlflow/logged-models/{container}", "azure")
            if reply.status != 200:
                raise missing
            location = self.local_directory(backend, reply.json()["model"]["info"]["artifact_uri"], workspace)
            if location is None:
                raise missing
            directory = location.parent  # the container holds "artifacts/...", as the URI says
        self.blobs.mount(workspace.storage_account, container, directory)
        return self._artifacts_op(req, op, workspace, origin, container, directory, writable=req.method == "POST")

    def _artifacts_op(
        self,
        req: Request,
        op: str,
        workspace: Workspace,
        origin: str,
        container: str,
        directory: Path,
        *,
        writable: bool,
    ) -> Response:
        """Answer an artifact call; ``writable`` when the caller was authorised for the write action.

        A SAS carries no more than the caller was allowed: ``rcw`` (read, create, write) after a
        write action, ``r`` otherwise. The plugin downloads with ``contentinfo`` and then a blob GET
        (``azureml/mlflow/_client/artifact/run_artifact_client.py``, ``download_artifact``) and uploads
        through ``batch/metadata`` (``_create_empty_artifacts``), so neither loses anything it uses.
        """
        account = workspace.storage_account
        permissions = "rcw" if writable else "r"

        def entry(path: str) -> dict[str, str]:
            return {
                "artifactId": f"{origin}/{container}/{path}",
                "origin": origin,
                "container": container,
                "path": path,
            }

        if op == "/batch/metadata":
            payload = req.json()
            paths = [p.get("path") for p in payload.get("paths", []) if isinstance(p, dict)]
            out: dict[str, dict[str, Any]] = {"artifacts": {}, "artifactContentInformation": {}, "errors": {}}
            for path in paths:
                if not isinstance(path, str) or (clean := safe_relative(path)) is None:
                    out["errors"][str(path)] = {
                        "error": {"code": "InvalidPath", "message": f"Invalid artifact path {path!r}."}
                    }
                    continue
                out["artifacts"][path] = entry(path)
                out["artifactContentInformation"][path] = {
                    "contentUri": self.blobs.url(req.base_url, account, container, clean, permissions),
                    **{k: v for k, v in entry(path).items() if k != "artifactId"},
                }
            return Response.json(out)
        if op == "/contentinfo":
            path = req.query.get("path", "")
            clean = safe_relative(path)
            if clean is None or not (directory / clean).is_file():
                raise error("azure", 404, "NotFound", f"No artifact at path {path!r} in container {container}.")
            info = {k: v for k, v in entry(path).items() if k != "artifactId"}
            return Response.json(
                {"contentUri": self.blobs.url(req.base_url, account, container, clean, permissions), **info}
            )
        files = _files(directory)
        try:
            start = max(0, int(req.query.get("continuationToken") or 0))
        except ValueError as exc:
            raise error("azure", 400, "InvalidContinuationToken", "The continuation token is not valid.") from exc
        size = max(1, self.page_size)
        body: dict[str, Any] = {"value": [entry(p) for p in files[start : start + size]]}
        if start + size < len(files):
            token = str(start + size)
            body["continuationToken"] = token
            body["nextLink"] = f"{req.base_url}{req.path}?{urlencode({'continuationToken': token})}"
        return Response.json(body)
