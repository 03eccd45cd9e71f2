"""Sign-in: a named chain of methods, device codes shown by the caller, tenants, a remembered login.

This is the only package that builds credentials; azure-identity is imported inside functions,
so ``import jupyter_amlflow.auth`` stays cheap. ``sign_in`` tries the methods in the order given:

=======================  ===========================================================  ==========================
method                   available when                                               credential
=======================  ===========================================================  ==========================
``databricks-secrets``   ``dbutils`` is in the notebook and a secret scope is named    ClientSecretCredential
                         (``--secret-scope``): its keys ``tenant-id``, ``client-id``,
                         ``client-secret`` (``dbutils.secrets.get``)
``synapse-keyvault``     ``mssparkutils`` / ``notebookutils`` is in the notebook and   ClientSecretCredential
                         a Key Vault is named (``--key-vault``): the same three
                         secrets (``mssparkutils.credentials.getSecret``)
``env``                  ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET`` or              ClientSecretCredential /
                         ``AZURE_CLIENT_CERTIFICATE_PATH`` (+ ``..._PASSWORD``),       CertificateCredential
                         and a tenant
``workload-identity``    ``AZURE_FEDERATED_TOKEN_FILE`` + ``AZURE_CLIENT_ID`` + tenant  WorkloadIdentityCredential
``managed-identity``     ``IDENTITY_ENDPOINT`` or ``MSI_ENDPOINT`` is set (the         ManagedIdentityCredential
                         metadata address 169.254.169.254 is never probed; the rule
                         is ``platform.identity_endpoint``)
``synapse-token``        ``mssparkutils`` / ``notebookutils`` is in the notebook:      TokenLibraryCredential
                         Synapse's token library (``getToken``), optionally for a
                         linked service (``--linked-service``)
``cli``                  ``az`` is on PATH and logged in                               AzureCliCredential
``powershell``           ``pwsh`` is on PATH with Az and ``Connect-AzAccount``         AzurePowerShellCredential
``browser``              the platform can open a browser                               InteractiveBrowserCredential
``device-code``          a renderer was given to show the code                         DeviceCodeCredential
=======================  ===========================================================  ==========================

"Unavailable" moves on to the next method; "failed" (a configured method that Entra ID or the
tool refused) stops, and the ``SignInError`` lists every attempt with its reason and what to do
next. Each candidate is verified by getting a Resource Manager token. Which methods are tried by
default depends on where the kernel runs (``platform.default_methods``).

Persistence (opt-in, ``persist=True``): browser and device-code sign-ins keep MSAL's token cache
(``TokenCachePersistenceOptions(name="jupyter_amlflow")``, encrypted by the platform's secret
store; a plain 0600 file only with ``allow_unencrypted_cache=True``) and the
``AuthenticationRecord`` in ``~/.jupyter_amlflow/auth-record-<cloud>.json``, so a fresh kernel
signs in silently. ``logout`` removes both.

Interruption and cancellation: ``sign_in`` may run in a worker thread that its caller abandons.
Pass ``cancel`` (a ``threading.Event``) and set it when giving up: from then on the sign-in sends
no further request (the device-code poll in progress is its last), shows no prompt, writes
nothing persistent, and ends with ``SignInError`` ("cancelled"). A ``KeyboardInterrupt`` in the
thread running ``sign_in`` propagates after the renderer is told "cancelled"; nothing is saved.
The saved sign-in is written only after the sign-in has completed and was not cancelled.

Notebook platforms: the Databricks and Synapse methods take ``dbutils`` / ``mssparkutils`` (or
``notebookutils``) from ``user_ns`` (the notebook's namespace; ``__main__``'s globals when None)
and where to look from ``PlatformOptions``. The secrets they read go into the credential and
nowhere else: no message, log record or display names a value, only scope, vault and key names.

The package, one job a module (its public names are the ones below; the modules are private):

``_chain``        ``sign_in``: the chain, ``Attempt``, ``SignIn``, the final error, ``check_tenant``
``_gate``         the cancel gate that stops an abandoned sign-in
``_context``      one sign-in's settings, and the three answers a method gives
``_methods``      ``METHODS`` and the non-interactive methods; ``parse_methods``
``_interactive``  ``browser`` and ``device-code``: the saved sign-in, then the person
``_prompt``       ``DeviceCodePrompt`` and the relay that feeds a renderer
``_hints``        what to do next, per method
``_stores``       Databricks secret scope, Key Vault via Synapse, Synapse's token library
``_options``      ``PlatformOptions``: which scope, vault, linked service and keys
``_credentials``  ``SwappableCredential`` and ``credential_for_tenant``
``_persistence``  the token cache, the saved account, ``logout``
``_claims``       ``Identity`` from a token's unverified claims
"""

from __future__ import annotations

from ..errors import SignInError
from ._chain import Attempt, SignIn, check_tenant, sign_in
from ._claims import Identity, describe_token_identity
from ._credentials import SwappableCredential, credential_for_tenant
from ._methods import METHODS, parse_methods
from ._options import SECRET_NAMES, PlatformOptions, platform_options
from ._persistence import CACHE_NAME, logout, record_path, token_cache_paths
from ._prompt import DeviceCodePrompt, DeviceCodeRenderer
from ._stores import TokenLibraryCredential

__all__ = [
    "CACHE_NAME",
    "METHODS",
    "SECRET_NAMES",
    "Attempt",
    "DeviceCodePrompt",
    "DeviceCodeRenderer",
    "Identity",
    "PlatformOptions",
    "SignIn",
    "SignInError",
    "SwappableCredential",
    "TokenLibraryCredential",
    "check_tenant",
    "credential_for_tenant",
    "describe_token_identity",
    "logout",
    "parse_methods",
    "platform_options",
    "record_path",
    "sign_in",
    "token_cache_paths",
]
