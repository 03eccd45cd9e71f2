"""Stand-ins for Databricks' ``dbutils`` and Synapse's ``mssparkutils``, for notebooks run in tests.

They follow the platforms' documented Python APIs, and fail the way those platforms fail:

* ``FakeDbutils().secrets``: ``get(scope, key)``, ``getBytes``, ``list(scope)`` (``SecretMetadata``
  with ``.key``), ``listScopes()`` (Databricks docs, "Secrets utility (dbutils.secrets)"; the
  namedtuples of databricks-sdk's ``dbutils``). Errors arrive as dbruntime raises py4j errors, a
  Python exception carrying the Java one's text (dbruntime ``prettify_exception_message``): a
  missing key or scope "java.lang.IllegalArgumentException: Secret does not exist with scope: S
  and key: K" / "RESOURCE_DOES_NOT_EXIST: Scope S does not exist!", a scope without READ
  "PERMISSION_DENIED: User U does not have READ permission on scope S to perform this action."
  (Secrets API, GET /api/2.0/secrets/get: RESOURCE_DOES_NOT_EXIST, PERMISSION_DENIED).
  ``widgets``: ``text(name, defaultValue, label)``, ``get(name)``, backed by the job's parameters.
* ``FakeMssparkutils().credentials``: ``getToken(audience, name="")``, ``getSecret(akvName, secret,
  linkedService=None)``, ``isValidToken(token)`` (Synapse docs, "Introduction to Microsoft Spark
  Utilities", credentials; "Secure credentials with linked services using the mssparkutils").
  Errors are ``Py4JJavaError`` s ("An error occurred while calling z:mssparkutils.credentials.X.
  : <Java exception>: <message>"), Key Vault's own messages included.

Tokens are real: ``getToken`` asks the sandbox, as the workspace's managed identity (its identity
endpoint) or, for a linked service, as that linked service's service principal. Nothing here
prints or logs a secret or token; the call log (``log``) has API and names only.

The platform's state (secret scopes, vaults, linked services, the identity endpoint's header)
comes from a JSON file the test writes outside the notebook's folder and HOME, as the platform
keeps it outside the notebook: ``FakeDbutils.load(path)``, ``FakeMssparkutils.load(path)``.
"""

from __future__ import annotations

import json
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import requests


class ExecutionError(Exception):
    """What Databricks' dbruntime raises for an error on the JVM side (a Py4JJavaError's text)."""


class Py4JJavaError(Exception):
    """What a py4j call into Synapse's token library raises."""


class SecretMetadata(namedtuple("SecretMetadata", ["key"])):
    """A key in a secret scope (no value)."""


class SecretScope(namedtuple("SecretScope", ["name"])):
    """A secret scope."""

    def getName(self) -> str:
        return self.name


def _log(path: str | None, **entry: Any) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**entry, "time": time.time()}) + "\n")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The calls a stand-in logged, oldest first."""
    file = Path(path)
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


# -- Databricks ------------------------------------------------------------------------------------
class _SecretsUtil:
    def __init__(self, scopes: dict[str, dict[str, str]], denied: list[str], user: str, log: str | None) -> None:
        self._scopes = scopes
        self._denied = set(denied)
        self._user = user
        self._log = log
        self._calls = 0

    def _java(self, method: str, error: str) -> ExecutionError:
        self._calls += 1
        return ExecutionError(
            f"An error occurred while calling o{400 + self._calls}.{method}.\n: {error}\n"
            "\tat com.databricks.dbutils_v1.impl.SecretUtilsImpl.getBytesInternal(SecretUtilsImpl.scala:52)\n"
            "\tat com.databricks.dbutils_v1.impl.SecretUtilsImpl.get(SecretUtilsImpl.scala:61)"
        )

    def _check_scope(self, method: str, scope: str) -> dict[str, str]:
        if scope in self._denied:
            raise self._java(
                method,
                "com.databricks.common.client.DatabricksServiceHttpClientException: PERMISSION_DENIED: "
                f"User {self._user} does not have READ permission on scope {scope} to perform this action.",
            )
        if scope not in self._scopes:
            raise self._java(
                method,
                "com.databricks.common.client.DatabricksServiceHttpClientException: RESOURCE_DOES_NOT_EXIST: "
                f"Scope {scope} does not exist!",
            )
        return self._scopes[scope]

    def get(self, scope: str, key: str) -> str:
        _log(self._log, api="dbutils.secrets.get", scope=scope, key=key)
        secrets = self._check_scope("get", scope)
        if key not in secrets:
            raise self._java(
                "get", f"java.lang.IllegalArgumentException: Secret does not exist with scope: {scope} and key: {key}"
            )
        return secrets[key]

    def getBytes(self, scope: str, key: str) -> bytes:
        return self.get(scope, key).encode()

    def list(self, scope: str) -> list[SecretMetadata]:
        _log(self._log, api="dbutils.secrets.list", scope=scope)
        return [SecretMetadata(key) for key in self._check_scope("list", scope)]

    def listScopes(self) -> list[SecretScope]:
        return [SecretScope(name) for name in self._scopes if name not in self._denied]

    def __repr__(self) -> str:
        return "Package 'dbutils.secrets'. For more information, type 'dbutils.secrets.help()' in a cell."


class _WidgetsUtil:
    def __init__(self, parameters: dict[str, str]) -> None:
        self._parameters = dict(parameters)
        self._defined: dict[str, str] = {}

    def text(self, name: str, defaultValue: str, label: str | None = None) -> None:
        self._defined[name] = self._parameters.get(name, defaultValue)

    def get(self, name: str) -> str:
        if name not in self._defined and name not in self._parameters:
            raise ExecutionError(
                f"com.databricks.dbutils_v1.InputWidgetNotDefined: No input widget named {name} is defined"
            )
        return self._defined.get(name, self._parameters.get(name, ""))


class _Option:
    """A Scala ``Option`` as py4j hands it over."""

    def __init__(self, value: Any = None) -> None:
        self._value = value

    def isDefined(self) -> bool:
        return self._value is not None

    def get(self) -> Any:
        return self._value


class _NotebookContext:
    def apiToken(self) -> _Option:
        return _Option()

    def apiUrl(self) -> _Option:
        return _Option()


class _EntryPoint:
    """The py4j entry point mlflow reads when imported on a cluster (mlflow/utils/databricks_utils.py:
    ``_init_databricks_dynamic_token_config_provider(dbutils.entry_point)``). This cluster has no
    Databricks API token for the notebook: the Databricks tracking server is not used here."""

    def getDbutils(self) -> Any:
        return self

    def notebook(self) -> Any:
        return self

    def getContext(self) -> _NotebookContext:
        return _NotebookContext()


class FakeDbutils:
    """``dbutils`` with ``secrets``, ``widgets`` and the ``entry_point`` mlflow touches.

    Args:
        scopes: Secret scopes: ``{scope: {key: value}}``.
        denied: Scopes this user may not read (PERMISSION_DENIED).
        parameters: The job's parameters, which ``widgets.get`` answers.
        user: The user's name, as errors show it.
        log: A file to append the calls to (API and names, never values).
    """

    def __init__(
        self,
        scopes: dict[str, dict[str, str]],
        *,
        denied: list[str] | None = None,
        parameters: dict[str, str] | None = None,
        user: str = "alice@sandbox.onmicrosoft.test",
        log: str | None = None,
    ) -> None:
        self.secrets = _SecretsUtil(scopes, denied or [], user, log)
        self.widgets = _WidgetsUtil(parameters or {})
        self.entry_point = _EntryPoint()

    @classmethod
    def load(cls, path: str | Path) -> FakeDbutils:
        """A stand-in from the JSON file a test wrote (the keyword arguments)."""
        return cls(**json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        return "Package 'dbutils'. For more information, type 'dbutils.help()' in a cell."


# -- Synapse ---------------------------------------------------------------------------------------
class _Credentials:
    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._session = requests.Session()
        self._session.verify = config["ca_bundle"]
        self._stale: dict[tuple[str, str], str] = {}

    def _error(self, method: str, java: str) -> Py4JJavaError:
        return Py4JJavaError(
            f"An error occurred while calling z:mssparkutils.credentials.{method}.\n: {java}\n"
            "\tat com.microsoft.azure.synapse.tokenlibrary.TokenLibrary$.getAccessToken(TokenLibrary.scala:120)"
        )

    def getToken(self, audience: str, name: str = "") -> str:
        _log(self._config.get("log"), api="mssparkutils.credentials.getToken", audience=audience, name=name)
        resource = self._config["audiences"].get(audience)
        if resource is None:
            raise self._error(
                "getToken",
                "com.microsoft.azure.synapse.tokenlibrary.TokenLibraryException: [BadRequest] "
                f"Audience {audience} is not a recognized alias",
            )
        if (audience, name) in self._stale:
            return self._stale[(audience, name)]
        if name:
            token = self._linked_service_token("getToken", name, resource)
        else:
            token = self._workspace_identity_token(resource)
        if self._config.get("stale_tokens"):
            # A library that keeps handing out the token it cached, past its expiry.
            self._stale[(audience, name)] = token
        return token

    def _workspace_identity_token(self, resource: str) -> str:
        identity = self._config["identity"]
        response = self._session.get(
            identity["endpoint"],
            params={"resource": resource, "api-version": "2019-08-01", "client_id": identity["client_id"]},
            headers={"X-IDENTITY-HEADER": identity["header"]},
            timeout=30,
        )
        if response.status_code != 200:
            raise self._error(
                "getToken",
                "com.microsoft.azure.synapse.tokenlibrary.TokenLibraryException: "
                f"Failed to get a token for the workspace identity (status {response.status_code})",
            )
        return str(response.json()["access_token"])

    def _linked_service_token(self, method: str, name: str, resource: str) -> str:
        service = self._config.get("linked_services", {}).get(name)
        if service is None:
            raise self._error(
                method,
                f"com.microsoft.azure.synapse.tokenlibrary.TokenLibraryException: [NotFound] Linked service {name} "
                "not found",
            )
        response = self._session.post(
            f"{self._config['authority']}/{service['tenant']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": service["client_id"],
                "client_secret": service["client_secret"],
                "scope": resource.rstrip("/") + "/.default",
            },
            timeout=30,
        )
        if response.status_code != 200:
            error = response.json().get("error", "error")
            raise self._error(
                method,
                "com.microsoft.azure.synapse.tokenlibrary.TokenLibraryException: "
                f"[Unauthorized] Linked service {name} could not get a token ({error})",
            )
        return str(response.json()["access_token"])

    def getSecret(self, akvName: str, secret: str, linkedService: str | None = None) -> str:
        _log(
            self._config.get("log"),
            api="mssparkutils.credentials.getSecret",
            vault=akvName,
            secret=secret,
            linked_service=linkedService,
        )
        vault = self._config.get("vaults", {}).get(akvName)
        if linkedService and linkedService not in self._config.get("linked_services", {}):
            raise self._error(
                "getSecret",
                f"com.microsoft.azure.synapse.tokenlibrary.TokenLibraryException: [NotFound] Linked service "
                f"{linkedService} not found",
            )
        if vault is None:
            raise self._error(
                "getSecret", f"java.net.UnknownHostException: {akvName}.vault.azure.net: Name or service not known"
            )
        reader = linkedService or "user"
        if reader not in vault.get("readers", []):
            who = (
                f"appid={self._config['linked_services'][linkedService]['client_id']};"
                if linkedService
                else "upn=alice@sandbox.onmicrosoft.test;"
            )
            raise self._error(
                "getSecret",
                "com.microsoft.azure.synapse.tokenlibrary.TokenLibraryException: Forbidden (403): "
                f"The user, group or application '{who}' does not have secrets get permission on key vault "
                f"'{akvName};location=eastus'. For help resolving this issue, please see "
                "https://go.microsoft.com/fwlink/?linkid=2125287",
            )
        if secret not in vault["secrets"]:
            raise self._error(
                "getSecret",
                "com.microsoft.azure.synapse.tokenlibrary.TokenLibraryException: SecretNotFound: A secret with "
                f"(name/id) {secret} was not found in this key vault. If you recently deleted this secret you may "
                "be able to recover it using the correct recovery command. For help resolving this issue, please "
                "see https://go.microsoft.com/fwlink/?linkid=2125182",
            )
        return str(vault["secrets"][secret])

    def isValidToken(self, token: str) -> bool:
        import jwt

        claims = jwt.decode(token, options={"verify_signature": False})
        return float(claims.get("exp", 0)) > time.time()

    def help(self) -> None:
        print("getToken(audience, name): returns AAD token for a given audience, name (optional)")


class FakeMssparkutils:
    """``mssparkutils`` with ``credentials``.

    The JSON config has ``ca_bundle``, ``authority`` (the sandbox), ``audiences`` (key -> resource),
    ``identity`` (the workspace identity: ``endpoint``, ``header``, ``client_id``),
    ``linked_services`` (name -> ``tenant``, ``client_id``, ``client_secret``), ``vaults`` (name
    -> ``secrets`` and ``readers``: ``"user"`` and linked service names), ``stale_tokens`` and
    ``log``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.credentials = _Credentials(config)

    @classmethod
    def load(cls, path: str | Path) -> FakeMssparkutils:
        """A stand-in from the JSON file a test wrote."""
        return cls(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        return "<module 'notebookutils.mssparkutils'>"
