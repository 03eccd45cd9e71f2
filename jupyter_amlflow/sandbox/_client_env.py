"""What a client process needs to reach a sandbox, and what it must not bring from elsewhere.

``client_env`` points azure-identity, MSAL, the Azure management clients, the azureml-mlflow
plugin and mlflow at the sandbox cloud (its CA bundle, cloud metadata URL and cloud name, its
authority), with mlflow's telemetry off; each ``*_env`` function adds one way of signing in. The
values are ``Sandbox``'s (``sb.env``, ``sb.service_principal``, ...). ``FOREIGN_ENV`` names the
variables a process meant to talk to the sandbox alone must not inherit.
"""

from __future__ import annotations

from pathlib import Path

from ._model import Identity

__all__ = [
    "FOREIGN_ENV",
    "certificate_env",
    "client_env",
    "managed_identity_env",
    "msi_endpoint_env",
    "service_principal_env",
    "workload_identity_env",
]

#: Variables that would point a client process at a real Azure identity, cloud or platform, or
#: change its MLflow state: a process meant to talk to the sandbox alone must not inherit them.
FOREIGN_ENV = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_TOKEN",
    "AZUREML_CURRENT_CLOUD",
    "ARM_CLOUD_METADATA_URL",
    "DATABRICKS_RUNTIME_VERSION",
    "AZURE_SERVICE",
    "JUPYTERHUB_API_TOKEN",
    "CI_AZUREML",
)


def client_env(*, ca_bundle: str, metadata_url: str, cloud: str, authority_url: str, base_url: str) -> dict[str, str]:
    """What a client process needs to use the sandbox cloud (no credential in it)."""
    return {
        "REQUESTS_CA_BUNDLE": ca_bundle,
        "SSL_CERT_FILE": ca_bundle,
        "CURL_CA_BUNDLE": ca_bundle,
        "ARM_CLOUD_METADATA_URL": metadata_url,
        "AZUREML_CURRENT_CLOUD": cloud,
        "AZURE_AUTHORITY_HOST": authority_url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "AMLFLOW_SANDBOX_URL": base_url,
    }


def service_principal_env(tenant_id: str, sp: Identity) -> dict[str, str]:
    """``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET`` of a principal with a secret."""
    assert sp.client_id and sp.client_secret
    return {
        "AZURE_TENANT_ID": tenant_id,
        "AZURE_CLIENT_ID": sp.client_id,
        "AZURE_CLIENT_SECRET": sp.client_secret,
    }


def certificate_env(tenant_id: str, sp: Identity, *, pfx: bool) -> dict[str, str]:
    """Environment for a certificate principal: PEM, unencrypted, or (``pfx``) PKCS12 with a password."""
    assert sp.client_id and sp.certificate
    if not pfx:
        return {
            "AZURE_TENANT_ID": tenant_id,
            "AZURE_CLIENT_ID": sp.client_id,
            "AZURE_CLIENT_CERTIFICATE_PATH": str(sp.certificate.pem_path),
        }
    return {
        "AZURE_TENANT_ID": tenant_id,
        "AZURE_CLIENT_ID": sp.client_id,
        "AZURE_CLIENT_CERTIFICATE_PATH": str(sp.certificate.pfx_path),
        "AZURE_CLIENT_CERTIFICATE_PASSWORD": sp.certificate.pfx_password,
    }


def workload_identity_env(tenant_id: str, sp: Identity, token_file: Path, authority_url: str) -> dict[str, str]:
    """Environment for workload identity federation: the principal and its projected token file."""
    assert sp.client_id
    return {
        "AZURE_TENANT_ID": tenant_id,
        "AZURE_CLIENT_ID": sp.client_id,
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_AUTHORITY_HOST": authority_url,
    }


def managed_identity_env(base_url: str, secret: str) -> dict[str, str]:
    """App Service style identity endpoint (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``)."""
    return {"IDENTITY_ENDPOINT": f"{base_url}/msi/appservice", "IDENTITY_HEADER": secret}


def msi_endpoint_env(base_url: str, secret: str) -> dict[str, str]:
    """Azure ML compute style identity endpoint (``MSI_ENDPOINT`` with ``MSI_SECRET``)."""
    return {"MSI_ENDPOINT": f"{base_url}/msi/token", "MSI_SECRET": secret}
