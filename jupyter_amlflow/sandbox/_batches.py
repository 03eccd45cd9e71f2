"""Azure's deferred ``log-batch-async``: accepted at once, its metrics written a moment later.

``POST /api/2.0/preview/mlflow/runs/log-batch-async`` (Azure only) is *deferred*, as the plugin's
own code shows Azure's to be (azureml-mlflow 1.62, ``_store/tracking/store.py``,
``AzureMLRestStore.log_batch_async``): the answer carries a ``batch_tracking_id``, and the client
polls ``GET .../get-run-data-status?run_id=&batch_tracking_id=`` (every 5 s, for up to 60 s) until
``is_complete``. The same code says "params and tags are persisted in sync fashion always" and
sends no poll when the id is empty, which it is when there are no metrics. So here:

* params and tags are written before the answer (their errors come back at once);
* metrics are written ``Sandbox.async_batch_delay`` seconds later (default 0.5 s; **Azure's delay
  is not public, assumed**), in the order accepted, and ``get-run-data-status`` says
  ``is_complete: false`` until then;
* a batch without metrics gets an empty id (no ``batch_tracking_id`` field);
* what a deferred write that fails looks like on Azure is **unverified**: the sandbox reports the
  batch complete (Azure's answer has no error field) and logs the failure;
* an id the run never received gets 404 ``RESOURCE_DOES_NOT_EXIST`` (**assumed**).

A test can therefore tell "accepted" (the answer) from "persisted" (the backend has it).
A batch over mlflow's limits is refused first (``_limits.check_limits``).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ._backends import Backend, BackendReply
from ._gateway import Gateway, error, relay
from ._host import Host
from ._http import HttpError, Request, Response
from ._limits import check_limits
from ._model import Workspace

log = logging.getLogger("jupyter_amlflow.sandbox")

LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
DEFAULT_DELAY = 0.5


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    batch_id: str = field(compare=False)
    run_id: str = field(compare=False)
    metrics: list[Any] = field(compare=False)
    backend: Backend = field(compare=False)
    workspace: Workspace = field(compare=False)


class Batches:
    """The deferred ``log-batch-async`` of one sandbox's MLflow API.

    Args:
        host: The sandbox (its ``async_batch_delay``, read for each batch).
        gateway: The backend calls of the workspace endpoints.
    """

    def __init__(self, host: Host, gateway: Gateway) -> None:
        self.host = host
        self.gateway = gateway
        self._closing = threading.Event()
        self._lock = threading.Condition()
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._done: dict[str, tuple[str, bool]] = {}  # batch id -> (run id, persisted)
        self._worker: threading.Thread | None = None

    @property
    def delay(self) -> float:
        """Seconds from accepting a batch to writing its metrics (``Sandbox.async_batch_delay``)."""
        return float(getattr(self.host, "async_batch_delay", DEFAULT_DELAY))

    # -- the Azure-only calls ------------------------------------------------------------------
    def log_batch_async(self, req: Request, backend: Backend, workspace: Workspace) -> Response:
        payload = req.json()
        if not isinstance(payload, dict):
            raise error("mlflow", 400, "MALFORMED_REQUEST", "The request body must be a JSON object.")
        check_limits(payload)
        run_id = str(payload.get("run_id") or "")
        metrics = list(payload.get("metrics") or [])
        now = {k: list(payload.get(k) or []) for k in ("params", "tags")}
        if now["params"] or now["tags"]:
            reply = self._log_batch(backend, workspace, run_id, metrics=[], **now)
        else:
            reply = self._get_run(backend, workspace, run_id)
        if reply.status != 200:
            return relay(reply)
        if not metrics:
            return Response.json({})  # an empty batch_tracking_id: the plugin then does not poll
        batch_id = uuid.uuid4().hex
        with self._lock:
            self._done[batch_id] = (run_id, False)
            due = time.monotonic() + self.delay
            heapq.heappush(self._jobs, _Job(due, next(self._seq), batch_id, run_id, metrics, backend, workspace))
            self._start_worker()
            self._lock.notify_all()
        return Response.json({"batch_tracking_id": batch_id})

    def run_data_status(self, req: Request, backend: Backend, workspace: Workspace) -> Response:
        run_id = req.query.get("run_id", "")
        reply = self._get_run(backend, workspace, run_id)
        if reply.status != 200:
            return relay(reply)
        batch_id = req.query.get("batch_tracking_id", "")
        with self._lock:
            known = self._done.get(batch_id)
        if known is None or known[0] != run_id:
            raise error(
                "mlflow", 404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} has no batch with tracking id {batch_id!r}."
            )
        return Response.json({"is_complete": known[1]})

    def pending(self) -> int:
        """Accepted batches whose metrics are not written yet."""
        with self._lock:
            return sum(1 for _, done in self._done.values() if not done)

    def stop(self) -> None:
        """Let the deferred writer end (the sandbox is stopping)."""
        self._closing.set()
        with self._lock:
            self._lock.notify_all()

    # -- the deferred writer -------------------------------------------------------------------
    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._write_due, name="amlflow-sandbox-batches", daemon=True)
            self._worker.start()

    def _write_due(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                if not self._jobs:
                    self._lock.wait(0.5)
                    continue
                wait = self._jobs[0].due - time.monotonic()
                if wait > 0:
                    self._lock.wait(min(wait, 0.5))
                    continue
                job = heapq.heappop(self._jobs)
            try:
                reply = self._log_batch(job.backend, job.workspace, job.run_id, metrics=job.metrics, params=[], tags=[])
                if reply.status != 200:
                    log.warning("sandbox: deferred metrics of batch %s not written: %s", job.batch_id, reply.body[:300])
            except HttpError as exc:
                log.warning("sandbox: deferred metrics of batch %s not written: %s", job.batch_id, exc)
            with self._lock:
                self._done[job.batch_id] = (job.run_id, True)

    # -- the backend -----------------------------------------------------------------------------
    def _log_batch(
        self,
        backend: Backend,
        workspace: Workspace,
        run_id: str,
        *,
        metrics: list[Any],
        params: list[Any],
        tags: list[Any],
    ) -> BackendReply:
        body = json.dumps({"run_id": run_id, "metrics": metrics, "params": params, "tags": tags}).encode()
        return self.gateway.call(
            backend, workspace, "POST", LOG_BATCH, "mlflow", body=body, content_type="application/json"
        )

    def _get_run(self, backend: Backend, workspace: Workspace, run_id: str) -> BackendReply:
        return self.gateway.call(
            backend, workspace, "GET", "/api/2.0/mlflow/runs/get", "mlflow", query=urlencode({"run_id": run_id})
        )
