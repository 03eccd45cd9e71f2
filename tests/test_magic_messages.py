"""What a newcomer reads: an empty experiment name refused here, a failing `%%amlflow run` cell's
traceback as a plain cell's, the same status before connect and after disconnect, disconnect with
nothing to undo, the workspace table's footer, and why a browser test was skipped."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import browser_support
import pytest
from helpers import backend_runs, extension_shell, isolated_mlflow, magic, mlflow_state
from IPython.core.error import UsageError
from kernels import errors_of, execute, notebook, text_of

import jupyter_amlflow
from jupyter_amlflow.errors import AmlflowError


@pytest.fixture
def ip(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An in-process IPython shell with the extension loaded, signed in as the sandbox's principal."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with extension_shell(sandbox, monkeypatch.setenv) as shell:
        yield shell


# -- 5: an empty experiment name never reaches the server ---------------------------------------------
def _empty(name: str) -> str:
    return (
        f"The experiment name {name!r} is blank. MLflow needs a name to find or create an experiment. "
        "Give a name, e.g. my-experiment (quote a name with spaces: 'my experiment')."
    )


@pytest.mark.parametrize("quoted, name", [('""', ""), ("'   '", "   ")])
def test_a_blank_experiment_name_is_refused_before_any_request(ip: Any, sandbox: Any, quoted: str, name: str) -> None:
    ws = sandbox.workspaces[0]
    magic(ip, f"connect {ws.arm_id} --experiment names")
    before, runs = mlflow_state(), len(backend_runs(sandbox, ws))
    sandbox.clear_requests()
    for line, cell in (
        (f"experiment {quoted}", None),
        (f"run --name never --experiment {quoted}", "ran = True"),
        (f"connect {ws.arm_id} --experiment {quoted}", None),
    ):
        with pytest.raises(UsageError) as err:
            magic(ip, line, cell)
        assert str(err.value) == _empty(name), line
    assert sandbox.requests == []
    assert mlflow_state() == before and "ran" not in ip.user_ns
    assert ip.magics_manager.registry["AmlflowMagics"].session.connection.experiment.name == "names"
    assert len(backend_runs(sandbox, ws)) == runs


def test_the_python_api_refuses_a_blank_experiment_name_too(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {**sandbox.env, **sandbox.service_principal}.items():
        monkeypatch.setenv(k, v)
    sandbox.clear_requests()
    with isolated_mlflow():
        before = mlflow_state()
        with pytest.raises(AmlflowError) as err:
            jupyter_amlflow.connect(sandbox.workspaces[0].arm_id, experiment="")
        assert str(err.value) == _empty("") and mlflow_state() == before
    assert sandbox.requests == []


# -- 8: wording ----------------------------------------------------------------------------------------
def test_the_workspace_table_says_how_it_found_them(ip: Any, sandbox: Any) -> None:
    table = magic(ip, "list workspaces")
    assert table.note == (
        "Found with Resource Graph. Connect: %amlflow connect --subscription SUB --resource-group RG --workspace NAME"
    )
    assert table.note in repr(table)


def test_disconnect_with_nothing_to_undo_is_not_an_error(ip: Any, sandbox: Any) -> None:
    before = mlflow_state()
    sandbox.clear_requests()
    shown = magic(ip, "disconnect")
    assert repr(shown) == "Not connected to a workspace; nothing to disconnect."
    assert sandbox.requests == [] and mlflow_state() == before


def test_a_skipped_browser_test_says_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import sync_playwright

    monkeypatch.delenv("AMLFLOW_REQUIRE_BROWSER", raising=False)
    missing = tmp_path / "chromium"
    monkeypatch.setattr(browser_support, "CHROMIUM", missing)
    with pytest.raises(pytest.skip.Exception) as skipped:
        browser_support.require_chromium()
    assert skipped.value.msg == f"{missing} is missing (apt-get install chromium)"
    # A binary that does not start: the reason quotes what the launch said, not just "Error".
    missing.write_text("#!/bin/sh\necho 'chromium: cannot open the profile' >&2\nexit 1\n")
    missing.chmod(0o755)
    with sync_playwright() as p, pytest.raises(pytest.skip.Exception) as skipped:
        browser_support.launch(p)
    reason = skipped.value.msg
    assert reason.startswith(f"{missing} did not start: ") and len(reason) > len(f"{missing} did not start: Error")
    monkeypatch.setenv("AMLFLOW_REQUIRE_BROWSER", "1")  # CI: a missing browser fails instead
    with pytest.raises(pytest.fail.Exception, match=r"AMLFLOW_REQUIRE_BROWSER=1 but .* did not start"):
        with sync_playwright() as p:
            browser_support.launch(p)


# -- 6 and 8, in a real kernel ------------------------------------------------------------------------
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _traceback(nb: Any, index: int) -> str:
    [error] = errors_of(nb, index)
    return ANSI.sub("", "\n".join(error["traceback"]))


def _frames(traceback: str) -> list[str]:
    return re.findall(r"^(?:Cell In\[\d+\]|File ).*$", traceback, re.M)


def test_a_failing_run_cell_shows_the_traceback_a_plain_cell_shows(
    sandbox: Any, tmp_path: Path, secret_check: Any
) -> None:
    """And status reads the same before connect and after disconnect (mlflow not imported, then imported)."""
    ws = sandbox.workspaces[0]
    nb = notebook(
        "%load_ext jupyter_amlflow",
        "%amlflow status",
        "%amlflow disconnect",
        f"%amlflow connect {ws.arm_id} --experiment tracebacks",
        "def helper():\n    raise ValueError('boom')",
        "%%amlflow run --name failed\nimport mlflow\nhelper()",
        "import mlflow\nhelper()",
        "%amlflow disconnect",
        "%amlflow status",
    )
    execute(nb, env={**sandbox.env, **sandbox.service_principal}, cwd=tmp_path)
    secret_check.scan(nb)
    # 8: the same words for the same state, and nothing to disconnect is no error.
    assert errors_of(nb, 1) == [] and errors_of(nb, 8) == []
    assert text_of(nb, 1) == text_of(nb, 8)
    assert re.search(
        r"Tracking URI +not set: mlflow logs to its local default store in the working folder\n", text_of(nb, 1)
    )
    assert errors_of(nb, 2) == [] and text_of(nb, 2) == "Not connected to a workspace; nothing to disconnect."
    # 6: the run cell's traceback starts at the cell, numbered as the notebook numbers it (In[6]),
    # with its first line as written, and then reads exactly as the plain cell's.
    run_cell, plain_cell = _traceback(nb, 5), _traceback(nb, 6)
    assert [e["ename"] for e in errors_of(nb, 5)] == ["ValueError"]
    assert _frames(run_cell) == ["Cell In[6], line 3", "Cell In[5], line 2, in helper()"], run_cell
    assert _frames(plain_cell) == ["Cell In[7], line 2", "Cell In[5], line 2, in helper()"], plain_cell
    assert "      1 %%amlflow run --name failed\n      2 import mlflow\n----> 3 helper()" in run_cell
    for ours in ("run_cell_magic", "magics.py", "cellrun.py", "interactiveshell.py"):
        assert ours not in run_cell
    assert run_cell.split("Cell In[5]", 1)[1] == plain_cell.split("Cell In[5]", 1)[1]
    assert [r.info.status for r in backend_runs(sandbox, ws, "tracebacks")] == ["FAILED"]
