"""Logging: 1,000 ``mlflow.log_metric`` calls after our connect vs after the official path.

Two processes run side by side: one connects with jupyter_amlflow, the other with the official
path (``builtin`` cloud mode, see ``_common``); each starts a run and logs one metric, so the run
and the connection exist. Then they take turns: blocks of ``mlflow.log_metric("m", i, step=i)``
calls, in ABBA order (ours, official, official, ours, ...), never both at once, until each has
made N calls. Taking turns shares the sandbox's and the machine's drift between the two; the
figure is ours' total over the official path's total. Each call is one request through the
azureml-mlflow plugin, which asks the registered credential for a token every time. (Named
``logging_ratio`` so it does not shadow the ``logging`` module.)

Target: ours <= 1.0x the official path.

    python benchmarks/logging_ratio.py [--calls N] [--block N]
"""

from __future__ import annotations

import argparse

import _common as c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--block", type=int, default=10)
    args = parser.parse_args()
    blocks = args.calls // args.block
    times: dict[str, list[float]] = {"ours": [], "official": []}
    with c.bench() as b:
        b.run(["connect", "ours", "--warm"], b.env("builtin"))  # untimed: creates the experiment
        children = {path: b.talk(["log", path], b.env("builtin")) for path in ("ours", "official")}
        try:
            for i in range(blocks):
                for path in ("ours", "official") if i % 2 == 0 else ("official", "ours"):
                    seconds, _ = children[path].go(str(args.block))
                    times[path].append(float(seconds))
        finally:
            for child in children.values():
                child.close()
    ours, official = sum(times["ours"]), sum(times["official"])
    pairs = sorted(o / f for o, f in zip(times["ours"], times["official"], strict=True))
    print(f"{blocks * args.block} mlflow.log_metric calls each, in one run each, blocks of {args.block} taking turns:")
    print(f"  ours      {ours:.3f} s ({ours / (blocks * args.block) * 1000:.2f} ms per call)")
    print(f"  official  {official:.3f} s ({official / (blocks * args.block) * 1000:.2f} ms per call)")
    print(f"  block ratios ours/official: median {c.median(pairs):.3f}, min {pairs[0]:.3f}, max {pairs[-1]:.3f}")
    ratio = ours / official
    c.report(
        "logging_ratio",
        round(ratio, 3),
        "<= 1.0",
        ratio <= 1.0,
        {
            "ours": f"{ours:.2f} s",
            "baseline": f"{official:.2f} s",
            "detail": f"{blocks * args.block} calls each, blocks of {args.block} in turn; "
            f"block ratios {pairs[0]:.2f}-{pairs[-1]:.2f}",
        },
    )


if __name__ == "__main__":
    main()
