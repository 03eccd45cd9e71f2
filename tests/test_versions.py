"""The mlflow / azureml-mlflow pair: the README's compatibility table, and the broken-pair check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlflow import tracking

REPO = Path(__file__).resolve().parents[1]


def compatibility_rows() -> list[dict[str, str]]:
    """The rows of the README's compatibility table (between its markers)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- compatibility -->\n(.*?)\n<!-- /compatibility -->", text, re.S)
    assert block, "README.md has no <!-- compatibility --> table"
    lines = [line for line in block.group(1).splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


def test_installed_pair_is_a_tested_row_of_the_readme_table() -> None:
    rows = compatibility_rows()
    plugin, mlflow_version = tracking.installed_versions()
    works = {(r["azureml-mlflow"], r["mlflow-skinny"]) for r in rows if r["Result"].startswith("works")}
    assert (plugin, mlflow_version) in works, (plugin, mlflow_version, rows)
    assert set(tracking.KNOWN_GOOD) == works
    broken = [r for r in rows if r["Result"].startswith("breaks")]
    assert any(r["azureml-mlflow"].startswith("1.60") for r in broken)


def test_runtime_ranges_in_pyproject_admit_only_the_working_pair() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '"azureml-mlflow>=1.62.0.post6,<1.63"' in text
    assert '"mlflow-skinny>=3.10,<=3.15.0"' in text


@pytest.fixture(scope="module")
def old_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """azureml-mlflow 1.60.0 unpacked into a folder put first on PYTHONPATH (the known-broken pair)."""
    target = tmp_path_factory.mktemp("azureml-mlflow-1.60")
    env = {**os.environ, "AMLFLOW_NETGUARD_REGISTRIES": "pypi.org,files.pythonhosted.org"}
    env.setdefault("PIP_CACHE_DIR", "/root/.cache/pip")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), "azureml-mlflow==1.60.0"],
        check=True,
        env=env,
        timeout=600,
    )
    return target


def test_broken_pair_is_detected_at_connect_with_what_to_install(old_plugin: Path, sandbox: Any, tmp_path: Path) -> None:
    code = (
        "import jupyter_amlflow\n"
        "from jupyter_amlflow.errors import IncompatibleVersions\n"
        "try:\n"
        f"    jupyter_amlflow.connect({sandbox.workspaces[0].arm_id!r}, auth=['env'], experiment='never')\n"
        "except IncompatibleVersions as exc:\n"
        "    print('REFUSED:', exc)\n"
        "import mlflow\n"
        "print('TRACKING:', mlflow.get_tracking_uri())\n"
    )
    env = {
        **os.environ,
        **sandbox.env,
        **sandbox.service_principal,
        "PYTHONPATH": os.pathsep.join([str(old_plugin), os.environ["PYTHONPATH"]]),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    refused = [line for line in out.stdout.splitlines() if line.startswith("REFUSED:")]
    assert refused == [
        "REFUSED: The azureml-mlflow plugin 1.60.0 does not work with mlflow 3.15.0. This mlflow passes registry_uri, "
        "tracking_uri to the plugin's artifact repository, which does not accept them, so logging artifacts would fail. "
        f"Run: {tracking.INSTALL_HINT}."
    ], out.stdout
    # Nothing was changed: mlflow still points where it pointed before (its default).
    tracking_line = [line for line in out.stdout.splitlines() if line.startswith("TRACKING:")]
    assert tracking_line and "azureml://" not in tracking_line[0]
