"""Installing beside a platform's own mlflow (README, "Installing beside the platform's mlflow").

Each case builds a fresh venv as a platform has it (an mlflow first, and ipykernel), follows the
README's commands verbatim, checks what pip left (the platform's mlflow untouched, ``pip check``
clean), and then, in a real kernel of that venv against the sandbox, does what a person does:
connect, params, metrics (sync and async), a text artifact round trip, ``log_model`` with
``registered_model_name``. Slow by nature: a full mlflow install alone takes about a minute from
a package index; each venv is built once per module and pip's cache keeps a rerun shorter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import backend_client, backend_runs
from kernels import LiveKernel
from test_readme import REGISTRIES, _clean_copy

from jupyter_amlflow import compat

REPO = Path(__file__).resolve().parents[1]

# The README's two ways, line for line (tests/test_readme_blocks.py holds the README to them).
TERMINAL = """\
python -m pip list --format=freeze | grep -iE '^mlflow([-_]skinny|[-_]tracing)?==' > keep-mlflow.txt
python -m pip install . -c keep-mlflow.txt"""
NOTEBOOK = """\
import sys
!{sys.executable} -m pip list --format=freeze | grep -iE '^mlflow([-_]skinny|[-_]tracing)?==' > keep-mlflow.txt
%pip install /path/to/jupyter_amlflow -c keep-mlflow.txt"""

PLATFORM_MLFLOW = "3.17.2"
MLFLOW_DISTS = ("mlflow", "mlflow-skinny", "mlflow-tracing")
REPAIR = re.compile(r"pip install --force-reinstall --no-deps [^,]+")

# What a person runs once connected; prints what the test checks on the sandbox's side.
LOGGING_CELL = """\
import mlflow


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


with mlflow.start_run() as run:
    mlflow.log_param("alpha", 0.5)
    mlflow.log_metric("rmse", 0.27)
    mlflow.log_metric("rmse_async", 0.31, synchronous=False).wait()
    for step in range(20):
        mlflow.log_metric("loss", 1 / (step + 1), step=step, synchronous=False)
    mlflow.log_text("notes about this run", "notes.txt")
    info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name=MODEL)
print("TEXT:", mlflow.artifacts.load_text(run.info.artifact_uri + "/notes.txt"))
print("RUN:", run.info.run_id)
print("MODEL VERSION:", info.registered_model_version)
"""


def test_the_readme_shows_these_commands() -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("### Installing beside the platform's mlflow", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"<!-- exercised-by: tests/test_platform_install.py -->\n```(\w+)\n(.*?)\n```", section, re.S)
    assert blocks == [("bash", TERMINAL), ("ipython", NOTEBOOK)]


# -- venvs ----------------------------------------------------------------------------------------
def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(
        {
            "AMLFLOW_NETGUARD_REGISTRIES": REGISTRIES,
            # The suite's HOME is a temp dir; the machine's pip cache keeps the reinstalls quick.
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path("/root/.cache/pip"))),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    return env


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run(self, command: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """``command`` in bash with this venv's ``python`` first on PATH, as a shell on that machine."""
        env = _pip_env()
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env['PATH']}"
        return subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = self.run(" ".join(["python", "-m", "pip", *args]), cwd=self.root)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out

    def versions(self) -> dict[str, str]:
        listed = json.loads(self.pip("list", "--format=json").stdout)
        return {item["name"].lower().replace("_", "-"): item["version"] for item in listed}

    def check(self) -> subprocess.CompletedProcess[str]:
        return self.run("python -m pip check", cwd=self.root)


def _build(root: Path, *first: str) -> Venv:
    """A venv holding ``first`` (what the platform ships) and ipykernel, with a current pip."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    venv = Venv(root)
    venv.pip("install", "-q", "-U", "pip")
    venv.pip("install", "-q", *first, "ipykernel")
    return venv


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a clean clone holds (pip builds in it; the worktree stays as it is)."""
    copy = tmp_path_factory.mktemp("clone") / "jupyter_amlflow"
    copy.mkdir()
    _clean_copy(copy)
    return copy


@dataclass(frozen=True)
class Installed:
    venv: Venv
    before: dict[str, str]
    install: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def platform_venv(tmp_path_factory: pytest.TempPathFactory, repo_copy: Path) -> Installed:
    """A platform with full mlflow 3.17.2, then the README's terminal commands."""
    venv = _build(tmp_path_factory.mktemp("platform") / "venv", f"mlflow=={PLATFORM_MLFLOW}")
    before = venv.versions()
    return Installed(venv, before, venv.run(TERMINAL, cwd=repo_copy))


# -- the kernel side ------------------------------------------------------------------------------
def _kernel(venv: Venv, sandbox: Any, cwd: Path, *, installs: bool = False) -> LiveKernel:
    """A kernel of ``venv`` pointed at the sandbox; with ``installs``, one that may run ``%pip``."""
    env = {**sandbox.env, **sandbox.service_principal}
    if installs:
        env.update({k: v for k, v in _pip_env().items() if k.startswith(("AMLFLOW_NETGUARD_", "PIP_"))})
    env["PATH"] = f"{venv.root / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return LiveKernel(env=env, cwd=cwd, python=venv.python, startup_timeout=120)


def _ok(cell: dict[str, Any]) -> dict[str, Any]:
    assert cell["status"] == "ok", f"{cell['ename']}: {cell['evalue']}\n{cell['stdout'][-2000:]}\n{cell['stderr'][-2000:]}"
    return cell


def _printed(cell: dict[str, Any], label: str) -> str:
    found = [line.split(": ", 1)[1] for line in cell["stdout"].splitlines() if line.startswith(label + ": ")]
    assert len(found) == 1, cell["stdout"][-2000:]
    return found[0]


def _version_rows(cell: dict[str, Any]) -> dict[str, str]:
    rows = {}
    for line in cell["text"].splitlines():
        if line.startswith("  "):
            key, _, value = line.strip().partition("  ")
            rows[key] = value.strip()
    return rows


def _use_it_as_a_person_would(venv: Venv, sandbox: Any, cwd: Path, tag: str) -> dict[str, dict[str, str]]:
    """Connect, log, read back and disconnect in a kernel of ``venv``; returns ``%amlflow version``'s rows.

    The rows are taken before connect, while connected and after disconnect.
    """
    ws = sandbox.workspaces[0]
    experiment, model = f"platform-{tag}", f"platform-model-{tag}"
    kernel = _kernel(venv, sandbox, cwd)
    try:
        before = _version_rows(_ok(kernel.run("%load_ext jupyter_amlflow\n%amlflow version")))
        _ok(kernel.run(f"%amlflow connect {ws.arm_id} --auth env --experiment {experiment}", timeout=300))
        connected = _version_rows(_ok(kernel.run("%amlflow version")))
        logged = _ok(kernel.run(f"MODEL = {model!r}\n" + LOGGING_CELL, timeout=600))
        after = _version_rows(_ok(kernel.run("%amlflow disconnect\n%amlflow version")))
    finally:
        kernel.close()

    assert _printed(logged, "TEXT") == "notes about this run"
    run_id = _printed(logged, "RUN")
    assert _printed(logged, "MODEL VERSION") == "1"
    # What arrived, read from the mlflow server behind the workspace.
    [run] = [r for r in backend_runs(sandbox, ws, experiment) if r.info.run_id == run_id]
    assert run.data.params == {"alpha": "0.5"}
    assert run.data.metrics == {"rmse": 0.27, "rmse_async": 0.31, "loss": 0.05}
    history = backend_client(sandbox, ws).get_metric_history(run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(step, 1 / (step + 1)) for step in range(20)]
    versions = backend_client(sandbox, ws).search_model_versions(f"name='{model}'")
    assert [(v.version, v.run_id) for v in versions] == [("1", run_id)]
    return {"before": before, "connected": connected, "after": after}


# -- the cases ------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_beside_a_newer_mlflow_the_install_keeps_it_and_everything_works(
    platform_venv: Installed, sandbox: Any, tmp_path: Path
) -> None:
    venv, install = platform_venv.venv, platform_venv.install
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    after = venv.versions()
    assert {d: after[d] for d in MLFLOW_DISTS} == {d: platform_venv.before[d] for d in MLFLOW_DISTS}
    assert {d: after[d] for d in MLFLOW_DISTS} == dict.fromkeys(MLFLOW_DISTS, PLATFORM_MLFLOW)
    assert after["azureml-mlflow"] == "1.60.0"  # the newest plugin that admits mlflow 3.17.2
    check = venv.check()
    assert (check.returncode, check.stdout.strip()) == (0, "No broken requirements found."), check.stdout

    rows = _use_it_as_a_person_would(venv, sandbox, tmp_path, "newer")
    how = compat.TESTED[("1.60.0", PLATFORM_MLFLOW)]
    assert rows["before"]["mlflow + plugin"] == f"tested here ({how})"
    assert rows["before"]["azureml-mlflow"] == "1.60.0"
    assert rows["before"]["mlflow"] == f"{PLATFORM_MLFLOW} (mlflow {PLATFORM_MLFLOW}, mlflow-skinny {PLATFORM_MLFLOW}, mlflow-tracing {PLATFORM_MLFLOW})"
    # The shim is there while connected, and gone after disconnect.
    assert rows["connected"]["shims in effect"] == "azureml artifact repository builder given tracking_uri and registry_uri"
    assert rows["after"]["shims in effect"] == "none"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_notebook_commands_give_the_tested_pair_beside_mlflow_skinny_3_15(
    tmp_path_factory: pytest.TempPathFactory, repo_copy: Path, sandbox: Any
) -> None:
    # mlflow-skinny alone has no pandas, which pyfunc models need; a platform has it.
    venv = _build(tmp_path_factory.mktemp("tested-pair") / "venv", "mlflow-skinny==3.15.0", "pandas")
    work = tmp_path_factory.mktemp("notebook")
    kernel = _kernel(venv, sandbox, work, installs=True)
    try:
        cell = kernel.run(NOTEBOOK.replace("/path/to/jupyter_amlflow", str(repo_copy)), timeout=900)
    finally:
        kernel.close()
    assert cell["status"] == "ok", cell
    assert "Successfully installed" in cell["stdout"], cell["stdout"][-3000:]
    assert (work / "keep-mlflow.txt").read_text() == "mlflow-skinny==3.15.0\n"
    versions = venv.versions()
    assert (versions["azureml-mlflow"], versions["mlflow-skinny"]) == compat.TESTED_PAIR
    assert "mlflow" not in versions
    check = venv.check()
    assert (check.returncode, check.stdout.strip()) == (0, "No broken requirements found."), check.stdout

    rows = _use_it_as_a_person_would(venv, sandbox, work, "tested")
    assert rows["before"]["mlflow + plugin"] == f"tested here ({compat.TESTED[compat.TESTED_PAIR]})"
    assert rows["connected"]["shims in effect"] == "none"  # 1.62.0.post6 needs none


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_mixed_install_is_refused_with_its_repair_which_works(
    platform_venv: Installed, repo_copy: Path, sandbox: Any, tmp_path: Path
) -> None:
    venv = platform_venv.venv
    assert platform_venv.install.returncode == 0
    # The official path's damage: the plugin's cap puts mlflow-skinny 3.15.0 over the platform's.
    damage = venv.run("python -m pip install azureml-mlflow==1.62.0.post6", cwd=tmp_path)
    assert f"mlflow {PLATFORM_MLFLOW} requires mlflow-skinny=={PLATFORM_MLFLOW}, but you have mlflow-skinny 3.15.0" in damage.stderr
    kernel = _kernel(venv, sandbox, tmp_path)
    try:
        shown = _ok(kernel.run("%load_ext jupyter_amlflow\n%amlflow version"))
        refused = kernel.run(f"%amlflow connect {sandbox.workspaces[0].arm_id} --auth env --experiment never")
        untouched = _ok(kernel.run("import mlflow\nprint('URI:', mlflow.get_tracking_uri())"))
    finally:
        kernel.close()
    repair = (
        f"pip install --force-reinstall --no-deps 'mlflow=={PLATFORM_MLFLOW}' 'mlflow-skinny=={PLATFORM_MLFLOW}' "
        f"'mlflow-tracing=={PLATFORM_MLFLOW}'"
    )
    found = f"installed: mlflow {PLATFORM_MLFLOW}, mlflow-skinny 3.15.0, mlflow-tracing {PLATFORM_MLFLOW}; import mlflow loads 3.15.0"
    assert _version_rows(shown)["mlflow + plugin"] == f"a mixed install ({found}); repair it: {repair}, then restart the kernel"
    assert (refused["status"], refused["ename"]) == ("error", "UsageError")
    assert refused["evalue"] == (
        "This mlflow install is mixed: files of more than one version share its folder. "
        f"I{found[1:]}; no version's tests cover such a mix. Run: {repair}, then restart the kernel."
    )
    assert "azureml://" not in _printed(untouched, "URI")  # nothing changed

    # The printed repair, then the README's commands again: back to what the platform install gave.
    fixed = venv.run(REPAIR.search(refused["evalue"]).group(0).replace("pip ", "python -m pip ", 1), cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    again = venv.run(TERMINAL, cwd=repo_copy)
    assert again.returncode == 0, again.stderr[-3000:]
    versions = venv.versions()
    assert [versions[d] for d in (*MLFLOW_DISTS, "azureml-mlflow")] == [PLATFORM_MLFLOW] * 3 + ["1.60.0"]
    check = venv.check()
    assert (check.returncode, check.stdout.strip()) == (0, "No broken requirements found."), check.stdout


@pytest.mark.slow
def test_a_clean_install_resolves_to_the_tested_pair(tmp_path: Path, repo_copy: Path) -> None:
    """``pip install .`` where no mlflow is installed: what pip would install (resolution only)."""
    venv = Venv(tmp_path / "venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv.root)], check=True, timeout=300)
    venv.pip("install", "-q", "-U", "pip")
    report = tmp_path / "report.json"
    venv.pip("install", "-q", "--dry-run", "--report", str(report), str(repo_copy))
    chosen = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert (chosen["azureml-mlflow"], chosen["mlflow-skinny"]) == compat.TESTED_PAIR
    assert "mlflow" not in chosen
