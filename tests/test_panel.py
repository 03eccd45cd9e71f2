"""The workspace panel, driven only through its public widgets (``.value``, ``.click()``), against the sandbox.

In-process tests use the panel as a notebook callback would; the last one runs a real kernel to
show discovery of 500 workspaces leaves the kernel answering cells.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import answer_device_code, backend_client, backend_runs, mlflow_state

from jupyter_amlflow.connection import Session
from jupyter_amlflow.panel import Choices, ChoiceStore, WorkspacePanel, default_choices_path

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def wait_until(
    condition: Callable[[], Any], what: str, panel: WorkspacePanel | None = None, timeout: float = 60
) -> Any:
    """Poll ``condition`` until it is truthy; on timeout say what the panel showed."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            shown = f" (status: {panel.status.value!r}; progress: {panel.progress.value!r})" if panel else ""
            raise AssertionError(f"timed out waiting for {what}{shown}")
        time.sleep(0.02)


def listed(panel: WorkspacePanel) -> bool:
    """Whether discovery finished (the progress line then carries the count)."""
    return "data-count" in panel.progress.value


def status_state(panel: WorkspacePanel) -> str:
    value = panel.status.value
    marker = 'data-state="'
    return value[value.index(marker) + len(marker) :].split('"', 1)[0] if marker in value else ""


def settled(panel: WorkspacePanel) -> bool:
    return status_state(panel) in ("connected", "error")


def option_for(widget: Any, label: str) -> Any:
    """The value of the option shown as ``label`` (what a person clicks on)."""
    values = [value for text, value in widget.options if text == label]
    assert values, f"no option {label!r} in {[text for text, _ in widget.options]}"
    return values[0]


def label_of(ws: Any) -> str:
    return f"{ws.name} — {ws.resource_group} — {ws.location}"


@pytest.fixture
def make_panel(tmp_path: Path) -> Iterator[Callable[..., WorkspacePanel]]:
    """Panels on a fresh session each, remembering choices under ``tmp_path``; closed (and disconnected) after."""
    made: list[WorkspacePanel] = []

    def make(session: Session | None = None, store: ChoiceStore | None = None) -> WorkspacePanel:
        panel = WorkspacePanel(session or Session(timeout=20), store=store or ChoiceStore(tmp_path / "panel.json"))
        made.append(panel)
        return panel

    yield make
    for panel in made:
        panel.close()
        if panel.session.connection is not None:
            panel.session.disconnect()


def sign_in(panel: WorkspacePanel, method: str = "env") -> None:
    panel.method.value = method
    panel.sign_in_button.click()
    wait_until(lambda: listed(panel), "the workspace list", panel)


# -- the whole path -----------------------------------------------------------------------------
def test_sign_in_pick_and_connect_then_a_run_lands(
    sp_env: Any, make_panel: Any, tmp_path: Path, secret_check: Any
) -> None:
    sb = sp_env
    ws = sb.workspaces[2]
    backend_client(sb, ws).create_experiment("already-there")
    panel = make_panel()
    assert panel.cloud.value == sb.cloud  # AZUREML_CURRENT_CLOUD names the custom cloud
    assert panel.connect_button.disabled

    sign_in(panel)
    assert "sandbox-sp" in panel.signed_in.value and "service principal, env" in panel.signed_in.value
    assert [label for label, _ in panel.workspace.options] == sorted(label_of(w) for w in sb.workspaces)
    assert panel.workspace.value is None and panel.connect_button.disabled
    # The session sandbox may hold workspaces other modules added (a private-link one, say).
    count = len(sb.workspaces)
    assert f'data-count="{count}"' in panel.progress.value
    assert f"{count} workspaces in 2 subscriptions" in panel.progress.value
    subscriptions = sorted(f"{s.display_name} ({s.subscription_id})" for s in sb.subscriptions)
    assert [label for label, _ in panel.subscription.options] == ["All subscriptions", *subscriptions]

    panel.subscription.value = ws.subscription_id
    assert {label for label, _ in panel.workspace.options} == {
        label_of(w) for w in sb.workspaces if w.subscription_id == ws.subscription_id
    }
    panel.subscription.value = ""
    panel.filter.value = ws.name.upper()
    assert [label for label, _ in panel.workspace.options] == [label_of(ws)]

    panel.workspace.value = option_for(panel.workspace, label_of(ws))
    assert not panel.connect_button.disabled
    wait_until(lambda: "already-there" in panel.experiment.options, "the workspace's experiments", panel)
    panel.experiment.value = "panel-headless"
    before = mlflow_state()
    panel.connect_button.click()
    wait_until(lambda: settled(panel), "connect", panel, timeout=90)

    assert status_state(panel) == "connected", panel.status.value
    assert f"Connected to {ws.name}" in panel.status.value and "panel-headless" in panel.status.value
    assert f'href="{sb.studio_url}/?wsid=/subscriptions/{ws.subscription_id}' in panel.status.value
    assert not panel.connect_button.disabled and panel.connect_button.description == "Connect"
    import mlflow

    assert mlflow.get_tracking_uri() == ws.tracking_uri != before["tracking_uri"]
    assert mlflow.get_experiment(os.environ["MLFLOW_EXPERIMENT_ID"]).name == "panel-headless"
    with mlflow.start_run(run_name="from-the-panel"):
        mlflow.log_metric("clicks", 3.0)
    runs = backend_runs(sb, ws, "panel-headless")
    assert [(r.info.run_name, r.info.status, r.data.metrics) for r in runs] == [
        ("from-the-panel", "FINISHED", {"clicks": 3.0})
    ]

    saved = tmp_path / "panel.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == {
        "cloud": sb.cloud,
        "cloud_metadata_url": sb.metadata_url,
        "method": "env",
        "tenant": None,
        "subscription": None,
        "workspace": ws.arm_id,
        "experiment": "panel-headless",
    }
    secret_check.scan(panel._repr_mimebundle_())
    secret_check.scan([panel.status.value, panel.signed_in.value, panel.progress.value])

    again = make_panel(session=panel.session)  # %amlflow panel once connected says so
    assert status_state(again) == "connected" and f"Connected to {ws.name}" in again.status.value
    assert again.cloud.value == sb.cloud and again.experiment.value == "panel-headless"


def test_tenants_narrow_the_lists_and_another_tenant_is_named_in_the_command(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, make_panel: Any
) -> None:
    sb = sandbox_factory(tenants=2, subscriptions=4, workspaces_per_subscription=1, mlflow=False)
    for k, v in {**sb.env, **sb.service_principal}.items():
        monkeypatch.setenv(k, v)
    home, other = sb.tenants
    panel = make_panel()
    sign_in(panel)
    assert [label for label, _ in panel.tenant.options] == [
        "All tenants",
        f"{home.display_name} ({home.default_domain})",
        f"{other.display_name} ({other.default_domain})",
    ]
    assert len(panel.subscription.options) == 5 and len(panel.workspace.options) == 4

    panel.tenant.value = other.tenant_id
    theirs = [s for s in sb.subscriptions if s.tenant_id == other.tenant_id]
    assert {v for _, v in panel.subscription.options} == {"", *(s.subscription_id for s in theirs)}
    shown = {label for label, _ in panel.workspace.options}
    assert shown == {label_of(w) for w in sb.workspaces if w.tenant_id == other.tenant_id} and len(shown) == 2

    ws = next(w for w in sb.workspaces if w.tenant_id == other.tenant_id)
    panel.workspace.value = ws.arm_id
    assert f"--workspace {ws.name} --cloud {sb.cloud} --tenant {other.tenant_id} --auth env" in panel.commands()[2]


def test_device_code_shows_inside_the_panel_and_a_double_click_starts_one_sign_in(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, make_panel: Any, secret_check: Any
) -> None:
    sb = sandbox_factory(mlflow=False)
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    panel = make_panel()
    panel.method.value = "device-code"
    # Approved once the code shows, as a person would; what they read is the prompt checked below
    # (the panel clears it when the sign-in ends, which can be milliseconds after the approval).
    # The busy state is checked first, so the approval cannot end the sign-in before that check.
    busy_checked = threading.Event()
    answered = answer_device_code(
        sb, "approve", sb.bob.username, seen=lambda: busy_checked.is_set() and panel.device_code.outputs
    )
    panel.sign_in_button.click()
    panel.sign_in_button.click()
    assert panel.sign_in_button.disabled and status_state(panel) == "busy"
    busy_checked.set()

    answered.join(60)
    assert answered.result.get("seen"), "the device code never showed in the panel"
    prompt = answered.result["seen"][0]["data"]
    code = answered.result["code"]
    assert code in prompt["text/plain"] and f"{sb.base_url}/devicelogin" in prompt["text/plain"]
    html = prompt["text/html"]
    assert f">{code}</code>" in html and 'class="amlflow-copy"' in html and "navigator.clipboard.writeText" in html
    assert 'class="amlflow-left"' in html  # the countdown

    wait_until(lambda: listed(panel), "the workspace list", panel)
    assert f"<b>{sb.bob.username}</b> (user, device-code)" in panel.signed_in.value
    assert panel.device_code.outputs == ()  # the prompt is gone once signed in; signed_in says who
    assert [r.endpoint for r in sb.requests].count("devicecode") == 1
    assert not panel.sign_in_button.disabled and panel.sign_in_button.description == "Sign in again"
    secret_check.scan(panel._repr_mimebundle_())
    secret_check.scan(panel.device_code.outputs)


def test_declined_device_code_says_what_to_do(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, make_panel: Any
) -> None:
    sb = sandbox_factory(mlflow=False)
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    panel = make_panel()
    panel.method.value = "device-code"
    answer_device_code(sb, "decline")
    panel.sign_in_button.click()
    wait_until(lambda: status_state(panel) == "error", "the sign-in error", panel)
    assert "declined" in panel.status.value and "Next:" in panel.status.value
    assert 'data-outcome="declined"' in panel.device_code.outputs[0]["data"]["text/html"]
    assert not panel.sign_in_button.disabled and panel.sign_in_button.description == "Sign in"
    assert panel.picker.layout.display == "none"


# -- remembering --------------------------------------------------------------------------------
def test_the_last_choice_is_preselected_next_time(sp_env: Any, make_panel: Any, tmp_path: Path) -> None:
    sb = sp_env
    ws = sb.workspaces[3]
    store = ChoiceStore(tmp_path / "remembered" / "panel.json")
    store.save(
        Choices(
            cloud=sb.cloud,
            cloud_metadata_url=sb.metadata_url,
            method="env",
            subscription=ws.subscription_id,
            workspace=ws.arm_id,
            experiment="remembered-exp",
        )
    )
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    panel = make_panel(store=store)
    assert (panel.cloud.value, panel.method.value) == (sb.cloud, "env")
    assert f"%amlflow connect {ws.arm_id} --cloud {sb.cloud} --auth env --experiment remembered-exp" in repr(panel)

    panel.sign_in_button.click()
    wait_until(lambda: listed(panel), "the workspace list", panel)
    assert panel.subscription.value == ws.subscription_id
    assert panel.workspace.value == ws.arm_id and not panel.connect_button.disabled
    assert panel.experiment.value == "remembered-exp"
    # Once the person picks another workspace, a refresh does not put the remembered one back.
    other = next(w for w in sb.workspaces if w.subscription_id == ws.subscription_id and w.name != ws.name)
    panel.workspace.value = other.arm_id
    panel.filter.value = "mlw"
    assert panel.workspace.value == other.arm_id


def test_choices_live_in_the_home_directory_not_the_notebook(test_home: Path) -> None:
    assert default_choices_path() == test_home / ".jupyter_amlflow" / "panel.json"
    assert ChoiceStore().path == default_choices_path()


def test_a_broken_choices_file_only_loses_the_preselection(tmp_path: Path) -> None:
    path = tmp_path / "panel.json"
    for text in ("{not json", "[1, 2]", '{"cloud": 3, "workspace": "/subscriptions/x", "extra": 1}'):
        path.write_text(text)
        loaded = ChoiceStore(path).load()
        assert loaded.cloud is None
    assert loaded.workspace == "/subscriptions/x"


# -- text form ----------------------------------------------------------------------------------
def test_text_form_gives_the_exact_commands(sp_env: Any, make_panel: Any) -> None:
    sb = sp_env
    ws = sb.workspaces[0]
    panel = make_panel()
    from IPython.core.interactiveshell import InteractiveShell

    bundle, _ = InteractiveShell.instance().display_formatter.format(panel)  # what display(panel) sends
    assert bundle[WIDGET_MIME]["model_id"] == panel.widget.model_id
    text = bundle["text/plain"]
    assert text.startswith("Workspace panel (needs a front end that shows ipywidgets")
    assert (
        f"%amlflow connect --subscription SUBSCRIPTION_ID --resource-group RESOURCE_GROUP --workspace WORKSPACE "
        f"--cloud {sb.cloud} --experiment NAME"
    ) in text
    assert f"%amlflow list workspaces --cloud {sb.cloud}" in text
    assert bundle["text/html"].startswith('<pre class="amlflow-panel-text">') and "&lt;" not in text

    sign_in(panel)
    panel.workspace.value = ws.arm_id
    panel.experiment.value = "my exp"
    assert panel.commands()[2] == (
        f"%amlflow connect --subscription {ws.subscription_id} --resource-group {ws.resource_group} "
        f"--workspace {ws.name} --cloud {sb.cloud} --auth env --experiment 'my exp'"
    )
    assert panel.commands()[2] in repr(panel)


# -- failures land in the status area -----------------------------------------------------------
def test_errors_in_callbacks_land_in_the_status_area(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, make_panel: Any
) -> None:
    sb = sandbox_factory(mlflow=False)
    for k, v in {**sb.env, **sb.service_principal}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD")  # the custom cloud is added by hand below
    monkeypatch.delenv("ARM_CLOUD_METADATA_URL")
    panel = make_panel()
    assert sb.cloud not in [name for name, _ in panel.cloud.options]
    panel.add_cloud_button.click()
    assert status_state(panel) == "error" and "Give the custom cloud&#x27;s metadata URL first" in panel.status.value

    panel.cloud_url.value = "https://127.0.0.1:9/metadata/endpoints?api-version=2019-05-01"
    panel.add_cloud_button.click()
    wait_until(lambda: status_state(panel) == "error", "the metadata error", panel)
    assert "127.0.0.1:9" in panel.status.value and "<b>Next:</b>" in panel.status.value
    assert not panel.add_cloud_button.disabled

    panel.cloud_url.value = sb.metadata_url
    panel.add_cloud_button.click()
    wait_until(lambda: status_state(panel) == "info", "the added cloud", panel)
    assert f"Added {sb.cloud}" in panel.status.value and panel.cloud.value == sb.cloud
    assert f"--cloud {sb.cloud} --cloud-metadata-url '{sb.metadata_url}'" in repr(panel)

    ws = sb.workspaces[1]
    sign_in(panel)
    panel.workspace.value = ws.arm_id
    sb.revoke_roles(sb.sp)  # the list is on screen; the role is gone by the time connect reads the workspace
    before = mlflow_state()
    panel.connect_button.click()
    wait_until(lambda: settled(panel), "connect", panel)
    assert status_state(panel) == "error"
    assert "Microsoft.MachineLearningServices/workspaces/read" in panel.status.value
    assert "<b>Next:</b>" in panel.status.value
    assert mlflow_state() == before and panel.session.connection is None
    assert not panel.connect_button.disabled and panel.connect_button.description == "Connect"


def test_a_failed_sign_in_says_why_and_can_be_retried(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, make_panel: Any
) -> None:
    sb = sandbox_factory(mlflow=False)
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    panel = make_panel()
    panel.method.value = "env"  # no service principal in this environment
    panel.sign_in_button.click()
    wait_until(lambda: status_state(panel) == "error", "the sign-in error", panel)
    assert "AZURE_CLIENT_ID" in panel.status.value
    assert not panel.sign_in_button.disabled and panel.sign_in_button.description == "Sign in"


# -- stale results and close() ------------------------------------------------------------------
def test_a_discovery_for_an_abandoned_sign_in_never_shows(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, make_panel: Any
) -> None:
    sb = sandbox_factory(mlflow=False)
    for k, v in {**sb.env, **sb.service_principal}.items():
        monkeypatch.setenv(k, v)
    sb.inject("resource_graph", latency=1.5)
    panel = make_panel()
    panel.method.value = "env"
    panel.sign_in_button.click()
    wait_until(lambda: any(r.endpoint == "subscriptions" for r in sb.requests), "the listing to start", panel)
    panel.cloud.value = "AzureCloud"  # another cloud: the sandbox's lists no longer apply
    assert panel.picker.layout.display == "none" and panel.workspace.options == ()
    wait_until(lambda: any(r.endpoint == "resource_graph" for r in sb.requests), "the slow discovery", panel)
    time.sleep(0.5)  # Resource Graph has answered: the abandoned discovery ends now
    assert panel.workspace.options == () and panel.progress.value == ""
    assert status_state(panel) == "info" and "Sign in to AzureCloud" in panel.status.value


def test_close_removes_every_hook_and_ignores_late_results(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, make_panel: Any
) -> None:
    sb = sandbox_factory(mlflow=False)
    for k, v in {**sb.env, **sb.service_principal}.items():
        monkeypatch.setenv(k, v)
    thread_errors: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    sb.inject("resource_graph", latency=1.0)
    panel = make_panel()
    panel.method.value = "env"
    panel.sign_in_button.click()
    wait_until(lambda: any(r.endpoint == "resource_graph" for r in sb.requests), "discovery", panel)
    shown = (panel.status.value, panel.progress.value, panel.workspace.options)
    widgets = [
        panel.widget, panel.cloud, panel.cloud_url, panel.add_cloud_button, panel.tenant_input, panel.method,
        panel.sign_in_button, panel.device_code, panel.signed_in, panel.picker, panel.tenant, panel.subscription,
        panel.filter, panel.workspace, panel.progress, panel.experiment, panel.connect_button, panel.status,
    ]  # fmt: skip
    panel.close()
    assert panel.closed and all(w.comm is None for w in widgets)
    time.sleep(1.5)  # the discovery answers after close
    assert (panel.status.value, panel.progress.value, panel.workspace.options) == shown

    sb.clear_requests()
    panel.sign_in_button.click()
    panel.add_cloud_button.click()
    panel.connect_button.click()
    panel.filter.value = "anything"
    panel.cloud.value = "AzureCloud"
    time.sleep(0.3)
    assert sb.requests == [] and panel.status.value == shown[0]
    assert thread_errors == []
    panel.close()  # twice is fine


# -- the magic, a real kernel, 500 workspaces -----------------------------------------------------
def test_panel_magic_returns_the_panel(sp_env: Any) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_amlflow")
    try:
        panel = shell.run_line_magic("amlflow", "panel")
        assert isinstance(panel, WorkspacePanel)
        assert panel.session is shell.magics_manager.registry["AmlflowMagics"].session
        panel.close()
    finally:
        shell.run_line_magic("unload_ext", "jupyter_amlflow")


def test_500_workspaces_arrive_page_by_page_from_resource_graph(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch, make_panel: Any
) -> None:
    sb = sandbox_factory(subscriptions=100, workspaces_per_subscription=5, resource_graph_page_size=50, mlflow=False)
    for k, v in {**sb.env, **sb.service_principal}.items():
        monkeypatch.setenv(k, v)
    sb.inject("resource_graph", latency=0.2)
    panel = make_panel()
    panel.method.value = "env"
    panel.sign_in_button.click()
    partial = wait_until(
        lambda: 0 < len(panel.workspace.options) < 500 and len(panel.workspace.options), "a first page"
    )
    wait_until(lambda: listed(panel), "the whole list", panel)
    assert partial % 50 == 0 and len(panel.workspace.options) == 500
    assert (
        'data-count="500"' in panel.progress.value and "in 100 subscriptions (Resource Graph)" in panel.progress.value
    )
    assert len(panel.subscription.options) == 101
    assert [r.endpoint for r in sb.requests].count("resource_graph") == 10


@pytest.mark.slow
def test_kernel_answers_while_500_workspaces_load(sandbox_factory: Any, tmp_path: Path, secret_check: Any) -> None:
    from jupyter_client.manager import start_new_kernel

    sb = sandbox_factory(subscriptions=100, workspaces_per_subscription=5, mlflow=False)
    sb.deny_resource_graph(sb.sp)  # the slow path: one listing per subscription
    sb.inject("workspaces", latency=0.4)
    # A HOME of its own: a choice another test remembered would replace the placeholder command.
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, **sb.env, **sb.service_principal, "HOME": str(home)}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:

        def run(code: str) -> tuple[float, dict[str, Any]]:
            """Execute ``code``; return the seconds until the reply and what the cell returned."""
            started = time.monotonic()
            msg_id = kc.execute(code)
            reply = kc.get_shell_msg(timeout=60)
            elapsed = time.monotonic() - started
            assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok", reply["content"]
            data: dict[str, Any] = {}
            while True:  # the cell's own outputs, up to its idle status
                msg = kc.get_iopub_msg(timeout=10)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "execute_result":
                    data = msg["content"]["data"]
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return elapsed, data

        run("%load_ext jupyter_amlflow")
        _, shown = run("%amlflow connect")  # nothing to go on: the panel
        secret_check.scan(shown)
        assert WIDGET_MIME in shown
        assert "%amlflow connect --subscription SUBSCRIPTION_ID" in shown["text/plain"]
        started = time.monotonic()
        run("panel = _\npanel.method.value = 'env'\npanel.sign_in_button.click()")
        timings = []
        while True:
            _, state = run("'data-count' in panel.progress.value, len(panel.workspace.options)")
            done, count = ast.literal_eval(state["text/plain"])
            if done:
                break
            elapsed, result = run("1+1")
            assert result["text/plain"] == "2"
            timings.append((elapsed, count))
        discovery = time.monotonic() - started
        # Responsive means a cell's reply never waits for discovery: each one is a small part of it
        # (a ratio, not a wall-clock limit, so a loaded machine slows both sides alike).
        assert len(timings) >= 5, f"discovery was too fast to measure ({len(timings)} samples)"
        assert max(t for t, _ in timings) < discovery / 5, (discovery, timings)
        assert any(0 < count < 500 for _, count in timings), "the list should fill in while discovery runs"
        _, state = run("len(panel.workspace.options), panel.progress.value")
        count, progress = ast.literal_eval(state["text/plain"])
        assert count == 500 and "500 workspaces in 100 subscriptions (per-subscription listing)" in progress
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
