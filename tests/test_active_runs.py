"""Runs are never orphaned or misreported: a run open in a worker thread, a ``%%amlflow run`` interrupted."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import backend_runs, extension_shell
from IPython.core.error import UsageError
from kernels import LiveKernel


@pytest.fixture
def ip(sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)  # where a run that lost its workspace would create mlflow.db
    with extension_shell(sandbox, monkeypatch.setenv) as shell:
        yield shell


def test_a_run_open_in_a_worker_thread_stops_disconnect_and_connect(
    ip: Any, sandbox: Any, tmp_path: Path
) -> None:
    import mlflow

    ws, other = sandbox.workspaces[0], sandbox.workspaces[1]
    ip.run_line_magic("amlflow", f"connect {ws.arm_id} --experiment worker-thread")
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with mlflow.start_run(run_name="in-a-worker") as run:
                started.set()
                release.wait(60)
                mlflow.log_metric("after_the_attempt", 1.0)
                worker_run.append(run.info.run_id)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    worker_run: list[str] = []
    worker = threading.Thread(target=work, name="trainer")
    worker.start()
    try:
        assert started.wait(60)
        [running] = [r for r in backend_runs(sandbox, ws, "worker-thread") if r.info.status == "RUNNING"]
        for line, verb in ((f"connect {other.arm_id}", "connect again"), ("disconnect", "disconnect")):
            with pytest.raises(UsageError) as err:
                ip.run_line_magic("amlflow", line)
            assert str(err.value) == (
                f"An MLflow run is active in another thread ({running.info.run_id}, thread 'trainer'). "
                f"{'Disconnecting' if verb == 'disconnect' else 'Switching the workspace'} now would leave it orphaned. "
                "Let that thread end its run first (mlflow.end_run() there, or leave its 'with mlflow.start_run()' "
                f"block), then {verb}."
            )
        with pytest.raises(UsageError, match="An MLflow run is active in another thread"):
            ip.run_line_magic("unload_ext", "jupyter_amlflow")
        assert mlflow.get_tracking_uri() == ws.tracking_uri  # still connected
    finally:
        release.set()
        worker.join(60)
    assert errors == [] and worker_run == [running.info.run_id]
    ip.run_line_magic("amlflow", "disconnect")  # the worker's run has ended: now it may
    [landed] = backend_runs(sandbox, ws, "worker-thread")
    assert landed.info.status == "FINISHED" and landed.data.metrics == {"after_the_attempt": 1.0}
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_an_interrupted_amlflow_run_says_what_ran_and_where_the_run_is(
    sandbox: Any, tmp_path: Path, secret_check: Any
) -> None:
    ws = sandbox.workspaces[1]
    kernel = LiveKernel(env={**sandbox.env, **sandbox.service_principal}, cwd=tmp_path)
    try:
        ready = kernel.run(f"%load_ext jupyter_amlflow\n%amlflow connect {ws.arm_id} --experiment interrupted-cell")
        assert ready["status"] == "ok", ready
        since = time.time()
        cell = kernel.start(
            "%%amlflow run --name stopped-half-way\n"
            "import mlflow, time\n"
            "mlflow.log_metric('before_the_stop', 1.0)\n"
            "time.sleep(120)\n"
            "mlflow.log_metric('after_the_stop', 2.0)\n"
        )

        def logged_before() -> list[Any]:
            return [
                r for r in backend_runs(sandbox, ws, "interrupted-cell")
                if r.info.start_time >= since * 1000 - 1000 and "before_the_stop" in r.data.metrics
            ]  # fmt: skip

        deadline = time.monotonic() + 120
        while not logged_before():
            assert time.monotonic() < deadline, "the cell never logged its first metric"
            time.sleep(0.2)
        kernel.interrupt()  # the notebook's stop button
        reply = kernel.wait(cell, 60)
        secret_check.scan(reply)
    finally:
        kernel.close()
    [run] = logged_before()
    assert run.info.status == "FAILED" and run.data.metrics == {"before_the_stop": 1.0}
    link = (
        f"{sandbox.studio_url}/runs/{run.info.run_id}?wsid=/subscriptions/{ws.subscription_id}"
        f"/resourcegroups/{ws.resource_group}/workspaces/{ws.name}&tid={ws.tenant_id}"
    )
    assert (reply["ename"], reply["evalue"]) == (
        "UsageError",
        "%%amlflow run: interrupted while the cell ran. The cell ran up to the interruption, and its MLflow run "
        f"stopped-half-way ({run.info.run_id}) is in the workspace with status FAILED ({link}). It keeps what it "
        "logged; run the cell again for a new run.",
    )
    assert "nothing was changed" not in reply["text"] + reply["evalue"]
