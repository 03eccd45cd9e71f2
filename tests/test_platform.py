"""platform.py: where the kernel runs (a table of environments) and the default sign-in order."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

import pytest

from jupyter_amlflow.platform import (
    DEFAULTS_TABLE,
    PLATFORM_NAMES,
    Platform,
    default_methods,
    defaults_table,
    detect_platform,
)

SUB = "348401aa-407d-4c27-818f-b46dbdd6e1b6"
AML_URI = (
    f"azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/{SUB}/resourceGroups/rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/mlw-1"
)
# What a compute instance's kernel sees (names from the sources cited in platform.py).
COMPUTE_INSTANCE = {
    "APPSETTING_WEBSITE_SITE_NAME": "AMLComputeInstance",
    "CI_NAME": "ci-alice",
    "CI_WORKSPACE": "mlw-1",
    "CI_RESOURCE_GROUP": "rg",
    "MSI_ENDPOINT": "http://127.0.0.1:46808/MSI/auth",
    "MSI_SECRET": "not-a-real-secret",
    "DEFAULT_IDENTITY_CLIENT_ID": "clientid",
    "MLFLOW_TRACKING_URI": AML_URI,
}
JOB = {
    "AZUREML_RUN_ID": "run-1",
    "AZUREML_ARM_SUBSCRIPTION": SUB,
    "MLFLOW_TRACKING_URI": AML_URI,
    "MLFLOW_RUN_ID": "run-1",
    "MLFLOW_TRACKING_TOKEN": "job-token-value-never-shown",
    "MLFLOW_EXPERIMENT_NAME": "e",
}
DESKTOP = {"DISPLAY": ":0"}


def row(
    name: str,
    env: dict[str, str],
    *,
    system: str = "Linux",
    ns: dict[str, object] | None = None,
    browser: bool = False,
    identity: bool = False,
    preset: str | None = None,
    reason: str,
) -> Any:
    return pytest.param(env, ns, system, (name, browser, identity, preset, reason), id=f"{name}:{reason}")


CASES = [
    # -- machines a person sits at
    row("local", DESKTOP, browser=True, reason="Linux with a display"),
    row("local", {"WAYLAND_DISPLAY": "wayland-0"}, browser=True, reason="Linux with a display"),
    row("local", {}, system="Darwin", browser=True, reason="Darwin with a display"),
    row("local", {}, system="Windows", browser=True, reason="Windows with a display"),
    row("local", {"WSL_DISTRO_NAME": "Ubuntu"}, browser=True, reason="Linux with a display"),
    row("local", {"MLFLOW_TRACKING_URI": AML_URI}, system="Darwin", browser=True, reason="Darwin with a display"),
    row(
        "local",
        {"APPSETTING_WEBSITE_SITE_NAME": "mysite"},
        system="Windows",
        browser=True,
        reason="Windows with a display",
    ),
    # -- no display
    row("headless", {}, reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set"),
    row("headless", {"DISPLAY": ""}, reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set"),
    row("headless", {}, system="FreeBSD", reason="FreeBSD with neither DISPLAY nor WAYLAND_DISPLAY set"),
    row("headless", {"CI_NAME": "codeship"}, reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set"),
    row("headless", {"CI_WORKSPACE": "/woodpecker/src"}, reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set"),
    row(
        "headless",
        {"MLFLOW_RUN_ID": "r1", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"},
        reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set",
    ),
    row(
        "headless",
        {"MSI_ENDPOINT": "http://localhost:50342/oauth2/token"},
        identity=True,
        reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set",
    ),  # Azure Cloud Shell
    row(
        "headless",
        {"IDENTITY_ENDPOINT": "http://127.0.0.1:41741/msi/token", "IDENTITY_HEADER": "identity-header-value"},
        identity=True,
        reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set",
    ),  # App Service
    row(
        "headless",
        {
            "IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token",
            "IMDS_ENDPOINT": "http://localhost:40342",
        },
        identity=True,
        reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set",
    ),  # Azure Arc
    row(
        "headless",
        {"IDENTITY_ENDPOINT": "http://127.0.0.1:1/x"},
        reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set",
    ),  # half-configured: not an endpoint
    # -- remote sessions
    row("ssh", {"SSH_CONNECTION": "10.0.0.2 52100 10.0.0.5 22", **DESKTOP}, reason="SSH_CONNECTION is set"),
    row("ssh", {"SSH_CLIENT": "10.0.0.2 52100 22"}, reason="SSH_CLIENT is set"),
    row("ssh", {"SSH_CONNECTION": "::1 1 ::1 22"}, system="Darwin", reason="SSH_CONNECTION is set"),
    row("ssh", {"SSH_CONNECTION": "x", "WSL_DISTRO_NAME": "Ubuntu"}, reason="SSH_CONNECTION is set"),
    row("jupyterhub", {"JUPYTERHUB_USER": "alice", **DESKTOP}, reason="JUPYTERHUB_USER is set"),
    row(
        "jupyterhub",
        {"JUPYTERHUB_API_TOKEN": "hub-token-value-never-shown", "SSH_CONNECTION": "x"},
        reason="JUPYTERHUB_API_TOKEN is set",
    ),
    row("codespaces", {"CODESPACES": "true", "CODESPACE_NAME": "octocat-x"}, reason="CODESPACES=true"),
    row("headless", {"CODESPACES": "false"}, reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set"),
    # -- Spark notebooks
    row("databricks", {"DATABRICKS_RUNTIME_VERSION": "14.3"}, reason="DATABRICKS_RUNTIME_VERSION is set"),
    row("databricks", DESKTOP, ns={"dbutils": object()}, reason="dbutils is in the notebook's namespace"),
    row("synapse", {"AZURE_SERVICE": "Microsoft.ProjectArcadia"}, reason="AZURE_SERVICE=Microsoft.ProjectArcadia"),
    row("synapse", {"MMLSPARK_PLATFORM_INFO": "synapse"}, reason="MMLSPARK_PLATFORM_INFO=synapse"),
    row("synapse", DESKTOP, ns={"mssparkutils": object()}, reason="mssparkutils is in the notebook's namespace"),
    row("synapse", {}, ns={"notebookutils": object()}, reason="notebookutils is in the notebook's namespace"),
    row("headless", {"AZURE_SERVICE": "Microsoft.Other"}, reason="Linux with neither DISPLAY nor WAYLAND_DISPLAY set"),
    # -- Azure ML
    row(
        "aml-compute",
        COMPUTE_INSTANCE,
        identity=True,
        preset=AML_URI,
        reason="APPSETTING_WEBSITE_SITE_NAME=AMLComputeInstance",
    ),
    row(
        "aml-compute",
        {"CI_NAME": "ci", "CI_WORKSPACE": "mlw-1", "CI_RESOURCE_GROUP": "rg", **DESKTOP},
        reason="CI_NAME, CI_WORKSPACE and CI_RESOURCE_GROUP are set",
    ),
    row(
        "aml-compute",
        {**COMPUTE_INSTANCE, "MLFLOW_TRACKING_URI": "http://localhost:5000"},
        identity=True,
        reason="APPSETTING_WEBSITE_SITE_NAME=AMLComputeInstance",
    ),
    row(
        "aml-compute",
        {**COMPUTE_INSTANCE, "SSH_CONNECTION": "x", "JUPYTERHUB_USER": "a"},
        identity=True,
        preset=AML_URI,
        reason="APPSETTING_WEBSITE_SITE_NAME=AMLComputeInstance",
    ),
    row("aml-job", JOB, preset=AML_URI, reason="AZUREML_RUN_ID is set"),
    row("aml-job", {**JOB, **COMPUTE_INSTANCE}, identity=True, preset=AML_URI, reason="AZUREML_RUN_ID is set"),
    row(
        "aml-job",
        {k: v for k, v in JOB.items() if not k.startswith("AZUREML_")},
        preset=AML_URI,
        reason="MLFLOW_RUN_ID and MLFLOW_TRACKING_TOKEN are set with an azureml:// MLFLOW_TRACKING_URI",
    ),
    row(
        "aml-job",
        {"AZUREML_RUN_ID": "r", "MSI_ENDPOINT": "http://x", "MSI_SECRET": "msi-secret-value"},
        identity=True,
        reason="AZUREML_RUN_ID is set",
    ),
    row("aml-job", {"AZUREML_RUN_ID": "r", "DATABRICKS_RUNTIME_VERSION": "14.3"}, reason="AZUREML_RUN_ID is set"),
]


@pytest.mark.parametrize(("env", "ns", "system", "expected"), CASES)
def test_detect_platform(
    env: dict[str, str], ns: dict[str, object] | None, system: str, expected: tuple[Any, ...]
) -> None:
    name, browser, identity, preset, reason = expected
    platform = detect_platform(MappingProxyType(env), ns, system)
    assert platform == Platform(
        name=name,
        label=platform.label,
        can_open_browser=browser,
        has_identity_endpoint=identity,
        preconfigured_tracking_uri=preset,
        reason=reason,
    )
    # Names only: no variable's value (tokens, secrets) ends up in what is shown.
    for key in ("MSI_SECRET", "MLFLOW_TRACKING_TOKEN", "JUPYTERHUB_API_TOKEN", "IDENTITY_HEADER"):
        if env.get(key):
            assert env[key] not in repr(platform)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("local", "local machine"),
        ("headless", "machine without a display"),
        ("ssh", "remote machine (SSH)"),
        ("jupyterhub", "JupyterHub"),
        ("codespaces", "GitHub Codespaces"),
        ("databricks", "Databricks"),
        ("synapse", "Azure Synapse (or Fabric) Spark"),
        ("aml-compute", "Azure ML compute instance"),
        ("aml-job", "Azure ML job"),
    ],
)
def test_labels(name: str, label: str) -> None:
    env, ns, system, _ = next(case.values for case in CASES if case.values[3][0] == name)
    assert detect_platform(env, ns, system).label == label


def test_every_platform_is_covered_by_the_table() -> None:
    assert {case.values[3][0] for case in CASES} == set(PLATFORM_NAMES)


def test_defaults_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*COMPUTE_INSTANCE, *JOB, "DATABRICKS_RUNTIME_VERSION", "AZURE_SERVICE", "MMLSPARK_PLATFORM_INFO"):
        monkeypatch.delenv(name, raising=False)
    for name in ("CODESPACES", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 52100 10.0.0.5 22")
    assert detect_platform().name == "ssh"
    monkeypatch.delenv("SSH_CONNECTION")
    assert detect_platform(user_ns={"dbutils": None}).name == "databricks"
    assert detect_platform().name in PLATFORM_NAMES


def test_sandbox_identity_endpoints(sandbox_factory: Any) -> None:
    sb = sandbox_factory(mlflow=False)
    assert detect_platform({**sb.env, **sb.managed_identity_env}, None, "Linux").has_identity_endpoint
    assert detect_platform({**sb.env, **sb.msi_endpoint_env}, None, "Linux").has_identity_endpoint
    assert not detect_platform(sb.env, None, "Linux").has_identity_endpoint
    # The sandbox's own variables do not look like any hosted platform.
    assert detect_platform({**sb.env, **DESKTOP}, None, "Linux").name == "local"


# -- default sign-in methods -----------------------------------------------------------------------------
ALL = (
    "databricks-secrets",
    "synapse-keyvault",
    "env",
    "workload-identity",
    "managed-identity",
    "synapse-token",
    "cli",
    "powershell",
    "browser",
    "device-code",
)


@pytest.mark.parametrize(
    ("name", "methods"),
    [
        ("local", ["env", "workload-identity", "cli", "powershell", "browser", "device-code"]),
        ("headless", ["env", "workload-identity", "cli", "powershell", "device-code"]),
        ("ssh", ["env", "workload-identity", "cli", "powershell", "device-code"]),
        ("jupyterhub", ["env", "workload-identity", "cli", "device-code"]),
        ("codespaces", ["env", "workload-identity", "cli", "device-code"]),
        ("aml-compute", ["env", "workload-identity", "cli", "device-code"]),
        ("aml-job", ["env", "workload-identity", "cli"]),
    ],
)
def test_default_methods(name: str, methods: list[str]) -> None:
    platform = Platform(name, name, name == "local", False, None)
    assert default_methods(platform) == methods
    with_identity = dataclasses.replace(platform, has_identity_endpoint=True)
    assert default_methods(with_identity) == [*methods[:2], "managed-identity", *methods[2:]]


@pytest.mark.parametrize(
    ("name", "methods"),
    [
        ("databricks", ["databricks-secrets", "env", "device-code"]),
        ("synapse", ["synapse-keyvault", "env", "synapse-token", "device-code"]),
    ],
)
def test_spark_notebooks_use_the_platform_and_never_managed_identity(name: str, methods: list[str]) -> None:
    for identity in (False, True):
        assert default_methods(Platform(name, name, False, identity, None)) == methods


@pytest.mark.parametrize(("env", "ns", "system", "expected"), CASES)
def test_default_methods_follow_the_rules(
    env: dict[str, str], ns: dict[str, object] | None, system: str, expected: tuple[Any, ...]
) -> None:
    platform = detect_platform(env, ns, system)
    methods = default_methods(platform)
    assert ("browser" in methods) == platform.can_open_browser
    assert ("managed-identity" in methods) == (
        platform.has_identity_endpoint and platform.name not in ("databricks", "synapse")
    )
    assert ("device-code" in methods) == (platform.name != "aml-job")
    assert methods == sorted(methods, key=ALL.index)
    assert len(set(methods)) == len(methods)


def test_browser_is_dropped_wherever_no_page_can_open() -> None:
    assert "browser" not in default_methods(Platform("local", "local machine", False, False, None))


def test_methods_are_auth_methods() -> None:
    auth = pytest.importorskip("jupyter_amlflow.auth")
    assert tuple(auth.METHODS) == ALL
    for name in PLATFORM_NAMES:
        assert set(default_methods(Platform(name, name, True, True, None))) <= set(auth.METHODS)


# -- the documented table -------------------------------------------------------------------------------
def test_defaults_table_matches_default_methods() -> None:
    assert DEFAULTS_TABLE == defaults_table()
    lines = DEFAULTS_TABLE.splitlines()
    assert lines[0] == "| Where the kernel runs | Recognised by | Sign-in methods tried, in order |"
    assert lines[1] == "|---|---|---|"
    rows = [line for line in lines[2:] if line.startswith("| ")]
    assert len(rows) == len(PLATFORM_NAMES)
    for line, name in zip(rows, PLATFORM_NAMES, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert len(cells) == 3
        assert cells[0].endswith(f"(`{name}`)")
        listed = [m.removesuffix("\\*") for m in cells[2].split(", ")]
        browser = name == "local"
        assert listed == default_methods(Platform(name, name, browser, True, None))
        assert cells[1]
    assert "169.254.169.254 is never probed" in DEFAULTS_TABLE


def test_defaults_table_names_every_signal_the_detector_uses() -> None:
    for variable in (
        "AZUREML_RUN_ID",
        "MLFLOW_TRACKING_TOKEN",
        "APPSETTING_WEBSITE_SITE_NAME=AMLComputeInstance",
        "CI_NAME",
        "DATABRICKS_RUNTIME_VERSION",
        "AZURE_SERVICE=Microsoft.ProjectArcadia",
        "MMLSPARK_PLATFORM_INFO=synapse",
        "mssparkutils",
        "CODESPACES=true",
        "JUPYTERHUB_API_TOKEN",
        "SSH_CONNECTION",
        "WAYLAND_DISPLAY",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
    ):
        assert variable in DEFAULTS_TABLE


def test_platform_is_frozen() -> None:
    platform = detect_platform({}, None, "Darwin")
    with pytest.raises(dataclasses.FrozenInstanceError):
        platform.name = "ssh"  # type: ignore[misc]
