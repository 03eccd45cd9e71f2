"""Notebook-platform sign-in options: where a Databricks or Synapse notebook keeps what sign-in needs.

``--secret-scope``, ``--secret-keys``, ``--key-vault`` and ``--linked-service`` are checked here,
before any request. They hold names only (scope, vault, key and linked-service names), never a
secret's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..echo import quote_input
from ..errors import SignInError

__all__ = ["SECRET_NAMES", "PlatformOptions", "platform_options"]

# Names (never values) of the three secrets a service principal needs; also the default keys.
SECRET_NAMES = ("tenant-id", "client-id", "client-secret")
# Databricks scope and key names (letters, digits, "-", "_", "."; at most 128); Key Vault secret
# names (letters, digits, "-") are a subset.
_STORE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_KEYS_EXAMPLE = "For example: --secret-keys client-id=aml-app-id,client-secret=aml-app-secret"


@dataclass(frozen=True)
class PlatformOptions:
    """Where a Databricks or Synapse notebook keeps what sign-in needs: names, never values.

    Args:
        secret_scope: Databricks secret scope holding a service principal (``databricks-secrets``).
        key_vault: Key Vault holding one (``synapse-keyvault``): its name, or its URL where
            Synapse needs the full host name (national clouds).
        linked_service: Synapse linked service. With ``key_vault``, the Key Vault's (the
            workspace's identity then reads the secrets); without, the one whose identity
            ``getToken`` gives tokens of (``synapse-token``).
        tenant_key: Key (Key Vault: secret name) of the tenant id.
        client_id_key: Key of the application (client) id.
        client_secret_key: Key of the client secret.
    """

    secret_scope: str | None = None
    key_vault: str | None = None
    linked_service: str | None = None
    tenant_key: str = SECRET_NAMES[0]
    client_id_key: str = SECRET_NAMES[1]
    client_secret_key: str = SECRET_NAMES[2]

    @property
    def keys(self) -> dict[str, str]:
        """``{"tenant-id": key, "client-id": key, "client-secret": key}``."""
        return dict(zip(SECRET_NAMES, (self.tenant_key, self.client_id_key, self.client_secret_key), strict=True))


def platform_options(
    *,
    secret_scope: str | None = None,
    secret_keys: str | Mapping[str, str] | None = None,
    key_vault: str | None = None,
    linked_service: str | None = None,
) -> PlatformOptions:
    """Check and combine the notebook-platform sign-in options (``--secret-scope`` and friends).

    Args:
        secret_scope: Databricks secret scope.
        secret_keys: Other key names, as ``"client-id=app-id,client-secret=app-secret"`` or a
            mapping; the names are ``tenant-id``, ``client-id``, ``client-secret``.
        key_vault: Synapse: Key Vault name or URL.
        linked_service: Synapse linked service name.

    Raises:
        SignInError: A name is malformed, or ``secret_keys`` names an unknown secret.
    """
    keys = _secret_keys(secret_keys)
    return PlatformOptions(
        secret_scope=_store_name("--secret-scope", secret_scope) if secret_scope else None,
        key_vault=_free_name("--key-vault", key_vault, "Give the vault's name, or its URL in national clouds")
        if key_vault
        else None,
        linked_service=_free_name(
            "--linked-service", linked_service, "Give the name Synapse Studio shows under Manage > Linked services"
        )
        if linked_service
        else None,
        tenant_key=keys.get("tenant-id", SECRET_NAMES[0]),
        client_id_key=keys.get("client-id", SECRET_NAMES[1]),
        client_secret_key=keys.get("client-secret", SECRET_NAMES[2]),
    )


def _secret_keys(secret_keys: str | Mapping[str, str] | None) -> dict[str, str]:
    """``--secret-keys`` as ``{secret name: key}``, every name known and every key well formed."""
    pairs: list[tuple[str, str]] = []
    if isinstance(secret_keys, str):
        for item in filter(None, (part.strip() for part in secret_keys.split(","))):
            name, sep, key = item.partition("=")
            if not sep:
                raise SignInError(f"--secret-keys wants NAME=KEY pairs, got {quote_input(item)}", "", _KEYS_EXAMPLE)
            pairs.append((name.strip(), key.strip()))
    elif secret_keys is not None:
        pairs = [(str(name), str(key)) for name, key in secret_keys.items()]
    keys: dict[str, str] = {}
    for name, key in pairs:
        if name.lower() not in SECRET_NAMES:
            raise SignInError(
                f"Unknown secret {quote_input(name)} in --secret-keys",
                f"the names are {', '.join(SECRET_NAMES)}",
                _KEYS_EXAMPLE,
            )
        keys[name.lower()] = _store_name("key", key)
    return keys


def _store_name(what: str, value: str) -> str:
    value = value.strip()
    if not _STORE_NAME.fullmatch(value):
        raise SignInError(
            f"{what} {quote_input(value)} is not a secret scope or key name",
            "names have 1-128 letters, digits, '-', '_' or '.'",
            "Check the name: dbutils.secrets.listScopes() and dbutils.secrets.list(SCOPE) show them",
        )
    return value


def _free_name(what: str, value: str, fix: str) -> str:
    """A Key Vault or linked service name: any printable text without spaces at the ends."""
    value = value.strip()
    if not value or len(value) > 260 or not value.isprintable():
        raise SignInError(
            f"{what} {quote_input(value)} is not a name", "it must be printable text of at most 260 characters", fix
        )
    return value
