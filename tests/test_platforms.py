"""Databricks and Synapse notebooks: the real magics in real kernels, with stand-ins for dbutils and
mssparkutils (``platform_standins.py``) that hand out real sandbox tokens under their own identity.

Each kernel sees what a cluster would: ``DATABRICKS_RUNTIME_VERSION`` or ``AZURE_SERVICE``, the
sandbox cloud's variables, and never a service principal in its environment. The platform's
state (secret scopes, vaults, linked services) lives in files outside the notebook's folder and
HOME, as the platform keeps it; every secret in it is watched by the suite's secret check.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from databricks_notebooks import load_databricks_source, to_notebook
from helpers import answer_device_code, backend_runs
from kernels import errors_of, execute, html_of, notebook, outputs, text_of
from platform_standins import FakeDbutils, FakeMssparkutils, read_log

from jupyter_amlflow import auth
from jupyter_amlflow.errors import SignInError

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
DATABRICKS = {"DATABRICKS_RUNTIME_VERSION": "15.4"}
SYNAPSE = {"AZURE_SERVICE": "Microsoft.ProjectArcadia"}
NOT_ON_A_CLUSTER = ("AZURE_CLIENT_", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_", "MSI_")


# -- the platforms' state ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the stand-in platforms keep their state: not the notebook's folder, not HOME."""
    path = tmp_path_factory.mktemp("platform-state")
    path.chmod(0o700)
    return path


def write_state(directory: Path, name: str, state: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(json.dumps(state))
    path.chmod(0o600)
    return path


def kernel_env(sb: Any, platform: dict[str, str]) -> dict[str, str]:
    """The kernel's environment: the cloud, the platform's marker, the stand-ins on PYTHONPATH."""
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(HERE)) if p)
    env = {**sb.env, **platform, "PYTHONPATH": path}
    leaked = [k for k in {**os.environ, **env} if k.startswith(NOT_ON_A_CLUSTER)]
    assert leaked == [], f"a cluster would not have {leaked}"
    return env


def setup_cell(kind: str, state: Path) -> str:
    """The first cell: the platform puts its utility in the notebook's namespace."""
    if kind == "databricks":
        return f"from platform_standins import FakeDbutils\ndbutils = FakeDbutils.load({str(state)!r})"
    return f"from platform_standins import FakeMssparkutils\nmssparkutils = FakeMssparkutils.load({str(state)!r})"


def error_text(nb: Any, index: int) -> str:
    """The one error a cell showed: IPython prints a ``UsageError`` to stderr, other errors as errors."""
    shown = [f"{e['ename']}: {e['evalue']}" for e in errors_of(nb, index)]
    shown += [o["text"].strip() for o in outputs(nb, index) if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert len(shown) == 1, text_of(nb, index)
    return shown[0]


def failures(nb: Any, index: int) -> list[str]:
    """What went wrong in a cell: errors and ``UsageError`` s (which IPython prints to stderr)."""
    shown = [f"{e['ename']}: {e['evalue']}" for e in errors_of(nb, index)]
    return shown + [o["text"] for o in outputs(nb, index) if o["output_type"] == "stream" and "UsageError" in o["text"]]


def requests_by(sb: Any, since: float, endpoint: str) -> set[str | None]:
    return {r.identity_name for r in sb.requests if r.time >= since and r.endpoint == endpoint and r.status < 400}


@pytest.fixture(scope="module")
def databricks_sp(sandbox: Any, secret_check: Any) -> Any:
    """The service principal a Databricks workspace admin put into secret scopes."""
    sp = sandbox.add_service_principal("databricks-aml-sp")
    secret_check.add_secret(sp.client_secret)
    return sp


def databricks_state(sb: Any, sp: Any, directory: Path, log: Path, **extra: Any) -> Path:
    values = {"tenant-id": sb.tenant_id, "client-id": sp.client_id, "client-secret": sp.client_secret}
    scopes = {
        "aml-sp": values,
        "team": {"aml-tenant": sb.tenant_id, "aml-app": sp.client_id, "aml-password": sp.client_secret},
        # The secret pasted under client-id by mistake: it must not be echoed back.
        "swapped": {**values, "client-id": sp.client_secret},
        "locked": values,
    }
    return write_state(
        directory,
        f"databricks-{log.parent.name}.json",
        {"scopes": scopes, "denied": ["locked"], "log": str(log), **extra},
    )


@pytest.fixture(scope="module")
def synapse(sandbox: Any, secret_check: Any) -> dict[str, Any]:
    """A Synapse workspace: its managed identity, a linked service, a Key Vault with a service principal."""
    world = {
        "msi": sandbox.add_managed_identity("synapse-ws-msi"),
        "msi_norole": sandbox.add_managed_identity("synapse-ws-norole", role=None),
        "linked_sp": sandbox.add_service_principal("synapse-linked-sp"),
        "vault_sp": sandbox.add_service_principal("synapse-vault-sp"),
    }
    for identity in (world["linked_sp"], world["vault_sp"]):
        secret_check.add_secret(identity.client_secret)
    secret_check.add_secret(sandbox.identity_header)
    return world


def synapse_state(sb: Any, world: dict[str, Any], directory: Path, log: Path, **extra: Any) -> Path:
    linked, vault = world["linked_sp"], world["vault_sp"]
    state = {
        "ca_bundle": sb.ca_bundle,
        "authority": sb.authority_url,
        # Synapse maps AzureManagement to its cloud's Resource Manager; here, the sandbox's.
        "audiences": {"AzureManagement": sb.base_url + "/", "Storage": "https://storage.azure.com/"},
        "identity": {
            "endpoint": sb.base_url + "/msi/appservice",
            "header": sb.identity_header,
            "client_id": world["msi"].client_id,
        },
        "linked_services": {
            name: {"tenant": sb.tenant_id, "client_id": linked.client_id, "client_secret": linked.client_secret}
            for name in ("aml-ls", "kv-ls")
        },
        "vaults": {
            "aml-kv": {
                "secrets": {
                    "tenant-id": sb.tenant_id,
                    "client-id": vault.client_id,
                    "client-secret": vault.client_secret,
                },
                "readers": ["kv-ls"],
            }
        },
        "log": str(log),
        **extra,
    }
    return write_state(directory, f"synapse-{log.parent.name}-{len(extra)}.json", state)


@pytest.fixture
def short_tokens(sandbox: Any) -> Iterator[None]:
    """Sandbox tokens that live 3 s (restored afterwards)."""
    saved = sandbox.token_lifetime
    sandbox.token_lifetime = 3.0
    try:
        yield
    finally:
        sandbox.token_lifetime = saved


# -- Databricks ---------------------------------------------------------------------------------------
def test_databricks_secret_scope_signs_in_and_says_what_is_wrong(
    sandbox: Any, databricks_sp: Any, state_dir: Path, tmp_path: Path, secret_check: Any
) -> None:
    ws = sandbox.workspaces[0]
    log = tmp_path / "dbutils.jsonl"
    state = databricks_state(sandbox, databricks_sp, state_dir, log)
    connect = f"%amlflow connect {ws.arm_id}"
    nb = notebook(
        setup_cell("databricks", state),
        "%load_ext jupyter_amlflow",
        f"{connect} --secret-scope nope",
        f"{connect} --secret-scope locked",
        f"{connect} --secret-scope aml-sp --secret-keys client-secret=aml-password",
        f"{connect} --secret-scope swapped",
        f"{connect} --secret-scope aml-sp --secret-keys password=x",
        f"{connect} --secret-scope team --secret-keys tenant-id=aml-tenant,client-id=aml-app,client-secret=aml-password"
        " --experiment databricks-kernel",
        "%%amlflow run --name on-databricks\nimport mlflow\nmlflow.log_metric('auc', 0.91)",
        "%amlflow status",
        "%amlflow help connect",
        "%amlflow list subscriptions --secret-scope team "
        "--secret-keys tenant-id=aml-tenant,client-id=aml-app,client-secret=aml-password",
    )
    started = time.time()
    execute(nb, env=kernel_env(sandbox, DATABRICKS), cwd=tmp_path)
    secret_check.scan(nb)
    fails = "UsageError: Could not sign in to AzureSandbox with databricks-secrets. Tried databricks-secrets: failed, "
    assert error_text(nb, 2) == (
        f"{fails}there is no secret scope 'nope' (RESOURCE_DOES_NOT_EXIST: Scope nope does not exist!). "
        "Check the name (dbutils.secrets.listScopes() lists the scopes you can read), or create it: "
        "databricks secrets create-scope nope."
    )
    assert error_text(nb, 3) == (
        f"{fails}you may not read secret scope 'locked' (PERMISSION_DENIED: User alice@sandbox.onmicrosoft.test "
        "does not have READ permission on scope locked to perform this action.). Ask a workspace admin for READ on "
        "it: databricks secrets put-acl locked YOUR_USER_NAME READ."
    )
    assert error_text(nb, 4) == (
        f"{fails}secret scope 'aml-sp' has no key 'aml-password' (for the client-secret); it has 'tenant-id', "
        "'client-id', 'client-secret'. Put the client-secret there (databricks secrets put-secret aml-sp "
        "aml-password), or name the key that holds it: --secret-keys client-secret=KEY."
    )
    assert error_text(nb, 5) == (
        f"{fails}the client-id in secret scope 'swapped' ('client-id') is not an application id. Put the "
        "application (client) id there, a GUID; the secret goes under client-secret."
    )
    assert error_text(nb, 6) == (
        "UsageError: Unknown secret 'password' in --secret-keys. The names are tenant-id, client-id, client-secret. "
        "For example: --secret-keys client-id=aml-app-id,client-secret=aml-app-secret."
    )
    assert failures(nb, 7) == [], text_of(nb, 7)
    assert f"Connected to {ws.name}" in text_of(nb, 7)
    assert failures(nb, 8) == [], text_of(nb, 8)
    status = text_of(nb, 9)
    assert "databricks-aml-sp (service principal, databricks-secrets)" in status
    assert re.search(r"Platform\s+Databricks", status), status
    assert "--secret-scope SCOPE" in text_of(nb, 10) and "--linked-service NAME" in text_of(nb, 10)
    assert failures(nb, 11) == [] and ws.subscription_id in text_of(nb, 11)

    runs = {r.info.run_name: r for r in backend_runs(sandbox, ws, "databricks-kernel")}
    assert runs["on-databricks"].data.metrics == {"auc": 0.91}
    # Resource Manager and the MLflow API saw the secret scope's service principal, and only it.
    assert requests_by(sandbox, started, "workspace") == {"databricks-aml-sp"}
    assert requests_by(sandbox, started, "mlflow") == {"databricks-aml-sp"}
    calls = read_log(log)
    assert {(c["scope"], c["key"]) for c in calls if c["api"] == "dbutils.secrets.get" and c["scope"] == "team"} == {
        ("team", "aml-tenant"),
        ("team", "aml-app"),
        ("team", "aml-password"),
    }
    assert all("value" not in c for c in calls)


def test_databricks_without_a_secret_scope_signs_in_by_device_code(
    sandbox: Any, databricks_sp: Any, state_dir: Path, tmp_path: Path, secret_check: Any
) -> None:
    ws = sandbox.workspaces[0]
    state = databricks_state(sandbox, databricks_sp, state_dir, tmp_path / "dbutils.jsonl")
    nb = notebook(
        setup_cell("databricks", state),
        "%load_ext jupyter_amlflow",
        "%amlflow panel",
        f"%amlflow connect {ws.arm_id} --experiment databricks-device",
        "%amlflow status",
    )
    thread = answer_device_code(sandbox, "approve", sandbox.bob.username, timeout=120)
    execute(nb, env=kernel_env(sandbox, DATABRICKS), cwd=tmp_path)
    thread.join(10)
    secret_check.scan(nb)
    # Where widgets do not render, the panel's text form gives the commands, with the secret scope.
    panel = text_of(nb, 2)
    assert "%amlflow connect" in panel and "add --secret-scope SCOPE" in panel
    assert "<pre" in html_of(nb, 2)
    assert failures(nb, 3) == [], text_of(nb, 3)
    assert "Signed in as" in text_of(nb, 3) and thread.result["code"] not in text_of(nb, 3)
    assert f"{sandbox.bob.username} (user, device-code)" in text_of(nb, 4)
    assert read_log(tmp_path / "dbutils.jsonl") == []  # no scope named: no secret read


# -- Synapse ------------------------------------------------------------------------------------------
def test_synapse_token_library_linked_service_and_key_vault(
    sandbox: Any, synapse: dict[str, Any], state_dir: Path, tmp_path: Path, secret_check: Any
) -> None:
    ws = sandbox.workspaces[1]
    log = tmp_path / "mssparkutils.jsonl"
    state = synapse_state(sandbox, synapse, state_dir, log)
    connect = f"%amlflow connect {ws.arm_id} --experiment synapse-kernel"
    nb = notebook(
        setup_cell("synapse", state),
        "%load_ext jupyter_amlflow",
        connect,
        "%%amlflow run --name as-workspace-identity\nimport mlflow\nmlflow.log_metric('f1', 0.8)",
        "%amlflow status",
        f"{connect} --linked-service aml-ls",
        "%%amlflow run --name as-linked-service\nimport mlflow\nmlflow.log_metric('f1', 0.7)",
        f"{connect} --key-vault aml-kv",
        f"{connect} --key-vault aml-kv --linked-service kv-ls --secret-keys client-secret=sp-secret",
        f"{connect} --key-vault aml-kv --linked-service kv-ls",
        "%amlflow status",
    )
    started = time.time()
    execute(nb, env=kernel_env(sandbox, SYNAPSE), cwd=tmp_path)
    secret_check.scan(nb)
    for index in (2, 3, 5, 6, 9):
        assert failures(nb, index) == [], text_of(nb, index)
    status = text_of(nb, 4)
    assert "synapse-ws-msi (service principal, synapse-token)" in status
    assert re.search(r"Platform\s+Azure Synapse \(or Fabric\) Spark", status), status
    assert "synapse-linked-sp (service principal, synapse-token)" in text_of(nb, 5)
    kv = "UsageError: Could not sign in to AzureSandbox with synapse-keyvault. Tried synapse-keyvault: failed, "
    assert error_text(nb, 7) == (
        f"{kv}you may not read secrets in Key Vault 'aml-kv' (Forbidden (403): The user, group or application "
        "'upn=alice@sandbox.onmicrosoft.test;' does not have secrets get permission on key vault "
        "'aml-kv;location=eastus'.). Grant the Key Vault Secrets User role on the vault (or a Get secrets access "
        "policy), or read it as the workspace's identity: --linked-service VAULT_LINKED_SERVICE."
    )
    assert error_text(nb, 8) == (
        f"{kv}Key Vault 'aml-kv' has no secret 'sp-secret' (for the client-secret). Add it (az keyvault secret set "
        "--vault-name aml-kv --name sp-secret --value ...), or name the secret that holds it: "
        "--secret-keys client-secret=SECRET."
    )
    assert "synapse-vault-sp (service principal, synapse-keyvault)" in text_of(nb, 10)

    runs = {r.info.run_name: r for r in backend_runs(sandbox, ws, "synapse-kernel")}
    assert runs["as-workspace-identity"].data.metrics == {"f1": 0.8}
    assert runs["as-linked-service"].data.metrics == {"f1": 0.7}
    assert requests_by(sandbox, started, "workspace") == {"synapse-ws-msi", "synapse-linked-sp", "synapse-vault-sp"}
    calls = read_log(log)
    tokens = [(c["audience"], c["name"]) for c in calls if c["api"] == "mssparkutils.credentials.getToken"]
    assert ("AzureManagement", "") in tokens and ("AzureManagement", "aml-ls") in tokens
    secrets = {(c["secret"], c["linked_service"]) for c in calls if c["api"] == "mssparkutils.credentials.getSecret"}
    assert {("tenant-id", "kv-ls"), ("client-id", "kv-ls"), ("client-secret", "kv-ls")} <= secrets


def test_synapse_identity_without_a_role_is_refused_by_resource_manager(
    sandbox: Any, synapse: dict[str, Any], state_dir: Path, tmp_path: Path, secret_check: Any
) -> None:
    ws = sandbox.workspaces[1]
    world = {**synapse, "msi": synapse["msi_norole"]}
    state = synapse_state(sandbox, world, state_dir, tmp_path / "mssparkutils.jsonl")
    nb = notebook(setup_cell("synapse", state), "%load_ext jupyter_amlflow", f"%amlflow connect {ws.arm_id}")
    execute(nb, env=kernel_env(sandbox, SYNAPSE), cwd=tmp_path)
    secret_check.scan(nb)
    message = error_text(nb, 2)
    assert message.startswith("UsageError: ") and "Microsoft.MachineLearningServices/workspaces/read" in message
    assert "AzureML Data Scientist" in message and "\n" not in message


def test_synapse_tokens_are_renewed_through_get_token_and_a_stale_one_is_refused(
    sandbox: Any, synapse: dict[str, Any], state_dir: Path, tmp_path: Path, secret_check: Any, short_tokens: None
) -> None:
    ws = sandbox.workspaces[1]
    stale = synapse_state(sandbox, synapse, state_dir, tmp_path / "stale.jsonl", stale_tokens=True)
    log = tmp_path / "fresh.jsonl"
    fresh = synapse_state(sandbox, synapse, state_dir, log)
    connect = f"%amlflow connect {ws.arm_id} --experiment synapse-expiry"
    nb = notebook(
        setup_cell("synapse", stale),
        # The library hands out this token from now on, also once it has expired.
        "warm = mssparkutils.credentials.getToken('AzureManagement') and None\nimport time\ntime.sleep(4)",
        "%load_ext jupyter_amlflow",
        connect,
        setup_cell("synapse", fresh),
        connect,
        "%%amlflow run --name before-expiry\nimport mlflow\nmlflow.log_metric('loss', 0.5)",
        "time.sleep(4)",
        "%%amlflow run --name after-expiry\nimport mlflow\nmlflow.log_metric('loss', 0.25)",
    )
    execute(nb, env=kernel_env(sandbox, SYNAPSE), cwd=tmp_path)
    secret_check.scan(nb)
    assert re.fullmatch(
        r"UsageError: Could not sign in to AzureSandbox with synapse-token\. Tried synapse-keyvault: unavailable, "
        r"no Key Vault was given \(--key-vault\); env: unavailable, not set: AZURE_CLIENT_ID, AZURE_CLIENT_SECRET "
        r"\(or AZURE_CLIENT_CERTIFICATE_PATH\), AZURE_TENANT_ID; synapse-token: failed, the Synapse token library "
        r"returned a token that expired at \d\d:\d\d:\d\d UTC\. Check the linked service \(--linked-service\), or "
        r"sign in another way: --key-vault VAULT for a service principal, or --auth device-code\.",
        error_text(nb, 3),
    )
    for index in (5, 6, 8):
        assert failures(nb, index) == [], text_of(nb, index)
    runs = {r.info.run_name: r for r in backend_runs(sandbox, ws, "synapse-expiry")}
    assert runs["before-expiry"].data.metrics == {"loss": 0.5}
    assert runs["after-expiry"].data.metrics == {"loss": 0.25}
    # Every token lived 3 s: the run after the pause was logged with tokens asked for after it.
    calls = [c for c in read_log(log) if c["api"] == "mssparkutils.credentials.getToken"]
    slept = [c["time"] for c in calls]
    assert len(calls) >= 3 and max(slept) - min(slept) > 4


# -- in-process: options and the credential ------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"secret_keys": "client-secret"},
            "--secret-keys wants NAME=KEY pairs, got 'client-secret'. "
            "For example: --secret-keys client-id=aml-app-id,client-secret=aml-app-secret.",
        ),
        (
            {"secret_scope": "my scope"},
            "--secret-scope 'my scope' is not a secret scope or key name. Names have 1-128 letters, digits, '-', '_' "
            "or '.'. Check the name: dbutils.secrets.listScopes() and dbutils.secrets.list(SCOPE) show them.",
        ),
        (
            {"secret_keys": {"client-id": "a\nb"}},
            "Key 'a\\nb' is not a secret scope or key name. Names have 1-128 letters, digits, '-', '_' or '.'. "
            "Check the name: dbutils.secrets.listScopes() and dbutils.secrets.list(SCOPE) show them.",
        ),
    ],
)
def test_platform_options_are_checked_before_anything_is_sent(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(SignInError) as err:
        auth.platform_options(**kwargs)
    assert str(err.value) == message


def test_platform_options_keys() -> None:
    options = auth.platform_options(secret_scope="aml-sp", secret_keys="Client-Secret=pw, tenant-id=t")
    assert options.keys == {"tenant-id": "t", "client-id": "client-id", "client-secret": "pw"}
    assert options == auth.PlatformOptions(secret_scope="aml-sp", tenant_key="t", client_secret_key="pw")


def test_token_library_credential_maps_scopes_and_caches(
    sandbox: Any, synapse: dict[str, Any], state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.identity import CredentialUnavailableError

    from jupyter_amlflow.connection import Session

    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    log = tmp_path / "calls.jsonl"
    utils = FakeMssparkutils.load(synapse_state(sandbox, synapse, state_dir, log))
    cloud = Session(env=sandbox.env).resolve_cloud()
    credential = auth.TokenLibraryCredential(utils.credentials, cloud)
    assert credential.audience_key(cloud.arm_scope) == "AzureManagement"
    assert credential.audience_key("https://management.core.windows.net//.default") == "AzureManagement"
    assert credential.audience_key("https://storage.azure.com/.default") == "Storage"
    with pytest.raises(CredentialUnavailableError, match="no audience for the scope https://graph"):
        credential.get_token("https://graph.microsoft.com/.default")
    first = credential.get_token_info(cloud.arm_scope)
    second = credential.get_token(cloud.arm_scope)
    assert first.token == second.token and second.expires_on - time.time() > 3000
    assert auth.describe_token_identity(first.token).name == "synapse-ws-msi"
    assert len(read_log(log)) == 1  # kept until 5 minutes before it expires


# -- the examples, as CI runs them ---------------------------------------------------------------------
def test_databricks_quickstart_example_runs(
    sandbox: Any, databricks_sp: Any, state_dir: Path, tmp_path: Path, secret_check: Any
) -> None:
    ws = sandbox.workspaces[0]
    cells = load_databricks_source(EXAMPLES / "databricks_quickstart.py", skip_magics={"pip"})
    assert [(c.cell_type, c.magic) for c in cells] == [
        ("markdown", "md"),
        ("raw", "pip"),  # CI has the package installed
        ("code", None),
        ("code", "load_ext"),
        ("code", "amlflow"),
        ("markdown", "md"),
        ("code", None),
        ("code", "amlflow"),
        ("markdown", "md"),
    ]
    assert cells[4].title == "Sign in with the secret scope and connect"
    state = databricks_state(
        sandbox, databricks_sp, state_dir, tmp_path / "dbutils.jsonl", parameters={"workspace": ws.arm_id}
    )
    nb = to_notebook(cells)
    nb.cells.insert(0, nbformat.v4.new_code_cell(setup_cell("databricks", state)))
    started = time.time()
    execute(nb, env=kernel_env(sandbox, DATABRICKS), cwd=tmp_path)
    secret_check.scan(nb)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert [(i, text_of(nb, i)) for i in code if failures(nb, i)] == []
    assert "databricks-aml-sp (service principal, databricks-secrets)" in text_of(nb, code[-1])
    runs = backend_runs(sandbox, ws, "databricks-quickstart")
    assert [r.info.run_name for r in runs] == ["databricks-quickstart"]
    assert runs[0].data.params == {"learning_rate": "0.02", "epochs": "30"} and "rmse" in runs[0].data.metrics
    assert requests_by(sandbox, started, "mlflow") == {"databricks-aml-sp"}


def test_synapse_quickstart_example_runs(
    sandbox: Any, synapse: dict[str, Any], state_dir: Path, tmp_path: Path, secret_check: Any
) -> None:
    ws = sandbox.workspaces[1]
    nb = nbformat.read(EXAMPLES / "synapse_quickstart.ipynb", as_version=4)
    nbformat.validate(nb)
    pip = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%pip")]
    assert len(pip) == 1
    pip[0].cell_type = "raw"  # CI has the package installed
    del pip[0]["outputs"], pip[0]["execution_count"]
    # As a Synapse pipeline (and papermill) passes parameters: a cell after the "parameters" cell.
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell(f"workspace = {ws.arm_id!r}", metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, injected)
    state = synapse_state(sandbox, synapse, state_dir, tmp_path / "mssparkutils.jsonl")
    nb.cells.insert(0, nbformat.v4.new_code_cell(setup_cell("synapse", state)))
    started = time.time()
    execute(nb, env=kernel_env(sandbox, SYNAPSE), cwd=tmp_path)
    secret_check.scan(nb)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert [(i, text_of(nb, i)) for i in code if failures(nb, i)] == []
    assert "synapse-ws-msi (service principal, synapse-token)" in text_of(nb, code[-1])
    runs = backend_runs(sandbox, ws, "synapse-quickstart")
    assert [r.info.run_name for r in runs] == ["synapse-quickstart"]
    assert runs[0].data.params == {"learning_rate": "0.02", "epochs": "30"} and "rmse" in runs[0].data.metrics
    assert requests_by(sandbox, started, "mlflow") == {"synapse-ws-msi"}


def test_standins_follow_the_documented_shapes(
    sandbox: Any, databricks_sp: Any, state_dir: Path, tmp_path: Path
) -> None:
    """The stand-ins' own contract, so a test that passes against them means what it says."""
    dbutils = FakeDbutils.load(databricks_state(sandbox, databricks_sp, state_dir, tmp_path / "log.jsonl"))
    assert [m.key for m in dbutils.secrets.list("team")] == ["aml-tenant", "aml-app", "aml-password"]
    assert "aml-sp" in [s.getName() for s in dbutils.secrets.listScopes()]
    assert "locked" not in [s.name for s in dbutils.secrets.listScopes()]
    with pytest.raises(Exception, match=r"IllegalArgumentException: Secret does not exist with scope: team and key: x"):
        dbutils.secrets.get(scope="team", key="x")
    with pytest.raises(Exception, match="InputWidgetNotDefined"):
        dbutils.widgets.get("workspace")


# -- Spark executors, as the README describes them ------------------------------------------------------
EXECUTOR = """
import sys
from types import SimpleNamespace

run_id, workspace_id = sys.argv[1], sys.argv[2]

def log_partition(rows):
    import jupyter_amlflow, mlflow
    jupyter_amlflow.connect(workspace_id, auth="env", experiment="executors")
    client = mlflow.tracking.MlflowClient()
    for row in rows:
        client.log_metric(run_id, "partition_score", row.score)

log_partition([SimpleNamespace(score=0.5), SimpleNamespace(score=0.75)])
"""


def test_an_executor_process_logs_into_the_drivers_run(sandbox: Any, tmp_path: Path, secret_check: Any) -> None:
    """An executor shares nothing with the driver: it gets the run id and workspace, and a service
    principal in its environment, and signs in itself."""
    import subprocess
    import sys

    from helpers import backend_client

    ws = sandbox.workspaces[0]
    client = backend_client(sandbox, ws)
    experiment = client.get_experiment_by_name("executors")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("executors")
    run = client.create_run(experiment_id, run_name="driver-run")
    env = {**os.environ, **sandbox.env, **sandbox.service_principal, "DATABRICKS_RUNTIME_VERSION": "15.4"}
    done = subprocess.run(
        [sys.executable, "-c", EXECUTOR, run.info.run_id, ws.arm_id],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    secret_check.scan(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    history = client.get_metric_history(run.info.run_id, "partition_score")
    assert sorted(m.value for m in history) == [0.5, 0.75]
