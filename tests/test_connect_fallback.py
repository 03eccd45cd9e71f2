"""``%amlflow connect`` with nothing naming a workspace shows the panel: options checked first, then kept.

Only a kernel whose front end shows widgets falls back to the panel, so this runs a real one, in a
folder without ``config.json`` and with a HOME of its own (no remembered choice).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kernels import LiveKernel


@pytest.fixture(scope="module")
def kernel(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("no-config")
    home = tmp_path_factory.mktemp("home")
    live = LiveKernel(env={**sandbox.env, **sandbox.service_principal, "HOME": str(home)}, cwd=work)
    try:
        assert live.run("%load_ext jupyter_amlflow")["status"] == "ok"
        yield live
    finally:
        live.close()


SHOW = (
    "import json\n"
    "p = _\n"
    "print(json.dumps({'type': type(p).__name__, 'cloud': p.cloud.value, 'method': p.method.value,\n"
    "    'tenant': p.tenant_input.value, 'experiment': p.experiment.value, 'connect': p.commands()[2],\n"
    "    'status': p.status.value}))\n"
    "p.close()"
)


def panel_for(kernel: Any, line: str) -> dict[str, Any]:
    shown = kernel.run(line)
    assert shown["status"] == "ok", shown
    state = kernel.run(SHOW)
    assert state["status"] == "ok", state
    return json.loads(state["stdout"])


def test_the_panel_starts_from_the_options_given(kernel: Any, sandbox: Any) -> None:
    state = panel_for(kernel, "%amlflow connect --cloud AzureChinaCloud --auth device-code --experiment churn")
    assert (state["type"], state["cloud"], state["method"], state["experiment"]) == (
        "WorkspacePanel",
        "AzureChinaCloud",
        "device-code",
        "churn",
    )
    assert state["connect"].endswith("--cloud AzureChinaCloud --auth device-code --experiment churn")

    # Several methods, in their order; a tenant; the sandbox's custom cloud by name (from its document).
    tenant = sandbox.tenants[0].default_domain
    state = panel_for(kernel, f"%amlflow connect --auth env,device-code --tenant {tenant} --cloud {sandbox.cloud}")
    assert (state["cloud"], state["method"], state["tenant"]) == (sandbox.cloud, "env,device-code", tenant)
    assert state["connect"].endswith(f"--cloud {sandbox.cloud} --tenant {tenant} --auth env,device-code --experiment NAME")

    # A --timeout is checked, and the panel says how to give its steps more time.
    state = panel_for(kernel, "%amlflow connect --timeout 120")
    assert "--timeout 120 applies to commands" in state["status"]
    assert "%config AmlflowMagics.timeout = 120" in state["status"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("--timeout -3", "%amlflow connect: --timeout must be a positive number of seconds. For example: --timeout 120."),
        ("--timeout nan", "%amlflow connect: --timeout must be a positive number of seconds. For example: --timeout 120."),
        (
            "--tenant 'not a tenant!'",
            "Tenant 'not a tenant!' is not a tenant id. A tenant is a GUID or a domain such as "
            "contoso.onmicrosoft.com. Check --tenant, AZURE_TENANT_ID or tenant_id in config.json.",
        ),
        ("--auth telepathy", "Unknown sign-in method 'telepathy'"),
        ("--cloud AzureMoon --cloud-metadata-url http://127.0.0.1:9/metadata", "Cannot fetch cloud metadata from"),
    ],
)  # fmt: skip
def test_options_connect_would_refuse_are_refused_before_any_panel(
    kernel: Any, sandbox: Any, options: str, message: str
) -> None:
    sandbox.clear_requests()
    reply = kernel.run(f"%amlflow connect {options}")
    assert reply["ename"] == "UsageError" and reply["evalue"].startswith(message), reply
    assert "WorkspacePanel" not in reply["text"] and "Workspace panel" not in reply["text"]
    assert sandbox.requests == []


def test_an_unknown_cloud_without_a_document_is_refused(kernel: Any, sandbox: Any, tmp_path: Path) -> None:
    # The kernel's environment names the sandbox's metadata document; without it, AzureMoon is unknown.
    reply = kernel.run(
        "import os\n_saved = os.environ.pop('ARM_CLOUD_METADATA_URL')\n"
        "try:\n    get_ipython().run_line_magic('amlflow', 'connect --cloud AzureMoon')\n"
        "finally:\n    os.environ['ARM_CLOUD_METADATA_URL'] = _saved"
    )
    assert reply["ename"] == "UsageError" and reply["evalue"].startswith("Unknown cloud 'AzureMoon'"), reply
