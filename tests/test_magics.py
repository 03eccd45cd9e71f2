"""The %amlflow magics: parsing, help, completion, settings, load/unload, and real kernels end to end."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import answer_device_code, backend_client, backend_runs, extension_shell, magic, mlflow_state
from IPython.core.error import UsageError
from kernels import errors_of, execute, html_of, notebook, text_of

from jupyter_amlflow.magics import COMMANDS, AmlflowMagics


@pytest.fixture
def ip(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An in-process IPython shell with the extension loaded, pointed at the sandbox."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with extension_shell(sandbox, monkeypatch.setenv) as shell:
        yield shell


BAD_LINES = {
    "": "%amlflow needs a subcommand: connect, panel, experiment, status, disconnect, logout, clouds, list, run, runs, compare, chart, version, help. See: %amlflow help",
    "conect": "%amlflow: unknown subcommand 'conect'. Did you mean 'connect'? See: %amlflow help",
    "stauts": "%amlflow: unknown subcommand 'stauts'. Did you mean 'status'? See: %amlflow help",
    "frobnicate": "%amlflow: unknown subcommand 'frobnicate'. See: %amlflow help",
    "connect --subscription": "%amlflow connect: argument --subscription/-s: expected one argument. See: %amlflow help connect",
    "connect --bogus 1": "%amlflow connect: unrecognized arguments: --bogus. See: %amlflow help connect",
    "list planets": "%amlflow list: argument what: invalid choice: 'planets' (choose from 'tenants', 'subscriptions', 'workspaces', 'experiments'). See: %amlflow help list",
    "connect 'unbalanced": "%amlflow: No closing quotation in \"connect 'unbalanced\". Quote values with spaces: --experiment 'my exp'",
    "run": "%amlflow run is a cell magic: put %%amlflow run ... on the first line of a cell",
}


@pytest.mark.parametrize("line", list(BAD_LINES))
def test_argument_errors_are_one_line_and_change_nothing(ip: Any, sandbox: Any, line: str) -> None:
    before = mlflow_state()
    sandbox.clear_requests()
    with pytest.raises(UsageError) as err:
        magic(ip, line)
    assert str(err.value) == BAD_LINES[line]
    assert sandbox.requests == [] and mlflow_state() == before


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("connect --cloud AzureMoon --workspace mlw -g rg -s 00000000-0000-0000-0000-000000000000", "AzureMoon"),
        ("connect /subscriptions/x/resourceGroups/rg", "subscription"),
        ("connect azureml://host/mlflow/v1.0/nothing", "azureml://"),
        ("connect --auth telepathy -w mlw -g rg -s 00000000-0000-0000-0000-000000000000", "telepathy"),
        ("connect --timeout -3 -w mlw -g rg -s 00000000-0000-0000-0000-000000000000", "--timeout"),
        ("experiment", "Not connected"),
    ],
)
def test_bad_input_is_a_clean_usage_error_without_network(ip: Any, sandbox: Any, line: str, fragment: str) -> None:
    before = mlflow_state()
    sandbox.clear_requests()
    with pytest.raises(UsageError) as err:
        magic(ip, line)
    message = str(err.value)
    assert fragment in message and "\n" not in message and "Traceback" not in message
    assert [r for r in sandbox.requests if r.endpoint != "metadata"] == [] and mlflow_state() == before


def test_help_documents_every_subcommand_with_an_example(ip: Any) -> None:
    overview = repr(magic(ip, "help"))
    doc = ip.find_line_magic("amlflow").__doc__
    for name, command in COMMANDS.items():
        assert name in overview and command.example.split()[1] in overview
        assert name in doc
        text = repr(magic(ip, f"help {name}"))
        assert "Example:" in text and ("%%amlflow" if command.cell else "%amlflow") in text
    assert "--resource-group" in repr(magic(ip, "help connect"))
    with pytest.raises(UsageError, match="Did you mean 'connect'"):
        magic(ip, "help conect")


def test_connect_status_experiment_disconnect(ip: Any, sandbox: Any) -> None:
    ws = sandbox.workspaces[0]
    conn = magic(ip, f"connect {ws.arm_id} --experiment magic-demo")
    assert f"Connected to {ws.name}" in repr(conn) and "<table>" in conn._repr_html_()
    status = magic(ip, "status")
    for expected in (ws.name, ws.location, sandbox.cloud, sandbox.tenant_id, "magic-demo", ws.tracking_uri, "Platform"):
        assert expected in repr(status), expected
    assert "Open in Azure ML Studio" in status._repr_html_()
    assert "magic-demo" in repr(magic(ip, "experiment"))
    switched = magic(ip, "experiment other-experiment")
    assert "Created and switched to experiment other-experiment" in repr(switched)
    import mlflow

    assert mlflow.get_experiment(mlflow.tracking.fluent._active_experiment_id).name == "other-experiment"
    assert "Disconnected" in repr(magic(ip, "disconnect"))


def test_cell_magic_finished_and_failed_runs(ip: Any, sandbox: Any) -> None:
    ws = sandbox.workspaces[0]
    magic(ip, f"connect {ws.arm_id} --experiment cell-runs")
    value = magic(ip, "run --name good --tag team=ml", "import mlflow\nmlflow.log_metric('acc', 0.9)\n40 + 2")
    assert value == 42
    with pytest.raises(ZeroDivisionError):
        magic(ip, "run --name bad", "import mlflow\nmlflow.log_metric('acc', 0.1)\n1 / 0")
    runs = {r.info.run_name: r for r in backend_runs(sandbox, ws, "cell-runs")}
    assert runs["good"].info.status == "FINISHED" and runs["good"].data.metrics == {"acc": 0.9}
    assert runs["good"].data.tags["team"] == "ml"
    assert runs["bad"].info.status == "FAILED"
    import mlflow

    source = Path(
        mlflow.artifacts.download_artifacts(run_id=runs["bad"].info.run_id, artifact_path="cell.py")
    ).read_text()
    assert source == "import mlflow\nmlflow.log_metric('acc', 0.1)\n1 / 0"
    with pytest.raises(UsageError, match="KEY=VALUE"):
        magic(ip, "run --tag novalue", "1")


def test_completion_uses_only_what_was_fetched(ip: Any, sandbox: Any) -> None:
    magics: AmlflowMagics = ip.magics_manager.registry["AmlflowMagics"]

    def complete(text: str) -> list[str]:
        return magics.complete(SimpleNamespace(text_until_cursor=text, line=text, symbol=text.split(" ")[-1]))

    sandbox.clear_requests()
    assert "connect" in complete("%amlflow ") and "status" in complete("%amlflow st")
    assert "--resource-group" in complete("%amlflow connect ")
    assert sandbox.cloud in complete("%amlflow connect --cloud ") or "AzureCloud" in complete(
        "%amlflow connect --cloud "
    )
    assert "device-code" in complete("%amlflow connect --auth ")
    assert complete("%amlflow connect --workspace ") == []
    assert sandbox.requests == []
    magic(ip, "list workspaces")
    names = complete("%amlflow connect --workspace ")
    assert sorted(names) == sorted({w.name for w in sandbox.workspaces if w.tenant_id == sandbox.tenant_id})
    sandbox.clear_requests()
    complete("%amlflow connect -w ")
    assert sandbox.requests == []
    # Through IPython's own completer machinery too.
    _, matches = ip.complete("", "%amlflow sta")
    assert "status" in matches


def test_settings_are_traitlets_listed_by_config(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_line_magic("config", "AmlflowMagics")
    listed = capsys.readouterr().out
    for trait in ("timeout", "auth", "default_cloud", "persist_token_cache", "device_code_timeout"):
        assert trait in listed
    ip.run_line_magic("config", "AmlflowMagics.timeout = 7.5")
    magics = ip.magics_manager.registry["AmlflowMagics"]
    assert magics.session.timeout == 7.5


def test_load_unload_reload_leave_no_duplicates(ip: Any) -> None:
    def counts() -> tuple[int, int]:
        chain = ip.strdispatchers["complete_command"].strs.get("%amlflow")
        hooks = len(chain.chain) if chain else 0
        return hooks, int("amlflow" in ip.magics_manager.magics["line"])

    assert counts() == (1, 1)
    ip.run_line_magic("load_ext", "jupyter_amlflow")
    assert counts() == (1, 1)
    ip.run_line_magic("reload_ext", "jupyter_amlflow")
    assert counts() == (1, 1)
    ip.run_line_magic("unload_ext", "jupyter_amlflow")
    assert counts() == (0, 0)
    ip.run_line_magic("load_ext", "jupyter_amlflow")
    assert counts() == (1, 1)


def test_every_output_has_text_and_html(ip: Any, sandbox: Any) -> None:
    ws = sandbox.workspaces[0]
    for line in (
        "help",
        "status",
        "clouds",
        "version",
        f"connect {ws.arm_id} --experiment forms",
        "experiment",
        "list experiments",
        "status",
        "disconnect",
    ):
        shown = magic(ip, line)
        assert repr(shown).strip() and not repr(shown).startswith("<")
        assert shown._repr_html_().startswith("<div")


def test_interrupting_a_device_code_wait_changes_nothing(
    ip: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch, ctrl_c: Callable[[], None]
) -> None:
    for k in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(k)
    before = mlflow_state()

    def interrupt_once_prompted() -> None:
        sandbox.wait_for_device_code(30)
        ctrl_c()

    threading.Thread(target=interrupt_once_prompted, daemon=True).start()
    import time

    started = time.monotonic()
    with pytest.raises(UsageError, match="interrupted; nothing was changed"):
        magic(ip, f"connect {sandbox.workspaces[0].arm_id} --auth device-code")
    assert time.monotonic() - started < 30
    assert mlflow_state() == before
    assert ip.magics_manager.registry["AmlflowMagics"].session.connection is None


# -- real kernels -----------------------------------------------------------------------------------
def test_notebook_end_to_end_with_a_service_principal(sandbox: Any, tmp_path: Path, secret_check: Any) -> None:
    ws = sandbox.workspaces[1]
    nb = notebook(
        "%load_ext jupyter_amlflow",
        f"%amlflow connect {ws.arm_id} --experiment kernel-e2e",
        "%amlflow experiment",
        "%%amlflow run --name finished\nimport mlflow\nmlflow.log_metric('score', 0.75)",
        "%%amlflow run --name failed\nimport mlflow\nmlflow.log_metric('score', 0.25)\nraise ValueError('boom')",
        "%amlflow status",
    )
    env = {**sandbox.env, **sandbox.service_principal}
    execute(nb, env=env, cwd=tmp_path)
    secret_check.scan(nb)
    assert errors_of(nb, 1) == [], text_of(nb, 1)
    assert f"Connected to {ws.name}" in text_of(nb, 1) and "<table>" in html_of(nb, 1)
    assert "kernel-e2e" in text_of(nb, 2)
    assert errors_of(nb, 3) == []
    assert "view in Azure ML Studio" in html_of(nb, 3)
    assert [e["ename"] for e in errors_of(nb, 4)] == ["ValueError"]
    runs = {r.info.run_name: r for r in backend_runs(sandbox, ws, "kernel-e2e")}
    assert runs["finished"].info.status == "FINISHED" and runs["finished"].data.metrics == {"score": 0.75}
    assert runs["failed"].info.status == "FAILED" and runs["failed"].data.metrics == {"score": 0.25}
    client = backend_client(sandbox, ws)
    assert client.get_run(runs["failed"].info.run_id).info.run_id
    assert ws.name in text_of(nb, 5)


def test_notebook_end_to_end_with_device_code(sandbox: Any, tmp_path: Path, secret_check: Any) -> None:
    ws = sandbox.workspaces[0]
    nb = notebook(
        "%load_ext jupyter_amlflow",
        f"%amlflow connect {ws.arm_id} --auth device-code --experiment kernel-device",
        "%%amlflow run --name by-device\nimport mlflow\nmlflow.log_metric('x', 1.0)",
    )
    thread = answer_device_code(sandbox, "approve", sandbox.bob.username, timeout=120)
    execute(nb, env=dict(sandbox.env), cwd=tmp_path)
    thread.join(10)
    secret_check.scan(nb)
    assert errors_of(nb, 1) == [], text_of(nb, 1)
    # The prompt (link, code, copy button) is replaced in place by the outcome once signed in;
    # test_devicecode.py covers the prompt itself in a real browser.
    assert "Signed in as" in text_of(nb, 1) and sandbox.bob.username in text_of(nb, 1)
    assert thread.result["code"] not in text_of(nb, 1)
    runs = backend_runs(sandbox, ws, "kernel-device")
    assert [r.info.status for r in runs] == ["FINISHED"]
