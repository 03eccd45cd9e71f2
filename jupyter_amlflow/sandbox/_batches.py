"""Batched logging as Azure ML answers it: the limits of ``runs/log-batch`` and the deferred ``log-batch-async``.

``runs/log-batch`` (MLflow's own API, which Azure ML serves synchronously) and ``log-batch-async``
are refused with 400 when a batch holds more than 1,000 metrics, 100 params, 100 tags or 1,000
values in all. These are mlflow's limits (``mlflow.utils.validation._validate_batch_log_limits``,
also applied by ``MlflowClient.log_batch`` before it sends, and listed in MLflow's REST reference);
**that Azure ML applies the same ones is assumed**, and so is the shape of its refusal, mlflow's
``{"error_code": "INVALID_PARAMETER_VALUE", "message": ...}``. ``over_limits`` decides it for the
fidelity lists (``_fidelity``), which refuse such a batch with ``LIMITS_MESSAGE``, mlflow's wording
without the counts; in ``open-source`` mode it is forwarded, and ``check_limits`` answers an
over-limit ``log-batch-async`` with mlflow's own message, counts included, as the backend answers
an over-limit ``log-batch``.

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
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ._http import HttpError, Request, Response

if TYPE_CHECKING:
    from ._backends import Backend
    from ._mlflow import MlflowService
    from ._model import Workspace

log = logging.getLogger("jupyter_amlflow.sandbox")

LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
#: mlflow's limits per batch (mlflow.utils.validation): metrics, params, tags, all values.
LIMITS = (("metrics", 1000), ("params", 100), ("tags", 100))
MAX_VALUES = 1000
DEFAULT_DELAY = 0.5


LIMITS_MESSAGE = (
    "A batch logging request can contain at most 1000 metrics, 100 params and 100 tags, 1000 in all. "
    "Please split up metrics across multiple requests and try again."
)


def over_limits(params: Any) -> bool:
    """Whether a log-batch body (parsed) holds more than mlflow's limits allow."""
    try:
        check_limits(params)
    except HttpError:
        return True
    return False


def check_limits(payload: Any) -> None:
    """Refuse a log-batch body over mlflow's limits, as mlflow words it (raises ``HttpError`` 400).

    ``payload`` is the parsed body or the raw one; a body that is not a JSON object is left to the
    backend, which answers it as mlflow does.
    """
    if isinstance(payload, bytes | str):
        try:
            payload = json.loads(payload or b"{}")
        except ValueError:
            return
    if not isinstance(payload, dict):
        return
    counts = {name: len(payload.get(name) or []) for name, _ in LIMITS}
    for name, limit in LIMITS:
        if counts[name] > limit:
            raise _too_many(name, limit, counts[name])
    total = sum(counts.values())
    if total > MAX_VALUES:
        raise _too_many("metrics, params, and tags", MAX_VALUES, total)


def _too_many(what: str, limit: int, got: int) -> HttpError:
    return HttpError(
        400,
        {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": f"A batch logging request can contain at most {limit} {what}. Got {got} {what}. "
            "Please split up metrics across multiple requests and try again.",
        },
    )


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
    """``log-batch`` limits and the deferred ``log-batch-async`` of one sandbox's MLflow API."""

    def __init__(self, service: MlflowService) -> None:
        self.service = service
        self._lock = threading.Condition()
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._done: dict[str, tuple[str, bool]] = {}  # batch id -> (run id, persisted)
        self._worker: threading.Thread | None = None

    @property
    def delay(self) -> float:
        """Seconds from accepting a batch to writing its metrics (``Sandbox.async_batch_delay``)."""
        return float(getattr(self.service.sb, "async_batch_delay", DEFAULT_DELAY))

    # -- the Azure-only calls ------------------------------------------------------------------
    def log_batch_async(self, req: Request, backend: Backend, workspace: Workspace) -> Response:
        payload = req.json()
        if not isinstance(payload, dict):
            raise self.service._error("mlflow", 400, "MALFORMED_REQUEST", "The request body must be a JSON object.")
        check_limits(payload)
        run_id = str(payload.get("run_id") or "")
        metrics = list(payload.get("metrics") or [])
        now = {k: list(payload.get(k) or []) for k in ("params", "tags")}
        if now["params"] or now["tags"]:
            reply = self._log_batch(backend, workspace, run_id, metrics=[], **now)
        else:
            reply = self._get_run(backend, workspace, run_id)
        if reply.status != 200:
            return self.service._reply(reply)
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
            return self.service._reply(reply)
        batch_id = req.query.get("batch_tracking_id", "")
        with self._lock:
            known = self._done.get(batch_id)
        if known is None or known[0] != run_id:
            raise self.service._error(
                "mlflow", 404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} has no batch with tracking id {batch_id!r}."
            )
        return Response.json({"is_complete": known[1]})

    def pending(self) -> int:
        """Accepted batches whose metrics are not written yet."""
        with self._lock:
            return sum(1 for _, done in self._done.values() if not done)

    # -- the deferred writer -------------------------------------------------------------------
    def _start_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._write_due, name="amlflow-sandbox-batches", daemon=True)
            self._worker.start()

    def _write_due(self) -> None:
        stopping = self.service.sb._stopping
        while not stopping.is_set():
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
    ) -> Any:
        body = json.dumps({"run_id": run_id, "metrics": metrics, "params": params, "tags": tags}).encode()
        return self.service._call(
            backend, workspace, "POST", LOG_BATCH, "mlflow", body=body, content_type="application/json"
        )

    def _get_run(self, backend: Backend, workspace: Workspace, run_id: str) -> Any:
        return self.service._call(
            backend, workspace, "GET", "/api/2.0/mlflow/runs/get", "mlflow", query=urlencode({"run_id": run_id})
        )
