"""The measured process: ``python benchmarks/_child.py TASK ...`` (started by the benchmark scripts).

Settings come from ``AMLFLOW_BENCH`` (JSON, see ``_common.Bench.env``) and the sandbox's service
principal from ``AZURE_TENANT_ID`` / ``AZURE_CLIENT_ID`` / ``AZURE_CLIENT_SECRET``. The child
prints ``@mark NAME TIME`` lines (``time.time()``, comparable with the sandbox's request log) and
one ``@result {json}`` line.

Tasks:
  connect PATH [--warm] [--preimport]
      PATH is ours, official or floor. --warm imports IPython and mlflow before the clock starts
      (the notebook case); --preimport also imports every module either path needs (the calls
      alone).
  devicecode
      ours, signing in with device code (the parent approves the code).
  log PATH
      connects (PATH is ours or official), starts a run, prints ``ready``, then times N
      ``mlflow.log_metric`` calls per ``go N`` line on stdin (wall and CPU time), until ``quit``.
  discover PATH VARIANT
      PATH is ours or official; VARIANT graph or fallback. Prints ``ready``, then times one
      listing of every workspace per ``go`` line on stdin, until ``quit``.
  asynclog PATH
      connects (PATH is ours or official), starts a run, prints ``ready``; on ``go N`` times N
      ``mlflow.log_metric(..., synchronous=False)`` calls, then ``mlflow.end_run()``, and prints
      ``took LOOP END_RUN RUN_ID``; on ``quit`` it leaves at once (``os._exit``: the plugin's
      status polls would otherwise hold the exit for minutes).
  runs COUNT
      connects with %amlflow connect in an in-process IPython shell, prints ``ready``; on each
      ``go`` line times ``%amlflow runs --last COUNT`` (the table formatted as a notebook gets
      it: text and HTML) and one ``MlflowClient().search_runs(max_results=COUNT)`` of the same
      experiment, in the order the line gives, and prints ``took OURS BASELINE ROWS``.
"""

from __future__ import annotations

import time

BEGIN = time.time()  # first line that runs: the interpreter has started

import importlib  # noqa: E402
import sys  # noqa: E402

import _common as c  # noqa: E402

# Every module either path imports: with all of them loaded first, the clock sees the calls alone.
PREIMPORT = (
    "azure.identity",
    "azure.ai.ml",
    "jupyter_amlflow.arm",
    "jupyter_amlflow.auth",
    "jupyter_amlflow.connection",
    "jupyter_amlflow.devicecode",
    "jupyter_amlflow.tracking",
)


def connect(args: list[str]) -> None:
    path = args[0]
    p = c.params()
    if "--warm" in args or "--preimport" in args:
        import IPython  # noqa: F401 - a notebook's kernel has it
        import mlflow  # noqa: F401 - a notebook that already uses mlflow

        c.mark("imported")
    if "--preimport" in args:
        for name in PREIMPORT:
            importlib.import_module(name)
        c.mark("preimported")
    started = time.perf_counter()
    c.mark("start")
    experiment_id = c.CONNECTS[path](p)
    seconds = time.perf_counter() - started
    c.mark("connected")
    c.result({"seconds": seconds, "experiment_id": experiment_id})


class _Recorder:
    """A device-code renderer that only records (the parent plays the person)."""

    def show(self, prompt: object) -> None:
        c.mark("prompt")

    def finish(self, outcome: str, detail: str = "") -> None:
        c.mark("signed-in" if outcome == "signed-in" else "sign-in-" + outcome)


def devicecode(args: list[str]) -> None:
    p = c.params()
    fresh = "mlflow" not in sys.modules
    c.mark("start")
    experiment_id = c.connect_ours(p, auth=["device-code"], renderer=_Recorder())
    c.mark("connected")
    c.result({"experiment_id": experiment_id, "mlflow_not_imported_at_start": fresh})


def discover(args: list[str]) -> None:
    path, _variant = args  # the parent denies Resource Graph for the fallback
    p = c.params()
    subscriptions: list[str] = p["subscriptions"]
    if path == "ours":
        session = c.ours_session(p, auth=["env"])
        cloud = session.resolve_cloud(p["cloud"])
        signin = session.sign_in(cloud)  # the token, fetched before the clock
        arm = session.arm(cloud, signin)
        arm.workspaces(subscriptions[0])  # first-use costs (connections, parsing) before the clock

        def run() -> int:
            found = arm.discover_workspaces()
            return len(found.workspaces)

    else:
        from azure.ai.ml import MLClient

        credential = c.official_credential(p)
        credential.get_token(p["base_url"].rstrip("/") + "/.default")  # the token, fetched before the clock
        metadata = c.cloud_metadata_for(p)
        warm = MLClient(credential, subscriptions[0], enable_telemetry=False, cloud=p["cloud"], cloud_metadata=metadata)
        list(warm.workspaces.list(scope="subscription"))  # first-use costs before the clock

        def run() -> int:
            # What azure-ai-ml offers: one client per subscription, listed one after another.
            found = []
            for sub in subscriptions:
                ml_client = MLClient(credential, sub, enable_telemetry=False, cloud=p["cloud"], cloud_metadata=metadata)
                found += list(ml_client.workspaces.list(scope="subscription"))
            return len(found)

    print("ready", flush=True)
    for line in sys.stdin:
        if line.split()[:1] != ["go"]:
            break
        started = time.perf_counter()
        count = run()
        print(f"took {time.perf_counter() - started:.6f} {count}", flush=True)


def log(args: list[str]) -> None:
    import mlflow

    c.CONNECTS[args[0]](c.params())
    step = 0
    with mlflow.start_run():
        mlflow.log_metric("m", step, step=step)  # the run exists; the clock measures steady-state calls
        print("ready", flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] != "go":
                break
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(int(words[1])):
                step += 1
                mlflow.log_metric("m", step, step=step)
            print(f"took {time.perf_counter() - started:.6f} {time.process_time() - cpu:.6f} {step}", flush=True)


def asynclog(args: list[str]) -> None:
    import os

    import mlflow

    c.CONNECTS[args[0]](c.params())
    run = mlflow.start_run()
    mlflow.log_metric("warm", 0.0)  # the run exists, first-use costs are paid; the clock measures the loop
    print("ready", flush=True)
    words = sys.stdin.readline().split()
    count = int(words[1])
    c.mark("loop")
    started = time.perf_counter()
    for step in range(count):
        mlflow.log_metric("m", float(step), step=step, synchronous=False)
    loop = time.perf_counter() - started
    c.mark("end_run")
    started = time.perf_counter()
    mlflow.end_run()
    ended = time.perf_counter() - started
    c.mark("ended")
    print(f"took {loop:.6f} {ended:.6f} {run.info.run_id}", flush=True)
    sys.stdin.readline()  # quit
    sys.stdout.flush()
    os._exit(0)


def runs(args: list[str]) -> None:
    count = int(args[0])
    p = c.params()
    from IPython.core.interactiveshell import InteractiveShell
    from mlflow import MlflowClient

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_amlflow")
    ip.magics_manager.registry["AmlflowMagics"].auth = ["env"]
    arm_id = (
        f"/subscriptions/{p['subscription']}/resourceGroups/{p['resource_group']}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{p['workspace']}"
    )
    conn = ip.run_line_magic("amlflow", f"connect {arm_id} --experiment {p['experiment']}")
    experiment_id = conn.experiment.experiment_id
    client = MlflowClient()

    def ours() -> int:
        table = ip.run_line_magic("amlflow", f"runs --last {count}")
        ip.display_formatter.format(table)  # what the kernel sends: text/plain and text/html
        return len(table.rows)

    def baseline() -> int:
        return len(client.search_runs([experiment_id], max_results=count))

    ours(), baseline()  # first-use costs (imports, connections) before the clock
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] != ["go"]:
            break
        took: dict[str, float] = {}
        rows = 0
        for path in words[1:]:
            started = time.perf_counter()
            rows = ours() if path == "ours" else baseline()
            took[path] = time.perf_counter() - started
        print(f"took {took['ours']:.6f} {took['baseline']:.6f} {rows}", flush=True)


TASKS = {
    "connect": connect,
    "devicecode": devicecode,
    "discover": discover,
    "log": log,
    "asynclog": asynclog,
    "runs": runs,
}

if __name__ == "__main__":
    print(f"@mark begin {BEGIN:.6f}", flush=True)
    TASKS[sys.argv[1]](sys.argv[2:])
    c.mark("end")
