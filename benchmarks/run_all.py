"""Run every benchmark, then print a markdown table of the figures (with --notes, also to a file).

Each script runs in its own process and prints its figure on its last line (``name=value``);
this collects the ``summary`` line each prints just before, and writes the table with a
description of the machine (CPUs, CPU model, RAM, Python, package versions, date, load).

    python benchmarks/run_all.py [--notes PATH] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import _common as c

SCRIPTS = (
    "load.py",
    "connect_warm.py",
    "connect_cold.py",
    "connect_requests.py",
    "devicecode_tail.py",
    "discovery.py",
    "logging_ratio.py",
    "async_logging.py",
    "sandbox_startup.py",
    "runs_table.py",
    "chart_render.py",
)


def run(script: str) -> tuple[dict[str, object] | None, float]:
    """Run one script, echoing its output; return its summary and duration."""
    print(f"\n=== {script}", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(c.HERE / script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print("    " + line, end="", flush=True)
        lines.append(line.rstrip("\n"))
    proc.wait()
    seconds = time.perf_counter() - started
    summary = next((json.loads(x[len("summary ") :]) for x in reversed(lines) if x.startswith("summary ")), None)
    if proc.returncode != 0:
        print(f"    ({script} exited {proc.returncode})")
    return summary, seconds


def table(summaries: list[tuple[str, dict[str, object] | None, float]]) -> str:
    rows = [
        "| figure | ours | baseline | value | target | met | notes | time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for script, s, seconds in summaries:
        if s is None:
            rows.append(f"| `{script}` | | | failed | | no | see the output | {seconds:.0f} s |")
            continue
        rows.append(
            f"| `{s['name']}` | {s['ours']} | {s['baseline']} | **{s['value']}** | {s['target']} | "
            f"{'yes' if s['met'] else '**no**'} | {s.get('detail', '')} | {seconds:.0f} s |"
        )
    return "\n".join(rows)


def machine_text(total: float) -> str:
    m = c.machine()
    return "\n".join(
        [
            f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, {m['os']}",
            f"- Python {m['python']}; {m['packages']}",
            f"- Date: {m['date']}; load average after the run: {c.load_average()}; total run time {total:.0f} s",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--notes", type=Path, default=None, help="also write the table (markdown) here")
    parser.add_argument("--only", nargs="*", help="script names to run (default: all)")
    args = parser.parse_args()
    scripts = [s for s in SCRIPTS if not args.only or s in args.only or s.removesuffix(".py") in args.only]
    started = time.perf_counter()
    summaries = []
    for script in scripts:
        summary, seconds = run(script)
        summaries.append((script, summary, seconds))
    total = time.perf_counter() - started
    text = "\n\n".join(
        [
            "# Benchmarks (jupyter_amlflow vs the official path, against the sandbox)",
            machine_text(total),
            table(summaries),
            "Run: `python benchmarks/run_all.py` (or one script, e.g. `python benchmarks/connect_cold.py`); "
            "each script prints its figure as `name=value` on its last line.",
        ]
    )
    print("\n" + text)
    if args.notes:
        args.notes.parent.mkdir(parents=True, exist_ok=True)
        args.notes.write_text(text + "\n")
        print(f"\n(written to {args.notes})")


if __name__ == "__main__":
    main()
