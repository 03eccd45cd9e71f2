"""connect(): references, tracking and registry URIs, switching, atomicity, clouds (against the sandbox)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import answer_device_code, backend_runs, mlflow_state, write_config

import jupyter_amlflow
from jupyter_amlflow.connect_request import ConnectRequest
from jupyter_amlflow.connection import Session
from jupyter_amlflow.errors import (
    ActiveRunError,
    AlreadyConfigured,
    AmlflowError,
    ConnectTimeout,
    NotFound,
    PermissionDenied,
    SignInError,
    WorkspaceReferenceError,
)


def session(**kwargs: Any) -> Session:
    return Session(timeout=kwargs.pop("timeout", 20), auth=kwargs.pop("auth", ["env"]), **kwargs)


def log_something(tag: str) -> str:
    import mlflow

    with mlflow.start_run(run_name=tag) as run:
        mlflow.log_param("p", tag)
        mlflow.log_metric("m", 1.5)
        mlflow.log_text(f"hello {tag}", "notes/hello.txt")
    return run.info.run_id


def test_connect_by_names_logs_to_the_workspace(sp_env: Any) -> None:
    sb = sp_env
    ws = sb.workspaces[0]
    conn = session().connect(
        ConnectRequest(
            subscription=ws.subscription_id, resource_group=ws.resource_group, workspace=ws.name, experiment="by-names"
        )
    )
    import mlflow

    assert mlflow.get_tracking_uri() == ws.tracking_uri
    assert mlflow.get_registry_uri() == ws.tracking_uri
    assert conn.workspace.location == ws.location and conn.cloud.name == sb.cloud
    assert conn.identity.name and conn.method == "env"
    run_id = log_something("by-names")
    runs = backend_runs(sb, ws, "by-names")
    assert [r.info.run_id for r in runs] == [run_id]
    assert runs[0].data.params == {"p": "by-names"} and runs[0].data.metrics == {"m": 1.5}
    # The artifact round-trips through the plugin's run-history and blob calls.
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="notes/hello.txt")
    assert Path(local).read_text() == "hello by-names"
    assert conn.run_url(run_id).startswith(sb.studio_url + "/runs/" + run_id)
    conn.disconnect()


@pytest.mark.parametrize("form", ["arm_id", "tracking_uri", "config_json"])
def test_connect_by_reference(sp_env: Any, form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = sp_env
    ws = sb.workspaces[1]
    if form == "arm_id":
        reference: str | None = ws.arm_id
    elif form == "tracking_uri":
        reference = ws.tracking_uri
    else:
        write_config(tmp_path, ws)
        monkeypatch.chdir(tmp_path)
        reference = None
    conn = session().connect(ConnectRequest(reference, experiment=f"by-{form}"))
    assert conn.workspace.name == ws.name
    run_id = log_something(form)
    assert run_id in [r.info.run_id for r in backend_runs(sb, ws, f"by-{form}")]
    conn.disconnect()


def test_config_json_found_in_dot_azureml_of_a_parent(
    sp_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sp_env
    ws = sb.workspaces[0]
    (tmp_path / ".azureml").mkdir()
    write_config(tmp_path / ".azureml", ws)
    nested = tmp_path / "notebooks" / "deep"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    conn = session().connect(ConnectRequest(experiment="from-parent"))
    assert conn.workspace.name == ws.name
    conn.disconnect()


def test_disconnect_restores_what_was_there(sp_env: Any, tmp_path: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"file://{tmp_path}/mlruns")
    before = mlflow_state()
    s = session()
    s.connect(ConnectRequest(sp_env.workspaces[0].arm_id, experiment="first"))
    s.connect(ConnectRequest(sp_env.workspaces[1].arm_id, experiment="second"))
    assert mlflow.get_tracking_uri() == sp_env.workspaces[1].tracking_uri
    s.disconnect()
    assert mlflow_state() == before


def test_switching_workspace_sends_new_runs_to_the_second_only(sp_env: Any) -> None:
    sb = sp_env
    a, b = sb.workspaces[0], sb.workspaces[1]
    s = session()
    s.connect(ConnectRequest(a.arm_id, experiment="switch"))
    first = log_something("in-a")
    s.connect(ConnectRequest(b.arm_id, experiment="switch"))
    second = log_something("in-b")
    a_runs = {r.info.run_id for r in backend_runs(sb, a, "switch")}
    b_runs = {r.info.run_id for r in backend_runs(sb, b, "switch")}
    assert first in a_runs and second in b_runs
    assert second not in a_runs and first not in b_runs
    s.disconnect()


def test_switching_identity_uses_the_new_identity(sp_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = sp_env
    ws = sb.workspaces[0]
    s = session()
    s.connect(ConnectRequest(ws.arm_id, experiment="identity"))
    log_something("as-sp")
    other = sb.add_service_principal("sandbox-sp-second")
    monkeypatch.setenv("AZURE_CLIENT_ID", other.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", other.client_secret)
    s2 = session()
    conn = s2.connect(ConnectRequest(ws.arm_id, experiment="identity"))
    sb.clear_requests()
    log_something("as-second")
    mlflow_calls = [r for r in sb.requests if r.endpoint == "mlflow"]
    assert mlflow_calls and {r.identity_name for r in mlflow_calls} == {"sandbox-sp-second"}
    assert conn.identity.name != s.connection.identity.name if s.connection else True
    s2.disconnect()
    s.disconnect()


def test_a_workspace_used_through_the_plugin_first_logs_as_the_connected_identity(
    sp_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mlflow caches one store per URI, built with the credential the plugin held then.

    Used through the plugin alone first (its own credential, the service principal), the workspace
    must see the connected identity's calls after connect, and the plugin's own again after disconnect.
    """
    import mlflow
    from azure.identity import ClientSecretCredential
    from azureml.mlflow._common._cloud.cloud import KNOWN_CLOUDS
    from azureml.mlflow._internal.service_context_loader import _AzureMLServiceContextLoader
    from azureml.mlflow._internal.utils import ServiceContext

    from jupyter_amlflow.tracking import plugin_cloud_for

    sb = sp_env
    ws = sb.add_workspace(sb.subscriptions[0], "rg-ml-1", "mlw-plugin-first")
    # The official path's minimal snippet: the service principal's credential registered with the plugin.
    cloud = plugin_cloud_for(session().resolve_cloud())
    monkeypatch.setitem(KNOWN_CLOUDS, sb.cloud, cloud)
    sp = ClientSecretCredential(
        sb.tenant_id, sb.sp.client_id, sb.sp.client_secret, authority=sb.authority_url, disable_instance_discovery=True
    )
    context = ServiceContext(
        host_url=sb.base_url,
        subscription_id=ws.subscription_id,
        resource_group_name=ws.resource_group,
        workspace_name=ws.name,
        auth=sp,
        cloud=cloud,
    )
    _AzureMLServiceContextLoader.add_service_context(ws.tracking_uri, context)
    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_experiment("plugin-first")
    log_something("as-plugin")
    other = sb.add_service_principal("sandbox-sp-connected")
    monkeypatch.setenv("AZURE_CLIENT_ID", other.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", other.client_secret)
    s = session()
    s.connect(ConnectRequest(ws.arm_id, experiment="plugin-first"))
    sb.clear_requests()
    log_something("as-connected")
    assert {r.identity_name for r in sb.requests if r.endpoint == "mlflow"} == {"sandbox-sp-connected"}
    s.disconnect()
    mlflow.set_tracking_uri(ws.tracking_uri)
    sb.clear_requests()
    log_something("as-plugin-again")
    assert {r.identity_name for r in sb.requests if r.endpoint == "mlflow"} == {"sandbox-sp"}


def test_experiment_from_environment_is_honoured(sp_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    conn = session().connect(ConnectRequest(sp_env.workspaces[0].arm_id))
    assert conn.experiment.name == "from-env"
    conn.disconnect()
    assert os.environ["MLFLOW_EXPERIMENT_NAME"] == "from-env"


def test_private_link_workspace_uses_its_own_host(sp_env: Any) -> None:
    sb = sp_env
    sub = sb.subscriptions[0]
    ws = next((w for w in sb.workspaces if w.name == "mlw-private"), None) or sb.add_workspace(
        sub, "rg-ml-1", "mlw-private", "westeurope", private_link=True
    )
    conn = session().connect(ConnectRequest(ws.arm_id, experiment="private"))
    assert conn.tracking_uri.startswith(f"azureml://localhost:{sb.base_url.rsplit(':', 1)[1]}/")
    run_id = log_something("private")
    assert run_id in [r.info.run_id for r in backend_runs(sb, ws, "private")]
    conn.disconnect()


def test_active_run_blocks_connect_and_disconnect(sp_env: Any) -> None:
    import mlflow

    s = session()
    s.connect(ConnectRequest(sp_env.workspaces[0].arm_id, experiment="active"))
    run = mlflow.start_run()
    try:
        with pytest.raises(ActiveRunError, match="End it first"):
            s.connect(ConnectRequest(sp_env.workspaces[1].arm_id))
        with pytest.raises(ActiveRunError):
            s.disconnect()
    finally:
        mlflow.end_run()
    assert run.info.run_id
    s.disconnect()


def test_platform_tracking_uri_is_not_clobbered(sp_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    preset = sp_env.workspaces[1].tracking_uri
    # An Azure ML compute instance: the platform set MLFLOW_TRACKING_URI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", preset)
    monkeypatch.setenv("CI_NAME", "my-compute-instance")
    monkeypatch.setenv("CI_WORKSPACE", sp_env.workspaces[1].name)
    monkeypatch.setenv("APPSETTING_WEBSITE_SITE_NAME", "AMLComputeInstance")
    s = session()
    assert s.platform.preconfigured_tracking_uri == preset
    with pytest.raises(AlreadyConfigured, match="--force"):
        s.connect(ConnectRequest(sp_env.workspaces[0].arm_id))
    status = repr(s.status())
    assert preset in status and "platform" in status
    conn = s.connect(ConnectRequest(sp_env.workspaces[0].arm_id, force=True, experiment="forced"))
    assert conn.workspace.name == sp_env.workspaces[0].name
    s.disconnect()
    assert os.environ["MLFLOW_TRACKING_URI"] == preset


def test_connect_module_function_and_lazy_package(sp_env: Any) -> None:
    conn = jupyter_amlflow.connect(sp_env.workspaces[0].arm_id, auth=["env"], experiment="module-level")
    assert isinstance(conn, jupyter_amlflow.Connection)
    assert "Connected to" in repr(conn) and "<table>" in conn._repr_html_()
    conn.disconnect()


def test_device_code_connect_reports_the_user(sp_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = sp_env
    for k in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(k)
    shown: list[Any] = []

    class Renderer:
        def show(self, prompt: Any) -> None:
            shown.append(prompt)

        def finish(self, outcome: str, detail: str = "") -> None:
            shown.append(outcome)

    thread = answer_device_code(sb, "approve", sb.bob.username)
    conn = session(auth=["device-code"]).connect(ConnectRequest(sb.workspaces[0].arm_id, experiment="device"), renderer=Renderer())
    thread.join(10)
    assert conn.identity.name == sb.bob.username and conn.method == "device-code"
    assert shown[0].user_code == thread.result["code"] and shown[0].verification_uri.endswith("/devicelogin")
    conn.disconnect()


# -- atomicity ------------------------------------------------------------------------------------
FAILURES = ["bad-name", "forbidden", "network", "declined", "timeout", "mlflow-forbidden"]


@pytest.mark.parametrize("failure", FAILURES)
def test_failed_connect_changes_nothing(
    sp_env: Any, failure: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow

    sb = sp_env
    ws = sb.workspaces[0]
    s = session(timeout=2)
    s.connect(ConnectRequest(sb.workspaces[1].arm_id, experiment="before-failure"))
    mlflow.set_tracking_uri(f"file://{tmp_path}/mlruns")  # something the user set by hand, too
    before = mlflow_state()
    kwargs: dict[str, Any] = {"experiment": "after-failure"}
    reference = ws.arm_id
    expected: type[AmlflowError] = AmlflowError
    if failure == "bad-name":
        reference = ws.arm_id.replace(ws.name, "no-such-workspace")
        expected = NotFound
    elif failure == "forbidden":
        monkeypatch.setenv("AZURE_CLIENT_ID", sb.norole_sp.client_id)
        monkeypatch.setenv("AZURE_CLIENT_SECRET", sb.norole_sp.client_secret)
        s.forget_sign_ins()
        expected = PermissionDenied
    elif failure == "network":
        sb.inject("workspace", drop=True)
    elif failure == "declined":
        for k in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
            monkeypatch.delenv(k)
        kwargs["auth"] = ["device-code"]
        answer_device_code(sb, "decline")
        expected = SignInError
    elif failure == "timeout":
        sb.inject("workspace", stall=6)
        expected = ConnectTimeout
    elif failure == "mlflow-forbidden":
        reader = sb.add_service_principal(f"reader-{time.time_ns()}", role="Reader")
        monkeypatch.setenv("AZURE_CLIENT_ID", reader.client_id)
        monkeypatch.setenv("AZURE_CLIENT_SECRET", reader.client_secret)
        s.forget_sign_ins()
        kwargs["experiment"] = f"new-experiment-{time.time_ns()}"
        expected = PermissionDenied
    started = time.monotonic()
    try:
        with pytest.raises(expected) as err:
            s.connect(ConnectRequest(reference, **kwargs))
    finally:
        sb.clear_faults()
    elapsed = time.monotonic() - started
    assert mlflow_state() == before
    assert s.connection is not None and s.connection.workspace.name == sb.workspaces[1].name
    message = str(err.value)
    assert "\n" not in message and len(message) < 600
    if failure == "timeout":
        assert elapsed < 2 + 1.5 and "GET workspace" in message
    if failure == "forbidden":
        assert "Microsoft.MachineLearningServices/workspaces/read" in message
    if failure == "mlflow-forbidden":
        assert "workspaces/experiments/*" in message and "workspaces/jobs/*" in message
    mlflow.set_tracking_uri(before["tracking_uri"])
    s.disconnect()


def test_bad_reference_fails_before_any_request(sp_env: Any) -> None:
    sb = sp_env
    sb.clear_requests()
    with pytest.raises(WorkspaceReferenceError):
        session().connect(
            ConnectRequest(
                "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"
            )
        )
    with pytest.raises(WorkspaceReferenceError):
        session().connect(ConnectRequest(subscription=sb.subscriptions[0].subscription_id, workspace="w-only"))
    assert sb.requests == []


def test_unknown_cloud_lists_the_known_ones(sp_env: Any) -> None:
    from jupyter_amlflow.errors import CloudError

    with pytest.raises(CloudError) as err:
        session().connect(ConnectRequest(sp_env.workspaces[0].arm_id, cloud="AzureMoon"))
    message = str(err.value)
    assert "AzureCloud" in message and "AzureChinaCloud" in message and "AzureUSGovernment" in message


def test_cloud_names_are_case_insensitive(sp_env: Any) -> None:
    conn = session().connect(ConnectRequest(sp_env.workspaces[0].arm_id, cloud=sp_env.cloud.lower(), experiment="case"))
    assert conn.cloud.name == sp_env.cloud
    conn.disconnect()
