"""Shared by the benchmark scripts: the sandbox, fresh child processes, medians, the two paths.

Every figure compares jupyter_amlflow ("ours") with the official path ("official":
azure-ai-ml's ``MLClient`` + azureml-mlflow + ``mlflow.set_tracking_uri`` / ``set_experiment``),
both running in fresh child processes against one sandbox started by the script.

Two ways of telling a process about the sandbox cloud:

* ``builtin`` (the figure that counts): the cloud is known in-process, as Azure's public cloud
  is on real Azure. The official path gets it through ``MLClient(cloud=, cloud_metadata=)`` plus
  the plugin's ``KNOWN_CLOUDS`` entry (mlclient-wire.md section 4: no metadata download); ours
  gets it added to the session's cloud catalog. ``ARM_CLOUD_METADATA_URL`` and
  ``AZUREML_CURRENT_CLOUD`` are unset.
* ``env`` (the as-is custom cloud): the sandbox's own ``env`` (``ARM_CLOUD_METADATA_URL``,
  ``AZUREML_CURRENT_CLOUD``, ``AZURE_AUTHORITY_HOST``), nothing else; each library downloads the
  metadata document as often as it does.

This module is imported by the child too (``_child.py``), so it imports only the standard
library at module level.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHILD = HERE / "_child.py"
NETGUARD = ROOT / "tests" / "_netguard"
PYTHON = sys.executable
EXPERIMENT = "bench"
CLOUD_MODES = ("builtin", "env")

# Besides the sandbox's FOREIGN_ENV (imported where used: children import only the standard
# library here): variables that change where or how a client connects, which would skew timings.
SCRUB_MORE = (
    "REGISTRY_DISCOVERY_ENDPOINT_URL",
    "AZUREML_DEV_URL_MFE",
    "AZUREML_LOG_NETWORK_TRACES",
    "AZURE_REGIONAL_AUTHORITY_NAME",
    "MSAL_FORCE_REGION",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "https_proxy",
    "http_proxy",
)


# -- numbers -----------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], unit: str = "s") -> str:
    """``median (min-max, n=N)`` for a detail line."""
    return f"{median(values):.3f} {unit} (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


def report(name: str, value: float | int, target: str, met: bool, summary: dict[str, Any]) -> None:
    """The last three lines of every script: a summary for ``run_all``, the target, the figure."""
    shown = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        shown = f"{value:.2g}"  # a small ratio keeps its digits
    print("summary " + json.dumps({"name": name, "value": value, "target": target, "met": met, **summary}))
    print(f"target: {target}, {'met' if met else 'NOT met'}")
    print(f"{name}={shown}", flush=True)


# -- the bench: sandbox, environment, children -------------------------------------------------
@dataclass
class Child:
    """What a child process said: its ``@mark`` times and its ``@result`` object."""

    seconds: float  # whole-process wall time, measured by the parent
    marks: dict[str, float]  # time.time() values
    result: dict[str, Any]
    stdout: str


class Bench:
    """One script's run: a sandbox, a scratch HOME and working directory, the network guard log."""

    def __init__(self, sandbox: Any) -> None:
        self.sb = sandbox
        self.scratch = Path(tempfile.mkdtemp(prefix="amlflow-bench-"))
        self.home = self.scratch / "home"
        self.home.mkdir()
        self.cwd = self.scratch / "cwd"
        self.cwd.mkdir()
        self.guard_log = self.scratch / "netguard.log"
        self.guard_log.touch()
        self.workspace = sandbox.workspaces[0] if sandbox is not None and sandbox.workspaces else None
        self._spawned = 0

    # -- environment ---------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        """A clean environment: no Azure or MLflow settings, telemetry off, the loopback guard on."""
        from jupyter_amlflow.sandbox import FOREIGN_ENV

        scrub = {*FOREIGN_ENV, *SCRUB_MORE}
        env = {k: v for k, v in os.environ.items() if k not in scrub}
        # Bytecode caching on, as for any installed package (pip compiles on install): without it
        # an editable install recompiles jupyter_amlflow in every process while site-packages
        # load from their .pyc files.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            {
                "HOME": str(self.home),
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
                "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
                "PYTHONPATH": os.pathsep.join(p for p in (str(NETGUARD), os.environ.get("PYTHONPATH", "")) if p),
                "AMLFLOW_NETGUARD_LOG": str(self.guard_log),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def env(self, mode: str, **extra: Any) -> dict[str, str]:
        """The environment of a child using the sandbox in ``mode`` (``builtin`` or ``env``)."""
        if mode not in CLOUD_MODES:
            raise ValueError(mode)
        sb = self.sb
        env = self.base_env()
        env.update({"REQUESTS_CA_BUNDLE": sb.ca_bundle, "SSL_CERT_FILE": sb.ca_bundle, "CURL_CA_BUNDLE": sb.ca_bundle})
        if mode == "env":
            env.update(sb.env)  # ARM_CLOUD_METADATA_URL, AZUREML_CURRENT_CLOUD, AZURE_AUTHORITY_HOST, ...
        env.update(sb.service_principal)
        ws = self.workspace
        params: dict[str, Any] = {
            "mode": mode,
            "base_url": sb.base_url,
            "cloud": sb.cloud,
            "cloud_document": sb.cloud_metadata(),
            "storage_suffix": sb.storage_suffix,
            "experiment": EXPERIMENT,
            **extra,
        }
        if ws is not None:
            params.update(subscription=ws.subscription_id, resource_group=ws.resource_group, workspace=ws.name)
        env["AMLFLOW_BENCH"] = json.dumps(params)
        return env

    # -- children ------------------------------------------------------------------------------
    def run(self, task: Sequence[str], env: dict[str, str], timeout: float = 300) -> Child:
        """Run ``_child.py TASK...`` in a fresh interpreter; the wall time includes interpreter start."""
        spawned = time.time()
        started = time.perf_counter()
        proc = subprocess.run(
            [PYTHON, str(CHILD), *task], env=env, cwd=self.cwd, capture_output=True, text=True, timeout=timeout
        )
        seconds = time.perf_counter() - started
        exited = time.time()
        if proc.returncode != 0:
            raise RuntimeError(f"child {' '.join(task)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        child = parse_child(seconds, proc.stdout)
        child.marks.update(spawned=spawned, exited=exited)
        return child

    def run_code(self, code: str, env: dict[str, str], timeout: float = 120) -> tuple[float, str]:
        """``python -c CODE`` in a fresh interpreter: its wall time and its output."""
        started = time.perf_counter()
        proc = subprocess.run(
            [PYTHON, "-c", code], env=env, cwd=self.cwd, capture_output=True, text=True, timeout=timeout
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"python -c failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return seconds, proc.stdout

    def talk(self, task: Sequence[str], env: dict[str, str]) -> Talker:
        """Start a child that waits for ``go`` lines (``discover``, ``log``); ``ready()`` waits for it."""
        return Talker(*self.spawn(task, env))

    def spawn(self, task: Sequence[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
        """Start a child that talks over stdin/stdout; its stderr goes to the returned file.

        (A pipe nobody reads could fill up and stall the child.)
        """
        self._spawned += 1
        err_path = self.scratch / f"child-{self._spawned}.err"
        stderr = err_path.open("w")
        try:
            proc = subprocess.Popen(
                [PYTHON, str(CHILD), *task],
                env=env,
                cwd=self.cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        finally:
            stderr.close()  # the child has its own copy
        return proc, err_path

    def requests_between(self, start: float, end: float) -> list[Any]:
        """The sandbox's log entries answered in ``[start, end]`` (``time.time()`` values)."""
        return [r for r in self.sb.requests if start <= r.time <= end]

    # -- the guard -----------------------------------------------------------------------------
    def guard_report(self) -> int:
        """Print what the loopback guard refused in any child (nothing, normally); return the count."""
        text = self.guard_log.read_text()
        refused = [entry.split("\n", 1)[0] for entry in text.split("\n---\n") if entry.strip()]
        print(f"network guard: {len(refused)} non-loopback attempt(s) refused" + (":" if refused else ""))
        for line in refused[:10]:
            print("  " + line)
        return len(refused)

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


class Talker:
    """A child that prints ``ready``, then answers each ``go ...`` line with ``took SECONDS ...``."""

    def __init__(self, proc: subprocess.Popen[str], err_path: Path) -> None:
        self.proc = proc
        self.err_path = err_path

    def ready(self) -> Talker:
        """Wait until the child has set itself up."""
        self._expect("ready")
        return self

    def _expect(self, word: str) -> list[str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        while line.startswith("@"):  # marks
            line = self.proc.stdout.readline()
        if not line.startswith(word):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"child said {line!r}, not {word!r}:\n{self.err_path.read_text()[-3000:]}")
        return line.split()[1:]

    def go(self, *words: str) -> list[str]:
        """Send ``go WORDS``; return what followed ``took`` (the seconds first)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(["go", *words]) + "\n")
        self.proc.stdin.flush()
        return self._expect("took")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def parse_child(seconds: float, stdout: str) -> Child:
    marks: dict[str, float] = {}
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith("@mark "):
            _, name, value = line.split()
            marks[name] = float(value)
        elif line.startswith("@result "):
            result = json.loads(line[len("@result ") :])
    return Child(seconds, marks, result, stdout)


@contextmanager
def bench(*, sandbox: bool = True, **sandbox_kwargs: Any) -> Iterator[Bench]:
    """A ``Bench`` around a fresh sandbox (stopped at the end; none with ``sandbox=False``).

    Prints the machine's load average before and after (other work on the machine shows up in
    every figure) and what the loopback guard refused.
    """
    print(f"load average at start: {load_average()}")
    with ExitStack() as stack:
        sb = None
        if sandbox:
            from jupyter_amlflow.sandbox import Sandbox

            sandbox_kwargs.setdefault("subscriptions", 1)
            sandbox_kwargs.setdefault("workspaces_per_subscription", 1)
            sb = stack.enter_context(Sandbox(**sandbox_kwargs))
        b = Bench(sb)
        stack.callback(b.close)
        yield b
        b.guard_report()
        print(f"load average at end: {load_average()}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def describe_requests(records: Sequence[Any]) -> str:
    """``GET openid, POST token, ...`` for a detail line."""
    return ", ".join(f"{r.method} {r.endpoint}" for r in records) or "none"


# -- the paths, run inside the child ---------------------------------------------------------------
def params() -> dict[str, Any]:
    """What the parent told the child (``AMLFLOW_BENCH``)."""
    return json.loads(os.environ["AMLFLOW_BENCH"])


def mark(name: str) -> float:
    """Tell the parent the wall-clock time of a moment (comparable with the sandbox's log)."""
    now = time.time()
    print(f"@mark {name} {now:.6f}", flush=True)
    return now


def result(value: dict[str, Any]) -> None:
    print("@result " + json.dumps(value), flush=True)


def cloud_metadata_for(p: dict[str, Any]) -> dict[str, str]:
    """``MLClient(cloud_metadata=)``: the six snake_case keys (mlclient-wire.md section 1)."""
    arm = p["base_url"].rstrip("/") + "/"
    return {
        "azure_portal": arm,
        "resource_manager": arm,
        "active_directory": arm,
        "aml_resource_id": arm,
        "storage_endpoint": p["storage_suffix"],
        "registry_discovery_endpoint": arm,
    }


def official_credential(p: dict[str, Any]) -> Any:
    """The service principal as azure-identity's own ``ClientSecretCredential``.

    A custom authority needs ``disable_instance_discovery`` (identity-wire.md rule 1), in both
    modes: on real Azure neither argument would be given.
    """
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        os.environ["AZURE_TENANT_ID"],
        os.environ["AZURE_CLIENT_ID"],
        os.environ["AZURE_CLIENT_SECRET"],
        authority=p["base_url"],
        disable_instance_discovery=True,
    )


def connect_official(p: dict[str, Any]) -> str:
    """The official path (mlclient-wire.md section 4), imports included; returns the experiment id."""
    from azure.ai.ml import MLClient  # noqa: I001 - first, as in mlclient-wire.md section 4
    import mlflow

    credential = official_credential(p)
    sub, rg, ws = p["subscription"], p["resource_group"], p["workspace"]
    if p["mode"] == "builtin":
        ml_client = MLClient(
            credential,
            sub,
            rg,
            ws,
            enable_telemetry=False,
            cloud=p["cloud"],
            cloud_metadata=cloud_metadata_for(p),
        )
    else:
        ml_client = MLClient(credential, sub, rg, ws, enable_telemetry=False)
    tracking_uri = ml_client.workspaces.get(ws).mlflow_tracking_uri  # registers the credential
    if p["mode"] == "builtin":
        # azureml-mlflow's own cloud table (in env mode it was filled from the metadata URL).
        from azureml.mlflow._common._cloud.cloud import KNOWN_CLOUDS, Cloud, CloudEndpoints, CloudSuffixes

        arm = p["base_url"].rstrip("/") + "/"
        KNOWN_CLOUDS[p["cloud"]] = Cloud(
            p["cloud"],
            endpoints=CloudEndpoints(resource_manager=arm, active_directory=arm.rstrip("/"), portal=arm),
            suffixes=CloudSuffixes(storage_endpoint=p["storage_suffix"]),
        )
    mlflow.set_tracking_uri(tracking_uri)
    return str(mlflow.set_experiment(p["experiment"]).experiment_id)


def ours_session(p: dict[str, Any], **kwargs: Any) -> Any:
    """A ``Session`` that knows the sandbox cloud without a download (``builtin``) or from the env."""
    from jupyter_amlflow import Session

    session = Session(timeout=kwargs.pop("timeout", 60.0), **kwargs)
    if p["mode"] == "builtin":
        from jupyter_amlflow.clouds import clouds_from_metadata

        for cloud in clouds_from_metadata(p["cloud_document"], None):
            session.catalog.add(cloud)
    return session


def connect_ours(p: dict[str, Any], **kwargs: Any) -> str:
    """jupyter_amlflow's connect, service principal from the environment; returns the experiment id."""
    from jupyter_amlflow import ConnectRequest

    auth = kwargs.pop("auth", ["env"])
    renderer = kwargs.pop("renderer", None)
    session = ours_session(p, auth=auth)
    request = ConnectRequest(
        subscription=p["subscription"],
        resource_group=p["resource_group"],
        workspace=p["workspace"],
        cloud=p["cloud"] if p["mode"] == "builtin" else None,
        experiment=p["experiment"],
        **kwargs,
    )
    conn = session.connect(request, renderer=renderer)
    return str(conn.experiment.experiment_id)


def connect_floor(p: dict[str, Any]) -> str:
    """Only what cannot be avoided: ``import mlflow`` and the four requests, one after another."""
    import mlflow  # noqa: F401 - the import is part of the floor
    import requests

    base = p["base_url"]
    tenant = os.environ["AZURE_TENANT_ID"]
    arm_scope = base.rstrip("/") + "/.default"
    with requests.Session() as http:
        oidc = http.get(f"{base}/{tenant}/v2.0/.well-known/openid-configuration", timeout=30)
        oidc.raise_for_status()
        token = http.post(
            oidc.json()["token_endpoint"],
            data={
                "grant_type": "client_credentials",
                "client_id": os.environ["AZURE_CLIENT_ID"],
                "client_secret": os.environ["AZURE_CLIENT_SECRET"],
                "scope": arm_scope,
            },
            timeout=30,
        )
        token.raise_for_status()
        auth = {"Authorization": "Bearer " + token.json()["access_token"]}
        path = (
            f"subscriptions/{p['subscription']}/resourceGroups/{p['resource_group']}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{p['workspace']}"
        )
        ws = http.get(f"{base}/{path}", params={"api-version": "2024-10-01"}, headers=auth, timeout=30)
        ws.raise_for_status()
        host = ws.json()["properties"]["mlFlowTrackingUri"].split("://", 1)[1].split("/", 1)[0]
        exp = http.get(
            f"https://{host}/mlflow/v2.0/{path}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": p["experiment"]},
            headers=auth,
            timeout=30,
        )
        exp.raise_for_status()
        return str(exp.json()["experiment"]["experiment_id"])


CONNECTS = {"ours": connect_ours, "official": connect_official, "floor": connect_floor}


# -- the machine ---------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    """nproc, CPU model, RAM, Python and package versions, date: for the README and the notes."""
    import importlib.metadata
    import platform

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    packages = ", ".join(
        f"{n} {version(n)}"
        for n in (
            "jupyter_amlflow",
            "mlflow",
            "mlflow-skinny",
            "azureml-mlflow",
            "azure-ai-ml",
            "azure-identity",
            "azure-core",
            "msal",
            "ipython",
        )
    )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "python": platform.python_version(),
        "os": platform.platform(),
        "packages": packages,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
