"""The README's two commands, run verbatim on a copy of the repository in a fresh venv.

The copy holds what a clean clone holds (tracked and unignored files). The demo command must
execute the quickstart notebook against the sandbox and print the run it read back; the test
command must install the test extras and run tests (a small selection, through PYTEST_ADDOPTS, so
the suite does not run itself). Only these installs may reach the package registries.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REGISTRIES = "pypi.org,files.pythonhosted.org"
INSTALL = "pip install ."  # the README's install block, run below


def readme_command(kind: str) -> str:
    """The bash block between ``<!-- {kind}-command -->`` markers (what .ci/run extracts too)."""
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {kind}-command -->\s*```bash\n(.*?)\n```\s*<!-- /{kind}-command -->", text, re.S)
    assert block, f"README.md has no {kind} command block"
    return block.group(1).strip()


def test_readme_starts_with_the_two_commands() -> None:
    head = (REPO / "README.md").read_text().split("\n## ", 1)[0]
    assert "<!-- demo-command -->" in head and "<!-- test-command -->" in head
    assert readme_command("demo").startswith("python3 -m venv .venv")
    ci = (REPO / ".ci" / "run").read_text()
    assert "test-command" in ci and "bash -c \"$test_command\"" in ci


def test_the_build_configuration_is_the_current_form() -> None:
    """setuptools < 77 reads only the deprecated TOML-table license and prints a banner per build."""
    from packaging.licenses import canonicalize_license_expression
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    license = config["project"]["license"]
    assert isinstance(license, str) and canonicalize_license_expression(license) == license
    setuptools = next(Requirement(r) for r in config["build-system"]["requires"] if r.startswith("setuptools"))
    assert not setuptools.specifier.contains("76.9") and setuptools.specifier.contains("77.0")


def _as_in_the_background() -> None:
    # What `cmd &` in a script, nohup and several CI runners do: the commands must not need SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _clean_copy(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file():
            continue
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_readme_commands_work_on_a_fresh_copy(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    _clean_copy(copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZURE", "VIRTUAL_ENV"))}
    env.update(
        {
            "AMLFLOW_NETGUARD_REGISTRIES": REGISTRIES,
            # The outer suite's HOME is a temp dir; pip's cache keeps the reinstall quick.
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path("/root/.cache/pip"))),
            "PATH": os.environ["PATH"],
            # Resolve from PyPI alone, as a fresh machine does: a local mirror hid the old-pip
            # resolver failure (InconsistentCandidate on opentelemetry-sdk) that the first CI hit.
            "PIP_CONFIG_FILE": os.devnull,
        }
    )
    demo = subprocess.run(
        ["bash", "-c", readme_command("demo")],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        stdin=subprocess.DEVNULL,
        preexec_fn=_as_in_the_background,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    # The first screen is the summary: no build banners, no kernel warnings, only our "# ..." lines.
    assert [line for line in demo.stderr.splitlines() if not line.startswith("# ")] == [], demo.stderr[-3000:]
    assert out.startswith("Executed "), out[:3000]
    assert "Executed " in out and "all succeeded" in out, out
    assert re.search(r"quickstart\s+\[FINISHED\]", out) and "rmse=" in out and "learning_rate=0.02" in out, out
    assert re.search(r"Studio:\s+https://127\.0\.0\.1:\d+/studio/[\w-]+/runs/[0-9a-f]{32}\?wsid=/subscriptions/", out), out
    # The links die with the demo: it says so, and how to keep them.
    assert out.rstrip().endswith("run examples/quickstart.ipynb --keep-running"), out[-500:]

    # "Use it with Azure" installs with a plain `pip install .`: into the same venv, from the copy.
    assert INSTALL in (REPO / "README.md").read_text()
    venv_bin = copy / ".venv" / "bin"
    installed = subprocess.run(
        ["bash", "-c", f"{INSTALL} -q && cd / && python -c 'import jupyter_amlflow, sys; print(jupyter_amlflow.__file__)'"],
        cwd=copy,
        env={**env, "PATH": f"{venv_bin}{os.pathsep}{env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert "site-packages/jupyter_amlflow/__init__.py" in installed.stdout, installed.stdout

    env["PYTEST_ADDOPTS"] = "-p no:cacheprovider -k 'test_cloud_metadata_describes_the_sandbox or test_connect_by_names_logs_to_the_workspace'"
    tests = subprocess.run(
        ["bash", "-c", readme_command("test")],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        stdin=subprocess.DEVNULL,
        preexec_fn=_as_in_the_background,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert re.search(r"\b2 passed\b", tests.stdout), tests.stdout[-2000:]
