"""Connect, warm (the notebook case): mlflow is already imported; time the connect cell.

Each measurement is a fresh process that imports mlflow, then times one connect to the
sandbox's workspace as the service principal (the experiment exists):

* ours: ``import jupyter_amlflow`` + ``Session(...).connect(...)``;
* official: ``from azure.ai.ml import MLClient``, ``ClientSecretCredential(...)``,
  ``MLClient(...)``, ``workspaces.get(...).mlflow_tracking_uri``, ``mlflow.set_tracking_uri``,
  ``mlflow.set_experiment`` (mlclient-wire.md section 4).

The figure (``builtin`` cloud mode, see ``_common``) counts each path's own imports, as the cell
would. Printed beside it: the same with every import done before the clock (the calls alone),
and the as-is custom cloud (``env``).

Target: ours <= 0.5x the official path.

    python benchmarks/connect_warm.py [--rounds N]
"""

from __future__ import annotations

import argparse

import _common as c


def measure(b: c.Bench, mode: str, rounds: int, *flags: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"ours": [], "official": []}
    for i in range(rounds):
        for path in ("ours", "official") if i % 2 == 0 else ("official", "ours"):
            child = b.run(["connect", path, "--warm", *flags], b.env(mode))
            times[path].append(child.result["seconds"])
    return times


def show(title: str, t: dict[str, list[float]]) -> float:
    print(title)
    print(f"  ours      {c.spread(t['ours'])}")
    print(f"  official  {c.spread(t['official'])}")
    ratio = c.median(t["ours"]) / c.median(t["official"])
    print(f"  ours / official = {ratio:.3f}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls-rounds", type=int, default=2, help="rounds for the calls-alone figure")
    parser.add_argument("--env-rounds", type=int, default=2, help="rounds for the as-is custom-cloud figure")
    args = parser.parse_args()
    with c.bench() as b:
        for path in ("ours", "official"):  # untimed: creates the experiment, warms caches and the backend
            b.run(["connect", path, "--warm"], b.env("builtin"))
        t = measure(b, "builtin", args.rounds)
        ratio = show(f"connect, warm (mlflow imported; the cell's own imports counted), {args.rounds} rounds:", t)
        calls = measure(b, "builtin", args.calls_rounds, "--preimport")
        calls_ratio = show(
            f"the calls alone (every module of both paths imported before the clock), {args.calls_rounds} rounds:",
            calls,
        )
        env = measure(b, "env", args.env_rounds)
        env_ratio = show(
            f"as-is custom cloud (ARM_CLOUD_METADATA_URL, metadata downloads included), {args.env_rounds} rounds:",
            env,
        )
    c.report(
        "connect_warm_ratio",
        round(ratio, 3),
        "<= 0.5",
        ratio <= 0.5,
        {
            "ours": f"{c.median(t['ours']):.2f} s",
            "baseline": f"{c.median(t['official']):.2f} s",
            "detail": f"calls alone: ours {c.median(calls['ours']):.2f} s, official "
            f"{c.median(calls['official']):.2f} s ({calls_ratio:.2f}); as-is custom cloud: ours "
            f"{c.median(env['ours']):.2f} s, official {c.median(env['official']):.2f} s ({env_ratio:.2f})",
        },
    )


if __name__ == "__main__":
    main()
