"""Where the kernel runs, and which sign-in methods make sense there.

Detection reads only the environment, the notebook's namespace and the OS name: no network, no
process scan, no probe of the instance metadata address 169.254.169.254 (on a laptop that would
hang, and on someone else's VM it would sign in as the VM).

Each rule below cites where its signal comes from. Rules are tried in order; the first match wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from platform import system as _os_name
from types import MappingProxyType

__all__ = [
    "DEFAULTS_TABLE",
    "PLATFORM_NAMES",
    "Platform",
    "default_methods",
    "defaults_table",
    "detect_platform",
    "identity_endpoint",
    "sign_in_hint",
]


@dataclass(frozen=True)
class Platform:
    """Where the kernel runs.

    Args:
        name: One of ``PLATFORM_NAMES``.
        label: For people, e.g. ``"Azure ML compute instance"``.
        can_open_browser: Whether a browser sign-in can open a page the person sees.
        has_identity_endpoint: Whether a managed-identity endpoint is configured in the
            environment (``IDENTITY_ENDPOINT`` with ``IDENTITY_HEADER`` or ``IMDS_ENDPOINT``, or
            ``MSI_ENDPOINT``).
        preconfigured_tracking_uri: The ``azureml://`` tracking URI Azure ML itself set
            (compute instance, job), else None.
        reason: What gave it away, e.g. ``"SSH_CONNECTION is set"`` (variable names only,
            never values).
    """

    name: str
    label: str
    can_open_browser: bool
    has_identity_endpoint: bool
    preconfigured_tracking_uri: str | None
    reason: str = ""


@dataclass(frozen=True)
class _Kind:
    name: str
    label: str
    recognised_by: str
    # Sign-in order; "managed-identity" is dropped where no identity endpoint is configured.
    methods: tuple[str, ...]


# Methods by place. Order follows DefaultAzureCredential's (environment, workload identity,
# managed identity, developer tools, interactive) so a configured non-interactive identity wins.
# "browser" only where a page can open; "device-code" wherever a person is watching (not in a job).
_KINDS: tuple[_Kind, ...] = (
    _Kind(
        "aml-job",
        "Azure ML job",
        "`AZUREML_RUN_ID`, or `MLFLOW_RUN_ID` + `MLFLOW_TRACKING_TOKEN` with an `azureml://` `MLFLOW_TRACKING_URI`",
        ("env", "workload-identity", "managed-identity", "cli"),
    ),
    _Kind(
        "aml-compute",
        "Azure ML compute instance",
        "`APPSETTING_WEBSITE_SITE_NAME=AMLComputeInstance`, or `CI_NAME` + `CI_WORKSPACE` + `CI_RESOURCE_GROUP`",
        ("env", "workload-identity", "managed-identity", "cli", "device-code"),
    ),
    # Spark notebooks: a service principal from the platform's secret store (only when one is
    # named) or from the cluster's environment, then the identity the platform itself gives the
    # notebook (Synapse's token library), then a person. No managed identity: neither gives the
    # notebook an identity endpoint, and the ADLS passthrough token azureml-mlflow's own
    # Databricks credential reads is gone with credential passthrough (Databricks docs, "Credential
    # passthrough (legacy)": deprecated starting with Databricks Runtime 15.0).
    _Kind(
        "databricks",
        "Databricks",
        "`DATABRICKS_RUNTIME_VERSION`, or `dbutils` in the notebook",
        ("databricks-secrets", "env", "device-code"),
    ),
    _Kind(
        "synapse",
        "Azure Synapse (or Fabric) Spark",
        "`AZURE_SERVICE=Microsoft.ProjectArcadia`, `MMLSPARK_PLATFORM_INFO=synapse`, "
        "or `mssparkutils` / `notebookutils` in the notebook",
        ("synapse-keyvault", "env", "synapse-token", "device-code"),
    ),
    _Kind(
        "codespaces",
        "GitHub Codespaces",
        "`CODESPACES=true`",
        ("env", "workload-identity", "managed-identity", "cli", "device-code"),
    ),
    _Kind(
        "jupyterhub",
        "JupyterHub",
        "`JUPYTERHUB_API_TOKEN` or `JUPYTERHUB_USER`",
        ("env", "workload-identity", "managed-identity", "cli", "device-code"),
    ),
    _Kind(
        "ssh",
        "remote machine (SSH)",
        "`SSH_CONNECTION` or `SSH_CLIENT`",
        ("env", "workload-identity", "managed-identity", "cli", "powershell", "device-code"),
    ),
    _Kind(
        "headless",
        "machine without a display",
        "Linux without `DISPLAY` or `WAYLAND_DISPLAY` (and not WSL)",
        ("env", "workload-identity", "managed-identity", "cli", "powershell", "device-code"),
    ),
    _Kind(
        "local",
        "local machine",
        "anything else (Windows, macOS, Linux desktop, WSL)",
        ("env", "workload-identity", "managed-identity", "cli", "powershell", "browser", "device-code"),
    ),
)
_BY_NAME: Mapping[str, _Kind] = MappingProxyType({kind.name: kind for kind in _KINDS})
PLATFORM_NAMES: tuple[str, ...] = tuple(kind.name for kind in _KINDS)


def _is_set(env: Mapping[str, str], name: str) -> bool:
    return bool(env.get(name, "").strip())


def _first_set(env: Mapping[str, str], *names: str) -> str | None:
    return next((name for name in names if _is_set(env, name)), None)


def _aml_job(env: Mapping[str, str], user_ns: Mapping[str, object]) -> str | None:
    # Azure ML puts AZUREML_RUN_ID (with AZUREML_ARM_SUBSCRIPTION, AZUREML_RUN_TOKEN...) into every
    # job: azureml-mlflow azureml/mlflow/_common/constants.py (RunEnvVars) and
    # azureml/mlflow/_internal/service_context_loader.py::_is_remote.
    if _is_set(env, "AZUREML_RUN_ID"):
        return "AZUREML_RUN_ID is set"
    # Jobs also get MLflow's own variables: the plugin treats MLFLOW_TRACKING_URI + _TOKEN + RUN_ID
    # as "a job configured us" (service_context_loader.py::_mlflow_env_vars_set). MLFLOW_RUN_ID
    # alone is not enough: `mlflow run` sets it on any machine.
    uri = env.get("MLFLOW_TRACKING_URI", "").strip().lower()
    if uri.startswith("azureml://") and _is_set(env, "MLFLOW_RUN_ID") and _is_set(env, "MLFLOW_TRACKING_TOKEN"):
        return "MLFLOW_RUN_ID and MLFLOW_TRACKING_TOKEN are set with an azureml:// MLFLOW_TRACKING_URI"
    return None


def _aml_compute(env: Mapping[str, str], user_ns: Mapping[str, object]) -> str | None:
    # Compute instances set APPSETTING_WEBSITE_SITE_NAME=AMLComputeInstance (so App Service style
    # MSI clients work): microsoft/msticpy msticpy/init/azure_ml_tools.py::is_in_aml. The value
    # must match: App Service and `az login --identity` workarounds set the variable to other values.
    if env.get("APPSETTING_WEBSITE_SITE_NAME", "").strip() == "AMLComputeInstance":
        return "APPSETTING_WEBSITE_SITE_NAME=AMLComputeInstance"
    # CI_NAME marks a compute instance for azure-ai-ml (azure/ai/ml/operations/_data_operations.py,
    # "persistent mount is only supported on Compute Instance, where the 'CI_NAME' environment
    # variable is set"); CI_WORKSPACE / CI_RESOURCE_GROUP name its workspace (read that way by
    # Azure ML workshop code). All three are required: CI systems set CI_NAME (Codeship) or
    # CI_WORKSPACE (Woodpecker) on their own.
    if all(_is_set(env, name) for name in ("CI_NAME", "CI_WORKSPACE", "CI_RESOURCE_GROUP")):
        return "CI_NAME, CI_WORKSPACE and CI_RESOURCE_GROUP are set"
    return None


def _databricks(env: Mapping[str, str], user_ns: Mapping[str, object]) -> str | None:
    # DATABRICKS_RUNTIME_VERSION: mlflow mlflow/utils/databricks_utils.py and mlflow/telemetry/utils.py
    # (_is_in_databricks), databricks-sdk credentials_provider.py. `dbutils` in the namespace is what
    # azureml-mlflow's own Databricks credential reads
    # (azureml/mlflow/_common/_authentication/databricks_cluster_authentication.py).
    if _is_set(env, "DATABRICKS_RUNTIME_VERSION"):
        return "DATABRICKS_RUNTIME_VERSION is set"
    if "dbutils" in user_ns:
        return "dbutils is in the notebook's namespace"
    return None


def _synapse(env: Mapping[str, str], user_ns: Mapping[str, object]) -> str | None:
    # AZURE_SERVICE=Microsoft.ProjectArcadia: azureml-mlflow
    # azureml/mlflow/_common/_authentication/arcadia_authentication.py. MMLSPARK_PLATFORM_INFO=synapse:
    # microsoft/msticpy msticpy/init/azure_synapse_tools.py::is_in_synapse. mssparkutils /
    # notebookutils are the Synapse (and Fabric) notebook utilities msticpy imports there.
    if env.get("AZURE_SERVICE", "").strip() == "Microsoft.ProjectArcadia":
        return "AZURE_SERVICE=Microsoft.ProjectArcadia"
    if env.get("MMLSPARK_PLATFORM_INFO", "").strip().lower() == "synapse":
        return "MMLSPARK_PLATFORM_INFO=synapse"
    found = next((name for name in ("mssparkutils", "notebookutils") if name in user_ns), None)
    return f"{found} is in the notebook's namespace" if found else None


def _codespaces(env: Mapping[str, str], user_ns: Mapping[str, object]) -> str | None:
    # GitHub docs, "Default environment variables for your codespace": CODESPACES is "Always true
    # while in a codespace".
    return "CODESPACES=true" if env.get("CODESPACES", "").strip().lower() == "true" else None


def _jupyterhub(env: Mapping[str, str], user_ns: Mapping[str, object]) -> str | None:
    # jupyterhub/jupyterhub jupyterhub/spawner.py::Spawner.get_env gives every single-user server
    # JUPYTERHUB_API_TOKEN and JUPYTERHUB_USER. (Presence only: the token's value is never read.)
    found = _first_set(env, "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER")
    return f"{found} is set" if found else None


def _ssh(env: Mapping[str, str], user_ns: Mapping[str, object]) -> str | None:
    # OpenSSH's sshd (session.c::do_setup_env) sets SSH_CONNECTION and SSH_CLIENT for the session;
    # a Jupyter server started from it (or by VS Code Remote-SSH) passes them to its kernels.
    found = _first_set(env, "SSH_CONNECTION", "SSH_CLIENT")
    return f"{found} is set" if found else None


_RULES = (
    ("aml-job", _aml_job),
    ("aml-compute", _aml_compute),
    ("databricks", _databricks),
    ("synapse", _synapse),
    ("codespaces", _codespaces),
    ("jupyterhub", _jupyterhub),
    ("ssh", _ssh),
)


def _headless(env: Mapping[str, str], system: str) -> str | None:
    """Why a browser cannot open on this OS, or None.

    Python's ``webbrowser`` needs an X11 or Wayland display on Linux and the BSDs. WSL is the
    exception: azure-identity opens the Windows browser through powershell.exe there
    (azure/identity/_credentials/browser.py::_open_browser); WSL sets WSL_DISTRO_NAME.
    """
    if system in ("Windows", "Darwin") or not system:
        return None
    if _first_set(env, "DISPLAY", "WAYLAND_DISPLAY") or _is_set(env, "WSL_DISTRO_NAME"):
        return None
    return f"{system} with neither DISPLAY nor WAYLAND_DISPLAY set"


def identity_endpoint(env: Mapping[str, str]) -> str | None:
    """Which managed-identity endpoint azure-identity would use with ``env``, or None for none.

    The one rule for "is an identity endpoint configured" (platform detection, and whether the
    ``managed-identity`` sign-in may build a credential). It follows the branch order of
    ``ManagedIdentityCredential.__init__`` (azure/identity/_credentials/managed_identity.py):
    ``IDENTITY_ENDPOINT`` first, with ``IDENTITY_HEADER`` (App Service; Service Fabric with
    ``IDENTITY_SERVER_THUMBPRINT``) or ``IMDS_ENDPOINT`` (Azure Arc), and with neither
    azure-identity builds no credential at all; only without ``IDENTITY_ENDPOINT``,
    ``MSI_ENDPOINT`` (Azure ML with ``MSI_SECRET``, Cloud Shell without). The variables are tested
    for being set, as azure-identity tests them; a blank value then counts as no endpoint. None
    means azure-identity would fall back to the metadata address 169.254.169.254 (or to workload
    identity), which this package never lets it probe.

    Returns:
        ``"service-fabric"``, ``"app-service"``, ``"azure-arc"``, ``"azure-ml"``,
        ``"cloud-shell"``, or None.
    """
    if env.get("IDENTITY_ENDPOINT"):
        if not _is_set(env, "IDENTITY_ENDPOINT"):
            return None
        if env.get("IDENTITY_HEADER"):
            if not _is_set(env, "IDENTITY_HEADER"):
                return None
            return "service-fabric" if env.get("IDENTITY_SERVER_THUMBPRINT") else "app-service"
        return "azure-arc" if _is_set(env, "IMDS_ENDPOINT") else None
    if env.get("MSI_ENDPOINT"):
        if not _is_set(env, "MSI_ENDPOINT"):
            return None
        return "azure-ml" if env.get("MSI_SECRET") else "cloud-shell"
    return None


def detect_platform(
    env: Mapping[str, str] | None = None,
    user_ns: Mapping[str, object] | None = None,
    system: str | None = None,
) -> Platform:
    """Where this kernel runs.

    Args:
        env: The environment (default ``os.environ``).
        user_ns: The notebook's namespace (``dbutils``, ``mssparkutils`` give Databricks and
            Synapse away), or None.
        system: The OS as ``platform.system()`` names it (default: this one's).

    Returns:
        The platform; see ``DEFAULTS_TABLE`` for the rules.
    """
    env = os.environ if env is None else env
    namespace: Mapping[str, object] = user_ns if user_ns is not None else {}
    system = _os_name() if system is None else system
    identity = identity_endpoint(env) is not None
    for name, rule in _RULES:
        reason = rule(env, namespace)
        if reason:
            return _platform(name, reason, identity, env)
    reason = _headless(env, system)
    if reason:
        return _platform("headless", reason, identity, env)
    return _platform("local", f"{system or 'this OS'} with a display", identity, env, browser=True)


def _platform(name: str, reason: str, identity: bool, env: Mapping[str, str], *, browser: bool = False) -> Platform:
    preset = None
    if name in ("aml-compute", "aml-job"):
        uri = env.get("MLFLOW_TRACKING_URI", "").strip()
        preset = uri if uri.lower().startswith("azureml://") else None
    return Platform(
        name=name,
        label=_BY_NAME[name].label,
        can_open_browser=browser,
        has_identity_endpoint=identity,
        preconfigured_tracking_uri=preset,
        reason=reason,
    )


def default_methods(platform: Platform) -> list[str]:
    """The sign-in methods tried, in order, when the person does not choose.

    Args:
        platform: Where the kernel runs.

    Returns:
        Method names from ``auth.METHODS``: ``browser`` only where a page can open,
        ``managed-identity`` only where an identity endpoint is configured.
    """
    kind = _BY_NAME.get(platform.name, _BY_NAME["local"])
    methods = [m for m in kind.methods if m != "managed-identity" or platform.has_identity_endpoint]
    if not platform.can_open_browser:
        methods = [m for m in methods if m != "browser"]
    return methods


_SIGN_IN_HINTS: Mapping[str, str] = MappingProxyType(
    {
        "databricks": "On Databricks, sign in as a service principal kept in a secret scope: add "
        "--secret-scope SCOPE (keys tenant-id, client-id, client-secret; other names with --secret-keys).",
        "synapse": "On Synapse, the notebook's own identity signs in (mssparkutils.credentials.getToken); add "
        "--linked-service NAME for a linked service's identity, or --key-vault VAULT for a service principal "
        "kept in Key Vault (secrets tenant-id, client-id, client-secret).",
    }
)


def sign_in_hint(platform: Platform) -> str | None:
    """One sentence on the sign-in options only this platform has (for text forms and help), or None."""
    return _SIGN_IN_HINTS.get(platform.name)


def defaults_table() -> str:
    """The detection rules and default sign-in order, as a Markdown table (README, ``%amlflow help``)."""
    rows = [
        "| Where the kernel runs | Recognised by | Sign-in methods tried, in order |",
        "|---|---|---|",
    ]
    for kind in _KINDS:
        methods = ", ".join(f"{m}\\*" if m == "managed-identity" else m for m in kind.methods)
        rows.append(f"| {kind.label} (`{kind.name}`) | {kind.recognised_by} | {methods} |")
    rows.append("")
    rows.append(
        "Rules are tried top to bottom. \\* `managed-identity` only where an identity endpoint is configured "
        "(`IDENTITY_ENDPOINT` with `IDENTITY_HEADER` or `IMDS_ENDPOINT`, or `MSI_ENDPOINT`); the instance "
        "metadata address 169.254.169.254 is never probed. `databricks-secrets` is tried only with "
        "`--secret-scope`, `synapse-keyvault` only with `--key-vault`. Choose others with `--auth` "
        "(e.g. `--auth cli,device-code`; in Python `auth=`)."
    )
    return "\n".join(rows)


DEFAULTS_TABLE: str = defaults_table()
