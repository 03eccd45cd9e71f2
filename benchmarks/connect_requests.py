"""Requests: how many HTTP requests a connect makes after ``import mlflow`` (existing experiment).

A fresh process imports mlflow, marks the time, connects (ours, or the official path), and marks
the time again; the sandbox's request log between the two marks is the count. The figure is
ours in the ``builtin`` cloud mode (see ``_common``; on real Azure the public cloud needs no
download); the official path's count and the as-is custom-cloud (``env``) counts are printed
beside it. Named ``connect_requests`` so it does not shadow the ``requests`` package.

Target: ours <= 5 requests.

    python benchmarks/connect_requests.py
"""

from __future__ import annotations

import _common as c


def count(b: c.Bench, path: str, mode: str) -> list[object]:
    child = b.run(["connect", path, "--warm"], b.env(mode))
    return b.requests_between(child.marks["start"], child.marks["connected"])


def main() -> None:
    with c.bench() as b:
        b.run(["connect", "ours", "--warm"], b.env("builtin"))  # untimed: creates the experiment
        counts: dict[tuple[str, str], int] = {}
        print("requests after import mlflow, existing experiment:")
        for mode in c.CLOUD_MODES:
            for path in ("ours", "official"):
                records = count(b, path, mode)
                counts[path, mode] = len(records)
                bad = [r for r in records if not 200 <= r.status < 300]
                print(f"  {path:8} {mode:7} {len(records):2}: {c.describe_requests(records)}")
                if bad:
                    print(f"           not 2xx: {c.describe_requests(bad)}")
    ours = counts["ours", "builtin"]
    c.report(
        "connect_requests",
        ours,
        "<= 5",
        ours <= 5,
        {
            "ours": str(ours),
            "baseline": str(counts["official", "builtin"]),
            "detail": f"as-is custom cloud: ours {counts['ours', 'env']}, official {counts['official', 'env']}",
        },
    )


if __name__ == "__main__":
    main()
