"""The sign-in methods: ``METHODS`` in the order platforms try them, and what each one does.

Each runner takes the sign-in's ``Context`` and returns a verified ``Success``, or raises
``Unavailable`` (not configured here) or ``Failed`` (configured and refused). ``browser`` and
``device-code`` live in ``_interactive`` (a person is involved); the others are here, in the
order of ``METHODS``, which is built at the bottom from ``RUNNERS`` (the one list of method
names). ``parse_methods`` is the one check of method names, for ``--auth``, ``auth=`` and
``sign_in(methods=)`` alike.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..echo import quote_input
from ..errors import SignInError
from ..ids import is_guid, is_tenant
from ..platform import identity_endpoint
from ._claims import describe_token_identity
from ._context import Context, Failed, Success, Unavailable, reason, verified
from ._hints import FAILURE_HINTS, UNAVAILABLE_HINTS
from ._interactive import browser, device_code
from ._stores import DatabricksScope, KeyVault, SecretStore, TokenLibraryCredential, holding, token_library

__all__ = ["METHODS", "RUNNERS", "parse_methods"]


def parse_methods(methods: str | Sequence[str] | None, *, example: str = "--auth env,device-code") -> list[str] | None:
    """Sign-in method names as given (``"env,device-code"`` or a list), checked and without repeats.

    Names are matched without case or surrounding space. None, or nothing but commas and space,
    gives None: "not given" (the platform's defaults apply).

    Raises:
        SignInError: A name is not one of ``METHODS``.
    """
    if methods is None:
        return None
    items = methods.split(",") if isinstance(methods, str) else list(methods)
    chosen: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in RUNNERS:
            raise SignInError(
                f"Unknown sign-in method {quote_input(raw.strip())}",
                f"the methods are {', '.join(METHODS)}",
                f"For example: {example}",
            )
        if name not in chosen:
            chosen.append(name)
    return chosen or None


# -- configured service principals ------------------------------------------------------------------
def _databricks_secrets(ctx: Context) -> Success:
    found = ctx.notebook_object("dbutils")
    if found is None:
        raise Unavailable(
            "dbutils is not in the notebook's namespace (not a Databricks notebook)",
            UNAVAILABLE_HINTS["databricks-secrets"],
        )
    if not ctx.options.secret_scope:
        raise Unavailable("no secret scope was given (--secret-scope)", UNAVAILABLE_HINTS["databricks-secrets"])
    return _service_principal_from(ctx, DatabricksScope(found[1], ctx.options.secret_scope))


def _synapse_keyvault(ctx: Context) -> Success:
    _, credentials = _synapse_credentials(ctx, "synapse-keyvault", "getSecret")
    if not ctx.options.key_vault:
        raise Unavailable("no Key Vault was given (--key-vault)", UNAVAILABLE_HINTS["synapse-keyvault"])
    store = KeyVault(credentials, ctx.options.key_vault, ctx.options.linked_service)
    return _service_principal_from(ctx, store)


def _synapse_credentials(ctx: Context, method: str, call: str) -> tuple[str, Any]:
    """The notebook's ``mssparkutils.credentials`` (its name, itself) if it has ``call``; else unavailable."""
    found = token_library(ctx)
    if found is None or not hasattr(found[1], call):
        raise Unavailable(
            "neither mssparkutils nor notebookutils is in the notebook's namespace (not a Synapse notebook)",
            UNAVAILABLE_HINTS[method],
        )
    return found


def _service_principal_from(ctx: Context, store: SecretStore) -> Success:
    """Read tenant, client id and secret from ``store``; verify them with Entra ID.

    Values are checked without being echoed: a secret pasted under the wrong key must not end up
    in an error message.
    """
    keys = ctx.options.keys

    def read(name: str) -> str:
        value = store.read(name, keys[name]).strip()
        if not value:
            raise Failed(
                f"{store.where}: {quote_input(keys[name])}{holding(name, keys[name])} is empty",
                f"Put the service principal's {name} there",
            )
        return value

    tenant = ctx.tenant_id or read("tenant-id")
    if not is_tenant(tenant):
        raise Failed(
            f"the tenant-id in {store.where} ({quote_input(keys['tenant-id'])}) is not a tenant id",
            "Put the directory (tenant) id there, a GUID",
        )
    client_id = read("client-id")
    if not is_guid(client_id):
        raise Failed(
            f"the client-id in {store.where} ({quote_input(keys['client-id'])}) is not an application id",
            "Put the application (client) id there, a GUID; the secret goes under client-secret",
        )
    secret = read("client-secret")
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(tenant, client_id, secret, **ctx.entra())
    return verified(ctx, credential, f"service principal from {store.where}")


def _env(ctx: Context) -> Success:
    env = ctx.env
    client_id = env.get("AZURE_CLIENT_ID") or ""
    secret = env.get("AZURE_CLIENT_SECRET") or ""
    certificate = env.get("AZURE_CLIENT_CERTIFICATE_PATH") or ""
    tenant = ctx.tenant_id or ""
    missing = [] if client_id else ["AZURE_CLIENT_ID"]
    if not (secret or certificate):
        missing.append("AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)")
    if not tenant:
        missing.append("AZURE_TENANT_ID")
    if missing:
        raise Unavailable(f"not set: {', '.join(missing)}", UNAVAILABLE_HINTS["env"])
    from azure.identity import CertificateCredential, ClientSecretCredential

    if secret:
        credential: Any = ClientSecretCredential(tenant, client_id, secret, **ctx.entra())
        return verified(ctx, credential, "client secret")
    try:
        credential = CertificateCredential(
            tenant,
            client_id,
            certificate,
            password=env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or None,
            send_certificate_chain=env.get("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "").lower() in ("1", "true"),
            **ctx.entra(),
        )
    except (OSError, ValueError) as exc:
        raise Failed(
            f"the certificate in AZURE_CLIENT_CERTIFICATE_PATH could not be loaded ({reason(exc)})",
            "Point AZURE_CLIENT_CERTIFICATE_PATH at a PEM or PKCS12 file with the private key "
            "(and set AZURE_CLIENT_CERTIFICATE_PASSWORD if it is encrypted)",
        ) from exc
    return verified(ctx, credential, "certificate")


# -- the machine's or the platform's own identity ------------------------------------------------------
def _workload_identity(ctx: Context) -> Success:
    env = ctx.env
    token_file = env.get("AZURE_FEDERATED_TOKEN_FILE")
    client_id = env.get("AZURE_CLIENT_ID")
    missing = [n for n, v in (("AZURE_FEDERATED_TOKEN_FILE", token_file), ("AZURE_CLIENT_ID", client_id)) if not v]
    if not ctx.tenant_id:
        missing.append("AZURE_TENANT_ID")
    if missing:
        raise Unavailable(f"not set: {', '.join(missing)}", UNAVAILABLE_HINTS["workload-identity"])
    from azure.identity import WorkloadIdentityCredential

    credential = WorkloadIdentityCredential(
        tenant_id=ctx.tenant_id, client_id=client_id, token_file_path=token_file, **ctx.entra()
    )
    return verified(ctx, credential, "federated token")


def _managed_identity(ctx: Context) -> Success:
    env = ctx.env
    endpoint = identity_endpoint(env)
    if endpoint is None:
        raise Unavailable(
            "no identity endpoint is configured here (IDENTITY_ENDPOINT with IDENTITY_HEADER, or MSI_ENDPOINT)",
            UNAVAILABLE_HINTS["managed-identity"],
        )
    # ManagedIdentityCredential reads os.environ itself; without an endpoint there it would probe
    # the metadata address 169.254.169.254, which this package never does.
    if identity_endpoint(os.environ) is None:
        raise Unavailable(
            "the identity endpoint is set in env= but not in this process's environment",
            "Set IDENTITY_ENDPOINT / MSI_ENDPOINT in os.environ",
        )
    # Azure ML compute names its user-assigned identity in DEFAULT_IDENTITY_CLIENT_ID; elsewhere
    # AZURE_CLIENT_ID selects one (as DefaultAzureCredential does). Cloud Shell takes no client id.
    cloud_shell = endpoint == "cloud-shell"
    client_id = None if cloud_shell else (env.get("DEFAULT_IDENTITY_CLIENT_ID") or env.get("AZURE_CLIENT_ID") or None)
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential(client_id=client_id, **ctx.network())
    return verified(ctx, credential, "managed identity")


def _synapse_token(ctx: Context) -> Success:
    name, credentials = _synapse_credentials(ctx, "synapse-token", "getToken")
    # With --key-vault the linked service is the vault's (synapse-keyvault), not an identity.
    linked = None if ctx.options.key_vault else ctx.options.linked_service
    credential = TokenLibraryCredential(credentials, ctx.cloud, linked)
    from azure.core.exceptions import ClientAuthenticationError

    try:
        ctx.gate.check()
        info = credential.get_token_info(ctx.cloud.arm_scope)
    except ClientAuthenticationError as exc:
        raise Failed(reason(exc), FAILURE_HINTS["synapse-token"]) from exc
    identity = describe_token_identity(info.token)
    wanted = ctx.tenant_id
    if wanted and is_guid(wanted) and identity.tenant_id and identity.tenant_id.lower() != wanted.lower():
        raise Failed(
            f"the token library signs in to tenant {identity.tenant_id}, not {wanted}",
            "Use a linked service of that tenant (--linked-service) or a service principal (--key-vault)",
        )
    via = f"{name}.credentials.getToken" + (f", linked service {quote_input(linked)}" if linked else "")
    return Success(credential, identity, f"signed in as {identity.name} ({via})")


# -- developer tools ----------------------------------------------------------------------------------
def _cli(ctx: Context) -> Success:
    if shutil.which("az", path=ctx.env.get("PATH")) is None:
        raise Unavailable("the Azure CLI (az) is not installed or not on PATH", UNAVAILABLE_HINTS["cli"])
    from azure.identity import AzureCliCredential

    credential = AzureCliCredential(
        tenant_id=ctx.tenant_id or "", additionally_allowed_tenants=["*"], process_timeout=max(1, int(ctx.timeout))
    )
    return verified(ctx, credential, "Azure CLI")


def _powershell(ctx: Context) -> Success:
    names = ("pwsh", "powershell") if sys.platform.startswith("win") else ("pwsh",)
    if all(shutil.which(n, path=ctx.env.get("PATH")) is None for n in names):
        raise Unavailable("PowerShell (pwsh) is not installed or not on PATH", UNAVAILABLE_HINTS["powershell"])
    from azure.identity import AzurePowerShellCredential

    credential = AzurePowerShellCredential(
        tenant_id=ctx.tenant_id or "", additionally_allowed_tenants=["*"], process_timeout=max(1, int(ctx.timeout))
    )
    return verified(ctx, credential, "Azure PowerShell")


# -- the one list of method names ---------------------------------------------------------------------
# In the order platforms try them: configured service principals, the machine's or platform's
# own identity, developer tools, then a person (see platform.default_methods).
RUNNERS: Mapping[str, Callable[[Context], Success]] = {
    "databricks-secrets": _databricks_secrets,
    "synapse-keyvault": _synapse_keyvault,
    "env": _env,
    "workload-identity": _workload_identity,
    "managed-identity": _managed_identity,
    "synapse-token": _synapse_token,
    "cli": _cli,
    "powershell": _powershell,
    "browser": browser,
    "device-code": device_code,
}
METHODS: tuple[str, ...] = tuple(RUNNERS)
