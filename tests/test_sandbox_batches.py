"""The sandbox's batched logging, called over its REST API as the plugin calls it.

``runs/log-batch`` refuses batches over mlflow's limits (assumed to be Azure's); the Azure-only
``log-batch-async`` is deferred: accepted at once, its metrics visible later, with
``get-run-data-status`` saying which. What landed is read from the backing mlflow server.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.identity import ClientSecretCredential
from helpers import backend_client

DELAY = 1.5  # seconds the sandbox defers metrics in this module: long enough to look in between


@pytest.fixture(scope="module")
def sb(sandbox_factory: Any) -> Iterator[Any]:
    sb = sandbox_factory(subscriptions=1, workspaces_per_subscription=1, max_backends=1, async_batch_delay=DELAY)
    yield sb


@pytest.fixture(scope="module")
def ws(sb: Any) -> Any:
    return sb.workspaces[0]


@pytest.fixture(scope="module")
def api(sb: Any, ws: Any) -> Iterator[Any]:
    """POST/GET on the workspace's MLflow API (``/api/2.0/...``) as the sandbox's service principal."""
    credential = ClientSecretCredential(
        sb.tenant_id,
        sb.sp.client_id,
        sb.sp.client_secret,
        authority=sb.authority_url,
        disable_instance_discovery=True,
        connection_verify=sb.ca_bundle,
    )
    base = f"{sb.base_url}/mlflow/v2.0{ws.arm_id}/api/2.0"
    session = requests.Session()

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        token = credential.get_token(f"{sb.base_url}/.default").token
        headers = {"Authorization": f"Bearer {token}"}
        return session.request(method, base + path, headers=headers, verify=sb.ca_bundle, timeout=30, **kwargs)

    yield call
    session.close()


@pytest.fixture
def run_id(sb: Any, ws: Any) -> str:
    client = backend_client(sb, ws)
    name = "batches"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    return client.create_run(experiment_id).info.run_id


def metrics(n: int, key: str = "loss") -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [{"key": key, "value": i / 10, "timestamp": now, "step": i} for i in range(n)]


def values(n: int, prefix: str) -> list[dict[str, str]]:
    return [{"key": f"{prefix}{i}", "value": str(i)} for i in range(n)]


@pytest.mark.parametrize(
    "body",
    [
        {"metrics": metrics(1001)},
        {"params": values(101, "p")},
        {"tags": values(101, "t")},
        {"metrics": metrics(950), "params": values(30, "p"), "tags": values(30, "t")},
    ],
    ids=["metrics", "params", "tags", "total"],
)
@pytest.mark.parametrize("call", ["mlflow/runs/log-batch", "preview/mlflow/runs/log-batch-async"])
def test_a_batch_over_mlflows_limits_is_refused_and_nothing_of_it_lands(
    sb: Any, ws: Any, api: Any, run_id: str, call: str, body: dict[str, Any]
) -> None:
    answer = api("POST", f"/{call}", json={"run_id": run_id, **body})

    assert answer.status_code == 400
    assert answer.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "A batch logging request can contain at most 1000 metrics, 100 params and 100 tags, 1000 in "
        "all. Please split up metrics across multiple requests and try again.",
    }
    assert [r.fidelity for r in sb.requests if r.path.endswith(call)][-1] == "refused"
    data = backend_client(sb, ws).get_run(run_id).data
    assert (data.metrics, data.params) == ({}, {})


def test_a_batch_at_the_limits_is_served(sb: Any, ws: Any, api: Any, run_id: str) -> None:
    answer = api("POST", "/mlflow/runs/log-batch", json={"run_id": run_id, "metrics": metrics(1000)})

    assert answer.status_code == 200, answer.text
    assert len(backend_client(sb, ws).get_metric_history(run_id, "loss")) == 1000


def test_log_batch_async_is_accepted_now_and_persisted_later(sb: Any, ws: Any, api: Any, run_id: str) -> None:
    accepted = api(
        "POST",
        "/preview/mlflow/runs/log-batch-async",
        json={"run_id": run_id, "metrics": metrics(3), "params": [{"key": "alpha", "value": "0.5"}]},
    )
    assert accepted.status_code == 200, accepted.text
    batch_id = accepted.json()["batch_tracking_id"]
    status = {"run_id": run_id, "batch_tracking_id": batch_id}

    # Accepted: params at once (the plugin: "params and tags are persisted in sync fashion"), metrics not yet.
    early = backend_client(sb, ws).get_run(run_id).data
    assert early.params == {"alpha": "0.5"} and early.metrics == {}
    assert api("GET", "/preview/mlflow/runs/get-run-data-status", params=status).json() == {"is_complete": False}

    deadline = time.monotonic() + DELAY + 30
    while api("GET", "/preview/mlflow/runs/get-run-data-status", params=status).json() != {"is_complete": True}:
        assert time.monotonic() < deadline, "the deferred batch was never written"
        time.sleep(0.2)
    history = backend_client(sb, ws).get_metric_history(run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.0), (1, 0.1), (2, 0.2)]


def test_log_batch_async_without_metrics_needs_no_status_poll(sb: Any, ws: Any, api: Any, run_id: str) -> None:
    answer = api("POST", "/preview/mlflow/runs/log-batch-async", json={"run_id": run_id, "tags": values(2, "t")})

    assert answer.status_code == 200 and answer.json() == {}  # an empty batch_tracking_id
    assert backend_client(sb, ws).get_run(run_id).data.tags.items() >= {"t0": "0", "t1": "1"}.items()


def test_run_data_status_of_a_batch_the_run_never_received_is_not_found(api: Any, run_id: str) -> None:
    answer = api(
        "GET",
        "/preview/mlflow/runs/get-run-data-status",
        params={"run_id": run_id, "batch_tracking_id": uuid.uuid4().hex},
    )

    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_log_batch_async_to_a_run_that_does_not_exist_is_refused_at_once(api: Any) -> None:
    answer = api("POST", "/preview/mlflow/runs/log-batch-async", json={"run_id": uuid.uuid4().hex, "metrics": metrics(1)})

    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
