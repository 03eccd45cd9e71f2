"""Load: what ``%load_ext jupyter_amlflow`` adds to a fresh IPython shell, against ``import mlflow``.

Three kinds of fresh process, interleaved in rotating order (``import mlflow``, long and steady
next to the small difference measured, only in the first rounds), timed whole (interpreter
start to exit):

* shell: creates an IPython ``InteractiveShell``;
* shell + load: the same, then ``%load_ext jupyter_amlflow`` (it also reports which mlflow or
  azure modules are loaded afterwards: there must be none);
* mlflow: ``import mlflow`` (with the azureml-mlflow plugin installed, as in use).

The figure is (median(shell + load) - median(shell)) / median(mlflow), in percent. The
in-process time of the ``%load_ext`` call alone is printed beside it.

Target: <= 5 %, and no mlflow or azure module imported by loading.

    python benchmarks/load.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json

import _common as c

SHELL = "from IPython.core.interactiveshell import InteractiveShell; shell = InteractiveShell.instance()"
LOAD = (
    SHELL + "\nimport sys, time, json\nt = time.perf_counter()\n"
    "shell.run_line_magic('load_ext', 'jupyter_amlflow')\n"
    "print(json.dumps({'seconds': time.perf_counter() - t, "
    "'heavy': sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'azure', 'azureml'))}))"
)
MLFLOW = "import mlflow"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds of the two shells")
    parser.add_argument("--mlflow-rounds", type=int, default=5, help="of which import mlflow runs in")
    args = parser.parse_args()
    kinds = {"shell": SHELL, "shell + load": LOAD, "mlflow": MLFLOW}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    in_process: list[float] = []
    heavy: set[str] = set()
    with c.bench(sandbox=False) as b:
        for code in kinds.values():  # untimed: fills the OS file cache and writes bytecode
            b.run_code(code, b.base_env())
        for i in range(args.rounds):
            names = [k for k in kinds if k != "mlflow" or i < args.mlflow_rounds]
            for name in names[i % len(names) :] + names[: i % len(names)]:
                seconds, out = b.run_code(kinds[name], b.base_env())
                times[name].append(seconds)
                if name == "shell + load":
                    report = json.loads(out.strip().splitlines()[-1])
                    in_process.append(report["seconds"])
                    heavy.update(report["heavy"])
    print("whole fresh processes, medians of interleaved rounds:")
    for name in kinds:
        print(f"  {name:13} {c.spread(times[name])}")
    shell, loaded, mlflow = (c.median(times[k]) for k in kinds)
    pct = (loaded - shell) / mlflow * 100
    paired = [x - y for x, y in zip(times["shell + load"], times["shell"], strict=True)]
    print(f"  paired difference per round: {c.spread(paired)}")
    print(f"  %load_ext alone, in-process: {c.spread(in_process)}")
    print(f"  modules of mlflow/azure loaded by %load_ext: {', '.join(sorted(heavy)) or 'none'}")
    print(f"  overhead: ({loaded:.3f} - {shell:.3f}) / {mlflow:.3f} = {pct:.1f} %")
    c.report(
        "load_overhead_pct",
        round(pct, 1),
        "<= 5 % of import mlflow, no mlflow/azure import",
        pct <= 5 and not heavy,
        {
            "ours": f"+{(loaded - shell) * 1000:.0f} ms (in-process {c.median(in_process) * 1000:.0f} ms)",
            "baseline": f"import mlflow {mlflow:.2f} s",
            "detail": f"imports mlflow/azure: {'yes: ' + ', '.join(sorted(heavy)) if heavy else 'no'}",
        },
    )


if __name__ == "__main__":
    main()
