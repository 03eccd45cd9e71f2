"""The sandbox answers as Azure ML does: it refuses what Azure refuses, and says which calls nobody verified.

Plain azureml-mlflow and mlflow against the sandbox, no code of ours in the client (the helpers of
``test_sandbox_mlflow`` register a credential with the plugin as its notes describe). Also the
isolation of the mlflow workspaces API against percent-encoded paths, with raw ``http.client``.
"""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_sandbox_mlflow import (  # noqa: F401 - the two fixtures apply to this module too
    _mask_sas_in_client_debug_log,
    backend,
    bearer,
    connect,
    credential,
    echo_model,
    mlflow_state,
)

from jupyter_amlflow.sandbox import fidelity

pytest_plugins = ["pytester"]
MLFLOW_MODEL_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test expects an error status: don't spend time retrying it."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


@pytest.fixture(scope="module")
def sb(sandbox: Any) -> Any:
    return sandbox


@pytest.fixture(scope="module")
def ws_a(sb: Any) -> Any:
    return sb.workspaces[0]


@pytest.fixture(scope="module")
def ws_b(sb: Any) -> Any:
    return sb.workspaces[1]


def mlflow_calls(sb: Any, fragment: str) -> list[tuple[str, int, str]]:
    """``(method, status, fidelity)`` of the MLflow API calls whose path holds ``fragment``."""
    return [(r.method, r.status, r.fidelity) for r in sb.requests if r.endpoint == "mlflow" and fragment in r.path]


# -- refused, as on Azure ------------------------------------------------------------------------
def test_create_logged_model_gets_404_with_an_empty_body(
    sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch, no_retries: None
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    connect(sb, ws_a, credential(sb), monkeypatch)
    experiment = mlflow.set_experiment("fidelity-logged-models")
    sb.clear_requests()
    with pytest.raises(MlflowException) as refused:
        mlflow.MlflowClient().create_logged_model(experiment.experiment_id, name="m")
    assert str(refused.value) == (
        "API request to endpoint /api/2.0/mlflow/logged-models failed with error code 404 != 200. Response body: ''"
    )
    assert mlflow_calls(sb, "/logged-models") == [("POST", 404, "refused")]
    # Nothing reached the backend: it holds no logged model.
    assert backend(sb, ws_a).search_logged_models([experiment.experiment_id]) == []


def test_a_trace_export_gets_403(sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch, no_retries: None) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    connect(sb, ws_a, credential(sb), monkeypatch)
    experiment = mlflow.set_experiment("fidelity-traces")
    sb.clear_requests()

    @mlflow.trace
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3  # mlflow logs the failed export and carries on
    traces = mlflow_calls(sb, "/mlflow/traces")
    assert traces and all(status == 403 and fidelity == "refused" for _, status, fidelity in traces), traces
    assert backend(sb, ws_a).search_traces(locations=[experiment.experiment_id]) == []


def test_unsupported_queries_and_renames_are_refused(
    sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch, no_retries: None
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    connect(sb, ws_a, credential(sb), monkeypatch)
    exp_id = mlflow.set_experiment("fidelity-queries").experiment_id
    with mlflow.start_run() as run:
        mlflow.log_metric("x", 1.0)
        mlflow.set_tag("team", "a")
    client = mlflow.MlflowClient()
    refused = [
        lambda: client.search_runs([exp_id], order_by=["metrics.x DESC"]),
        lambda: client.search_runs([exp_id], order_by=["params.alpha"]),
        lambda: client.search_runs([exp_id], order_by=["tags.team ASC"]),
        lambda: client.search_runs([exp_id], filter_string="metrics.x > 0 OR tags.team = 'a'"),
        lambda: client.search_runs([exp_id], filter_string="tags.team != 'b'"),
        lambda: client.search_runs([exp_id], filter_string="metrics.`val loss` < 1"),
        lambda: client.rename_experiment(exp_id, "renamed"),
    ]
    for call in refused:
        sb.clear_requests()
        with pytest.raises(MlflowException, match=r"INVALID_PARAMETER_VALUE.*Currently unsupported"):
            call()
        assert [(s, f) for _, s, f in mlflow_calls(sb, "/api/")] == [(400, "refused")]
    # A filter too deep for sqlparse is malformed: mlflow's own 400, not a failure of the sandbox.
    sb.clear_requests()
    with pytest.raises(MlflowException, match=r"INVALID_PARAMETER_VALUE: Error on parsing filter"):
        client.search_runs([exp_id], filter_string="A|" * 101)
    assert [s for _, s, _ in mlflow_calls(sb, "/runs/search")] == [400]
    # What Azure documents as supported still works: attribute order, AND filters, equality on tags.
    sb.clear_requests()
    found = client.search_runs(
        [exp_id], filter_string="metrics.x > 0 AND tags.team = 'a'", order_by=["attributes.start_time DESC"]
    )
    assert [r.info.run_id for r in found] == [run.info.run_id]
    assert mlflow_calls(sb, "/runs/search") == [("POST", 200, "served")]
    assert backend(sb, ws_a).get_experiment(exp_id).name == "fidelity-queries"


def test_registry_renames_deletes_and_like_searches_are_refused(
    sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch, no_retries: None
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    connect(sb, ws_a, credential(sb), monkeypatch)
    client = mlflow.MlflowClient()
    name = f"fidelity-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    for call in (
        lambda: client.rename_registered_model(name, name + "-2"),
        lambda: client.delete_registered_model(name),
        lambda: client.search_registered_models(filter_string=f"name LIKE '{name[:5]}%'"),
        # mlflow 3 adds "tag.`mlflow.prompt.is_prompt` != 'true'" to every search, which Azure ML
        # refuses (Azure/azure-sdk-for-python#42155): even a search by name fails there.
        lambda: client.search_registered_models(filter_string=f"name = '{name}'"),
    ):
        with pytest.raises(MlflowException, match=r"INVALID_PARAMETER_VALUE.*Currently unsupported"):
            call()
    assert client.get_registered_model(name).name == name
    assert backend(sb, ws_a).get_registered_model(name).name == name


# -- served, and marked -------------------------------------------------------------------------------
@MLFLOW_MODEL_WARNINGS
def test_each_mlflow_call_is_logged_as_served_refused_or_unverified(
    sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow

    connect(sb, ws_a, credential(sb), monkeypatch)
    mlflow.set_experiment("fidelity-marks")
    sb.clear_requests()
    with mlflow.start_run() as run:
        mlflow.log_param("p", 1)
        mlflow.log_metric("m", 2.0)
        mlflow.log_metric("m", 3.0, synchronous=False).wait()
        mlflow.log_text("x", "a.txt")
    name = f"marks-{uuid.uuid4().hex[:6]}"
    saved = tmp_path / "model"
    mlflow.pyfunc.save_model(str(saved), python_model=echo_model(), pip_requirements=["mlflow"])
    client = mlflow.MlflowClient()
    client.log_artifacts(run.info.run_id, str(saved), "model")
    client.create_registered_model(name)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id)
    client.set_registered_model_alias(name, "champion", "1")
    marks = {(r.method, r.path.split("/api/", 1)[1]): r.fidelity for r in sb.requests if r.endpoint == "mlflow"}
    assert marks[("POST", "2.0/mlflow/runs/create")] == "served"
    assert marks[("POST", "2.0/mlflow/runs/log-parameter")] == "served"
    assert marks[("POST", "2.0/mlflow/runs/log-metric")] == "served"
    assert marks[("POST", "2.0/preview/mlflow/runs/log-batch-async")] == "served"
    assert marks[("GET", "2.0/preview/mlflow/runs/get-run-data-status")] == "served"
    assert marks[("POST", "2.0/mlflow/model-versions/create")] == "served"
    assert marks[("POST", "2.0/mlflow/registered-models/alias")] == "unverified"
    assert {r.fidelity for r in sb.requests if r.endpoint in ("history", "blob")} == {"served"}
    assert {r.fidelity for r in sb.requests} <= {"served", "refused", "unverified"}


def test_every_list_entry_cites_evidence_and_refusals_say_how_they_answer() -> None:
    for entry in (*fidelity.ENTRIES, fidelity.UNVERIFIED):
        assert entry.evidence and entry.answer and entry.call
        assert (entry.refusal is not None) == (entry.verdict == "refused"), entry.call
    logged_models = fidelity.classify("POST", "2.0/mlflow/logged-models", {})
    assert (logged_models.verdict, logged_models.refusal) == ("refused", fidelity.Refusal(404))
    assert fidelity.classify("POST", "3.0/mlflow/traces", {}).refusal.status == 403  # type: ignore[union-attr]
    assert fidelity.classify("GET", "2.0/mlflow/experiments/get", {}).verdict == "served"
    assert fidelity.classify("POST", "2.0/mlflow/runs/log-inputs", {}).verdict == "unverified"
    assert fidelity.classify("POST", "2.0/mlflow/runs/search", {"order_by": ["start_time DESC"]}).verdict == "served"


def test_the_readme_table_is_the_lists() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- sandbox-fidelity -->\n", 1)[1].split("\n<!-- /sandbox-fidelity -->", 1)[0]
    expected = [f"| {' | '.join(row)} |" for row in fidelity.table_rows()]
    assert block.splitlines()[2:] == expected


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("3.0/mlflow/%77orkspaces", "3.0/mlflow/workspaces"),
        ("2.0/mlflow//runs/./get", "2.0/mlflow/runs/get"),
        ("2.0/mlflow/runs/../../../3.0/mlflow/workspaces", "3.0/mlflow/workspaces"),
        ("2.0/mlflow/%2e%2e/%2e%2e/%2e%2e/x", None),
        ("2.0/mlflow/runs%00/get", None),
        ("2.0/mlflow/%ff", None),
        ("2.0/mlflow/%2577orkspaces", "2.0/mlflow/%77orkspaces"),
    ],
)
def test_paths_are_decided_decoded_and_normalised(raw: str, decoded: str | None) -> None:
    assert fidelity.decode_path(raw) == decoded
    if decoded is not None:
        from urllib.parse import unquote

        assert unquote(fidelity.encode_path(decoded)) == decoded  # what the backend decodes back


# -- the mlflow workspaces API is never reachable (issue: isolation bypass by percent-encoding) ----------
def _raw(sb: Any, method: str, path: str, token: str | None, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    """One request with ``http.client``, path sent byte for byte as given (no client-side normalising)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    if path.startswith("/backend/"):
        # The plain listener wants the sandbox's access key (tests/test_sandbox_access.py); with it,
        # the path check is what answers.
        parts = urlsplit(sb.backend_tracking_uri(sb.workspaces[0]))
        conn: http.client.HTTPConnection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers["Authorization"] = "Bearer " + sb.access_key
    else:
        context = ssl.create_default_context(cafile=sb.ca_bundle)
        conn = http.client.HTTPSConnection("127.0.0.1", int(sb.base_url.rsplit(":", 1)[1]), context=context, timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def test_percent_encoded_workspace_api_is_refused_on_both_listeners(sb: Any, ws_a: Any, ws_b: Any) -> None:
    from mlflow import MlflowClient

    # A principal with a role on workspace A only.
    intruder = sb.add_service_principal(f"intruder-{uuid.uuid4().hex[:4]}", role=None)
    sb.assign_role(intruder, "AzureML Data Scientist", ws_a.arm_id)
    token = bearer(sb, credential(sb, intruder))["Authorization"].split(" ", 1)[1]
    MlflowClient(tracking_uri=sb.backend_tracking_uri(ws_b)).search_experiments()  # B exists on the backend
    victim = ws_b.backend_workspace
    base = f"/mlflow/v1.0{ws_a.arm_id}/api/3.0/mlflow"
    plain = f"/backend/{ws_a.workspace_id}/api/3.0/mlflow"
    patch = {"default_artifact_root": "/tmp/attacker-chosen"}
    attempts = [
        ("GET", f"{base}/%77orkspaces", None),
        ("GET", f"{base}/%57ORKSPACES", None),
        ("PATCH", f"{base}/%77orkspaces/{victim}", patch),
        ("DELETE", f"{base}/%77orkspaces/{victim}", None),
        ("GET", f"{base}/runs/../%77orkspaces", None),
        ("GET", f"{base}//workspaces", None),
        ("GET", f"{plain}/%77orkspaces", None),
        ("PATCH", f"{plain}/%77orkspaces/{victim}", patch),
        ("DELETE", f"{plain}/%77orkspaces/{victim}", None),
        ("GET", f"/backend/{ws_a.workspace_id}/ajax-api/3.0/mlflow/%77orkspaces", None),
        ("GET", f"/backend/{ws_a.workspace_id}/api/2.0/%2e%2e/3.0/mlflow/workspaces", None),
    ]
    sb.clear_requests()
    for method, path, body in attempts:
        status, answer = _raw(sb, method, path, token if path.startswith("/mlflow/") else None, body)
        assert status == 404, (method, path, status, answer[:300])
        assert answer and json.loads(answer)["error_code"] == "ENDPOINT_NOT_FOUND", (method, path, answer[:300])
    assert {r.fidelity for r in sb.requests if r.endpoint == "mlflow"} == {"refused"}
    # Workspace B is as it was: it still exists, and its artifacts still land under the sandbox.
    b = MlflowClient(tracking_uri=sb.backend_tracking_uri(ws_b))
    exp = b.create_experiment(f"after-{uuid.uuid4().hex[:6]}")
    assert "attacker-chosen" not in b.get_experiment(exp).artifact_location
    assert b.get_experiment(exp).artifact_location.startswith("mlflow-artifacts:/workspaces/")


# -- open-source mode ------------------------------------------------------------------------------------
@MLFLOW_MODEL_WARNINGS
def test_open_source_mode_forwards_what_azure_refuses_marked_unverified(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    oss = sandbox_factory(subscriptions=1, workspaces_per_subscription=1, max_backends=1, mlflow_api="open-source")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", oss.ca_bundle)
    ws = oss.workspaces[0]
    connect(oss, ws, credential(oss), monkeypatch)
    mlflow.set_experiment("oss")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=echo_model(), pip_requirements=["mlflow"])
    assert info.model_id and info.model_uri == f"models:/{info.model_id}"
    assert mlflow.pyfunc.load_model(info.model_uri).predict(["hi"]) == ["hi"]
    marks = {r.fidelity for r in oss.requests if r.endpoint == "mlflow" and "/logged-models" in r.path}
    assert marks == {"unverified"}
    assert {r.fidelity for r in oss.requests if "/LoggedModel/" in r.path} == {"unverified"}
    # The workspace API stays closed in this mode too.
    token = bearer(oss, credential(oss))["Authorization"].split(" ", 1)[1]
    status, _ = _raw(oss, "GET", f"/mlflow/v1.0{ws.arm_id}/api/3.0/mlflow/%77orkspaces", token)
    assert status == 404


def test_an_unknown_mode_is_refused_with_the_choices() -> None:
    from jupyter_amlflow.sandbox import Sandbox

    with pytest.raises(ValueError, match="mlflow_api must be one of azure, open-source, not 'azure-ml'"):
        Sandbox(mlflow_api="azure-ml")


def test_the_command_line_takes_the_mode() -> None:
    from jupyter_amlflow.sandbox.__main__ import parser

    assert parser().parse_args([]).mlflow_api == "azure"
    assert parser().parse_args(["--mlflow-api", "open-source"]).mlflow_api == "open-source"
    with pytest.raises(SystemExit):
        parser().parse_args(["--mlflow-api", "azure-ml"])


def test_the_pytest_option_picks_the_mode(pytester: pytest.Pytester) -> None:
    # The option reaches the session sandbox; the user's test sees the mode it asked for.
    pytester.makepyfile(
        test_mode="def test_mode(amlflow_sandbox):\n    assert amlflow_sandbox.mlflow_api == 'open-source'\n"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "--amlflow-sandbox-mlflow-api", "open-source",
        "--amlflow-sandbox-subscriptions", "1", "--amlflow-sandbox-workspaces", "1",
        timeout=600,
    )  # fmt: skip
    result.assert_outcomes(passed=1)
