"""Sandbox part 2: the Azure ML MLflow API, driven by azure-identity, mlflow and the azureml-mlflow plugin.

No code of ours runs in the client here: a credential is registered with the plugin as its own
notes describe (or by ``MLClient``), then plain ``mlflow`` calls go to the sandbox. What landed is
checked through ``Sandbox.backend_tracking_uri``, a plain mlflow URI of the backing server.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ClientSecretCredential

# mlflow warns (UserWarning) that a python_model is pickled and that models lack a signature.
MLFLOW_MODEL_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning")


# -- helpers -----------------------------------------------------------------------------------
def credential(sb: Any, identity: Any = None, tenant: str | None = None) -> ClientSecretCredential:
    """A client-secret credential for a sandbox service principal (the default one unless given)."""
    identity = identity or sb.sp
    return ClientSecretCredential(
        tenant or sb.tenant_id,
        identity.client_id,
        identity.client_secret,
        authority=sb.authority_url,
        disable_instance_discovery=True,
    )


def plugin_cloud(sb: Any, name: str | None = None) -> Any:
    """The sandbox cloud as the plugin describes clouds."""
    from azureml.mlflow._common._cloud.cloud import Cloud, CloudEndpoints, CloudSuffixes

    base = sb.base_url
    return Cloud(
        name or sb.cloud,
        endpoints=CloudEndpoints(resource_manager=base + "/", active_directory=base, portal=base + "/"),
        suffixes=CloudSuffixes(storage_endpoint=sb.storage_suffix),
    )


def forget_mlflow_stores() -> None:
    """Drop mlflow's cached stores, as a fresh process would have none.

    mlflow caches one store per tracking URI, and the store keeps the service context (and so the
    credential) it was built with: a test that signs in as someone else must not get the old one.
    """
    from mlflow.tracking._model_registry.registry import ModelRegistryStoreRegistry
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    TrackingStoreRegistry._get_store_with_resolved_uri.cache_clear()
    ModelRegistryStoreRegistry._get_store_with_resolved_uri.cache_clear()


def connect(sb: Any, workspace: Any, cred: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``cred`` for the workspace with the plugin (its notes' minimal snippet); set the URI."""
    import mlflow
    from azureml.mlflow._common._cloud.cloud import KNOWN_CLOUDS
    from azureml.mlflow._internal.service_context_loader import _AzureMLServiceContextLoader
    from azureml.mlflow._internal.utils import ServiceContext
    from mlflow.tracking._model_registry import utils as registry_utils

    cloud = plugin_cloud(sb)
    monkeypatch.setitem(KNOWN_CLOUDS, sb.cloud, cloud)
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", sb.cloud)
    context = ServiceContext(
        host_url=sb.base_url,
        subscription_id=workspace.subscription_id,
        resource_group_name=workspace.resource_group,
        workspace_name=workspace.name,
        auth=cred,
        cloud=cloud,
    )
    uri = workspace.tracking_uri
    _AzureMLServiceContextLoader.add_service_context(uri, context)
    forget_mlflow_stores()
    mlflow.set_tracking_uri(uri)
    registry_utils._get_store_registry()  # fill the registry-store table before any thread needs it
    return uri


def backend(sb: Any, workspace: Any) -> Any:
    """An ``MlflowClient`` on the plain backing server of a workspace."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=sb.backend_tracking_uri(workspace))


def bearer(sb: Any, cred: Any) -> dict[str, str]:
    """An Authorization header for calling the sandbox's REST APIs directly."""
    return {"Authorization": "Bearer " + cred.get_token(sb.arm_url + ".default").token}


def mlflow_servers(sb: Any) -> dict[int, int]:
    """``{pid: process group}`` of the running ``mlflow server`` processes of this sandbox (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and b"server" in cmdline and any(str(sb.root).encode() in part for part in cmdline):
            found[int(entry.name)] = int(fields[2])
    return found


def process_groups_alive(groups: set[int]) -> list[int]:
    """Pids of processes still in any of these process groups (from /proc)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:
            alive.append(int(entry.name))
    return alive


# -- fixtures ----------------------------------------------------------------------------------
class _MaskSasSignature(logging.Filter):
    """urllib3 logs each request line at DEBUG, a blob URL's SAS signature included."""

    _SIG = re.compile(r"([?&]sig=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._SIG.sub(r"\1********", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


@pytest.fixture(autouse=True, scope="module")
def _mask_sas_in_client_debug_log() -> Iterator[None]:
    # Blob transfers (the plugin's, and this module's own) go through azure-storage-blob over
    # requests/urllib3, and urllib3 logs each request line, SAS included, at DEBUG; azure-core's
    # logging policy redacts it. A notebook with DEBUG logging on would need the same mask.
    logger, mask = logging.getLogger("urllib3.connectionpool"), _MaskSasSignature()
    logger.addFilter(mask)
    yield
    logger.removeFilter(mask)


@pytest.fixture(scope="module")
def started(sandbox_factory: Any) -> tuple[Any, float]:
    # Two tenants so a token of the wrong one exists; one backend so workspaces share a server and
    # the isolation between them is mlflow's, not separate processes'.
    t0 = time.monotonic()
    sb = sandbox_factory(subscriptions=2, workspaces_per_subscription=2, tenants=2, max_backends=1)
    return sb, time.monotonic() - t0


@pytest.fixture(scope="module")
def sb(started: tuple[Any, float]) -> Any:
    return started[0]


@pytest.fixture(scope="module")
def ws_a(sb: Any) -> Any:
    return sb.workspaces[0]


@pytest.fixture(scope="module")
def ws_b(sb: Any) -> Any:
    # Same subscription and tenant as A, so one credential reaches both.
    return sb.workspaces[1]


@pytest.fixture(scope="module")
def reader(sb: Any, ws_a: Any) -> Any:
    identity = sb.add_service_principal("sandbox-reader", role=None)
    sb.assign_role(identity, "Reader", ws_a.arm_id)
    return identity


@pytest.fixture(autouse=True)
def mlflow_state(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Leave mlflow's process-wide state (URI, active run, experiment, env) as the test found it."""
    import mlflow
    from mlflow.tracking import fluent

    for name in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
        "AZUREML_CURRENT_CLOUD",
        "ARM_CLOUD_METADATA_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    if "sb" in request.fixturenames:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", request.getfixturevalue("sb").ca_bundle)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    forget_mlflow_stores()
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    forget_mlflow_stores()


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test expects an error status: don't spend time retrying it."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def echo_model() -> Any:
    """A pyfunc model that answers its input (mlflow.pyfunc is imported only when a test needs it)."""
    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: list[str]) -> list[str]:
            return model_input

    return Echo()


# -- what must hold ----------------------------------------------------------------------------
@MLFLOW_MODEL_WARNINGS
def test_plugin_logs_reads_back_and_it_lands_in_the_backend_only(
    sb: Any, ws_a: Any, ws_b: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    connect(sb, ws_a, credential(sb), monkeypatch)
    text = "hello from the sandbox\nsecond line ü\n"
    model_name = f"sandbox-model-{uuid.uuid4().hex[:6]}"
    experiment = mlflow.set_experiment("roundtrip")
    sb.clear_requests()
    with mlflow.start_run(run_name="roundtrip-run") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"layers": 3, "optimizer": "adam"})
        mlflow.log_metric("loss", 0.9, step=0)
        mlflow.log_metric("loss", 0.4, step=1)
        mlflow.log_metric("accuracy", 0.75, step=1, synchronous=False).wait()
        mlflow.log_text(text, "notes/hello.txt")
        # MLflow 3's log_model starts with the logged-model API, which Azure ML answers with a 404
        # and an empty body (Azure/azure-sdk-for-python#44896) ...
        with pytest.raises(MlflowException) as refused:
            mlflow.pyfunc.log_model(name="model", python_model=echo_model(), pip_requirements=["mlflow"])
        assert "/api/2.0/mlflow/logged-models failed with error code 404 != 200. Response body: ''" in str(
            refused.value
        )
        # ... so Microsoft's own examples save the model and log it as run artifacts instead
        # (Azure/azureml-examples#3846).
        saved = tmp_path / "saved-model"
        mlflow.pyfunc.save_model(str(saved), python_model=echo_model(), pip_requirements=["mlflow"])
        mlflow.log_artifacts(str(saved), "model")
    run_id = run.info.run_id
    # mlflow 3's register_model("runs:/...") then lists the run's artifacts, and the plugin lists
    # them from the run's root, so it never sees model/MLmodel and asks the logged-model API, which
    # refuses. What mlflow 2 sent works: a version whose source is the run's artifact path.
    with pytest.raises(MlflowException, match="logged-models/search failed with error code 404"):
        mlflow.register_model(f"runs:/{run_id}/model", model_name)
    version = mlflow.MlflowClient().create_model_version(model_name, f"{run.info.artifact_uri}/model", run_id)

    assert run.info.artifact_uri == f"azureml://experiments/{experiment.experiment_id}/runs/{run_id}/artifacts"
    assert any(r.path.endswith("/runs/log-batch-async") and r.status == 200 for r in sb.requests)
    logged_model_calls = [r for r in sb.requests if "/logged-models" in r.path]
    assert {(r.status, r.fidelity) for r in logged_model_calls} == {(404, "refused")}
    assert not any("/LoggedModel/" in r.path or r.path.endswith("/runs/outputs") for r in sb.requests)
    # Read back through the plugin.
    client = mlflow.MlflowClient()
    got = client.get_run(run_id)
    assert got.data.params == {"alpha": "0.5", "layers": "3", "optimizer": "adam"}
    assert got.data.metrics == {"loss": 0.4, "accuracy": 0.75}
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.9, 0.4]
    # mlflow 3's MlflowClient.list_artifacts also asks the logged-model API for a model of that
    # name, which Azure refuses; the run's artifact location lists directly.
    with pytest.raises(MlflowException, match="logged-models/search failed with error code 404"):
        client.list_artifacts(run_id, "notes")
    listed = get_artifact_repository(run.info.artifact_uri).list_artifacts("notes")
    assert [a.path for a in listed] == ["notes/hello.txt"]
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="notes/hello.txt", dst_path=str(tmp_path))
    assert Path(local).read_bytes() == text.encode()
    assert version.version == "1"
    assert version.source == f"{run.info.artifact_uri}/model"
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/1")
    assert loaded.predict(["ping"]) == ["ping"]

    # In the backing server of A...
    a = backend(sb, ws_a)
    landed = a.get_run(run_id)
    assert landed.data.params == got.data.params and landed.data.metrics == got.data.metrics
    assert landed.info.artifact_uri.startswith("mlflow-artifacts:/workspaces/")
    assert "notes/hello.txt" in [f.path for f in a.list_artifacts(run_id, "notes")]
    copy = a.download_artifacts(run_id, "notes/hello.txt", str(tmp_path / "backend"))
    assert Path(copy).read_bytes() == text.encode()
    assert a.get_model_version(model_name, "1").run_id == run_id
    # ... and not in B's, which shares that server.
    b = backend(sb, ws_b)
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        b.get_run(run_id)
    assert b.get_experiment_by_name("roundtrip") is None
    assert b.search_registered_models(filter_string=f"name = '{model_name}'") == []


@MLFLOW_MODEL_WARNINGS
@pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")  # azure-ai-ml's schemas
def test_mlclient_registers_its_credential_and_the_plugin_logs_through_it(
    sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from azure.ai.ml import MLClient
    from azureml.mlflow._common._cloud.cloud import KNOWN_CLOUDS

    # One cloud name per sandbox: azure-ai-ml never replaces a cloud it already knows by name.
    cloud_name = f"AzureSandbox{sb.base_url.rsplit(':', 1)[1]}"
    arm = sb.arm_url
    sb.clear_requests()
    ml_client = MLClient(
        credential(sb),
        ws_a.subscription_id,
        ws_a.resource_group,
        ws_a.name,
        enable_telemetry=False,
        cloud=cloud_name,
        cloud_metadata={
            "azure_portal": arm,
            "resource_manager": arm,
            "active_directory": arm,
            "aml_resource_id": arm,
            "storage_endpoint": sb.storage_suffix,
            "registry_discovery_endpoint": arm,
        },
    )
    assert os.environ["AZUREML_CURRENT_CLOUD"] == cloud_name  # MLClient's doing; the fixture undoes it
    tracking_uri = ml_client.workspaces.get(ws_a.name).mlflow_tracking_uri
    assert tracking_uri == ws_a.tracking_uri.replace("/mlflow/v1.0/", "/mlflow/v2.0/")
    monkeypatch.setitem(KNOWN_CLOUDS, cloud_name, plugin_cloud(sb, cloud_name))
    forget_mlflow_stores()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("via-mlclient")
    with mlflow.start_run() as run:
        mlflow.log_metric("epochs", 3)
        mlflow.log_text("logged via MLClient's credential", "mlclient.txt")
    landed = backend(sb, ws_a).get_run(run.info.run_id)
    assert landed.data.metrics == {"epochs": 3.0}
    assert [f.path for f in backend(sb, ws_a).list_artifacts(run.info.run_id)] == ["mlclient.txt"]
    names = {r.identity_name for r in sb.requests if r.endpoint in ("mlflow", "history")}
    assert names == {"sandbox-sp"}


@MLFLOW_MODEL_WARNINGS
def test_a_run_of_workspace_a_is_not_found_through_workspace_b(
    sb: Any, ws_a: Any, ws_b: Any, monkeypatch: pytest.MonkeyPatch, no_retries: None
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    assert [s.running for s in sb.mlflow.backend_status()] == [True]  # one server for both
    cred = credential(sb)
    connect(sb, ws_a, cred, monkeypatch)
    exp_id = mlflow.create_experiment("only-in-a")
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_text("a's artifact", "a.txt")
    connect(sb, ws_b, cred, monkeypatch)
    client = mlflow.MlflowClient()
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_experiment(exp_id)
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_run(run.info.run_id)
    assert client.get_experiment_by_name("only-in-a") is None
    with pytest.raises(MlflowException):
        client.list_artifacts(run.info.run_id)
    # The run-history API of B does not serve A's run either, whatever the path says.
    arm_id_b = ws_b.arm_id
    for suffix, params in (("", {}), ("/contentinfo", {"path": "a.txt"})):
        url = f"{sb.base_url}/history/v1.0{arm_id_b}/experiments/{exp_id}/runs/{run.info.run_id}/artifacts{suffix}"
        answer = requests.get(url, params=params, headers=bearer(sb, cred), verify=sb.ca_bundle, timeout=30)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "RunNotFound"
    blob_paths = [r.path for r in sb.requests if r.endpoint == "blob"]
    assert blob_paths and all("?" not in p and "sig" not in p for p in blob_paths)


@pytest.mark.parametrize("who", ["norole", "reader"])
def test_an_identity_without_the_role_gets_403_naming_the_action(
    sb: Any, ws_a: Any, reader: Any, who: str, monkeypatch: pytest.MonkeyPatch, no_retries: None
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    # Something to read, written by the data scientist.
    connect(sb, ws_a, credential(sb), monkeypatch)
    exp_id = mlflow.set_experiment("readable").experiment_id
    identity = sb.norole_sp if who == "norole" else reader
    connect(sb, ws_a, credential(sb, identity), monkeypatch)
    client = mlflow.MlflowClient()
    provider = "Microsoft.MachineLearningServices/workspaces"
    if who == "norole":
        with pytest.raises(MlflowException, match="PERMISSION_DENIED") as denied:
            client.get_experiment_by_name("readable")
        assert f"'{provider}/experiments/read'" in str(denied.value)
        assert f"over scope '{ws_a.arm_id}'" in str(denied.value)
    else:
        assert client.get_experiment_by_name("readable").experiment_id == exp_id
        assert client.search_runs([exp_id]) == []
    with pytest.raises(MlflowException, match="PERMISSION_DENIED") as denied:
        client.create_run(exp_id)
    assert f"'{provider}/jobs/write'" in str(denied.value)
    last = [r for r in sb.requests if r.endpoint == "mlflow"][-1]
    assert (last.status, last.identity_name) == (403, identity.name)


def test_a_token_of_another_tenant_gets_401_and_an_unknown_workspace_404(
    sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch, no_retries: None
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    connect(sb, ws_a, credential(sb, tenant=sb.tenants[1].tenant_id), monkeypatch)
    with pytest.raises(MlflowException, match="InvalidAuthenticationTokenTenant"):
        mlflow.MlflowClient().search_experiments()
    assert [r.status for r in sb.requests if r.endpoint == "mlflow"][-1] == 401

    ghost = type(ws_a)(**{**ws_a.__dict__, "name": "no-such-workspace"})
    connect(sb, ghost, credential(sb), monkeypatch)
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST") as missing:
        mlflow.MlflowClient().search_experiments()
    assert "no-such-workspace" in str(missing.value)
    # mlflow's own workspace API is the sandbox's plumbing, not Azure's: not served.
    answer = requests.get(
        f"{sb.base_url}/mlflow/v2.0{ws_a.arm_id}/api/3.0/mlflow/workspaces",
        headers=bearer(sb, credential(sb)),
        verify=sb.ca_bundle,
        timeout=30,
    )
    assert (answer.status_code, answer.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")


@MLFLOW_MODEL_WARNINGS
def test_blob_endpoint_speaks_what_the_storage_sdk_expects(sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobClient

    cred = credential(sb)
    connect(sb, ws_a, cred, monkeypatch)
    mlflow.set_experiment("blobs")
    with mlflow.start_run() as run:
        pass
    base = (
        f"{sb.base_url}/history/v1.0{ws_a.arm_id}/experiments/{run.info.experiment_id}/runs/{run.info.run_id}/artifacts"
    )
    paths = ["big/data.bin", "empty.txt"]
    answer = requests.post(
        base + "/batch/metadata",
        json={"paths": [{"path": p} for p in paths]},
        headers=bearer(sb, cred),
        verify=sb.ca_bundle,
        timeout=30,
    )
    assert answer.status_code == 200 and answer.json()["errors"] == {}
    uris = {p: answer.json()["artifactContentInformation"][p]["contentUri"] for p in paths}
    # Small limits make the SDK stage blocks and fetch in ranges with If-Match, as it does past 64 MiB.
    limits = {
        "max_single_put_size": 4096,
        "max_block_size": 4096,
        "max_single_get_size": 4096,
        "max_chunk_get_size": 4096,
    }
    data = os.urandom(5 * 4096 + 123)
    BlobClient.from_blob_url(uris["big/data.bin"], **limits).upload_blob(data)
    assert BlobClient.from_blob_url(uris["big/data.bin"], **limits).download_blob().readall() == data
    with pytest.raises(ResourceExistsError):
        BlobClient.from_blob_url(uris["big/data.bin"]).upload_blob(b"again")
    BlobClient.from_blob_url(uris["empty.txt"]).upload_blob(b"")
    assert BlobClient.from_blob_url(uris["empty.txt"]).download_blob().readall() == b""
    assert sorted(a.path for a in backend(sb, ws_a).list_artifacts(run.info.run_id, "big")) == ["big/data.bin"]
    # The SAS is checked: a signature for one blob does not open another, nor does a forged one.
    url, _, query = uris["empty.txt"].partition("?")
    for target in (url.replace("empty.txt", "big/data.bin") + "?" + query, url + "?" + query.replace("sig=", "sig=x")):
        refused = requests.get(target, verify=sb.ca_bundle, timeout=30)
        assert refused.status_code == 403 and refused.headers["x-ms-error-code"] == "AuthenticationFailed"


@MLFLOW_MODEL_WARNINGS
def test_a_local_model_directory_registers_through_the_artifact_api(
    sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow

    connect(sb, ws_a, credential(sb), monkeypatch)
    saved = tmp_path / "echo"
    mlflow.pyfunc.save_model(str(saved), python_model=echo_model(), pip_requirements=["mlflow"])
    client = mlflow.MlflowClient()
    name = f"local-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    # The plugin uploads a file:// source to "LocalUpload" and registers the azureml:// URI of it.
    version = client.create_model_version(name, saved.as_uri())
    assert version.source.startswith("azureml://artifacts/LocalUpload/") and version.source.endswith("/echo")
    assert mlflow.pyfunc.load_model(f"models:/{name}/{version.version}").predict(["pong"]) == ["pong"]
    landed = backend(sb, ws_a).get_model_version(name, version.version)
    assert landed.source.startswith("mlflow-artifacts:/workspaces/")
    files = mlflow.artifacts.download_artifacts(
        landed.source, dst_path=str(tmp_path / "from-backend"), tracking_uri=sb.backend_tracking_uri(ws_a)
    )
    assert (Path(files) / "MLmodel").read_bytes() == (saved / "MLmodel").read_bytes()


@pytest.mark.parametrize(
    ("method", "api", "action"),
    [
        ("GET", "2.0/mlflow/experiments/get-by-name", "experiments/read"),
        ("POST", "2.0/mlflow/experiments/search", "experiments/read"),
        ("POST", "2.0/mlflow/experiments/create", "experiments/write"),
        ("POST", "2.0/mlflow/experiments/delete", "experiments/delete"),
        ("POST", "2.0/mlflow/runs/search", "jobs/read"),
        ("POST", "2.0/mlflow/runs/log-batch", "jobs/write"),
        ("POST", "2.0/mlflow/runs/delete", "jobs/write"),
        ("POST", "2.0/preview/mlflow/runs/log-batch-async", "jobs/write"),
        ("GET", "2.0/preview/mlflow/runs/get-run-data-status", "jobs/read"),
        ("POST", "2.0/mlflow/logged-models/search", "jobs/read"),
        ("PATCH", "2.0/mlflow/logged-models/m-1", "jobs/write"),
        ("GET", "2.0/mlflow/registered-models/get", "models/versions/read"),
        ("POST", "2.0/mlflow/model-versions/create", "models/versions/write"),
        ("DELETE", "2.0/mlflow/registered-models/delete", "models/versions/delete"),
        ("DELETE", "2.0/mlflow/registered-models/alias", "models/versions/write"),
    ],
)
def test_each_mlflow_call_needs_the_azure_action_of_its_kind(method: str, api: str, action: str) -> None:
    from jupyter_amlflow.sandbox import mlflow_action

    assert mlflow_action(method, api) == f"Microsoft.MachineLearningServices/workspaces/{action}"


@MLFLOW_MODEL_WARNINGS
def test_run_artifact_listing_pages_by_next_link(
    sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    connect(sb, ws_a, credential(sb), monkeypatch)
    monkeypatch.setattr(sb.mlflow, "artifact_page_size", 2)
    for i in range(5):
        (tmp_path / f"f{i}.txt").write_text(str(i))
    mlflow.set_experiment("paging")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(tmp_path), "many")
    # Through the run's artifact location: MlflowClient.list_artifacts also asks the logged-model
    # API, which Azure refuses (see the round trip above).
    listed = get_artifact_repository(run.info.artifact_uri).list_artifacts("many")
    assert [a.path for a in listed] == [f"many/f{i}.txt" for i in range(5)]


@MLFLOW_MODEL_WARNINGS
def test_studio_page_shows_a_logged_run(sb: Any, ws_a: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    connect(sb, ws_a, credential(sb), monkeypatch)
    mlflow.set_experiment("studio")
    with mlflow.start_run(run_name="<b>shown</b>") as run:
        mlflow.log_param("lr", "0.01")
        mlflow.log_metric("rmse", 0.125)
        mlflow.log_text("x", "plots/curve.txt")
    wsid = f"/subscriptions/{ws_a.subscription_id}/resourcegroups/{ws_a.resource_group}/workspaces/{ws_a.name}"
    page = requests.get(
        f"{sb.studio_url}/runs/{run.info.run_id}",
        params={"wsid": wsid, "tid": ws_a.tenant_id},
        verify=sb.ca_bundle,
        timeout=30,
    )
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "<td>rmse</td><td>0.125</td>" in page.text
    assert "<td>lr</td><td>0.01</td>" in page.text
    assert "<li>plots/curve.txt</li>" in page.text
    assert "&lt;b&gt;shown&lt;/b&gt;" in page.text and "<b>shown</b>" not in page.text
    missing = requests.get(
        f"{sb.studio_url}/runs/{uuid.uuid4().hex}", params={"wsid": wsid}, verify=sb.ca_bundle, timeout=30
    )
    assert missing.status_code == 404


def test_start_returns_with_the_first_backend_already_healthy(started: tuple[Any, float]) -> None:
    # How long that takes against a plain `mlflow server` start is benchmarks/sandbox_startup.py.
    sb, _ = started
    (first,) = sb.mlflow.backend_status()
    assert first.startup_seconds is not None and first.running


# -- lazy backends -----------------------------------------------------------------------------
@MLFLOW_MODEL_WARNINGS
def test_backends_start_on_first_mlflow_call_at_most_max_and_stop_with_the_sandbox(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azureml.mlflow._common._cloud.cloud import KNOWN_CLOUDS
    from azureml.mlflow._internal.service_context_loader import _AzureMLServiceContextLoader
    from azureml.mlflow._internal.utils import ServiceContext
    from mlflow import MlflowClient

    lazy = sandbox_factory(subscriptions=1, workspaces_per_subscription=5, max_backends=2, prestart_backend=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", lazy.ca_bundle)
    cred = credential(lazy)
    workspaces = lazy.workspaces
    # Discovery and everything that is not an MLflow call start nothing.
    listed = requests.get(
        f"{lazy.arm_url}subscriptions/{workspaces[0].subscription_id}/providers/Microsoft.MachineLearningServices/workspaces",
        params={"api-version": "2024-10-01-preview"},
        headers=bearer(lazy, cred),
        verify=lazy.ca_bundle,
        timeout=30,
    )
    assert len(listed.json()["value"]) == 5
    uris = [lazy.backend_tracking_uri(w) for w in workspaces]
    assert requests.get(lazy.studio_url, verify=lazy.ca_bundle, timeout=30).status_code == 200
    assert mlflow_servers(lazy) == {}

    cloud = plugin_cloud(lazy)
    monkeypatch.setitem(KNOWN_CLOUDS, lazy.cloud, cloud)
    clients = []
    for w in workspaces:
        _AzureMLServiceContextLoader.add_service_context(
            w.tracking_uri,
            ServiceContext(
                host_url=lazy.base_url,
                subscription_id=w.subscription_id,
                resource_group_name=w.resource_group,
                workspace_name=w.name,
                auth=cred,
                cloud=cloud,
            ),
        )
        clients.append(MlflowClient(tracking_uri=w.tracking_uri))
    experiment_ids = {0: clients[0].create_experiment("lazy-0")}
    assert len(mlflow_servers(lazy)) == 1
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            experiment_ids[i] = clients[i].create_experiment(f"lazy-{i}")
        except BaseException as exc:  # collected and re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    servers = mlflow_servers(lazy)
    assert len(servers) == 2
    assert sorted(s.workspaces for s in lazy.mlflow.backend_status()) == [2, 3]
    for i, uri in enumerate(uris):
        names = [e.name for e in MlflowClient(tracking_uri=uri).search_experiments()]
        assert names == [f"lazy-{i}"]

    root = lazy.root
    lazy.stop()
    assert process_groups_alive(set(servers.values())) == []
    assert not root.exists()
