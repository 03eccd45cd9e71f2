"""MLflow 3 on Azure ML while connected: log_model to run artifacts, tracing off, unsupported queries caught.

Against the default sandbox, which answers as Azure ML does (``sandbox/fidelity.py``): the
logged-model API gets a 404 with an empty body, traces a 403, some queries a 400.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import backend_client, isolated_mlflow
from kernels import errors_of, execute, notebook, text_of

from jupyter_amlflow.connect_request import ConnectRequest
from jupyter_amlflow.connection import Session

MLFLOW_MODEL_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning")


def echo_model() -> Any:
    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: list[str]) -> list[str]:
            return model_input

    return Echo()


def logged_model_calls(sb: Any) -> list[tuple[str, int, str]]:
    return [(r.method, r.status, r.fidelity) for r in sb.requests if "/logged-models" in r.path]


def no_logged_model_traffic(sb: Any) -> bool:
    return not any("/LoggedModel/" in r.path or r.path.endswith("/runs/outputs") for r in sb.requests)


@MLFLOW_MODEL_WARNINGS
def test_log_model_goes_to_the_run_and_registers_from_it(sp_env: Any, tmp_path: Path) -> None:
    import mlflow
    from mlflow.models import Model

    sb = sp_env
    ws = sb.workspaces[0]
    original_log = Model.__dict__["log"]
    session = Session(timeout=20, auth=["env"])
    conn = session.connect(ConnectRequest(ws.arm_id, experiment="limits-log-model"))
    assert dict(conn.view().rows)["Logged models"].startswith("not asked yet")
    name = f"limits-{tmp_path.name[-6:]}"
    sb.clear_requests()
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(
            name="model", python_model=echo_model(), pip_requirements=["mlflow"], registered_model_name=name
        )
    assert info.model_id is None
    assert info.model_uri == f"runs:/{run.info.run_id}/model"
    assert info.registered_model_version == 1 or info.registered_model_version == "1"
    assert logged_model_calls(sb) == [("POST", 404, "refused")]  # the first one, and only that
    assert dict(session.status().rows)["Logged models"].startswith("refused by the workspace")
    # No active run: one is started, as mlflow 2 did; no further logged-model call.
    second = mlflow.pyfunc.log_model(name="again", python_model=echo_model(), pip_requirements=["mlflow"])
    active = mlflow.active_run()
    assert active is not None and second.model_uri == f"runs:/{active.info.run_id}/again"
    mlflow.end_run()
    # Listing, registering from runs:/ and loading work without asking again.
    client = mlflow.MlflowClient()
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {"model/MLmodel"}
    again = mlflow.register_model(info.model_uri, name)
    assert again.version in (2, "2")
    assert mlflow.pyfunc.load_model(f"models:/{name}/1").predict(["a"]) == ["a"]
    assert mlflow.pyfunc.load_model(info.model_uri).predict(["b"]) == ["b"]
    assert logged_model_calls(sb) == [("POST", 404, "refused")]
    assert no_logged_model_traffic(sb)
    landed = backend_client(sb, ws).get_model_version(name, "1")
    assert landed.run_id == run.info.run_id and landed.source.endswith(f"/{run.info.run_id}/artifacts/model")
    session.disconnect()
    assert Model.__dict__["log"] is original_log


@MLFLOW_MODEL_WARNINGS
def test_a_new_connection_asks_again(sp_env: Any) -> None:
    import mlflow

    sb = sp_env
    session = Session(timeout=20, auth=["env"])
    for ws in (sb.workspaces[0], sb.workspaces[1]):
        session.connect(ConnectRequest(ws.arm_id, experiment="limits-reconnect"))
        sb.clear_requests()
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="m", python_model=echo_model(), pip_requirements=["mlflow"])
            mlflow.pyfunc.log_model(name="n", python_model=echo_model(), pip_requirements=["mlflow"])
        assert logged_model_calls(sb) == [("POST", 404, "refused")]
    session.disconnect()


def test_tracing_is_off_while_connected_and_back_after(sp_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import mlflow

    sb = sp_env
    monkeypatch.delenv("MLFLOW_TRACE_SAMPLING_RATIO", raising=False)
    session = Session(timeout=20, auth=["env"])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        session.connect(ConnectRequest(sb.workspaces[0].arm_id, experiment="limits-tracing"))
        sb.clear_requests()

        @mlflow.trace
        def add(a: int, b: int) -> int:
            return a + b

        assert [add(i, 1) for i in range(3)] == [1, 2, 3]
        mlflow.flush_trace_async_logging()
    notices = [w for w in seen if "tracing" in str(w.message).lower()]
    assert len(notices) == 1 and "Azure ML, which refuses traces" in str(notices[0].message)
    assert not [r for r in sb.requests if "traces" in r.path]
    assert dict(session.status().rows)["Tracing"] == "off (Azure ML refuses traces)"
    session.disconnect()
    assert "MLFLOW_TRACE_SAMPLING_RATIO" not in os.environ  # as before connect


def test_unsupported_queries_fail_in_the_client_with_the_workaround(sp_env: Any) -> None:
    import mlflow

    from jupyter_amlflow.azureml_limits import AzureMLUnsupported

    sb = sp_env
    session = Session(timeout=20, auth=["env"])
    session.connect(ConnectRequest(sb.workspaces[0].arm_id, experiment="limits-queries"))
    exp_id = session.connection.experiment.experiment_id  # type: ignore[union-attr]
    with mlflow.start_run():
        mlflow.log_metric("x", 1.0)
    cases = {
        "order_by metrics": (
            lambda: mlflow.search_runs([exp_id], order_by=["metrics.x DESC"]),
            "Azure ML does not support ordering runs by metrics (order_by 'metrics.x DESC'): search without "
            "order_by and sort the DataFrame instead, e.g. mlflow.search_runs(...).sort_values('metrics.x', "
            "ascending=False)",
        ),
        "OR": (
            lambda: mlflow.search_runs([exp_id], filter_string="metrics.x > 0 OR params.a = 'b'"),
            "Azure ML does not support OR in run filters: run one search per condition and combine the "
            "DataFrames, e.g. pandas.concat([mlflow.search_runs(filter_string=a), "
            "mlflow.search_runs(filter_string=b)]).drop_duplicates('run_id')",
        ),
        "!= on tags": (
            lambda: mlflow.MlflowClient().search_runs([exp_id], filter_string="tags.team != 'a'"),
            "Azure ML does not support != on tags (tags.team != ...): search without it and filter the "
            "DataFrame instead, e.g. runs[runs['tags.team'] != 'a']",
        ),
        "rename experiment": (
            lambda: mlflow.MlflowClient().rename_experiment(exp_id, "renamed"),
            "Azure ML does not support renaming experiments: create an experiment with the new name and log "
            "new runs there",
        ),
        "rename model": (
            lambda: mlflow.MlflowClient().rename_registered_model("a", "b"),
            "Azure ML does not support renaming registered models: register the model again under the new name "
            "(registered models are immutable in Azure ML)",
        ),
    }
    for label, (call, message) in cases.items():
        sb.clear_requests()
        with pytest.raises(AzureMLUnsupported) as refused:
            call()
        assert str(refused.value) == message, label
        assert [r for r in sb.requests if r.endpoint == "mlflow"] == [], label  # nothing was sent
    # A filter too deep for sqlparse (its grouping stops at depth 100) is malformed, not unsupported:
    # mlflow's own error, not sqlparse's, and no AzureMLUnsupported. CI's Hypothesis run found it.
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as malformed:
        mlflow.search_runs([exp_id], filter_string="A|" * 101)
    assert not isinstance(malformed.value, AzureMLUnsupported)
    assert "INVALID_PARAMETER_VALUE: Error on parsing filter" in str(malformed.value)
    # What Azure serves still works, the registered-model search included (mlflow 3 would add a
    # tag filter Azure refuses).
    assert len(mlflow.search_runs([exp_id], order_by=["attributes.start_time DESC"])) == 1
    assert isinstance(mlflow.search_registered_models(max_results=5), list)
    session.disconnect()
    with pytest.raises(Exception) as native:
        mlflow.MlflowClient(tracking_uri=sb.workspaces[0].tracking_uri).rename_experiment(exp_id, "renamed")
    assert not isinstance(native.value, AzureMLUnsupported)


@MLFLOW_MODEL_WARNINGS
def test_open_source_mode_keeps_the_native_logged_model_path(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    oss = sandbox_factory(subscriptions=1, workspaces_per_subscription=1, max_backends=1, mlflow_api="open-source")
    for k, v in {**oss.env, **oss.service_principal}.items():
        monkeypatch.setenv(k, v)
    with isolated_mlflow():
        session = Session(timeout=20, auth=["env"])
        session.connect(ConnectRequest(oss.workspaces[0].arm_id, experiment="oss-native"))
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="model", python_model=echo_model(), pip_requirements=["mlflow"])
        assert info.model_id and info.model_uri == f"models:/{info.model_id}"
        assert dict(session.status().rows)["Logged models"] == "served by the workspace"
        session.disconnect()


# -- what must hold, in real kernels --------------------------------------------------------------
TRAIN = """%%amlflow run --name churn-train
import mlflow, mlflow.sklearn, numpy as np
from sklearn.linear_model import LogisticRegression
mlflow.sklearn.autolog()
X = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1], [0.1, 0.8], [0.8, 0.3]])
y = np.array([0, 1, 0, 1, 0, 1])
model = LogisticRegression().fit(X, y)
info = mlflow.sklearn.log_model(model, name="churn-model", registered_model_name="churn")
print("MODEL_URI", info.model_uri)
print("MODEL_ID", info.model_id)
"""

LOAD = """import mlflow, numpy as np
X = np.array([[0.0, 1.0], [1.0, 0.0]])
print("REGISTERED", [int(v) for v in mlflow.pyfunc.load_model("models:/churn/1").predict(X)])
print("RUNS_URI", [int(v) for v in mlflow.pyfunc.load_model("{uri}").predict(X)])
"""


@pytest.mark.slow  # two kernels, scikit-learn and mlflow imports in each: about a minute
def test_autolog_and_log_model_in_a_kernel_load_in_a_fresh_one(sandbox: Any, tmp_path: Path, secret_check: Any) -> None:
    ws = sandbox.workspaces[2]
    env = {**sandbox.env, **sandbox.service_principal}
    sandbox.clear_requests()
    first = notebook(
        "%load_ext jupyter_amlflow",
        f"%amlflow connect {ws.arm_id} --experiment churn",
        TRAIN,
        "%amlflow status",
    )
    execute(first, env=env, cwd=tmp_path, timeout=300)
    secret_check.scan(first)
    for i in range(4):
        assert errors_of(first, i) == [], (i, text_of(first, i))
    out = text_of(first, 2)
    uri = next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("MODEL_URI "))
    assert "MODEL_ID None" in out
    assert uri.startswith("runs:/") and uri.endswith("/churn-model")
    assert "off (Azure ML refuses traces)" in text_of(first, 3)
    run_id = uri.split("/")[1]

    second = notebook(
        "%load_ext jupyter_amlflow", f"%amlflow connect {ws.arm_id} --experiment churn", LOAD.format(uri=uri)
    )
    execute(second, env=env, cwd=tmp_path, timeout=300)
    for i in range(3):
        assert errors_of(second, i) == [], (i, text_of(second, i))
    assert "REGISTERED [0, 1]" in text_of(second, 2) and "RUNS_URI [0, 1]" in text_of(second, 2)

    backend = backend_client(sandbox, ws)
    version = backend.get_model_version("churn", "1")
    assert version.run_id == run_id and version.source.endswith(f"/{run_id}/artifacts/churn-model")
    files = {a.path for a in backend.list_artifacts(run_id)}
    assert {"churn-model", "model"} <= files  # the explicit model, and autolog's
    calls = [r for r in sandbox.requests if "/logged-models" in r.path]
    assert all((r.status, r.fidelity) == (404, "refused") for r in calls)
    per_connection = Counter(r.token_id for r in calls)
    assert per_connection and max(per_connection.values()) == 1, per_connection
    assert no_logged_model_traffic(sandbox)
