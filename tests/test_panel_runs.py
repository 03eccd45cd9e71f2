"""The panel's Runs view, driven through its widgets (``.click()``, ``.value``), against the sandbox.

``%amlflow connect`` connects an in-process shell, plain mlflow logs two runs (one with a name
that is HTML), and ``%amlflow panel`` opens on the connected kernel: the view appears, reads
nothing until its button is pressed, then shows the table ``%amlflow runs`` shows.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import sp_shell
from test_panel import wait_until

HOSTILE = "<script>alert('run')</script>"


@pytest.fixture
def shell(sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    monkeypatch.setenv("HOME", str(tmp_path))  # the panel remembers choices under ~/.jupyter_amlflow
    with sp_shell(sandbox, monkeypatch.setenv) as ip:
        yield ip


def state(panel: Any) -> str:
    value = panel.runs.value
    marker = 'data-state="'
    return value[value.index(marker) + len(marker) :].split('"', 1)[0] if marker in value else ""


def test_the_runs_view_shows_the_connected_experiments_runs_when_asked(shell: Any, sandbox: Any) -> None:
    import mlflow

    ws = sandbox.workspaces[0]
    conn = shell.run_line_magic("amlflow", f"connect {ws.arm_id} --experiment panel-runs-{uuid.uuid4().hex[:8]}")
    ids = []
    for name, rmse in (("first", 0.4), (HOSTILE, 0.3)):
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_metric("rmse", rmse)
        ids.append(run.info.run_id)
    sandbox.clear_requests()
    panel = shell.run_line_magic("amlflow", "panel")
    try:
        assert panel.runs_button.description == "Show runs" and not panel.runs_button.disabled
        assert panel.runs.value == "" and sandbox.requests == []  # nothing read until asked
        panel.runs_button.click()
        wait_until(lambda: state(panel) in ("shown", "error"), "the runs", panel)
        shown = panel.runs.value
        assert state(panel) == "shown", shown
        assert f"2 runs of experiment {html.escape(conn.experiment.name)}" in shown
        assert html.escape(HOSTILE) in shown and HOSTILE not in shown
        for run_id in ids:
            assert run_id in shown and html.escape(conn.run_url(run_id), quote=True) in shown
        assert shown.index(ids[1]) < shown.index(ids[0])  # newest first
        assert panel.runs_button.description == "Refresh runs"

        shell.run_line_magic("amlflow", "disconnect")
        panel.runs_button.click()
        assert state(panel) == "error" and "Not connected to a workspace" in panel.runs.value
    finally:
        panel.close()
