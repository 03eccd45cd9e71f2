"""Discovery: list every workspace of 100 subscriptions x 5 workspaces, 100 ms added to every request.

The sandbox serves requests concurrently; each answer is delayed by 100 ms. Each path runs in its
own process, signs in and gets its token (and makes one untimed listing, so first-use costs are
paid) before the delay is switched on; then one listing of everything is timed per round.

* ours: ``ArmClient.discover_workspaces()`` of the session's sign-in: Resource Graph, and with
  Resource Graph denied to the identity, the fallback (list the subscriptions, then each
  subscription's workspaces concurrently). Ours finds the subscriptions itself.
* official: what azure-ai-ml offers, one ``MLClient`` per subscription (``cloud=`` +
  ``cloud_metadata=``, no metadata downloads) calling ``workspaces.list(scope="subscription")``,
  one after another. It is handed the subscription ids for free.

Targets: Resource Graph >= 10x faster than the official loop; the fallback >= 5x.

    python benchmarks/discovery.py [--rounds N]
"""

from __future__ import annotations

import argparse
from typing import Any

import _common as c

SUBSCRIPTIONS = 100
WORKSPACES = 5
LATENCY = 0.1


def measure(b: c.Bench, path: str, variant: str, rounds: int) -> list[float]:
    sb = b.sb
    sb.deny_resource_graph(sb.sp, variant == "fallback")
    subs = [s.subscription_id for s in sb.subscriptions]
    lister = b.talk(["discover", path, variant], b.env("builtin", subscriptions=subs)).ready()
    try:
        times = []
        for _ in range(rounds):
            sb.clear_requests()
            fault = sb.inject("*", latency=LATENCY)  # after the sign-in: tokens are in hand
            try:
                seconds, count = lister.go()
            finally:
                sb.faults.remove(fault)
            if int(count) != SUBSCRIPTIONS * WORKSPACES:
                raise RuntimeError(f"{path} {variant} found {count} workspaces, not {SUBSCRIPTIONS * WORKSPACES}")
            times.append(float(seconds))
        requests = sb.requests
    finally:
        lister.close()
        sb.deny_resource_graph(sb.sp, False)
    kinds: dict[str, int] = {}
    for r in requests:
        kinds[f"{r.method} {r.endpoint} {r.status}"] = kinds.get(f"{r.method} {r.endpoint} {r.status}", 0) + 1
    shown = ", ".join(f"{n}x {k}" for k, n in kinds.items())
    print(f"  {path:8} {variant:8} {c.spread(times)}; requests per listing: {shown}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--official-rounds", type=int, default=1, help="the official loop is slow and steady")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with c.bench(subscriptions=SUBSCRIPTIONS, workspaces_per_subscription=WORKSPACES, mlflow=False) as b:
        print(
            f"{SUBSCRIPTIONS} subscriptions x {WORKSPACES} workspaces, {LATENCY * 1000:.0f} ms added to every request:"
        )
        results["graph"] = c.median(measure(b, "ours", "graph", args.rounds))
        results["fallback"] = c.median(measure(b, "ours", "fallback", args.rounds))
        results["official"] = c.median(measure(b, "official", "graph", args.official_rounds))
    speedup = results["official"] / results["graph"]
    fallback = results["official"] / results["fallback"]
    print(f"  Resource Graph: {speedup:.1f}x faster than the official loop (target >= 10)")
    print(f"  fallback:       {fallback:.1f}x faster than the official loop (target >= 5)")
    summary = {
        "baseline": f"{results['official']:.2f} s (official, per subscription)",
        "detail": f"fallback {results['fallback']:.2f} s, {fallback:.1f}x (target >= 5)",
    }
    # Two figures: the fallback's on its own line, then the Resource Graph one last.
    print(f"discovery_fallback_speedup={fallback:.1f}")
    c.report(
        "discovery_speedup",
        round(speedup, 1),
        ">= 10 (Resource Graph), >= 5 (fallback)",
        speedup >= 10 and fallback >= 5,
        {"ours": f"{results['graph']:.2f} s (Resource Graph)", **summary, "fallback_speedup": round(fallback, 1)},
    )


if __name__ == "__main__":
    main()
