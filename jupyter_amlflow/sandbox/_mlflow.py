"""The Azure ML MLflow API over real ``mlflow server`` processes: the MLflow front of one sandbox.

What the unmodified azureml-mlflow plugin calls, under the sandbox's HTTPS origin ``B``, with
``WSP`` = ``/subscriptions/S/resourceGroups/R/providers/Microsoft.MachineLearningServices/workspaces/W``:

* ``B/mlflow/v1.0|v2.0{WSP}/api/2.0/mlflow/...`` (endpoint ``mlflow``): forwarded to the workspace's
  backend (``_backends``) in mlflow workspace ``workspace.backend_workspace``, plus Azure's
  deferred ``/api/2.0/preview/mlflow/runs/log-batch-async`` and ``.../get-run-data-status``
  (``_batches``). Artifact locations in answers are rewritten to the ``azureml://`` forms the
  plugin parses (``_artifacts``).
* ``B/history/v1.0{WSP}/...`` and ``B/artifact/v2.0{WSP}/...``: artifact metadata with SAS URLs of
  ``_blob`` (``_artifacts``).
* ``B/studio/<studio key>/runs/<run id>?wsid=...&tid=...`` (``studio``): a run page, as Azure ML
  Studio links it (``_studio``; ``Sandbox.studio_url`` carries the key, ``_access``).

Every MLflow, history and artifact call is checked by ``_gateway``: the workspace's tenant, the
caller's role, the error shapes. Which MLflow calls are forwarded and which are answered as Azure
refuses them is decided by ``fidelity`` (served / refused / unverified, each with its evidence) on
the decoded, normalised path, which is also the path forwarded; ``Sandbox(mlflow_api="open-source")``
forwards the refused ones too. The mlflow workspaces API is refused in every mode, on both listeners.

``Sandbox.backend_tracking_uri(workspace)`` is a plain ``http://sandbox:KEY@127.0.0.1:PORT/backend/<workspace id>``
URI on a second listener (endpoint ``backend``, no TLS, loopback only, the sandbox's access key as
the Basic-auth password, see ``_access``): any ``MlflowClient(tracking_uri=...)`` sees exactly what
landed in that workspace, artifacts included. It starts no backend until something is asked of it.
"""

from __future__ import annotations

import functools
import json
import re

from ._artifacts import Artifacts, azure_artifact_uri, backend_artifact_uri, rewrite_locations
from ._backends import BackendPool, BackendReply, BackendStatus
from ._batches import Batches
from ._blob import BlobStore
from ._gateway import WSP, Gateway, error, refuse, relay
from ._host import Host
from ._http import Request, Response, Route, SandboxHTTPServer, route
from ._model import Workspace, mlflow_action
from ._studio import Studio
from .fidelity import OTLP_TRACES, classify, decode_path, encode_path, parameters

__all__ = ["MlflowService"]

_AZURE_ONLY = {
    ("POST", "2.0/preview/mlflow/runs/log-batch-async"),
    ("GET", "2.0/preview/mlflow/runs/get-run-data-status"),
}
# mlflow's workspace admin API, under either listener's prefixes (decoded path, no leading slash).
_WORKSPACE_API = re.compile(r"(?:ajax-)?api/\d+\.\d+/mlflow/workspaces(?:/.*)?", re.IGNORECASE)


class MlflowService:
    """The MLflow, run-history, artifact, blob and Studio endpoints of one sandbox.

    Args:
        sandbox: The sandbox it belongs to (identity, directory, root, listeners).
        max_backends: At most this many ``mlflow server`` processes run at once.
    """

    def __init__(self, sandbox: Host, *, max_backends: int = 2) -> None:
        self.sb = sandbox
        self.pool = BackendPool(sandbox.root / "backends", max_backends)
        self.blobs = BlobStore(sandbox.directory, sandbox.root / "blobs" / "staging", sandbox.storage_suffix)
        self.mode = sandbox.mlflow_api
        self.gateway = Gateway(sandbox, self.pool)
        self.artifacts = Artifacts(self.gateway, self.pool, self.blobs, self.mode)
        self.studio = Studio(sandbox, self.pool, self.artifacts)
        self.batches = Batches(sandbox, self.gateway)
        self._listener: SandboxHTTPServer | None = None

    @property
    def artifact_page_size(self) -> int:
        """Entries per page of an artifact listing (``_artifacts.ARTIFACT_PAGE_SIZE``; tests lower it)."""
        return self.artifacts.page_size

    @artifact_page_size.setter
    def artifact_page_size(self, size: int) -> None:
        self.artifacts.page_size = size

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
        """Stop the deferred batch writer and every backend process (the sandbox closes the listeners)."""
        self.batches.stop()
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
        return [
            route("*", tracking, "mlflow", self.mlflow_api, auth=True),
            route("POST", otlp, "mlflow", self.otlp_traces, auth=True),
            *self.artifacts.routes(),
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
        raise error("mlflow", 404, "ENDPOINT_NOT_FOUND", f"The sandbox serves no {req.method} {req.path} here.")

    # -- MLflow REST -----------------------------------------------------------------------------
    def mlflow_api(self, req: Request) -> Response:
        api = decode_path(req.params["api"])
        if api is None:
            req.fidelity = "unverified"
            raise error("mlflow", 404, "ENDPOINT_NOT_FOUND", f"The sandbox serves no {req.method} {req.path}.")
        entry = classify(req.method, api, parameters(req.method, req.query_string, req.body))
        if entry.always:
            # Before authorisation: whoever asks, in whatever mode, this never reaches a backend.
            return refuse(req, entry)
        azure_only = (req.method, api) in _AZURE_ONLY
        if not azure_only and not re.match(r"[23]\.0/mlflow/", api):
            req.fidelity = "unverified"
            raise error("mlflow", 404, "ENDPOINT_NOT_FOUND", f"The sandbox serves no {req.method} /api/{api}.")
        workspace = self.gateway.authorize(req, mlflow_action(req.method, api), "mlflow")
        if entry.verdict == "refused" and self.mode == "azure":
            return refuse(req, entry)
        # Refused on Azure but forwarded here (open-source mode): nothing says Azure serves it.
        req.fidelity = "unverified" if entry.verdict == "refused" else entry.verdict
        backend = self.gateway.backend(workspace, "mlflow")
        if azure_only:
            batches = self.batches
            handler = batches.log_batch_async if api.endswith("log-batch-async") else batches.run_data_status
            return handler(req, backend, workspace)
        body = req.body
        if req.method == "POST" and api.endswith(("experiments/create", "model-versions/create")):
            body = self._incoming(req, workspace)
        reply = self.gateway.call(
            backend,
            workspace,
            req.method,
            "/api/" + encode_path(api),
            "mlflow",
            query=req.query_string,
            body=body,
            content_type=req.header("content-type"),
        )
        return _azure_locations(reply, workspace)

    def otlp_traces(self, req: Request) -> Response:
        """``POST <workspace>/v1/traces``: mlflow's OTLP span export (refused on Azure, as traces are)."""
        workspace = self.gateway.authorize(req, mlflow_action("POST", "2.0/mlflow/traces"), "mlflow")
        if self.mode == "azure":
            return refuse(req, OTLP_TRACES)
        req.fidelity = "unverified"
        backend = self.gateway.backend(workspace, "mlflow")
        experiment = req.header("x-mlflow-experiment-id")
        reply = self.gateway.call(
            backend,
            workspace,
            "POST",
            "/v1/traces",
            "mlflow",
            body=req.body,
            content_type=req.header("content-type"),
            headers={"x-mlflow-experiment-id": experiment} if experiment else None,
        )
        return relay(reply)

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

    # -- the plain listener --------------------------------------------------------------------
    def workspace_by_id(self, workspace_id: str) -> Workspace | None:
        """A workspace by its workspace id (case-insensitive)."""
        wanted = workspace_id.lower()
        return next((w for w in self.sb.workspaces if w.backend_workspace == wanted), None)

    def backend_passthrough(self, req: Request) -> Response:
        """``/backend/<workspace id>/...``: the backend itself, in that workspace, unchanged."""
        workspace = self.workspace_by_id(req.params["wsid"])
        if workspace is None:
            raise error("mlflow", 404, "RESOURCE_DOES_NOT_EXIST", f"No workspace with id {req.params['wsid']}.")
        # Decided on the decoded, normalised path, which is then the one forwarded: mlflow decodes
        # what it receives, so a check on the raw path is bypassed by percent-encoding.
        rest = decode_path(req.params.get("rest") or "/")
        if rest is None or _WORKSPACE_API.fullmatch(rest):
            # Creating, listing or changing mlflow workspaces would reach past the one this URI names.
            raise error("mlflow", 404, "ENDPOINT_NOT_FOUND", "The workspace API is not served here.")
        backend = self.gateway.backend(workspace, "mlflow")
        reply = self.gateway.call(
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

    def used(self, workspace: Workspace) -> bool:
        """Whether any MLflow call has reached this workspace (it has a backend placed)."""
        return self.pool.placed(workspace) is not None


def _azure_locations(reply: BackendReply, workspace: Workspace) -> Response:
    """A backend's answer with its artifact locations in the ``azureml://`` forms."""
    body = reply.body
    if reply.content_type.startswith("application/json") and b"mlflow-artifacts:" in body:
        convert = functools.partial(azure_artifact_uri, workspace=workspace.backend_workspace)
        body = json.dumps(rewrite_locations(json.loads(body), convert)).encode()
    return Response(reply.status, body, {"Content-Type": reply.content_type})
