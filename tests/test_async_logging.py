"""Asynchronous logging while connected: batched, in order, and nothing lost.

Every test connects through ``%amlflow connect`` (an in-process IPython shell, a real kernel, or a
script using ``jupyter_amlflow.connect``), logs with plain ``mlflow`` against the sandbox with
+100 ms on every MLflow request, and reads back what landed with a plain ``MlflowClient`` on the
backing mlflow server. Faults (503 with ``Retry-After``, 401, stalls), a 2-second token lifetime
and Ctrl-C are injected while values are queued. The module has a sandbox of its own: its faults
and token lifetime must not reach other modules.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import backend_client, isolated_mlflow
from IPython.core.interactiveshell import InteractiveShell
from kernels import LiveKernel

LATENCY = 0.1  # seconds added to every MLflow request, as in the figures
ASYNC_ENV = ("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "MLFLOW_ASYNC_LOGGING_THREADPOOL_SIZE", "MLFLOW_ENABLE_ASYNC_LOGGING")


@pytest.fixture(scope="module")
def asb(sandbox_factory: Any) -> Iterator[Any]:
    sb = sandbox_factory(subscriptions=1, workspaces_per_subscription=1, max_backends=1)
    yield sb
    sb.clear_faults()


@pytest.fixture
def ws(asb: Any) -> Any:
    return asb.workspaces[0]


@pytest.fixture
def user_env(asb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The sandbox cloud and service principal in the environment; mlflow's state restored after."""
    for k, v in {**asb.env, **asb.service_principal}.items():
        monkeypatch.setenv(k, v)
    for name in ASYNC_ENV:
        monkeypatch.delenv(name, raising=False)
    try:
        with isolated_mlflow():
            yield asb
    finally:
        asb.clear_faults()
        asb.token_lifetime = 3600.0


@pytest.fixture
def shell(user_env: Any) -> Iterator[Any]:
    """An in-process IPython shell with the extension loaded, signing in as the service principal."""
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_amlflow")
    magics = ip.magics_manager.registry["AmlflowMagics"]
    magics.timeout, magics.auth = 30.0, ["env"]
    try:
        yield ip
    finally:
        magics.async_logging = False
        if magics.session.connection is not None:
            magics.session.disconnect()
        ip.run_line_magic("unload_ext", "jupyter_amlflow")


def connect(ip: Any, ws: Any, experiment: str, *options: str) -> Any:
    ip.run_line_magic("amlflow", f"connect {ws.arm_id} --experiment {experiment} {' '.join(options)}".strip())
    return ip.magics_manager.registry["AmlflowMagics"].session.connection


def status_rows(ip: Any) -> dict[str, str]:
    """``%amlflow status`` as the text a person reads, by row label."""
    text = repr(ip.run_line_magic("amlflow", "status"))
    return {m.group(1): m.group(2) for m in re.finditer(r"^  (\S.*?)  +(.*)$", text, re.M)}


def log_batches(sb: Any, since: float) -> list[Any]:
    """The ``runs/log-batch`` requests (and Azure's ``log-batch-async``) that started after ``since``."""
    return [
        r
        for r in sb.requests
        if r.endpoint == "mlflow" and r.path.endswith(("/runs/log-batch", "/runs/log-batch-async"))
        and r.time - r.duration >= since
    ]


def history(sb: Any, ws: Any, run_id: str, key: str = "loss") -> list[tuple[int, float]]:
    """The metric's history in the backing server, by step (each step once, or the test fails)."""
    got = [(m.step, m.value) for m in backend_client(sb, ws).get_metric_history(run_id, key)]
    return sorted(got)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.05)


# -- what must hold ---------------------------------------------------------------------------------
def test_a_thousand_asynchronous_metrics_go_in_a_few_batches_and_arrive_in_order(shell: Any, asb: Any, ws: Any) -> None:
    import mlflow

    sb = asb
    connect(shell, ws, "async-thousand")
    sb.inject("mlflow", latency=LATENCY)
    with mlflow.start_run() as run:
        started = time.time()
        mlflow.log_param("model", "ridge", synchronous=False)
        for step in range(1000):
            mlflow.log_metric("loss", 1 / (step + 1), step=step, synchronous=False)
            if step % 100 == 0:
                mlflow.set_tag("progress", str(step), synchronous=False)
        loop_seconds = time.time() - started
        waiting = int(status_rows(shell)["Values waiting"])
        before_end = len(history(sb, ws, run.info.run_id))
    ended = time.time()

    assert waiting > 0 and before_end < 1000  # accepted is not persisted: end_run sent the rest
    assert history(sb, ws, run.info.run_id) == [(step, 1 / (step + 1)) for step in range(1000)]
    data = backend_client(sb, ws).get_run(run.info.run_id).data
    assert data.params == {"model": "ridge"}
    assert data.tags["progress"] == "900"  # the last of ten writes: batches arrived in the order logged
    requests = log_batches(sb, started)
    assert all(r.path.endswith("/runs/log-batch") and r.status == 200 for r in requests)
    # The queue sends what a second gathered (at most 999 values a request): a request per
    # second of the loop at most, plus the rest at end_run.
    assert 2 <= len(requests) <= math.ceil(loop_seconds) + 3, (len(requests), loop_seconds)
    assert all(r.time <= ended for r in requests)
    assert status_rows(shell)["Values waiting"] == "0"


def test_503s_a_401_and_two_second_tokens_during_the_loop_lose_nothing(shell: Any, asb: Any, ws: Any) -> None:
    import mlflow

    sb = asb
    sb.token_lifetime = 2.0  # every access token from now on expires two seconds after it is issued
    connect(shell, ws, "async-faults")
    sb.inject("mlflow", latency=LATENCY)
    with mlflow.start_run() as run:
        started = time.time()
        unavailable = sb.inject("mlflow", status=503, retry_after=1, times=2)
        for step in range(1000):
            if step == 500:
                # The 503s were answered by now (the queue sends every second); then a token refused.
                wait_for(lambda: unavailable.hits == 2, 30, "two 503 answers")
                sb.inject("mlflow", status=401, times=1)
            mlflow.log_metric("loss", float(step), step=step, synchronous=False)
            time.sleep(0.006)  # the loop outlives a few token lifetimes
        loop_ended = time.time()

    assert history(sb, ws, run.info.run_id) == [(step, float(step)) for step in range(1000)]
    requests = log_batches(sb, started)
    statuses = [r.status for r in requests]
    assert statuses.count(503) == 2 and statuses.count(401) == 1 and statuses[-1] == 200, statuses
    for refused, retry in itertools.pairwise(requests):
        if refused.status == 503:  # Retry-After: 1 honoured
            assert retry.time - retry.duration >= refused.time + 0.95, (refused, retry)
    tokens = {r.token_id for r in requests if r.status == 200}
    assert loop_ended - started > 2 * 2.0 and len(tokens) >= 3  # tokens replaced as they expired


def test_disconnect_straight_after_the_loop_sends_everything_first(shell: Any, asb: Any, ws: Any) -> None:
    import mlflow

    sb = asb
    before = {name: os.environ.get(name) for name in ASYNC_ENV}
    conn = connect(shell, ws, "async-disconnect")
    assert os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] == "1"
    sb.inject("mlflow", latency=LATENCY)
    client = mlflow.MlflowClient()
    run_id = client.create_run(conn.experiment.experiment_id).info.run_id
    for step in range(1000):
        client.log_metric(run_id, "loss", step * 2.0, step=step, synchronous=False)
    shell.run_line_magic("amlflow", "disconnect")

    assert history(sb, ws, run_id) == [(step, step * 2.0) for step in range(1000)]
    assert {name: os.environ.get(name) for name in ASYNC_ENV} == before


def test_one_invalid_value_in_a_batch_loses_only_itself_and_is_reported_once(
    shell: Any, asb: Any, ws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    sb = asb
    connect(shell, ws, "async-invalid")
    sb.inject("mlflow", latency=LATENCY)
    caplog.set_level(logging.WARNING, logger="jupyter_amlflow.async_logging")
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.1")
        for step in range(300):
            if step == 57:
                bad_metric = mlflow.log_metric("bad@key", 1.0, step=step, synchronous=False)
            elif step == 120:
                changed_param = mlflow.log_param("lr", "0.2", synchronous=False)
            else:
                mlflow.log_metric("loss", float(step), step=step, synchronous=False)

    run_id = run.info.run_id
    expected = [(step, float(step)) for step in range(300) if step not in (57, 120)]
    assert history(sb, ws, run_id) == expected
    data = backend_client(sb, ws).get_run(run_id).data
    assert data.params == {"lr": "0.1"} and set(data.metrics) == {"loss"}
    with pytest.raises(MlflowException, match="bad@key"):
        bad_metric.wait()
    with pytest.raises(MlflowException, match="'lr'"):
        changed_param.wait()
    reports = [r.getMessage() for r in caplog.records if r.name == "jupyter_amlflow.async_logging"]
    assert len(reports) == 2, reports
    assert [m for m in reports if "'bad@key'" in m] == [
        f"jupyter_amlflow: MLflow values not logged to run {run_id}: metric 'bad@key' = 1.0 at step 57 "
        "(refused by the workspace: HTTP 400 INVALID_PARAMETER_VALUE: Invalid value \"bad@key\" for parameter "
        "'metrics[0].name' supplied: Names may only contain alphanumerics, underscores (_), dashes (-), "
        "periods (.), spaces ( ), colon(:) and slashes (/).)"
    ]
    assert any(f"run {run_id}: param 'lr' = '0.2' (refused by the workspace: HTTP 400" in m for m in reports)
    assert status_rows(shell)["Values not logged"].startswith("2; the last: run ")


def test_values_the_workspace_cannot_take_in_time_are_saved_at_once_and_resent_later(
    shell: Any, asb: Any, ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import mlflow

    from jupyter_amlflow.async_logging import resend

    sb = asb
    monkeypatch.setenv("HOME", str(tmp_path))
    caplog.set_level(logging.WARNING, logger="jupyter_amlflow.async_logging")
    conn = connect(shell, ws, "async-saved")
    client = mlflow.MlflowClient()
    run_id = client.create_run(conn.experiment.experiment_id).info.run_id
    # Throttled for longer than a batch may wait (a minute): no point waiting, the values are saved.
    sb.inject("mlflow", status=429, retry_after=120, times=1)
    for step in range(50):
        client.log_metric(run_id, "loss", float(step), step=step, synchronous=False)
    mlflow.flush_async_logging()

    saved = sorted((tmp_path / ".jupyter_amlflow" / "unsent").glob("unsent-*.json"))
    assert len(saved) == 1 and (saved[0].stat().st_mode & 0o777) == 0o600
    [report] = [r.getMessage() for r in caplog.records if r.name == "jupyter_amlflow.async_logging"]
    assert report.startswith(
        f"jupyter_amlflow: MLflow values not logged to run {run_id}: 50 values: metric 'loss' (50, steps 0-49) "
        "(not sent: HTTP 429 TooManyRequests: Injected fault: 429 TooManyRequests.; the workspace asked to wait "
        "120 s, longer than the time left); they are saved in "
    ), report
    assert str(saved[0]) in report
    assert status_rows(shell)["Values not logged"].startswith("50; the last: run ")
    assert history(sb, ws, run_id) == []

    assert resend(saved[0]) == 50
    assert history(sb, ws, run_id) == [(step, float(step)) for step in range(50)]


@pytest.mark.parametrize("way_out", ["%%amlflow run", "%amlflow logout", "%unload_ext"])
def test_every_way_out_sends_what_is_queued_first(shell: Any, asb: Any, ws: Any, way_out: str) -> None:
    import mlflow

    sb = asb
    conn = connect(shell, ws, "async-ways-out")
    sb.inject("mlflow", latency=LATENCY)
    if way_out == "%%amlflow run":
        done = shell.run_cell(
            "%%amlflow run --name queued\n"
            "import mlflow\n"
            "for step in range(300):\n"
            "    mlflow.log_metric('loss', float(step), step=step, synchronous=False)\n"
            "run_id = mlflow.active_run().info.run_id"
        )
        assert done.success, done.error_in_exec
        run_id = shell.user_ns["run_id"]
    else:
        client = mlflow.MlflowClient()
        run_id = client.create_run(conn.experiment.experiment_id).info.run_id
        for step in range(300):
            client.log_metric(run_id, "loss", float(step), step=step, synchronous=False)
        if way_out == "%amlflow logout":
            shell.run_line_magic("amlflow", "logout")
        else:
            shell.run_line_magic("unload_ext", "jupyter_amlflow")
            shell.run_line_magic("load_ext", "jupyter_amlflow")  # the fixture unloads it again

    assert history(sb, ws, run_id) == [(step, float(step)) for step in range(300)]


def test_opt_in_makes_every_call_asynchronous_and_off_keeps_synchronous_meaning(shell: Any, asb: Any, ws: Any) -> None:
    import mlflow

    sb = asb
    connect(shell, ws, "async-opt-in", "--async-logging")
    assert os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] == "true"
    assert status_rows(shell)["Asynchronous logging"] == "on for every mlflow.log_* call; sent in batches every 1 s"
    with mlflow.start_run() as run:
        queued = mlflow.log_metric("queued", 1.0)
        assert queued is not None  # a RunOperations: the call did not wait for the server
        shell.run_line_magic("config", "AmlflowMagics.async_logging = False")
        assert "MLFLOW_ENABLE_ASYNC_LOGGING" not in os.environ
        assert mlflow.log_metric("synchronous", 2.0) is None
        # Synchronous keeps its meaning: the server has the value when the call returns.
        assert backend_client(sb, ws).get_run(run.info.run_id).data.metrics["synchronous"] == 2.0
    assert backend_client(sb, ws).get_run(run.info.run_id).data.metrics == {"queued": 1.0, "synchronous": 2.0}
    assert status_rows(shell)["Asynchronous logging"].startswith("only when asked (synchronous=False")

    shell.run_line_magic("config", "AmlflowMagics.async_logging = True")
    assert os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] == "true"
    shell.run_line_magic("amlflow", "disconnect")
    assert "MLFLOW_ENABLE_ASYNC_LOGGING" not in os.environ
    assert not any(name in os.environ for name in ASYNC_ENV)


def test_the_python_api_opts_in_and_disconnect_puts_the_plugins_way_back(user_env: Any, ws: Any) -> None:
    import mlflow
    from mlflow.tracking._tracking_service.utils import _get_store

    import jupyter_amlflow

    sb = user_env
    conn = jupyter_amlflow.connect(ws.arm_id, auth=["env"], experiment="async-api", async_logging=True)
    store = _get_store(conn.tracking_uri)
    assert "log_batch_async" in vars(store)  # this store's own, shadowing the plugin's
    with mlflow.start_run() as run:
        ops = mlflow.log_metric("m", 3.0)
    ops.wait()
    assert backend_client(sb, ws).get_run(run.info.run_id).data.metrics == {"m": 3.0}
    conn.disconnect()
    assert "log_batch_async" not in vars(store) and os.environ.get("MLFLOW_ENABLE_ASYNC_LOGGING") is None


def test_a_failed_connect_leaves_the_environment_and_the_store_as_they_were(user_env: Any, ws: Any) -> None:
    from jupyter_amlflow import ConnectRequest, Session
    from jupyter_amlflow.errors import ConnectTimeout

    sb = user_env
    before = {name: os.environ.get(name) for name in ASYNC_ENV}
    sb.inject("mlflow", stall=3.0, times=1)  # the experiment lookup
    with pytest.raises(ConnectTimeout):
        Session(timeout=1.0, auth=["env"]).connect(ConnectRequest(ws.arm_id, experiment="async-failed", async_logging=True))
    assert {name: os.environ.get(name) for name in ASYNC_ENV} == before
    from mlflow.tracking._tracking_service.utils import _get_store

    assert "log_batch_async" not in vars(_get_store(ws.tracking_uri.split("?")[0]))


# -- interpreter exit -------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, sys
    import mlflow
    import jupyter_amlflow

    conn = jupyter_amlflow.connect(sys.argv[1], auth=["env"], experiment="async-exit", timeout=60)
    client = mlflow.MlflowClient()
    run_id = client.create_run(conn.experiment.experiment_id).info.run_id
    print(json.dumps({"run_id": run_id}), flush=True)
    sys.stdin.readline()  # the test injects its faults now
    for step in range(int(sys.argv[2])):
        client.log_metric(run_id, "loss", float(step), step=step, synchronous=False)
    print("logged", flush=True)
    # ends here: no end_run, no disconnect, no flush
    """
)


def run_child(sb: Any, ws: Any, tmp_path: Path, count: int, fault: Callable[[], Any] | None) -> tuple[str, float, str]:
    """A script that logs ``count`` values and exits; returns its run id, exit seconds and stderr."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, **sb.env, **sb.service_principal, "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), ws.arm_id, str(count)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        first = proc.stdout.readline()
        assert first.startswith("{"), first + proc.communicate(timeout=60)[1][-3000:]
        run_id = json.loads(first)["run_id"]
        if fault is not None:
            fault()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "logged"
        logged = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        return run_id, time.monotonic() - logged, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_values_still_queued_at_exit_are_sent_before_the_process_ends(user_env: Any, ws: Any, tmp_path: Path) -> None:
    sb = user_env
    sb.inject("mlflow", latency=LATENCY)
    run_id, _, stderr = run_child(sb, ws, tmp_path, 500, None)

    assert history(sb, ws, run_id) == [(step, float(step)) for step in range(500)]
    assert "not sent" not in stderr
    assert not (tmp_path / ".jupyter_amlflow" / "unsent").exists()


def test_the_exit_flush_is_bounded_and_saves_what_it_could_not_send(
    user_env: Any, ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_amlflow import ConnectRequest, Session
    from jupyter_amlflow.async_logging import EXIT_FLUSH_SECONDS, resend

    sb = user_env
    run_id, exit_seconds, stderr = run_child(sb, ws, tmp_path, 200, lambda: sb.inject("mlflow", stall=60))
    sb.clear_faults()

    # Bounded: the process ended within the flush's bound (plus interpreter teardown), not after the
    # 60 s stall or mlflow's 120 s request timeout. (A generous margin: the machine may be loaded.)
    assert exit_seconds < EXIT_FLUSH_SECONDS + 12, exit_seconds
    saved = sorted((tmp_path / ".jupyter_amlflow" / "unsent").glob("unsent-*.json"))
    assert len(saved) == 1 and (saved[0].stat().st_mode & 0o777) == 0o600
    assert (
        f"jupyter_amlflow: 200 MLflow values were not sent before the process exited (run {run_id}: "
        "200 values: metric 'loss' (200, steps 0-199))." in stderr
    ), stderr
    assert f"They are saved in {saved[0]}" in stderr
    assert history(sb, ws, run_id) == []

    monkeypatch.setenv("HOME", str(tmp_path))
    conn = Session(timeout=30, auth=["env"]).connect(ConnectRequest(ws.arm_id, experiment="async-exit"))
    try:
        assert resend(saved[0]) == 200
    finally:
        conn.disconnect()
    assert history(sb, ws, run_id) == [(step, float(step)) for step in range(200)]


def test_a_kernel_shut_down_by_jupyter_reports_and_saves_what_it_could_not_send(
    asb: Any, ws: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sb = asb
    kernel = LiveKernel(env={**sb.env, **sb.service_principal, "HOME": str(tmp_path)}, cwd=tmp_path)
    try:
        logged = kernel.run(
            "%load_ext jupyter_amlflow\n%config AmlflowMagics.auth = ['env']\n"
            f"%amlflow connect {ws.arm_id} --experiment async-kernel-exit\n"
            "import mlflow\nrun = mlflow.start_run()\n"
            "for step in range(200):\n"
            "    mlflow.log_metric('loss', float(step), step=step, synchronous=False)\n"
            "print(run.info.run_id)"
        )
        assert logged["status"] == "ok", logged
        run_id = logged["stdout"].strip()
        sb.inject("mlflow", stall=60)
        # What a restart or shutdown from Jupyter does: ask, then SIGTERM after 2.5 s, SIGKILL after 5 s.
        kernel.client.stop_channels()
        kernel.manager.shutdown_kernel(now=False)
    finally:
        sb.clear_faults()
        if kernel.manager.is_alive():
            kernel.manager.shutdown_kernel(now=True)
    saved = sorted((tmp_path / ".jupyter_amlflow" / "unsent").glob("unsent-*.json"))
    assert len(saved) == 1, capfd.readouterr().err[-3000:]
    data = json.loads(saved[0].read_text())
    assert [m["step"] for m in data["runs"][run_id]["metrics"]] == list(range(200))
    assert f"200 MLflow values were not sent before the process exited (run {run_id}" in capfd.readouterr().err


# -- Ctrl-C in a real kernel ------------------------------------------------------------------------
def test_ctrl_c_in_the_loop_or_in_end_run_drops_no_queued_value(asb: Any, ws: Any, tmp_path: Path) -> None:
    sb = asb
    kernel = LiveKernel(env={**sb.env, **sb.service_principal}, cwd=tmp_path)
    try:
        setup = kernel.run(
            "%load_ext jupyter_amlflow\n%config AmlflowMagics.auth = ['env']\n"
            f"%amlflow connect {ws.arm_id} --experiment async-ctrl-c\n"
            "import time, mlflow\nrun = mlflow.start_run()\nlogged = 0"
        )
        assert setup["status"] == "ok", setup
        sb.inject("mlflow", latency=LATENCY)
        started = time.time()
        loop = kernel.start(
            "for step in range(100000):\n"
            "    mlflow.log_metric('loss', float(step), step=step, synchronous=False)\n"
            "    logged = step + 1\n"
            "    time.sleep(0.002)"
        )
        wait_for(lambda: any(r.status == 200 for r in log_batches(sb, started)), 60, "a batch sent during the loop")
        kernel.interrupt()
        assert kernel.wait(loop)["ename"] == "KeyboardInterrupt"
        run_id = kernel.run("print(run.info.run_id)")["stdout"].strip()

        # Ctrl-C while end_run waits for a slow workspace: the wait stops, the sending does not.
        slow = sb.inject("mlflow", latency=3.0)
        ending = kernel.start(
            "for step in range(100):\n"
            "    mlflow.log_metric('tail', float(step), step=step, synchronous=False)\n"
            "mlflow.end_run()"
        )
        wait_for(lambda: slow.hits >= 1, 30, "a batch sent to the slow workspace")
        time.sleep(0.5)
        kernel.interrupt()
        interrupted = kernel.wait(ending)
        assert interrupted["ename"] == "KeyboardInterrupt", interrupted
        assert "the MLflow values still queued are being sent in the background" in interrupted["stderr"]
        sb.clear_faults()
        logged = int(kernel.run("print(logged)")["stdout"])
        wait_for(lambda: len(history(sb, ws, run_id, "tail")) == 100, 60, "the queued values arriving")
        assert history(sb, ws, run_id, "tail") == [(s, float(s)) for s in range(100)]
        assert history(sb, ws, run_id) in (
            [(s, float(s)) for s in range(logged)],
            [(s, float(s)) for s in range(logged + 1)],  # the call Ctrl-C interrupted, if it got queued
        )
        # The queue still sends on its own afterwards, no flush needed.
        after = kernel.run(f"mlflow.MlflowClient().log_metric({run_id!r}, 'after', 1.0, synchronous=False)")
        assert after["status"] == "ok", after
        wait_for(lambda: "after" in backend_client(sb, ws).get_run(run_id).data.metrics, 30, "a value logged after")
        assert kernel.run("%amlflow disconnect")["status"] == "ok"
    finally:
        sb.clear_faults()
        kernel.close()
