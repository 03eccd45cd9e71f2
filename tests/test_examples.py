"""The examples, executed against the sandbox; each test checks the runs landed in the backing server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
from helpers import backend_runs, write_config
from kernels import errors_of, text_of
from nbclient import NotebookClient

from jupyter_amlflow.sandbox.runner import run_notebook

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_notebook(sandbox: Any, tmp_path: Path, secret_check: Any) -> None:
    report = run_notebook(sandbox, EXAMPLES / "quickstart.ipynb", workdir=tmp_path, output=tmp_path / "out.ipynb")
    secret_check.scan(nbformat.read(str(tmp_path / "out.ipynb"), as_version=4))
    assert report.failed_cells == [] and report.ok
    runs = {r.name: r for r in report.runs}
    quick, cell = runs["quickstart"], runs["cell-run"]
    assert quick.status == "FINISHED" and quick.metric_steps["rmse"] == 30 and quick.params["epochs"] == "30"
    assert quick.artifacts == ["model/summary.txt"] and cell.artifacts == ["cell.py"]
    landed = backend_runs(sandbox, sandbox.workspaces[0], "quickstart")
    assert {quick.run_id, cell.run_id} <= {r.info.run_id for r in landed}


def test_service_principal_script(sandbox: Any, tmp_path: Path) -> None:
    ws = sandbox.workspaces[1]
    env = {**os.environ, **sandbox.env, **sandbox.service_principal}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "service_principal.py"), ws.arm_id, "--experiment", "ci-example"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    runs = backend_runs(sandbox, ws, "ci-example")
    assert len(runs) == 1 and runs[0].info.run_name == "ci-check" and runs[0].data.metrics == {"loss": 0.4}
    assert f"logged run {runs[0].info.run_id} to {ws.name}: {sandbox.studio_url}/runs/" in out.stdout
    # A CI job never waits for a person: without credentials it fails at once, saying why.
    bare = {k: v for k, v in env.items() if k not in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")}
    failed = subprocess.run(
        [sys.executable, str(EXAMPLES / "service_principal.py"), ws.arm_id],
        env=bare,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 1 and "AZURE_CLIENT_ID" in failed.stderr and "Traceback" not in failed.stderr


# What a person does in the panel, done through its public widgets, between the notebook's cells.
DRIVE_PANEL = """
import time

def _wait(condition, what, timeout=90):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {panel.status.value}")
        time.sleep(0.05)

panel.method.value = "env"
panel.sign_in_button.click()
_wait(lambda: "data-count" in panel.progress.value, "the workspace list")
panel.workspace.value = [v for label, v in panel.workspace.options if label.startswith("{name} — ")][0]
panel.experiment.value = "panel-example"
panel.connect_button.click()
_wait(lambda: 'data-state="connected"' in panel.status.value, "connect")
"""


def test_panel_notebook(sandbox: Any, tmp_path: Path, test_home: Path, secret_check: Any) -> None:
    ws = sandbox.workspaces[0]
    nb = nbformat.read(str(EXAMPLES / "panel.ipynb"), as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    # After the cell that shows the panel, a person clicks; here a cell drives the same widgets.
    shown = next(i for i in code if "%amlflow panel" in nb.cells[i].source)
    nb.cells.insert(shown + 1, nbformat.v4.new_code_cell(DRIVE_PANEL.replace("{name}", ws.name)))
    client = NotebookClient(nb, timeout=240, kernel_name="python3", allow_errors=True)
    client.execute(env={**os.environ, **sandbox.env, **sandbox.service_principal}, cwd=str(tmp_path))
    secret_check.scan(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert errors_of(nb, i) == [], (i, text_of(nb, i))
    panel_output = nb.cells[shown].outputs[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" in panel_output
    assert "%amlflow connect" in panel_output["text/plain"]
    assert f"Connected to {ws.name}" in text_of(nb, len(nb.cells) - 1)
    runs = backend_runs(sandbox, ws, "panel-example")
    assert [(r.info.run_name, r.info.status, r.data.metrics) for r in runs] == [
        ("from-the-panel", "FINISHED", {"accuracy": 0.93})
    ]


def test_config_json_is_what_the_quickstart_uses(sandbox: Any, tmp_path: Path) -> None:
    # The quickstart's connect has no arguments: it must find the portal's config.json.
    source = nbformat.read(str(EXAMPLES / "quickstart.ipynb"), as_version=4)
    connects = [c.source for c in source.cells if c.cell_type == "code" and "%amlflow connect" in c.source]
    assert connects == ["%amlflow connect --experiment quickstart"]
    from jupyter_amlflow.references import find_config

    write_config(tmp_path, sandbox.workspaces[0])
    assert find_config(tmp_path) == tmp_path / "config.json"
