"""The live chart: every logged value is seen where it reaches the tracking store, and redrawn.

In-process tests connect with ``%amlflow connect`` against the sandbox and log with plain mlflow in
every way a notebook does (``log_metric`` synchronous and not, ``log_metrics``, ``MlflowClient``,
``log_batch``, sklearn autolog); what the tap saw is compared with what the backing mlflow server
holds. The kernel test runs ``%%amlflow run --live`` in a real kernel and reads the display
updates it published while the cell ran.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import backend_client, sp_shell

from jupyter_amlflow.compat.internals import cached_store
from jupyter_amlflow.runs.charts import VEGALITE
from jupyter_amlflow.runs.live import LiveChart, Watching
from jupyter_amlflow.runs.tap import METHODS, StoreTap


@pytest.fixture
def connected(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``%amlflow connect`` in an in-process shell; yields the connection."""
    with sp_shell(sandbox, monkeypatch.setenv) as ip:
        experiment = f"live-{uuid.uuid4().hex[:8]}"
        yield ip.run_line_magic("amlflow", f"connect {sandbox.workspaces[0].arm_id} --experiment {experiment}")


def test_every_way_of_logging_reaches_the_tap_once(connected: Any, sandbox: Any) -> None:
    import mlflow
    import numpy as np
    from mlflow.entities import Metric
    from sklearn.linear_model import LinearRegression

    store = cached_store(connected.tracking_uri)
    before = {name: store.__dict__.get(name) for name in METHODS}
    seen: list[tuple[str, str, float, int]] = []

    def listener(run_id: str, metrics: Any) -> None:
        seen.extend((run_id, m.key, m.value, m.step) for m in metrics)

    with StoreTap(store, listener), mlflow.start_run() as run:
        run_id = run.info.run_id
        mlflow.log_metric("sync", 1.0, step=1)
        mlflow.log_metric("async", 2.0, step=2, synchronous=False)
        mlflow.log_metrics({"many_a": 3.0, "many_b": 4.0}, step=3)
        client = mlflow.MlflowClient()
        client.log_metric(run_id, "client", 5.0, step=4)
        client.log_batch(run_id, metrics=[Metric("batch", 6.0 + i, 0, i) for i in range(3)])
        from_thread = threading.Thread(target=lambda: client.log_metric(run_id, "thread", 9.0, step=5))
        from_thread.start()
        from_thread.join()
        mlflow.sklearn.autolog(log_models=False, log_datasets=False, log_input_examples=False, silent=True)
        try:
            LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1.0, 2.0]))
        finally:
            mlflow.sklearn.autolog(disable=True)
    # The tap is gone: the store's methods are what they were (async logging's own among them).
    assert {name: store.__dict__.get(name) for name in METHODS} == before
    held = {}
    for key in mlflow.MlflowClient().get_run(run_id).data.metrics:
        for m in backend_client(sandbox, sandbox.workspaces[0]).get_metric_history(run_id, key):
            held[(m.key, m.step, m.value)] = held.get((m.key, m.step, m.value), 0) + 1
    got: dict[tuple[str, int, float], int] = {}
    for rid, key, value, step in seen:
        assert rid == run_id
        got[(key, step, value)] = got.get((key, step, value), 0) + 1
    assert got == held  # every value the server holds, each seen once, nothing else
    assert {"sync", "async", "many_a", "many_b", "client", "batch", "thread", "training_score"} <= {k for k, _, _ in got}


def test_a_listener_that_fails_never_breaks_logging(connected: Any, sandbox: Any) -> None:
    import mlflow

    def broken(run_id: str, metrics: Any) -> None:
        raise RuntimeError("a chart bug")

    with StoreTap(cached_store(connected.tracking_uri), broken), mlflow.start_run() as run:
        mlflow.log_metric("still", 1.0)
    held = backend_client(sandbox, sandbox.workspaces[0]).get_run(run.info.run_id).data.metrics
    assert held == {"still": 1.0}


class Recorder:
    """IPython's ``display(obj, display_id=True)`` and the handle's ``update``, kept as data."""

    def __init__(self) -> None:
        self.shown: list[dict[str, Any]] = []
        self.threads: set[str] = set()

    def __call__(self, obj: Any, display_id: bool = False) -> Any:
        self._record(obj)
        return self

    def update(self, obj: Any) -> None:
        self._record(obj)

    def _record(self, obj: Any) -> None:
        self.threads.add(threading.current_thread().name)
        bundle = obj._repr_mimebundle_()[0] if hasattr(obj, "_repr_mimebundle_") else {"text/plain": repr(obj)}
        self.shown.append(bundle)


def points(bundle: dict[str, Any]) -> int:
    return len(bundle[VEGALITE]["data"]["values"]) if VEGALITE in bundle else 0


def test_redraws_are_throttled_grow_and_end_with_what_the_server_holds(connected: Any) -> None:
    import mlflow

    shown = Recorder()
    with mlflow.start_run(run_name="live-in-process") as run:
        chart = LiveChart(run.info.run_id, "live-in-process", display=shown, renders="vega-lite", interval=0.2)
        watching = Watching(connected.tracking_uri, chart).start()
        try:
            started = time.monotonic()
            for step in range(40):
                mlflow.log_metric("loss", 1 / (step + 1), step=step, synchronous=step % 2 == 0)
                time.sleep(0.025)
            took = time.monotonic() - started
        finally:
            watching.stop()
    final = watching.final(mlflow.MlflowClient())
    assert "waiting for the first metric value" in shown.shown[0]["text/plain"]
    counts = [points(b) for b in shown.shown[1:]]
    assert counts == sorted(counts) and counts[-1] == 40  # never fewer points; the last redraw has all
    # At most one redraw per interval while logging, plus the last live one and the final one.
    assert len(counts) <= took / 0.2 + 3
    assert "amlflow-live-chart" in shown.threads  # redrawn by the thread, not by the logging calls
    assert shown.shown[-1][VEGALITE]["title"]["text"] == "Run live-in-process: metrics, as the workspace holds them"
    assert final.points() == {"loss": {"live-in-process": 40}}


def test_where_outputs_cannot_be_replaced_only_the_final_chart_is_shown(connected: Any) -> None:
    import mlflow

    shown = Recorder()
    with mlflow.start_run(run_name="terminal") as run:
        # Terminal IPython prints every update anew: no placeholder, no redraws, one chart at the end.
        chart = LiveChart(run.info.run_id, "terminal", display=shown, renders="html", interval=0.05, updates=False)
        watching = Watching(connected.tracking_uri, chart).start()
        try:
            for step in range(5):
                mlflow.log_metric("loss", 1 / (step + 1), step=step)
                time.sleep(0.1)
        finally:
            watching.stop()
    watching.final(mlflow.MlflowClient())
    assert len(shown.shown) == 1 and set(shown.shown[0]) == {"text/plain", "text/html"}
    assert "Run terminal: metrics, as the workspace holds them" in shown.shown[0]["text/plain"]


LIVE_CELL = """%%amlflow run --live --name live-200
import time
import mlflow

for step in range(200):
    mlflow.log_metric("loss", 1 / (step + 1), step=step)
    time.sleep(0.03)
"""


def test_a_live_cell_is_redrawn_while_it_runs_and_ends_with_all_200_values(
    sandbox: Any, tmp_path: Any, secret_check: Any
) -> None:
    from kernels import LiveKernel

    ws = sandbox.workspaces[0]
    env = {**sandbox.env, **sandbox.service_principal, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    kernel = LiveKernel(env=env, cwd=tmp_path)
    try:
        connected = kernel.run(f"%load_ext jupyter_amlflow\n%amlflow connect {ws.arm_id} --experiment live-kernel")
        assert connected["status"] == "ok", connected
        msg_id = kernel.start(LIVE_CELL)
        messages = []
        while True:  # every message the cell published, in order, until the kernel is idle again
            msg = kernel.client.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        reply = kernel.client.get_shell_msg(timeout=30)
    finally:
        kernel.close()
    assert reply["content"]["status"] == "ok"
    secret_check.scan([m["content"] for m in messages])
    first = next(m for m in messages if m["msg_type"] == "display_data" and "display_id" in m["content"]["transient"])
    chart_id = first["content"]["transient"]["display_id"]
    assert "waiting for the first metric value" in first["content"]["data"]["text/plain"]
    charts = [
        m["content"]["data"][VEGALITE]
        for m in messages
        if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == chart_id
    ]
    counts = [len(c["data"]["values"]) for c in charts]
    # Redrawn while the loop ran: updates with fewer than 200 values can only come from inside it.
    assert len([n for n in counts if n < 200]) >= 3, counts
    assert counts == sorted(counts), counts  # never fewer points than before
    final = charts[-1]
    assert final["title"]["text"] == "Run live-200: metrics, as the workspace holds them"
    assert sorted((d["x"], d["value"]) for d in final["data"]["values"]) == [(float(s), 1 / (s + 1)) for s in range(200)]
    summary = [m for m in messages if m["msg_type"] == "display_data" and "MLflow run live-200 FINISHED" in str(m["content"])]
    assert summary, "the run's summary line was not shown"
