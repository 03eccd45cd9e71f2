"""Asynchronous logging: 300 ``mlflow.log_metric(..., synchronous=False)`` calls, ours vs the official path.

Each round is a fresh process that connects (ours, or the official path in ``builtin`` cloud mode,
see ``_common``), starts a run and logs one metric; then 100 ms is added to every MLflow request
and the process makes N asynchronous ``log_metric`` calls followed by ``mlflow.end_run()``. The
rounds alternate ours, official, official, ours, ... The official path sends one
``log-batch-async`` request per call and waits for it (azureml-mlflow's ``log_batch_async``); ours
hands the values to mlflow's queue, which jupyter_amlflow gives back to the plugin's store while
connected, and sends them in batches through ``runs/log-batch``.

Figures (medians over the rounds):

* ``async_logging_block_ratio``: how long the loop blocks the notebook, ours / official
  (target <= 0.02);
* ``async_logging_flush_s``: how long ours' ``end_run`` waits after the loop, sending what is
  still queued and ending the run (target <= 1.5 s);
* ``async_logging_requests``: ours' requests that carry the N values (target <= 3).

Every round checks that the backing server has all N values of the run (the official path's
after the sandbox has written its deferred batches).

    python benchmarks/async_logging.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _common as c

LATENCY = 0.1
CARRIERS = ("/runs/log-batch", "/runs/log-batch-async")
PATHS = ("ours", "official")


def one_round(b: c.Bench, path: str, calls: int) -> dict[str, Any]:
    """One fresh process on ``path``: loop and end_run seconds, and the requests in between."""
    sb = b.sb
    child = b.talk(["asynclog", path], b.env("builtin")).ready()
    fault = sb.inject("mlflow", latency=LATENCY)
    try:
        started = time.time()
        loop, end_run, run_id = child.go(str(calls))
        ended = time.time()
    finally:
        sb.faults.remove(fault)
        child.close()
    window = [r for r in sb.requests if r.endpoint == "mlflow" and r.time - r.duration >= started and r.time <= ended]
    carried = [r for r in window if r.path.endswith(CARRIERS)]
    return {
        "loop": float(loop),
        "end_run": float(end_run),
        "requests": len(carried),
        "kinds": sorted({r.path.rsplit("/", 1)[1] for r in carried}),
        "refused": [r.status for r in carried if r.status != 200],
        "run_id": run_id,
    }


def landed(b: c.Bench, run_id: str, calls: int, timeout: float = 60.0) -> int:
    """How many of the run's values the backing server has (waiting for deferred writes)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=b.sb.backend_tracking_uri(b.workspace))
    deadline = time.monotonic() + timeout
    while True:
        count = len(client.get_metric_history(run_id, "m"))
        if count >= calls or time.monotonic() > deadline:
            return count
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per path")
    args = parser.parse_args()
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be at least 1")
    rounds: dict[str, list[dict[str, Any]]] = {"ours": [], "official": []}
    with c.bench() as b:
        b.run(["connect", "ours", "--warm"], b.env("builtin"))  # untimed: creates the experiment
        print(
            f"{args.calls} asynchronous mlflow.log_metric calls + end_run per round, "
            f"+{LATENCY * 1000:.0f} ms per MLflow request:"
        )
        for i in range(args.rounds):
            for path in ("ours", "official") if i % 2 == 0 else ("official", "ours"):
                result = one_round(b, path, args.calls)
                got = landed(b, result["run_id"], args.calls)
                if got != args.calls or result["refused"]:
                    raise SystemExit(f"{path}: {got} of {args.calls} values landed; refused: {result['refused']}")
                rounds[path].append(result)
                print(
                    f"  {path:8} loop {result['loop']:.3f} s ({result['loop'] / args.calls * 1000:.2f} ms per call), "
                    f"end_run {result['end_run']:.3f} s, {result['requests']} requests carrying values "
                    f"({', '.join(result['kinds'])})"
                )
    ours, official = ({k: c.median([r[k] for r in rounds[p]]) for k in ("loop", "end_run", "requests")} for p in PATHS)
    ratio = ours["loop"] / official["loop"]
    flush, requests = ours["end_run"], int(max(r["requests"] for r in rounds["ours"]))
    for path, note in (("ours", ""), ("official", " (its values not yet persisted when it returns)")):
        loops, ends = [r["loop"] for r in rounds[path]], [r["end_run"] for r in rounds[path]]
        print(f"  {path:8} loop {c.spread(loops)}; end_run {c.spread(ends)}{note}")
    met = ratio <= 0.02 and flush <= 1.5 and requests <= 3
    # Three figures: flush and requests on their own lines, the block ratio last.
    print(f"async_logging_flush_s={flush:.3f}")
    print(f"async_logging_requests={requests}")
    c.report(
        "async_logging_block_ratio",
        round(ratio, 5),
        "<= 0.02 (block ratio), <= 1.5 s (flush), <= 3 (requests)",
        met,
        {
            "ours": f"loop {ours['loop']:.3f} s, end_run {flush:.2f} s, {requests} requests",
            "baseline": f"loop {official['loop']:.2f} s, {int(official['requests'])} requests",
            "detail": f"{args.calls} calls, median of {args.rounds} fresh processes per path; "
            f"async_logging_flush_s={flush:.2f} (<= 1.5), async_logging_requests={requests} (<= 3, the most "
            "of any round)",
            "flush_s": round(flush, 3),
            "requests": requests,
        },
    )


if __name__ == "__main__":
    main()
