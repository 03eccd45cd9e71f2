"""Charts in the browser: a comparison of 10,000 points, from Shift+Enter to the SVG being present.

The parent logs two runs of 5,000 ``loss`` values each (the most a line is drawn without
downsampling) into the sandbox workspace's backing mlflow server, starts JupyterLab on 127.0.0.1
with the sandbox's service principal in its environment, and drives headless Chromium: one cell
connects (``%amlflow connect``), then two cells take turns, ``--rounds`` times each:

* ours: ``%amlflow compare bench-a bench-b``: two ``get-history`` reads through the workspace,
  the side-by-side table and the Vega-Lite chart of 10,000 points, drawn by JupyterLab's own
  renderer as SVG;
* baseline: the same Vega-Lite document (built by the parent from the values it logged, with the
  same code) displayed from a file: the browser's drawing alone, no request.

Each time is from the key press to both lines being in the page's SVG (polled every animation
frame in the page). The figure is ours' median; the baseline's is printed beside it, and so is
how long the sandbox took to answer each ``get-history`` read (its mlflow server reading 5,000
rows, concurrently for the two runs): the difference between the two paths is mostly that.
Target: <= 2 s on this 2-core machine (the issue sets none: two seconds from the key press to a
chart of 10,000 points; at a load average of 5 from other work it took 2.8 s).

    python benchmarks/chart_render.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import _common as c

sys.path.insert(0, str(c.ROOT / "tests"))  # the browser tests' Jupyter server and Chromium helpers

POINTS = 5000
RUNS = ("bench-a", "bench-b")
TARGET = 2.0
OURS_CELL = f"%amlflow compare {' '.join(RUNS)}"
# True once the cell's output holds a freshly drawn chart with both lines: the time in the page.
DRAWN = """([index, lines]) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  const svg = cell && [...cell.querySelectorAll('.jp-RenderedVegaLite svg.marks')].find(s => !s.dataset.old);
  return svg && svg.querySelectorAll('g.mark-line path').length === lines ? performance.now() : false;
}"""
MARK_OLD = """(index) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  cell.querySelectorAll('svg.marks').forEach(s => { s.dataset.old = '1'; });
}"""


def log_runs(sb: Any) -> dict[str, Any]:
    """Two runs of ``POINTS`` loss values; returns the chart document ours would draw from them."""
    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        os.environ[name] = "true"  # this process uses mlflow; "View run" links would carry the backend key
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from jupyter_amlflow.runs.charts import Chart, RunValues, Value, make_panel

    client = MlflowClient(tracking_uri=sb.backend_tracking_uri(sb.workspaces[0]))
    experiment_id = client.create_experiment(c.EXPERIMENT)
    now = int(time.time() * 1000)
    lines = []
    for i, name in enumerate(RUNS):
        run = client.create_run(experiment_id, run_name=name, start_time=now + i)
        values = [Value(step, now + step, (1 + i) / (1 + step / 50) + (step % 17) / 400) for step in range(POINTS)]
        for start in range(0, POINTS, 1000):
            batch = [Metric("loss", v.value, v.timestamp, v.step) for v in values[start : start + 1000]]
            client.log_batch(run.info.run_id, metrics=batch)
        client.set_terminated(run.info.run_id)
        lines.append(RunValues(run.info.run_id, name, values))
    chart = Chart("Metric history", (make_panel("loss", lines),), (), "vega-lite")
    data, metadata = chart._repr_mimebundle_()
    return {"data": data, "metadata": metadata}


def press(page: Any, index: int) -> float:
    """Run cell ``index`` (Shift+Enter); returns the page's clock just before the key press."""
    page.evaluate(MARK_OLD, index)
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
    started = float(page.evaluate("performance.now()"))
    page.keyboard.press("Shift+Enter")
    return started


def drawn_after(page: Any, index: int, started: float, lines: int) -> float:
    handle = page.wait_for_function(DRAWN, arg=[index, lines], polling="raf", timeout=120_000)
    return (float(handle.json_value()) - started) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from browser_support import chromium, jupyter_server, write_notebook

    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    with c.bench() as b:
        bundle = log_runs(b.sb)
        root = b.scratch / "root"
        root.mkdir()
        (root / "chart.json").write_text(json.dumps(bundle))
        ws = b.workspace
        write_notebook(
            root / "bench.ipynb",
            f"%load_ext jupyter_amlflow\n%amlflow connect {ws.arm_id} --experiment {c.EXPERIMENT} --auth env",
            OURS_CELL,
            "import json\nfrom IPython.display import display\n"
            "doc = json.load(open('chart.json'))\ndisplay(doc['data'], metadata=doc['metadata'], raw=True)",
        )
        env = b.env("env")
        with jupyter_server("lab", root, env) as server, chromium() as context:
            page = context.new_page()
            server.wait_ready()
            page.goto(server.notebook_url("bench.ipynb"))
            page.locator(".jp-Notebook .jp-Cell").nth(2).wait_for(timeout=60_000)
            _wait_for_kernel(server)
            press(page, 0)
            connected = page.locator(".jp-Notebook .jp-Cell").nth(0).get_by_text(f"Connected to {ws.name}")
            connected.wait_for(timeout=120_000)
            # Once each before the clock: the renderer's code is loaded on first use.
            for index in (1, 2):
                drawn_after(page, index, press(page, index), len(RUNS))
            for i in range(args.rounds):
                for path in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                    index = 1 if path == "ours" else 2
                    times[path].append(drawn_after(page, index, press(page, index), len(RUNS)))
                    time.sleep(0.5)  # let the renderer's PNG snapshot of the chart finish
            print(f"  ours     %amlflow compare, 2 x {POINTS:,} points: {c.spread(times['ours'])}")
            print(f"  baseline the same document displayed:        {c.spread(times['baseline'])}")
        reads = [r.duration for r in b.sb.requests if r.path.startswith("/mlflow/") and r.path.endswith("/get-history")]
        print(f"  sandbox answering one get-history of {POINTS:,} values: {c.spread(reads)}")
    ours, baseline = c.median(times["ours"]), c.median(times["baseline"])
    c.report(
        "chart_render_s",
        round(ours, 3),
        f"<= {TARGET:g} s",
        ours <= TARGET,
        {
            "ours": f"{ours:.2f} s",
            "baseline": f"{baseline:.2f} s",
            "detail": f"2 runs x {POINTS:,} points, JupyterLab + headless Chromium, SVG renderer, "
            f"median of {args.rounds} key presses each, taking turns; the sandbox answered each history read "
            f"in {c.median(reads):.2f} s (two at once)",
        },
    )


def _wait_for_kernel(server: Any, timeout: float = 60) -> None:
    """Until the page's kernel is idle and connected (keystrokes before that are lost)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kernels = server.api("api/kernels")
        except OSError:
            kernels = []
        if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
            return
        time.sleep(0.1)
    raise RuntimeError(f"no kernel became ready:\n{server.log_text()[-2000:]}")


if __name__ == "__main__":
    main()
