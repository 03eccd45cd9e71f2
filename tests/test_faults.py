"""Faults, token expiry, threads and interrupts: nothing half-done, nothing lost, nothing leaked.

The fault matrix injects one fault at a time on a sandbox endpoint and drives the user's path that
reaches it: ``Session.connect`` (sign-in, workspace GET, experiment lookup), ``%amlflow list
workspaces`` (Resource Graph) and plain ``mlflow`` logging after connect. ``MATRIX`` is the table
of expected outcomes; ``/work/notes/fault-matrix.md`` (the README's table) is written from it.
Timings come from the sandbox's request log. A module sandbox of its own keeps the injected faults
and the short token lifetime away from the other modules.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import backend_client, backend_runs, isolated_mlflow, mlflow_state
from IPython.core.interactiveshell import InteractiveShell
from kernels import LiveKernel

from jupyter_amlflow.connect_request import ConnectRequest
from jupyter_amlflow.connection import Session
from jupyter_amlflow.errors import ConnectTimeout

TIMEOUT = 2.0  # the session's timeout (seconds per step) in the matrix
STALL = TIMEOUT + 1.0  # longer than the timeout; the sandbox then drops the connection
RETRY_AFTER = 1  # seconds; urllib3 reads Retry-After only as a whole number
EXPERIMENT = "faults"
#: The user's own MLflow HTTP settings: connect must leave them exactly as they are.
USER_MLFLOW_HTTP = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "45", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5"}

FAULTS: dict[str, dict[str, Any]] = {
    "429 + Retry-After": {"status": 429, "retry_after": RETRY_AFTER, "times": 1},
    "503 once": {"status": 503, "times": 1},
    "dropped connection": {"drop": True, "times": 1},
    "stall > timeout": {"stall": STALL},
}


@dataclass(frozen=True)
class Row:
    """One cell of the matrix: a fault on an endpoint, the user's step that meets it, the outcome."""

    endpoint: str  # the sandbox's endpoint name
    step: str  # what the person did
    fault: str  # a key of FAULTS
    outcome: str  # "retried", "fails", "falls back" or "mlflow's error"
    detail: str  # the outcome in the README's words

    @property
    def id(self) -> str:
        return f"{self.endpoint}-{STEP_IDS[self.step]}-{self.fault.split()[0]}"


SIGN_IN = "connect: sign-in (service principal, env)"
GET_WORKSPACE = "connect: read the workspace"
LOOKUP = "connect: find the experiment"
LIST = "%amlflow list workspaces"
LOG = "logging after connect (mlflow.start_run, log_metric)"
STEP_IDS = {SIGN_IN: "sign-in", GET_WORKSPACE: "connect", LOOKUP: "connect", LIST: "list", LOG: "logging"}
RETRIED_AFTER = f"succeeds; the retry comes no earlier than Retry-After ({RETRY_AFTER} s)"
RETRIED = "succeeds after one retry"
FAILS = (
    f"fails within timeout + 1 s ({TIMEOUT:g} + 1 s), naming the step and what to try; "
    "tracking URI, registry URI, experiment and environment as before"
)

# Ordered so that a stalled request finishing late never lands in a later row's window of the same
# endpoint (each row also reads only requests that started after it did).
MATRIX: list[Row] = [
    Row("token", SIGN_IN, "429 + Retry-After", "retried", RETRIED_AFTER),
    Row("token", SIGN_IN, "503 once", "retried", RETRIED),
    Row("token", SIGN_IN, "dropped connection", "retried", RETRIED),
    Row("token", SIGN_IN, "stall > timeout", "fails", FAILS),
    Row("workspace", GET_WORKSPACE, "429 + Retry-After", "retried", RETRIED_AFTER),
    Row("workspace", GET_WORKSPACE, "503 once", "retried", RETRIED),
    Row("workspace", GET_WORKSPACE, "dropped connection", "retried", RETRIED),
    Row("workspace", GET_WORKSPACE, "stall > timeout", "fails", FAILS),
    Row("resource_graph", LIST, "429 + Retry-After", "retried", RETRIED_AFTER),
    Row("resource_graph", LIST, "503 once", "retried", RETRIED),
    Row("resource_graph", LIST, "dropped connection", "retried", RETRIED),
    Row(
        "resource_graph",
        LIST,
        "stall > timeout",
        "falls back",
        "the Resource Graph query is cut at the timeout and each subscription is listed instead: "
        "the same workspaces within timeout + 1 s, the table says 'per-subscription listing'",
    ),
    Row("mlflow", LOG, "429 + Retry-After", "retried", RETRIED_AFTER + " (mlflow's own retry)"),
    Row("mlflow", LOG, "503 once", "retried", RETRIED + " (mlflow's own retry)"),
    Row("mlflow", LOG, "dropped connection", "retried", RETRIED + " (mlflow's own retry)"),
    Row(
        "mlflow",
        LOG,
        "stall > timeout",
        "mlflow's error",
        "mlflow gives up after the user's own MLFLOW_HTTP_REQUEST_TIMEOUT (here 1 s, with "
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0), which connect left as the user set it",
    ),
    Row("mlflow", LOOKUP, "429 + Retry-After", "retried", RETRIED_AFTER + " (mlflow's own retry)"),
    Row("mlflow", LOOKUP, "503 once", "retried", RETRIED + " (mlflow's own retry)"),
    Row("mlflow", LOOKUP, "dropped connection", "retried", RETRIED + " (mlflow's own retry)"),
    Row("mlflow", LOOKUP, "stall > timeout", "fails", FAILS + "; the experiment is not created later"),
]


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fsb(sandbox_factory: Any) -> Iterator[Any]:
    """This module's sandbox: two subscriptions with a workspace each, real mlflow backends."""
    # One mlflow backend: a second would take seconds to start on first use.
    sb = sandbox_factory(subscriptions=2, workspaces_per_subscription=1, max_backends=1)
    yield sb
    sb.clear_faults()


@pytest.fixture
def user_env(fsb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The sandbox cloud and service principal; the user's own MLflow HTTP settings; state restored."""
    for k, v in {**fsb.env, **fsb.service_principal}.items():
        monkeypatch.setenv(k, v)
    for k in [k for k in os.environ if k.startswith("MLFLOW_HTTP_")]:
        monkeypatch.delenv(k)
    for k, v in USER_MLFLOW_HTTP.items():
        monkeypatch.setenv(k, v)
    try:
        with isolated_mlflow():
            yield fsb
    finally:
        fsb.clear_faults()
        fsb.token_lifetime = 3600.0


@pytest.fixture(scope="module")
def measured() -> Iterator[dict[str, str]]:
    """What each matrix row measured; written as the README table when AMLFLOW_FAULT_MATRIX_REPORT is set."""
    results: dict[str, str] = {}
    yield results
    target = os.environ.get("AMLFLOW_FAULT_MATRIX_REPORT")
    if target and results:
        Path(target).write_text(markdown_table(results), encoding="utf-8")


def markdown_table(results: dict[str, str]) -> str:
    """The fault matrix as the README shows it, with what a run measured."""
    lines = [
        f"Each fault is injected on one sandbox endpoint; `timeout` is {TIMEOUT:g} s "
        "(`%config AmlflowMagics.timeout`, `connect(timeout=)`).",
        "",
        "| Endpoint | What the user did | Fault | Outcome | Measured |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = {
        "token": "Entra ID token",
        "workspace": "Resource Manager: workspace GET",
        "resource_graph": "Resource Graph",
        "mlflow": "Azure ML MLflow API",
    }
    for row in MATRIX:
        lines.append(
            f"| {names[row.endpoint]} | {row.step} | {row.fault} | {row.detail} | {results.get(row.id, 'not run')} |"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def shell(user_env: Any) -> Iterator[Any]:
    """An in-process IPython shell with the extension loaded; its session uses the matrix timeout."""
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_amlflow")
    magics = ip.magics_manager.registry["AmlflowMagics"]
    magics.timeout, magics.auth = TIMEOUT, ["env"]  # this instance only, not the shell's config
    try:
        yield ip
    finally:
        if magics.session.connection is not None:
            magics.session.disconnect()
        ip.run_line_magic("unload_ext", "jupyter_amlflow")


# -- helpers ----------------------------------------------------------------------------------------
def mlflow_http_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_HTTP_")}


def started_since(sb: Any, endpoint: str, since: float) -> list[Any]:
    """Requests to ``endpoint`` that arrived after ``since`` (the log stamps a request when it ends)."""
    return [r for r in sb.requests if r.endpoint == endpoint and r.time - r.duration >= since]


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s")
        time.sleep(0.05)


def settle_stall(sb: Any, endpoint: str, since: float) -> None:
    """Clear faults and wait until the stalled requests ended (logged with status 0) and their
    abandoned callers' last requests have landed."""
    sb.clear_faults()
    wait_for(lambda: any(r.status == 0 for r in started_since(sb, endpoint, since)), STALL + 5)
    time.sleep(0.3)


def retried(sb: Any, row: Row, since: float) -> str:
    """Check the log shows the fault, then the retry that succeeded; returns what was measured."""
    log = started_since(sb, row.endpoint, since)
    fault = FAULTS[row.fault]
    first = next(r for r in log if r.status != 200)
    assert first.status == fault.get("status", 0), log
    retry = next(r for r in log if r.time - r.duration >= first.time and r.path == first.path)
    assert retry.status == 200, log
    gap = (retry.time - retry.duration) - first.time
    if "retry_after" in fault:
        assert gap >= fault["retry_after"], f"retried {gap:.3f} s after a Retry-After of {fault['retry_after']} s"
    answered = "dropped" if first.status == 0 else str(first.status)
    return f"{answered}, then 200 {gap:.2f} s later"


def connect(workspace: Any) -> Any:
    return Session(timeout=TIMEOUT, auth=["env"]).connect(ConnectRequest(workspace.arm_id, experiment=EXPERIMENT))


# -- the matrix -------------------------------------------------------------------------------------
@pytest.mark.parametrize("row", MATRIX, ids=[r.id for r in MATRIX])
def test_fault_matrix(
    row: Row, user_env: Any, shell: Any, measured: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = user_env
    ws = sb.workspaces[0]
    if row.outcome == "mlflow's error":
        # The user's own choice: give up on a request after 1 s, no retries.
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    user_http = mlflow_http_env()
    if row.step == LOG:
        measured[row.id] = _logging_case(sb, row, ws)
    elif row.step == LIST:
        measured[row.id] = _listing_case(sb, row, shell)
    else:
        measured[row.id] = _connect_case(sb, row, ws)
    assert mlflow_http_env() == user_http


def _connect_case(sb: Any, row: Row, ws: Any) -> str:
    before = mlflow_state()
    experiment = EXPERIMENT if row.outcome != "fails" else f"never-{uuid.uuid4().hex[:8]}"
    session = Session(timeout=TIMEOUT, auth=["env"])
    since = time.time()
    sb.inject(row.endpoint, **FAULTS[row.fault])
    started = time.monotonic()
    if row.outcome == "retried":
        conn = session.connect(ConnectRequest(ws.arm_id, experiment=experiment))
        took = time.monotonic() - started
        sb.clear_faults()
        assert conn.workspace.name == ws.name and conn.experiment.name == experiment
        assert mlflow_state()["tracking_uri"] == ws.tracking_uri
        what = retried(sb, row, since)
        conn.disconnect()
        assert mlflow_state() == before
        return f"{what}; connected in {took:.2f} s"
    with pytest.raises(ConnectTimeout) as err:
        session.connect(ConnectRequest(ws.arm_id, experiment=experiment))
    took = time.monotonic() - started
    assert took <= TIMEOUT + 1, took
    assert mlflow_state() == before and session.connection is None
    host = sb.base_url.split("://", 1)[1]
    expected = {
        "token": (
            f"Signing in to {sb.cloud} did not answer within {TIMEOUT:g} s. The service is slow or unreachable from "
            "this kernel; nothing was changed. Try again, or allow more time: %amlflow connect ... --timeout 120 "
            "(%config AmlflowMagics.timeout = 120)."
        ),
        "workspace": (
            f"Resource Manager: GET workspace {ws.name} did not answer within {TIMEOUT:g} s. {host} is slow or "
            f"unreachable from this kernel. Try again; if it persists, check the network and proxy (HTTPS_PROXY) to "
            f"{host}, or allow more time: --timeout 60 (%config AmlflowMagics.timeout = 60)."
        ),
        "mlflow": (
            f"MLflow API: experiment {experiment} did not answer within {TIMEOUT:g} s. The service is slow or "
            "unreachable from this kernel; nothing was changed. Try again, or allow more time: %amlflow connect ... "
            "--timeout 120 (%config AmlflowMagics.timeout = 120)."
        ),
    }[row.endpoint]
    assert str(err.value) == expected
    settle_stall(sb, row.endpoint, since)
    # The abandoned lookup got its answer after the stall; it must not create the experiment now.
    assert experiment not in {e.name for e in backend_client(sb, ws).search_experiments()}
    assert mlflow_state() == before
    return f"ConnectTimeout after {took:.2f} s; state unchanged"


def _listing_case(sb: Any, row: Row, ip: Any) -> str:
    magics = ip.magics_manager.registry["AmlflowMagics"]
    ip.run_line_magic("amlflow", "list subscriptions")  # signed in before the fault: only the listing meets it
    before = mlflow_state()
    since = time.time()
    sb.inject(row.endpoint, **FAULTS[row.fault])
    started = time.monotonic()
    table = ip.run_line_magic("amlflow", "list workspaces")
    took = time.monotonic() - started
    assert sorted(magics.workspace_names) == sorted(w.name for w in sb.workspaces)
    assert mlflow_state() == before
    if row.outcome == "retried":
        sb.clear_faults()
        assert "Found with Resource Graph." in repr(table)
        return f"{retried(sb, row, since)}; listed in {took:.2f} s"
    assert took <= TIMEOUT + 1, took
    assert "Found with per-subscription listing." in repr(table)
    settle_stall(sb, row.endpoint, since)
    [stalled] = started_since(sb, "resource_graph", since)
    assert stalled.status == 0
    return f"Resource Graph cut, listed per subscription in {took:.2f} s"


def _logging_case(sb: Any, row: Row, ws: Any) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    user_http = mlflow_http_env()
    conn = connect(ws)
    assert mlflow_http_env() == user_http
    connected = mlflow_state()
    since = time.time()
    sb.inject(row.endpoint, **FAULTS[row.fault])
    started = time.monotonic()
    try:
        if row.outcome == "retried":
            with mlflow.start_run(run_name=row.id) as run:
                mlflow.log_metric("value", 0.5)
            took = time.monotonic() - started
            sb.clear_faults()
            [landed] = [r for r in backend_runs(sb, ws, EXPERIMENT) if r.info.run_id == run.info.run_id]
            assert landed.data.metrics == {"value": 0.5} and landed.info.status == "FINISHED"
            return f"{retried(sb, row, since)}; run logged in {took:.2f} s"
        with pytest.raises(MlflowException) as err:
            mlflow.start_run(run_name=row.id)
        took = time.monotonic() - started
        assert took <= 1 + 1, took
        message = str(err.value)
        # With no retries urllib3 reports the read timeout inside "max retries exceeded".
        assert "/api/2.0/mlflow/runs/create failed with exception" in message
        assert "Read timed out. (read timeout=1)" in message
        assert mlflow.active_run() is None and mlflow_state() == connected
        settle_stall(sb, row.endpoint, since)
        return f"MlflowException after {took:.2f} s (the user's timeout, 1 s)"
    finally:
        sb.clear_faults()
        conn.disconnect()


# -- token expiry -----------------------------------------------------------------------------------
# Seconds an access token lives in this test: long enough for any one call to reach the sandbox
# before its token expires (the first call in a process may take a second), short enough for the
# loop to outlive several.
LIFETIME = 2.0
LIFETIMES = 5  # how many lifetimes the logging loop runs for


def test_tokens_expiring_during_a_long_run_lose_no_metric(user_env: Any) -> None:
    import mlflow
    import requests
    from azure.identity import ClientSecretCredential

    sb = user_env
    ws = sb.workspaces[1]
    sb.token_lifetime = LIFETIME
    conn = Session(timeout=10, auth=["env"]).connect(ConnectRequest(ws.arm_id, experiment="token-expiry"))
    # A token as the service principal's own client would hold it, to show the sandbox refuses it
    # once expired: a client that stopped refreshing would lose its metrics, and this test with it.
    principal = sb.service_principal
    stale = ClientSecretCredential(
        principal["AZURE_TENANT_ID"],
        principal["AZURE_CLIENT_ID"],
        principal["AZURE_CLIENT_SECRET"],
        authority=sb.authority_url,
        disable_instance_discovery=True,
        connection_verify=sb.ca_bundle,
    ).get_token(f"{sb.base_url}/.default")
    lookup = f"{sb.base_url}/mlflow/v2.0{ws.arm_id}/api/2.0/mlflow/experiments/get-by-name"

    def ask_with_stale_token() -> requests.Response:
        return requests.get(
            lookup,
            params={"experiment_name": "token-expiry"},
            headers={"Authorization": f"Bearer {stale.token}"},
            verify=sb.ca_bundle,
            timeout=10,
        )

    assert ask_with_stale_token().status_code == 200  # a good request while the token is fresh

    started = time.time()
    logged = 0
    with mlflow.start_run(run_name="long-run") as run:
        while time.time() - started < LIFETIME * LIFETIMES:
            mlflow.log_metric("loss", 1.0 / (logged + 1), step=logged)
            logged += 1
    ended = time.time()
    time.sleep(max(0.0, stale.expires_on + 0.2 - time.time()))
    refused = ask_with_stale_token()
    conn.disconnect()

    history = backend_client(sb, ws).get_metric_history(run.info.run_id, "loss")
    assert len(history) == logged and sorted(m.step for m in history) == list(range(logged))
    calls = [r for r in started_since(sb, "mlflow", started) if r.time <= ended]
    assert calls and {r.status for r in calls} == {200}, {r.status for r in calls}
    tokens = {r.token_id for r in calls}
    assert len(tokens) >= LIFETIMES, len(tokens)
    assert calls[-1].time - calls[0].time >= LIFETIME * (LIFETIMES - 1)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert [r.status for r in started_since(sb, "mlflow", ended)][-1:] == [401]


# -- a real kernel: interrupts, then threads -------------------------------------------------------
KERNEL_STATE = """
import json, os
import mlflow
from mlflow.tracking import fluent

def _amlflow_state():
    magics = get_ipython().magics_manager.registry["AmlflowMagics"]
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
             "AZUREML_CURRENT_CLOUD", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")
    saved = os.path.expanduser("~/.jupyter_amlflow")
    return json.dumps({
        "tracking_uri": mlflow.get_tracking_uri(),
        "registry_uri": mlflow.get_registry_uri(),
        "experiment_id": fluent._active_experiment_id,
        "env": {n: os.environ.get(n) for n in names},
        "connected": magics.session.connection is not None,
        "status": repr(magics.session.status()).splitlines()[0],
        "saved": sorted(os.listdir(saved)) if os.path.isdir(saved) else [],
    }, sort_keys=True)
"""


@pytest.fixture(scope="module")
def kernel(fsb: Any, tmp_path_factory: pytest.TempPathFactory, secret_check: Any) -> Iterator[LiveKernel]:
    """One real kernel for this module's kernel tests, extension loaded; nothing has used mlflow yet."""
    live = LiveKernel(env={**fsb.env, **fsb.service_principal}, cwd=tmp_path_factory.mktemp("kernel"))
    try:
        assert live.run("%load_ext jupyter_amlflow\n%config AmlflowMagics.timeout = 60")["status"] == "ok"
        assert live.run(KERNEL_STATE)["status"] == "ok"
        yield live
    finally:
        live.close()
        fsb.clear_faults()


def test_interrupts_return_the_prompt_within_a_second_and_change_nothing(
    fsb: Any, kernel: LiveKernel, secret_check: Any
) -> None:
    ws = fsb.workspaces[0]
    before = kernel.run("print(_amlflow_state())")["stdout"]
    assert json.loads(before)["status"] == "Not connected"
    replies: list[dict[str, Any]] = []

    def interrupted(line: str, in_flight: Callable[[], bool]) -> dict[str, Any]:
        cell = kernel.start(line)
        wait_for(in_flight, 60)
        time.sleep(0.2)  # well inside the wait
        sent = time.monotonic()
        kernel.interrupt()
        reply = kernel.wait(cell, 30)
        reply["took"] = time.monotonic() - sent
        replies.append(reply)
        secret_check.scan(reply)
        return reply

    # Waiting for a person to enter the device code.
    asked = time.time()
    reply = interrupted(
        f"%amlflow connect {ws.arm_id} --auth device-code",
        lambda: any(p.created_at >= asked for p in fsb.pending_device_codes()),
    )
    assert reply["took"] < 1, reply
    assert (reply["ename"], reply["evalue"]) == ("UsageError", "%amlflow connect: interrupted; nothing was changed.")
    interrupted_at = time.time()
    [pending] = [p for p in fsb.pending_device_codes() if p.created_at >= asked]
    fsb.approve_device_code(pending.user_code)  # the person approves anyway, too late
    time.sleep(1.5)  # longer than the poll interval: a sign-in still polling would redeem it now
    assert [r for r in fsb.requests if r.endpoint == "token" and r.time >= interrupted_at and r.status == 200] == []
    assert kernel.run("print(_amlflow_state())")["stdout"] == before

    # Slow endpoints: the workspace GET during connect, Resource Graph during discovery.
    for endpoint, line in (
        ("workspace", f"%amlflow connect {ws.arm_id} --auth env"),
        ("resource_graph", "%amlflow list workspaces"),
    ):
        since = time.time()
        fault = fsb.inject(endpoint, stall=STALL)
        try:
            reply = interrupted(line, lambda fault=fault: fault.hits > 0)
        finally:
            settle_stall(fsb, endpoint, since)
        assert reply["took"] < 1, (endpoint, reply)
        assert (reply["ename"], reply["evalue"]) == (
            "UsageError",
            f"%amlflow {line.split()[1]}: interrupted; nothing was changed.",
        )
        assert kernel.run("print(_amlflow_state())")["stdout"] == before


THREADS = 8
THREADED_LOGGING = f"""
import threading

errors = []
barrier = threading.Barrier({THREADS})

def work(i):
    try:
        barrier.wait()
        # The first use of the azureml scheme's model registry in this kernel, from {THREADS} threads at once.
        mlflow.search_registered_models(max_results=1)
        with mlflow.start_run(run_name=f"thread-{{i}}"):
            for step in range(5):
                mlflow.log_metric("m", i * 10 + step, step=step)
    except Exception as exc:
        errors.append(f"{{type(exc).__name__}}: {{exc}}")

threads = [threading.Thread(target=work, args=(i,)) for i in range({THREADS})]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("errors:", errors)
"""


def test_logging_from_threads_after_connect(fsb: Any, kernel: LiveKernel, secret_check: Any) -> None:
    # The kernel may have been interrupted above, but nothing in it has used the model registry.
    ws = fsb.workspaces[0]
    connected = kernel.run(f"%amlflow connect {ws.arm_id} --auth env --experiment threads")
    logged = kernel.run(THREADED_LOGGING)
    secret_check.scan([connected, logged])
    assert connected["status"] == "ok" and f"Connected to {ws.name}" in connected["text"], connected
    assert logged["stdout"].strip() == "errors: []", logged
    runs = {r.info.run_name: r for r in backend_runs(fsb, ws, "threads")}
    client = backend_client(fsb, ws)
    for i in range(THREADS):
        run = runs[f"thread-{i}"]
        assert run.info.status == "FINISHED"
        values = sorted(m.value for m in client.get_metric_history(run.info.run_id, "m"))
        assert values == [float(i * 10 + step) for step in range(5)]


# -- the interrupt without a kernel: the caller's own thread ---------------------------------------
def test_interrupting_a_slow_experiment_lookup_restores_everything(user_env: Any, ctrl_c: Callable[[], None]) -> None:
    """Ctrl-C in a script (the caller's own thread) while connect waits on the MLflow API."""
    sb = user_env
    ws = sb.workspaces[0]
    session = Session(timeout=60, auth=["env"])
    # Connected to this workspace before: its credential stays live, so an abandoned lookup could
    # still create the experiment it was asked for.
    session.connect(ConnectRequest(ws.arm_id, experiment=EXPERIMENT))
    before = mlflow_state()
    since = time.time()
    fault = sb.inject("mlflow", stall=STALL)
    sent: list[float] = []

    def press_ctrl_c() -> None:
        wait_for(lambda: fault.hits > 0, 30)
        time.sleep(0.2)  # well inside the wait
        sent.append(time.monotonic())
        ctrl_c()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    experiment = f"never-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(KeyboardInterrupt):
            session.connect(ConnectRequest(ws.arm_id, experiment=experiment))
        took = time.monotonic() - sent[0]
    finally:
        settle_stall(sb, "mlflow", since)
    assert took < 1, took
    assert mlflow_state() == before
    assert session.connection is not None and session.connection.experiment.name == EXPERIMENT
    # The abandoned lookup got its answer once the stall ended; it did not create the experiment.
    assert experiment not in {e.name for e in backend_client(sb, ws).search_experiments()}
    session.disconnect()
