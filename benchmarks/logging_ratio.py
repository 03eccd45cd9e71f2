"""Logging: 1,000 ``mlflow.log_metric`` calls after our connect vs after the official path.

Two processes run side by side: one connects with jupyter_amlflow, the other with the official
path (``builtin`` cloud mode, see ``_common``); each starts a run and logs one metric, so the run
and the connection exist. Then they take turns: blocks of ``mlflow.log_metric("m", i, step=i)``
calls, in ABBA order (ours, official, official, ours, ...), never both at once, until each has
made N calls. Taking turns shares the sandbox's and the machine's drift between the two (the
sandbox's answer, about three quarters of each call, dominates the time). This is repeated with
fresh pairs; the figure is ours' total over the official path's total. Each call is one request through the
azureml-mlflow plugin, which asks the registered credential for a token every time. (Named
``logging_ratio`` so it does not shadow the ``logging`` module.)

Target: ours <= 1.0x the official path.

    python benchmarks/logging_ratio.py [--calls N] [--block N]
"""

from __future__ import annotations

import argparse

import _common as c


def one_pair(b: c.Bench, calls: int, block: int) -> dict[str, tuple[list[float], float]]:
    """A fresh ours/official pair, taking turns; per path: block wall times and total client CPU."""
    out: dict[str, tuple[list[float], float]] = {"ours": ([], 0.0), "official": ([], 0.0)}
    children = {path: b.talk(["log", path], b.env("builtin")) for path in out}  # they connect at once
    try:
        for child in children.values():
            child.ready()
        for i in range(calls // block):
            for path in ("ours", "official") if i % 2 == 0 else ("official", "ours"):
                seconds, cpu_seconds, _ = children[path].go(str(block))
                walls, cpu = out[path]
                walls.append(float(seconds))
                out[path] = (walls, cpu + float(cpu_seconds))
    finally:
        for child in children.values():
            child.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=2, help="fresh ours/official pairs, each making --calls calls")
    args = parser.parse_args()
    n = args.calls // args.block * args.block
    totals: dict[str, list[float]] = {"ours": [], "official": []}
    cpus: dict[str, float] = {"ours": 0.0, "official": 0.0}
    block_ratios: list[float] = []
    with c.bench() as b:
        b.run(["connect", "ours", "--warm"], b.env("builtin"))  # untimed: creates the experiment
        print(f"{n} mlflow.log_metric calls per process, in one run, blocks of {args.block} taking turns:")
        for i in range(args.pairs):
            pair = one_pair(b, args.calls, args.block)
            for path, (walls, cpu) in pair.items():
                totals[path].append(sum(walls))
                cpus[path] += cpu
            block_ratios += [o / f for o, f in zip(pair["ours"][0], pair["official"][0], strict=True)]
            ours_s, official_s = totals["ours"][-1], totals["official"][-1]
            print(f"  pair {i + 1}: ours {ours_s:.3f} s, official {official_s:.3f} s, ratio {ours_s / official_s:.3f}")
    ours, official = sum(totals["ours"]), sum(totals["official"])
    calls = n * args.pairs
    for path, total in (("ours", ours), ("official", official)):
        per_call, per_call_cpu = total / calls * 1000, cpus[path] / calls * 1000
        print(f"  {path:9} {per_call:.2f} ms per call, of which {per_call_cpu:.2f} ms client CPU")
    block_ratios.sort()
    print(
        f"  block ratios ours/official: median {c.median(block_ratios):.3f}, "
        f"min {block_ratios[0]:.3f}, max {block_ratios[-1]:.3f}"
    )
    ratio = ours / official
    c.report(
        "logging_ratio",
        round(ratio, 3),
        "<= 1.0",
        ratio <= 1.0,
        {
            "ours": f"{ours / args.pairs:.2f} s",
            "baseline": f"{official / args.pairs:.2f} s",
            "detail": f"{n} calls, mean of {args.pairs} fresh pairs taking turns in blocks of {args.block}; "
            f"client CPU per call ours {cpus['ours'] / calls * 1000:.2f} ms, "
            f"official {cpus['official'] / calls * 1000:.2f} ms",
        },
    )


if __name__ == "__main__":
    main()
