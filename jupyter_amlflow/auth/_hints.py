"""What to do next when a sign-in method is unavailable here, or ran and was refused.

One hint per method and outcome, keyed by the names in ``METHODS``; ``failure_hint`` first looks
at what went wrong (an untrusted certificate, an unreachable authority) because then the method's
own hint would send the person the wrong way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._context import chain_text

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["FAILURE_HINTS", "UNAVAILABLE_HINTS", "failure_hint"]

UNAVAILABLE_HINTS: Mapping[str, str] = {
    "databricks-secrets": "In a Databricks notebook, keep the service principal's tenant-id, client-id and "
    "client-secret in a secret scope and pass --secret-scope NAME",
    "synapse-keyvault": "In a Synapse notebook, keep the service principal's tenant-id, client-id and "
    "client-secret in Key Vault and pass --key-vault NAME (with --linked-service for the vault's linked service)",
    "synapse-token": "The token library is there in Azure Synapse notebooks (mssparkutils)",
    "env": "For a service principal set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET "
    "(or AZURE_CLIENT_CERTIFICATE_PATH)",
    "workload-identity": "On Kubernetes, enable Azure workload identity for the pod "
    "(it sets AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID)",
    "managed-identity": "Managed identity works on Azure compute that sets IDENTITY_ENDPOINT or MSI_ENDPOINT; "
    "on an Azure VM run az login --identity and use cli",
    "cli": "Install the Azure CLI (https://aka.ms/installazurecli), then run az login",
    "powershell": "Install PowerShell 7 (https://aka.ms/install-powershell) and the Az module "
    "(Install-Module Az), then run Connect-AzAccount",
    "browser": "Use device-code instead",
    "device-code": "Pass a renderer, e.g. jupyter_amlflow.devicecode.TextDeviceCodeRenderer()",
}

FAILURE_HINTS: Mapping[str, str] = {
    "databricks-secrets": "Check the service principal's values in the secret scope: the client secret's value "
    "(not its id, and not expired), the client id and the tenant id",
    "synapse-keyvault": "Check the service principal's values in Key Vault: the client secret's value "
    "(not its id, and not expired), the client id and the tenant id",
    "synapse-token": "Check the linked service (--linked-service), or sign in another way: --key-vault VAULT "
    "for a service principal, or --auth device-code",
    "env": "Check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (the secret's value, not its id, and not expired) or the "
    "certificate, and AZURE_TENANT_ID; or unset them to skip env",
    "workload-identity": "Check the app's federated credential (issuer and subject) and AZURE_CLIENT_ID / "
    "AZURE_TENANT_ID",
    "managed-identity": "Check that this compute has a managed identity with access (and DEFAULT_IDENTITY_CLIENT_ID "
    "or AZURE_CLIENT_ID for a user-assigned one)",
    "cli": "Run az login again (az account show tells who is signed in)",
    "powershell": "Run Connect-AzAccount again",
    "browser": "Try again, or use device-code",
    "device-code": "Try again, or choose another method with --auth",
}


def failure_hint(method: str, exc: BaseException, ctx: Context) -> str:
    """What to do after ``method`` failed with ``exc``."""
    text = chain_text(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"Python does not trust the certificate of {ctx.cloud.authority_host}: point REQUESTS_CA_BUNDLE "
            "at a CA bundle that includes your network's root certificate"
        )
    if any(s in text for s in ("timed out", "Timeout", "ConnectionError", "Connection refused", "Failed to resolve")):
        return (
            f"Check that this machine can reach {ctx.cloud.authority_host} (a proxy needs HTTPS_PROXY), "
            "or allow more time (timeout=)"
        )
    if method == "cli" and ctx.tenant_id:
        return f"Run az login --tenant {ctx.tenant_id}"
    return FAILURE_HINTS[method]
