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
        ["bash", "-c", readme_command("demo")], cwd=copy, env=env, capture_output=True, text=True, timeout=1500
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    assert "Executed " in out and "all succeeded" in out, out
    assert re.search(r"quickstart\s+\[FINISHED\]", out) and "rmse=" in out and "learning_rate=0.02" in out, out
    assert re.search(r"Studio:\s+https://127\.0\.0\.1:\d+/studio/[\w-]+/runs/[0-9a-f]{32}\?wsid=/subscriptions/", out), out

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
        ["bash", "-c", readme_command("test")], cwd=copy, env=env, capture_output=True, text=True, timeout=1500
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert re.search(r"\b2 passed\b", tests.stdout), tests.stdout[-2000:]
