"""The run table: ``%amlflow runs --last 500`` vs one ``search_runs(max_results=500)`` of the same runs.

The parent puts 500 finished runs (4 metrics, 3 params each, some varying) into one experiment of
the sandbox's workspace, straight into its backing mlflow server. One child process connects with
``%amlflow connect`` in an in-process IPython shell and, once both paths have run once (imports,
connections), times them taking turns in the same process, ABBA order, for ``--rounds`` rounds:

* ours: ``%amlflow runs --last 500``, and the table formatted as a notebook receives it
  (``display_formatter.format``: text and HTML);
* baseline: ``MlflowClient().search_runs([experiment_id], max_results=500)``, the one request the
  table is built from, made by the benchmark itself (``mlflow.entities.Run`` objects, no table).

The figure is the median of the per-round ratios ours / baseline. Target: <= 1.5.

    python benchmarks/runs_table.py [--runs N] [--rounds N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import time
from typing import Any

import _common as c


def populate(sb: Any, count: int) -> None:
    """``count`` finished runs in experiment ``bench`` of the first workspace (its backing server)."""
    # This process uses mlflow too: no telemetry, and no "View run" links (they carry the backend's
    # access key as user-info).
    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        os.environ[name] = "true"
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=sb.backend_tracking_uri(sb.workspaces[0]))
    experiment_id = client.create_experiment(c.EXPERIMENT)
    now = int(time.time() * 1000)

    def one(i: int) -> None:
        run = client.create_run(experiment_id, start_time=now + i, run_name=f"run-{i:03d}")
        metrics = [
            Metric("rmse", 0.2 + (i % 50) / 100, now + i, 0),
            Metric("r2", 0.9 - (i % 50) / 100, now + i, 0),
            Metric("mae", 0.1 + (i % 13) / 100, now + i, 0),
            Metric("epochs", 10.0, now + i, 0),
        ]
        params = [Param("alpha", str((i % 7) / 10)), Param("model", "ridge" if i % 2 else "lasso"), Param("seed", "42")]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, end_time=now + i + 1000)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    with c.bench() as b:
        started = time.perf_counter()
        populate(b.sb, args.runs)
        print(f"{args.runs} runs logged to the backing server in {time.perf_counter() - started:.1f} s")
        child = b.talk(["runs", str(args.runs)], b.env("env")).ready()
        ours: list[float] = []
        baseline: list[float] = []
        try:
            for i in range(args.rounds):
                order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
                seconds_ours, seconds_baseline, rows = child.go(*order)
                if int(rows) != args.runs:
                    raise RuntimeError(f"the table showed {rows} runs, not {args.runs}")
                ours.append(float(seconds_ours))
                baseline.append(float(seconds_baseline))
        finally:
            child.close()
    ratios = sorted(o / s for o, s in zip(ours, baseline, strict=True))
    print(f"  ours      %amlflow runs --last {args.runs} (formatted): {c.spread(ours)}")
    print(f"  baseline  search_runs(max_results={args.runs}):       {c.spread(baseline)}")
    print(f"  per-round ratios: median {c.median(ratios):.3f}, min {ratios[0]:.3f}, max {ratios[-1]:.3f}")
    ratio = c.median(ratios)
    c.report(
        "runs_table_ratio",
        round(ratio, 3),
        "<= 1.5",
        ratio <= 1.5,
        {
            "ours": f"{c.median(ours):.3f} s",
            "baseline": f"{c.median(baseline):.3f} s",
            "detail": f"{args.runs} runs, {args.rounds} rounds taking turns in one process; median of per-round ratios",
        },
    )


if __name__ == "__main__":
    main()
