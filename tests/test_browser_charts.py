"""Metric charts in a real browser: JupyterLab and Notebook 7, headless Chromium, the sandbox.

A notebook served by a real Jupyter server connects with ``%amlflow connect`` (the sandbox's
service principal) and draws a chart of three runs and a comparison of two. Each must be drawn
as SVG by the front end's own Vega-Lite renderer, with one line (a ``path`` in Vega's line mark)
per run and both axis titles visible. JupyterLab also shows why a chart's output carries either
the Vega-Lite document or the HTML table, never both: given both, it shows the HTML. Screenshots
go to ``test-artifacts/``; with AMLFLOW_UPDATE_SCREENSHOT=1, JupyterLab's also to ``docs/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium, jupyter_server, require_chromium, write_notebook
from helpers import backend_client
from test_browser import Shots, run_cell, wait_for_kernel

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parent.parent / "docs"
RUNS = {"baseline": 0.9, "ridge": 0.7, "lasso": 0.8}  # run name: where its loss curve starts


def log_runs(sb: Any, experiment: str) -> None:
    """Three runs with a 50-step loss each, and params that differ, in the workspace's backing server."""
    from mlflow.entities import Metric, Param

    client = backend_client(sb, sb.workspaces[0])
    experiment_id = client.create_experiment(experiment)
    now = int(time.time() * 1000)
    for i, (name, start) in enumerate(RUNS.items()):
        began = now - (len(RUNS) - i) * 600_000  # ten minutes apart, each four and a half minutes long
        run = client.create_run(experiment_id, run_name=name, start_time=began)
        loss = [Metric("loss", start * 0.93**step, began + step * 5000, step) for step in range(50)]
        client.log_batch(
            run.info.run_id, metrics=loss, params=[Param("alpha", str(i / 10)), Param("model", "linear")]
        )
        client.set_terminated(run.info.run_id, end_time=began + 270_000)


def chart_in(output: Any) -> Any:
    """The SVG Vega drew in an output (the output is the Vega-Lite renderer's own element)."""
    return output.locator("svg.marks")


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_charts_are_drawn_as_svg_with_a_line_per_run_and_axis_titles(
    app: str, sandbox: Any, tmp_path: Path, secret_check: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_chromium()
    from playwright.sync_api import expect

    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.setenv(name, "true")  # this process writes the runs with a plain client
    sb = sandbox
    ws = sb.workspaces[0]
    experiment = f"browser-charts-{app}-{int(time.time())}"
    log_runs(sb, experiment)
    root = tmp_path / "root"
    root.mkdir()
    both = {
        "application/vnd.vegalite.v5+json": {
            "data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
            "mark": "line",
            "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}},
        },
        "text/html": "<table class='amlflow-probe'><tr><td>the HTML form</td></tr></table>",
        "text/plain": "the text form",
    }
    write_notebook(
        root / "charts.ipynb",
        f"%load_ext jupyter_amlflow\n%amlflow connect {ws.arm_id} --experiment {experiment}",
        "%amlflow chart loss --runs baseline ridge lasso",
        "%amlflow compare baseline ridge",
        f"from IPython.display import display\ndisplay({json.dumps(both)}, raw=True)",
    )
    shots = Shots(f"charts-{app}")
    env = {**sb.env, **sb.service_principal, "HOME": str(tmp_path / "home"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    with jupyter_server(app, root, env) as server, chromium() as context:
        page = context.new_page()
        try:
            server.wait_ready()
            page.goto(server.notebook_url("charts.ipynb"))
            wait_for_kernel(server)
            cells = page.locator(".jp-Notebook .jp-Cell")
            run_cell(page, 0)
            expect(cells.nth(0).locator(".jp-OutputArea")).to_contain_text(f"Connected to {ws.name}", timeout=90_000)

            run_cell(page, 1)
            chart_output = cells.nth(1).locator(".jp-OutputArea-output.jp-RenderedVegaLite")
            svg = chart_in(chart_output)
            expect(svg).to_be_visible(timeout=60_000)
            # One line per run: Vega draws a line mark's groups as one path each.
            expect(svg.locator("g.mark-line path")).to_have_count(len(RUNS))
            for title in ("step", "loss"):
                expect(svg.locator("g.role-axis-title text", has_text=title)).to_be_visible()
            expect(svg.locator("g.role-legend text", has_text="baseline")).to_be_visible()
            chart_shot = shots.take(chart_output, "chart")

            run_cell(page, 2)
            outputs = cells.nth(2).locator(".jp-OutputArea-output")
            expect(outputs.nth(0).locator("tr.amlflow-differs")).to_have_count(2, timeout=60_000)  # alpha, loss
            expect(outputs.nth(1)).to_have_class(re.compile(r"\bjp-RenderedVegaLite\b"))
            compare_svg = chart_in(outputs.nth(1))
            expect(compare_svg).to_be_visible(timeout=60_000)
            expect(compare_svg.locator("g.mark-line path")).to_have_count(2)
            expect(compare_svg.locator("g.role-axis-title text", has_text="loss")).to_be_visible()
            compare_shot = shots.take(cells.nth(2).locator(".jp-OutputArea"), "compare")

            run_cell(page, 3)
            probe = cells.nth(3).locator(".jp-OutputArea-output")
            expect(probe.locator("table.amlflow-probe")).to_be_visible(timeout=30_000)
            expect(probe.locator("svg.marks")).to_have_count(0)
            secret_check.scan(page.content())
            if app == "lab" and os.environ.get("AMLFLOW_UPDATE_SCREENSHOT"):
                DOCS.mkdir(exist_ok=True)
                shutil.copyfile(chart_shot, DOCS / "chart.png")
                shutil.copyfile(compare_shot, DOCS / "compare.png")
        except Exception:
            shots.take(page, "failure")
            print(server.log_text()[-4000:])
            raise
