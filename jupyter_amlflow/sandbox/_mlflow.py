"""The Azure ML MLflow API over real ``mlflow server`` processes, with run artifacts in blob storage.

What the unmodified azureml-mlflow plugin calls, under the sandbox's HTTPS origin ``B``, with
``WSP`` = ``/subscriptions/S/resourceGroups/R/providers/Microsoft.MachineLearningServices/workspaces/W``:

* ``B/mlflow/v1.0|v2.0{WSP}/api/2.0/mlflow/...`` (endpoint ``mlflow``): forwarded to the workspace's
  backend (``_backends``) in mlflow workspace ``workspace.backend_workspace``, plus Azure's
  deferred ``/api/2.0/preview/mlflow/runs/log-batch-async`` and ``.../get-run-data-status``
  (``_batches``). Artifact
  locations in answers are rewritten from the backend's ``mlflow-artifacts:/workspaces/<w>/...`` to
  the ``azureml://`` forms the plugin parses:

  - run ``<e>/<r>/artifacts/...`` is ``azureml://experiments/<e>/runs/<r>/artifacts/...``;
  - logged model ``<e>/models/<m>/artifacts/...`` is ``azureml://artifacts/LoggedModel/<m>/artifacts/...``;
  - registry upload ``LocalUpload/<c>/...`` is ``azureml://artifacts/LocalUpload/<c>/...``.

* ``B/history/v1.0{WSP}/experiments/<e>/runs/<r>/artifacts[/batch/metadata|/contentinfo]`` (``history``)
  and ``B/artifact/v2.0{WSP}/artifacts/<origin>/<container>[...]`` (``artifact``): artifact
  metadata, answering with SAS URLs of ``_blob`` (endpoint ``blob``). A run's container is the
  backend's own artifact directory for that run, so ``mlflow`` pointed at the backend sees the files.
* ``B/studio/<studio key>/runs/<run id>?wsid=...&tid=...`` (``studio``): a run page, as Azure ML
  Studio links it (``Sandbox.studio_url`` carries the key; ``_access``).

Every MLflow, history and artifact call needs a bearer token of the workspace's tenant whose
principal holds the action (``Microsoft.MachineLearningServices/workspaces/{experiments,jobs,
models/versions}/{read,write,delete}``) over the workspace: 404 for an unknown workspace, 401 for
another tenant's token, 403 ``PERMISSION_DENIED`` naming the action otherwise.

Which MLflow calls are forwarded and which are answered as Azure refuses them is decided by
``_fidelity`` (served / refused / unverified, each with its evidence) on the decoded, normalised
path, which is also the path forwarded; ``Sandbox(mlflow_api="open-source")`` forwards the refused
ones too. The mlflow workspaces API is refused in every mode, on both listeners.

``Sandbox.backend_tracking_uri(workspace)`` is a plain ``http://sandbox:KEY@127.0.0.1:PORT/backend/<workspace id>``
URI on a second listener (endpoint ``backend``, no TLS, loopback only, the sandbox's access key as
the Basic-auth password, see ``_access``): any ``MlflowClient(tracking_uri=...)`` sees exactly what
landed in that workspace, artifacts included. It starts no backend until something is asked of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlencode

from ._backends import Backend, BackendPool, BackendReply, BackendStatus, BackendUnavailable
from ._batches import Batches
from ._blob import BlobStore, safe_relative
from ._fidelity import LOGGED_MODEL_ARTIFACTS, OTLP_TRACES, Entry, classify, decode_path, encode_path, parameters
from ._http import HttpError, Request, Response, Route, SandboxHTTPServer, route
from ._model import ML_PROVIDER, Workspace
from ._studio import Studio

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["MlflowService", "azure_artifact_uri", "backend_artifact_uri", "mlflow_action"]

WSP = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)
ARTIFACT_PAGE_SIZE = 500
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MLFLOW_ARTIFACTS = "mlflow-artifacts:"
# Response fields holding artifact locations, in any mlflow entity.
_URI_FIELDS = frozenset({"artifact_uri", "artifact_location", "source", "storage_location"})
_AZURE_ONLY = {
    ("POST", "2.0/preview/mlflow/runs/log-batch-async"),
    ("GET", "2.0/preview/mlflow/runs/get-run-data-status"),
}
_READ_POSTS = ("search", "get-by-name", "batch-get")
ErrorStyle = Literal["mlflow", "azure"]
# mlflow's workspace admin API, under either listener's prefixes (decoded path, no leading slash).
_WORKSPACE_API = re.compile(r"(?:ajax-)?api/\d+\.\d+/mlflow/workspaces(?:/.*)?", re.IGNORECASE)


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


def _rewrite(value: Any, convert: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {
            k: convert(v) if k in _URI_FIELDS and isinstance(v, str) else _rewrite(v, convert) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite(v, convert) for v in value]
    return value


def mlflow_action(method: str, api: str) -> str:
    """The Azure RBAC action an MLflow REST call needs (``api`` is the path after ``/api/``)."""
    parts = api.strip("/").split("/")
    resource = parts[parts.index("mlflow") + 1] if "mlflow" in parts[:-1] else ""
    last = parts[-1]
    if resource == "experiments":
        kind = "experiments"
    elif resource in ("registered-models", "model-versions"):
        kind = "models/versions"
    else:
        kind = "jobs"
    if method in ("GET", "HEAD") or (method == "POST" and last.startswith(_READ_POSTS)):
        verb = "read"
    elif last == "delete" and kind != "jobs":
        verb = "delete"
    else:
        verb = "write"
    return f"{ML_PROVIDER}/workspaces/{kind}/{verb}"


def _files(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


# -- the service -------------------------------------------------------------------------------
class MlflowService:
    """The MLflow, run-history, artifact, blob and Studio endpoints of one sandbox.

    Args:
        sandbox: The sandbox it belongs to (identity, directory, root, listeners).
        max_backends: At most this many ``mlflow server`` processes run at once.
    """

    def __init__(self, sandbox: Sandbox, *, max_backends: int = 2) -> None:
        self.sb = sandbox
        self.pool = BackendPool(sandbox.root / "backends", max_backends)
        self.blobs = BlobStore(sandbox.directory, sandbox.root / "blobs" / "staging", sandbox.storage_suffix)
        self.studio = Studio(self)
        self.batches = Batches(self)
        self.artifact_page_size = ARTIFACT_PAGE_SIZE
        self.mode = sandbox.mlflow_api
        self._listener: SandboxHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def prelaunch(self) -> None:
        """Spawn the first backend now, without waiting for it."""
        self.pool.backends[0].launch()

    def start(self, *, prestart: bool) -> None:
        """Open the plain backend listener; with ``prestart``, wait for the first backend.

        Raises:
            BackendUnavailable: The first backend did not start.
        """
        self._listener = self.sb.add_listener(self._backend_routes())
        if prestart:
            self.pool.backends[0].ensure_running()

    def stop(self) -> None:
        """Stop every backend process (the sandbox closes the listeners)."""
        self.pool.stop()

    def backend_status(self) -> list[BackendStatus]:
        """What each backend slot is doing."""
        return self.pool.status()

    def backend_tracking_uri(self, workspace: Workspace) -> str:
        """A plain ``http://`` tracking URI showing this workspace's mlflow data.

        The access key rides in the URI's user-info part: ``requests`` sends it as Basic auth, so
        a plain ``MlflowClient`` needs nothing else, and it never appears in a request path or log.
        """
        assert self._listener is not None, "start the sandbox first"
        return f"http://sandbox:{self.sb.access_key}@127.0.0.1:{self._listener.port}/backend/{workspace.workspace_id}"

    def routes(self) -> list[Route]:
        """The HTTPS routes (they go before the identity and Resource Manager ones)."""
        tracking = r"/mlflow/v[12]\.0" + WSP + r"/api/(?P<api>.+)"
        otlp = r"/mlflow/v[12]\.0" + WSP + r"/v1/traces"
        history = (
            r"/history/v1\.0" + WSP + r"/experiments/(?P<exp>[^/]+)/runs/(?P<run>[^/]+)/artifacts"
            r"(?P<op>/batch/metadata|/contentinfo)?"
        )
        artifact = (
            r"/artifact/v2\.0" + WSP + r"/artifacts/(?P<origin>[^/]+)/(?P<container>[^/]+)"
            r"(?P<op>/batch/metadata|/contentinfo)?"
        )
        return [
            route("*", tracking, "mlflow", self.mlflow_api, auth=True),
            route("POST", otlp, "mlflow", self.otlp_traces, auth=True),
            route("GET", history, "history", self.history, auth=True),
            route("POST", history, "history", self.history, auth=True),
            route("GET", artifact, "artifact", self.artifact, auth=True),
            route("POST", artifact, "artifact", self.artifact, auth=True),
            *self.blobs.routes(),
            *self.studio.routes(),
        ]

    def _backend_routes(self) -> list[Route]:
        # Not an Azure endpoint: the plain view of a backend, for checking what landed. It needs
        # the sandbox's access key; anything else on this listener is refused before it is routed
        # (no 404 tells a caller without the key which workspace ids exist).
        return [
            route(
                "*",
                r"/backend/(?P<wsid>[0-9a-f-]{36})(?P<rest>/.*)?",
                "backend",
                self.backend_passthrough,
                fidelity="unverified",
                key=True,
            ),
            route("*", r"/.*", "backend", self._no_route, fidelity="unverified", key=True),
        ]

    def _no_route(self, req: Request) -> Response:
        raise self._error("mlflow", 404, "ENDPOINT_NOT_FOUND", f"The sandbox serves no {req.method} {req.path} here.")

    # -- errors and authorisation --------------------------------------------------------------
    @staticmethod
    def _error(style: ErrorStyle, status: int, code: str, message: str) -> HttpError:
        if style == "mlflow":
            return HttpError(status, {"error_code": code, "message": message})
        return HttpError(status, {"error": {"code": code, "message": message}})

    def _wrong_tenant(self, req: Request, workspace: Workspace) -> HttpError:
        assert req.claims is not None
        issuer, expected = self.sb.authority.issuer(req.claims.tenant_id), self.sb.authority.issuer(workspace.tenant_id)
        return HttpError(
            401,
            {
                "error": {
                    "code": "InvalidAuthenticationTokenTenant",
                    "message": f"The access token is from the wrong issuer '{issuer}'. It must match the tenant "
                    f"'{expected}' associated with this subscription. Please use the authority (URL) "
                    f"'{self.sb.authority_url}/{workspace.tenant_id}' to get the token.",
                }
            },
            {
                "WWW-Authenticate": f'Bearer authorization_uri="{self.sb.authority_url}/{workspace.tenant_id}", '
                'error="invalid_token", error_description="The access token is from the wrong issuer."'
            },
        )

    def _authorize(self, req: Request, action: str, style: ErrorStyle) -> Workspace:
        """The workspace in the path, once the caller's token and role allow ``action`` on it."""
        assert req.claims is not None
        sub, rg, name = req.params["sub"], req.params["rg"], req.params["ws"]
        workspace = self.sb.directory.find_workspace(sub, rg, name)
        if workspace is None:
            raise self._error(
                style,
                404,
                "RESOURCE_DOES_NOT_EXIST" if style == "mlflow" else "ResourceNotFound",
                f"Workspace '{name}' was not found in resource group '{rg}' of subscription '{sub}'.",
            )
        if req.claims.tenant_id != workspace.tenant_id:
            raise self._wrong_tenant(req, workspace)
        if not self.sb.directory.allowed(req.claims.object_id, action, workspace.arm_id):
            raise self._error(
                style,
                403,
                "PERMISSION_DENIED" if style == "mlflow" else "AuthorizationFailed",
                f"The client '{req.identity_name or req.claims.object_id}' with object id '{req.claims.object_id}' "
                f"does not have authorization to perform action '{action}' over scope '{workspace.arm_id}' or "
                "the scope is invalid. If access was recently granted, please refresh your credentials.",
            )
        return workspace

    def _backend(self, workspace: Workspace, style: ErrorStyle) -> Backend:
        try:
            return self.pool.backend_for(workspace)
        except BackendUnavailable as exc:
            raise self._error(
                style, 503, "TEMPORARILY_UNAVAILABLE" if style == "mlflow" else "ServiceUnavailable", str(exc)
            ) from exc

    def _call(
        self, backend: Backend, workspace: Workspace, method: str, path: str, style: ErrorStyle, **kwargs: Any
    ) -> BackendReply:
        try:
            return backend.request(method, path, workspace=workspace.backend_workspace, **kwargs)
        except BackendUnavailable as exc:
            raise self._error(
                style, 503, "TEMPORARILY_UNAVAILABLE" if style == "mlflow" else "ServiceUnavailable", str(exc)
            ) from exc

    @staticmethod
    def _reply(reply: BackendReply, convert: Callable[[str], str] | None = None) -> Response:
        body = reply.body
        if convert is not None and reply.content_type.startswith("application/json") and b"mlflow-artifacts:" in body:
            body = json.dumps(_rewrite(json.loads(body), convert)).encode()
        return Response(reply.status, body, {"Content-Type": reply.content_type})

    # -- MLflow REST -----------------------------------------------------------------------------
    def mlflow_api(self, req: Request) -> Response:
        api = decode_path(req.params["api"])
        if api is None:
            req.fidelity = "unverified"
            raise self._error("mlflow", 404, "ENDPOINT_NOT_FOUND", f"The sandbox serves no {req.method} {req.path}.")
        entry = classify(req.method, api, parameters(req.method, req.query_string, req.body))
        if entry.always:
            # Before authorisation: whoever asks, in whatever mode, this never reaches a backend.
            return self._refuse(req, entry)
        azure_only = (req.method, api) in _AZURE_ONLY
        if not azure_only and not re.match(r"[23]\.0/mlflow/", api):
            req.fidelity = "unverified"
            raise self._error("mlflow", 404, "ENDPOINT_NOT_FOUND", f"The sandbox serves no {req.method} /api/{api}.")
        workspace = self._authorize(req, mlflow_action(req.method, api), "mlflow")
        if entry.verdict == "refused" and self.mode == "azure":
            return self._refuse(req, entry)
        # Refused on Azure but forwarded here (open-source mode): nothing says Azure serves it.
        req.fidelity = "unverified" if entry.verdict == "refused" else entry.verdict
        backend = self._backend(workspace, "mlflow")
        if azure_only:
            batches = self.batches
            handler = batches.log_batch_async if api.endswith("log-batch-async") else batches.run_data_status
            return handler(req, backend, workspace)
        body = req.body
        if req.method == "POST" and api.endswith(("experiments/create", "model-versions/create")):
            body = self._incoming(req, workspace)
        reply = self._call(
            backend,
            workspace,
            req.method,
            "/api/" + encode_path(api),
            "mlflow",
            query=req.query_string,
            body=body,
            content_type=req.header("content-type"),
        )
        return self._reply(reply, lambda uri: azure_artifact_uri(uri, workspace.backend_workspace))

    @staticmethod
    def _refuse(req: Request, entry: Entry) -> Response:
        assert entry.refusal is not None
        req.fidelity = "refused"
        refusal = entry.refusal
        headers = {"Content-Type": refusal.content_type} if refusal.content_type else {}
        return Response(refusal.status, refusal.body, headers)

    def otlp_traces(self, req: Request) -> Response:
        """``POST <workspace>/v1/traces``: mlflow's OTLP span export (refused on Azure, as traces are)."""
        workspace = self._authorize(req, mlflow_action("POST", "2.0/mlflow/traces"), "mlflow")
        if self.mode == "azure":
            return self._refuse(req, OTLP_TRACES)
        req.fidelity = "unverified"
        backend = self._backend(workspace, "mlflow")
        experiment = req.header("x-mlflow-experiment-id")
        reply = self._call(
            backend,
            workspace,
            "POST",
            "/v1/traces",
            "mlflow",
            body=req.body,
            content_type=req.header("content-type"),
            headers={"x-mlflow-experiment-id": experiment} if experiment else None,
        )
        return self._reply(reply)

    def _incoming(self, req: Request, workspace: Workspace) -> bytes:
        payload = req.json()
        if not isinstance(payload, dict):
            return req.body
        # The sandbox decides where artifacts live: a client-chosen location would point blob
        # uploads at an arbitrary directory.
        payload.pop("artifact_location", None)
        source = payload.get("source")
        if isinstance(source, str) and (mapped := backend_artifact_uri(source, workspace.backend_workspace)):
            payload["source"] = mapped
        return json.dumps(payload).encode()

    # -- run history (run artifacts) -------------------------------------------------------------
    def _run(self, backend: Backend, workspace: Workspace, run_id: str, experiment: str) -> dict[str, Any]:
        """The run's info, if it belongs to this workspace and experiment; 404 otherwise."""
        not_found = self._error("azure", 404, "RunNotFound", f"Run {run_id} was not found in experiment {experiment}.")
        if not _ID_RE.fullmatch(run_id):
            raise not_found
        reply = self._call(
            backend, workspace, "GET", "/api/2.0/mlflow/runs/get", "azure", query=urlencode({"run_id": run_id})
        )
        if reply.status != 200:
            raise not_found
        info: dict[str, Any] = reply.json()["run"]["info"]
        if experiment != info["experiment_id"]:
            # Azure ML addresses the experiment by name; the sandbox's URIs use the id. Accept both.
            exp = self._call(
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
        if backend is None or not _ID_RE.fullmatch(run_id):
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

    @staticmethod
    def account(workspace: Workspace) -> str:
        """The workspace's storage account name (as its ARM record names it)."""
        return f"sa{workspace.workspace_id.replace('-', '')[:20]}"

    def history(self, req: Request) -> Response:
        op = req.params.get("op") or ""
        if (req.method, op) not in (("POST", "/batch/metadata"), ("GET", ""), ("GET", "/contentinfo")):
            raise self._error(
                "azure", 404, "NotFound", f"The sandbox serves no {req.method} run-history {op or 'list'}."
            )
        action = f"{ML_PROVIDER}/workspaces/jobs/{'write' if req.method == 'POST' else 'read'}"
        workspace = self._authorize(req, action, "azure")
        run_id, experiment = unquote(req.params["run"]), unquote(req.params["exp"])
        backend = self.pool.placed(workspace)
        if backend is None:  # no MLflow call ever reached this workspace, so the run cannot exist
            raise self._error("azure", 404, "RunNotFound", f"Run {run_id} was not found in experiment {experiment}.")
        backend = self._backend(workspace, "azure")
        info = self._run(backend, workspace, run_id, experiment)
        directory = self.local_directory(backend, info["artifact_uri"], workspace)
        if directory is None:
            raise self._error(
                "azure", 409, "UnsupportedArtifactLocation", f"Run {run_id} keeps its artifacts outside the sandbox."
            )
        container = f"dcid.{run_id}"
        self.blobs.mount(self.account(workspace), container, directory)
        writable = req.method == "POST"  # the action authorised above: jobs/write
        return self._artifacts_op(req, op, workspace, "ExperimentRun", container, directory, writable=writable)

    # -- artifact v2 (registry uploads, logged models) ------------------------------------------
    def artifact(self, req: Request) -> Response:
        op = req.params.get("op") or ""
        origin, container = req.params["origin"], unquote(req.params["container"])
        if (req.method, op) not in (("POST", "/batch/metadata"), ("GET", ""), ("GET", "/contentinfo")):
            raise self._error("azure", 404, "NotFound", f"The sandbox serves no {req.method} artifact {op or 'list'}.")
        action = f"{ML_PROVIDER}/workspaces/jobs/{'write' if req.method == 'POST' else 'read'}"
        workspace = self._authorize(req, action, "azure")
        missing = self._error("azure", 404, "ContainerNotFound", f"No artifact container {origin}/{container}.")
        if origin not in ("LocalUpload", "LoggedModel") or not _ID_RE.fullmatch(container):
            raise missing
        if origin == "LocalUpload":
            backend = self.pool.place(workspace)  # its directory only: no server needed to upload
            directory = backend.artifacts_dir / "workspaces" / workspace.backend_workspace / "LocalUpload" / container
        else:
            # Logged models do not exist on Azure ML, so neither do their artifact containers.
            if self.mode == "azure":
                return self._refuse(req, LOGGED_MODEL_ARTIFACTS)
            req.fidelity = "unverified"
            if self.pool.placed(workspace) is None:
                raise missing
            backend = self._backend(workspace, "azure")
            reply = self._call(backend, workspace, "GET", f"/api/2.0/mlflow/logged-models/{container}", "azure")
            if reply.status != 200:
                raise missing
            location = self.local_directory(backend, reply.json()["model"]["info"]["artifact_uri"], workspace)
            if location is None:
                raise missing
            directory = location.parent  # the container holds "artifacts/...", as the URI says
        self.blobs.mount(self.account(workspace), container, directory)
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
        account = self.account(workspace)
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
                clean = safe_relative(path) if isinstance(path, str) else None
                if clean is None:
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
                raise self._error("azure", 404, "NotFound", f"No artifact at path {path!r} in container {container}.")
            info = {k: v for k, v in entry(path).items() if k != "artifactId"}
            return Response.json(
                {"contentUri": self.blobs.url(req.base_url, account, container, clean, permissions), **info}
            )
        files = _files(directory)
        try:
            start = max(0, int(req.query.get("continuationToken") or 0))
        except ValueError as exc:
            raise self._error("azure", 400, "InvalidContinuationToken", "The continuation token is not valid.") from exc
        size = max(1, self.artifact_page_size)
        body: dict[str, Any] = {"value": [entry(p) for p in files[start : start + size]]}
        if start + size < len(files):
            token = str(start + size)
            body["continuationToken"] = token
            body["nextLink"] = f"{req.base_url}{req.path}?{urlencode({'continuationToken': token})}"
        return Response.json(body)

    # -- the plain listener --------------------------------------------------------------------
    def workspace_by_id(self, workspace_id: str) -> Workspace | None:
        """A workspace by its workspace id (case-insensitive)."""
        wanted = workspace_id.lower()
        return next((w for w in self.sb.workspaces if w.backend_workspace == wanted), None)

    def backend_passthrough(self, req: Request) -> Response:
        """``/backend/<workspace id>/...``: the backend itself, in that workspace, unchanged."""
        workspace = self.workspace_by_id(req.params["wsid"])
        if workspace is None:
            raise self._error("mlflow", 404, "RESOURCE_DOES_NOT_EXIST", f"No workspace with id {req.params['wsid']}.")
        # Decided on the decoded, normalised path, which is then the one forwarded: mlflow decodes
        # what it receives, so a check on the raw path is bypassed by percent-encoding.
        rest = decode_path(req.params.get("rest") or "/")
        if rest is None or _WORKSPACE_API.fullmatch(rest):
            # Creating, listing or changing mlflow workspaces would reach past the one this URI names.
            raise self._error("mlflow", 404, "ENDPOINT_NOT_FOUND", "The workspace API is not served here.")
        backend = self._backend(workspace, "mlflow")
        reply = self._call(
            backend,
            workspace,
            req.method,
            "/" + encode_path(rest),
            "mlflow",
            query=req.query_string,
            body=req.body,
            content_type=req.header("content-type"),
        )
        headers = {"Content-Type": reply.content_type}
        if "Content-Disposition" in reply.headers:
            headers["Content-Disposition"] = reply.headers["Content-Disposition"]
        return Response(reply.status, reply.body, headers)

    def iter_run_artifacts(self, workspace: Workspace, run_id: str) -> Iterator[str]:
        """The artifact paths of a run (none when the run or its backend is unknown)."""
        directory = self.run_directory(workspace, run_id)
        yield from _files(directory) if directory is not None else []
