"""The mlflow / azureml-mlflow pair: the README's compatibility table, the pins, and the plugin shim at connect."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlflow import compat

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
    plugin, mlflow_version = compat.installed_versions()
    works = {(r["azureml-mlflow"], r["mlflow-skinny"]) for r in rows if r["Result"].startswith("works")}
    assert (plugin, mlflow_version) in works, (plugin, mlflow_version, rows)
    # The rows that say "works" are the pairs %amlflow version calls tested, no more, no fewer.
    assert set(compat.TESTED) == works
    assert compat.TESTED_PAIR == (plugin, mlflow_version)
    # Every other row says why it is not marked "works".
    assert all(r["Result"].startswith(("works", "untested", "not installable")) for r in rows), rows


def test_runtime_ranges_in_pyproject_let_the_plugin_cap_mlflow() -> None:
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    deps = {r.name: r for r in map(Requirement, tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])}
    plugin, skinny = deps["azureml-mlflow"], deps["mlflow-skinny"]
    assert plugin == Requirement(compat.PLUGIN_REQUIREMENT)
    # Admitted: 1.60.0 (no cap: a platform's newer mlflow) up to the tested 1.62.0.post6, nothing newer.
    assert [v for v in ("1.59.0.post1", "1.60.0", "1.62.0.post6", "1.62.0.post7", "1.63.0") if plugin.specifier.contains(v)] == [
        "1.60.0",
        "1.62.0.post6",
    ]
    # No upper bound of our own on mlflow: a platform's 3.17.2 satisfies us, and pip check stays clean.
    assert skinny.specifier.contains("3.17.2") and skinny.specifier.contains("3.15.0")
    assert not skinny.specifier.contains("3.9.0")


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


def test_the_old_plugin_works_through_the_shim_which_disconnect_removes(old_plugin: Path, sandbox: Any, tmp_path: Path) -> None:
    """azureml-mlflow 1.60.0's artifact builder refuses what this mlflow passes; connected, artifacts work."""
    code = (
        "import jupyter_amlflow, mlflow\n"
        "from jupyter_amlflow import compat\n"
        "print('PLUGIN:', compat.installed_versions()[0])\n"
        "from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository\n"
        "def unshimmed(label):\n"
        "    try:\n"
        "        get_artifact_repository('azureml://example/artifacts', tracking_uri='azureml://example')\n"
        "    except TypeError as exc:\n"
        "        print(label + ':', exc)\n"
        "unshimmed('BEFORE')\n"
        f"conn = jupyter_amlflow.connect({sandbox.workspaces[0].arm_id!r}, auth=['env'], experiment='old-plugin')\n"
        "print('SHIMS:', compat.active_shims())\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_text('logged through the shim', 'notes.txt')\n"
        "print('TEXT:', mlflow.artifacts.load_text(run.info.artifact_uri + '/notes.txt'))\n"
        "conn.disconnect()\n"
        "print('AFTER:', compat.active_shims(), mlflow.get_tracking_uri())\n"
        "unshimmed('UNDONE')\n"
    )
    env = {
        **os.environ,
        **sandbox.env,
        **sandbox.service_principal,
        "PYTHONPATH": os.pathsep.join([str(old_plugin), os.environ["PYTHONPATH"]]),
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert lines["PLUGIN"] == "1.60.0"
    # Without the shim (before connect, and after disconnect) the old builder refuses mlflow's arguments.
    assert "azureml_artifacts_builder() got an unexpected keyword argument 'tracking_uri'" in lines["BEFORE"]
    assert lines["UNDONE"] == lines["BEFORE"]
    assert lines["SHIMS"] == "['azureml artifact repository builder given tracking_uri and registry_uri']"
    assert lines["TEXT"] == "logged through the shim"
    assert lines["AFTER"].startswith("[] ") and "azureml://" not in lines["AFTER"]


# -- the rules for a mixed install and for advice (pure: every case a real install cannot cheaply make) --
def test_one_version_everywhere_is_not_mixed() -> None:
    found = compat.Installed("1.60.0", {"mlflow": "3.17.2", "mlflow-skinny": "3.17.2"}, "3.17.2")
    assert compat.find_mixed(found) is None
    assert compat.find_mixed(compat.Installed(None, {}, None)) is None


def test_files_of_another_version_under_one_metadata_are_mixed() -> None:
    found = compat.Installed("1.62.0.post6", {"mlflow-skinny": "3.17.2"}, "3.15.0")
    assert compat.find_mixed(found) == compat.MixedInstall(
        "installed: mlflow-skinny 3.17.2; import mlflow loads 3.15.0",
        "pip install --force-reinstall --no-deps 'mlflow-skinny==3.17.2', then restart the kernel",
    )


def test_metadata_without_its_files_is_mixed() -> None:
    # `pip uninstall mlflow` beside mlflow-skinny removes the files both list.
    found = compat.Installed("1.60.0", {"mlflow-skinny": "3.17.2"}, None)
    mixed = compat.find_mixed(found)
    assert mixed is not None and mixed.found == "installed: mlflow-skinny 3.17.2, but mlflow's module files are missing"


def test_the_repair_goes_to_the_full_mlflows_version() -> None:
    found = compat.Installed("1.62.0.post6", {"mlflow": "3.17.2", "mlflow-skinny": "3.15.0"}, "3.15.0")
    mixed = compat.find_mixed(found)
    assert mixed is not None
    assert mixed.repair == "pip install --force-reinstall --no-deps 'mlflow==3.17.2' 'mlflow-skinny==3.17.2', then restart the kernel"


def test_a_version_that_is_not_inert_never_goes_into_a_command() -> None:
    # A local build's version could carry characters IPython expands in a pasted line.
    found = compat.Installed("1.60.0", {"mlflow": "3.17.2+{x}", "mlflow-skinny": "3.15.0"}, "3.15.0")
    mixed = compat.find_mixed(found)
    assert mixed is not None and "{x}" not in mixed.repair and mixed.repair.startswith("pip list")
    assert compat.install_advice(found) == compat.INSTALL_HINT


def test_advice_beside_a_platform_mlflow_keeps_it() -> None:
    found = compat.Installed("1.62.0.post6", {"mlflow": "3.16.1", "mlflow-skinny": "3.16.1"}, "3.16.1")
    assert compat.verdict(found) == (
        "not a pair tested here; it may work. Keep this mlflow (jupyter_amlflow does not need another), or get the "
        "plugin pip chooses for it: pip install 'azureml-mlflow>=1.60.0,<=1.62.0.post6' 'mlflow==3.16.1' 'mlflow-skinny==3.16.1'"
    )
    missing = compat.Installed(None, {"mlflow-skinny": "3.16.1"}, "3.16.1")
    assert compat.verdict(missing) == (
        "azureml-mlflow is not installed; install it: pip install 'azureml-mlflow>=1.60.0,<=1.62.0.post6' 'mlflow-skinny==3.16.1'"
    )
    nothing = compat.Installed(None, {}, None)
    assert compat.verdict(nothing) == f"azureml-mlflow is not installed; install it: {compat.INSTALL_HINT}"


# -- a private attribute of mlflow or the plugin gone: refused at connect, before anything changes --
@pytest.mark.parametrize(
    ("module", "holder", "name", "use"),
    [
        ("mlflow.tracking.fluent", None, "_active_experiment_id", "the experiment a connect sets without a second request"),
        ("mlflow.tracking._model_registry.utils", None, "_registry_uri", "the registry URI a connect sets and a disconnect restores"),
        (
            "azureml.mlflow._internal.service_context_loader",
            "_AzureMLServiceContextLoader",
            "_tracking_uri_to_service_context",
            "the plugin's credential for each tracking URI",
        ),
    ],
)  # fmt: skip
def test_a_missing_private_attribute_is_refused_with_the_versions_and_nothing_changes(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, module: str, holder: str | None, name: str, use: str
) -> None:
    """Another mlflow or plugin without an attribute connect relies on: the version guard's message, no AttributeError."""
    import importlib

    from helpers import isolated_mlflow, mlflow_state

    from jupyter_amlflow import ConnectRequest, Session
    from jupyter_amlflow.compat import internals
    from jupyter_amlflow.errors import IncompatibleVersions

    for k, v in {**sandbox.env, **sandbox.service_principal}.items():
        monkeypatch.setenv(k, v)
    owner = importlib.import_module(module)  # mlflow is imported: the guard runs before the snapshot
    if holder is not None:
        owner = getattr(owner, holder)
    session = Session(timeout=20, auth=["env"])
    plugin, mlflow_version = compat.installed_versions()
    with isolated_mlflow():
        before = mlflow_state()
        contexts, clouds = dict(internals.service_contexts()), dict(internals.plugin_clouds())
        sandbox.clear_requests()
        with monkeypatch.context() as gone:
            gone.delattr(owner, name)
            with pytest.raises(IncompatibleVersions) as err:
                session.connect(ConnectRequest(sandbox.workspaces[0].arm_id, experiment="never-created"))
        assert str(err.value) == (
            f"jupyter_amlflow cannot work with mlflow {mlflow_version} and azureml-mlflow {plugin}. "
            f"{module}.{holder + '.' if holder else ''}{name} is missing ({use}); nothing was changed. "
            f"Install a tested pair: {compat.INSTALL_HINT}."
        )
        # Nothing changed: mlflow's state and environment, the plugin's tables, no shim; and nothing was
        # sent but the cloud's public metadata document (no sign-in, Resource Manager or MLflow request).
        assert mlflow_state() == before
        assert (internals.service_contexts(), internals.plugin_clouds()) == (contexts, clouds)
        assert compat.active_shims() == []
        assert session.connection is None
        assert [r.endpoint for r in sandbox.requests if r.endpoint != "metadata"] == []
