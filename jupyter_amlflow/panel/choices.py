"""What the panel shows first: the remembered choice, ``%amlflow connect``'s options, the environment.

The last successful choice is remembered per user in ``~/.jupyter_amlflow/panel.json``, written
through ``userfiles`` (folder 0700, file 0600, never through a link): ids and names only, never a
secret, and nothing goes into the notebook. ``preselect`` merges it with what else is known; the
options ``%amlflow connect`` was given win, then the kernel's connection, then the remembered
choice, then the environment.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from ..auth import METHODS
from ..clouds import METADATA_URL_ENV, cloud_name_from_env
from ..connect_request import ConnectRequest
from ..platform import default_methods
from ..userfiles import read_private, state_dir, write_private

if TYPE_CHECKING:
    from ..connection import Session

log = logging.getLogger(__name__)

#: The sign-in method choice that means "the platform's default order".
AUTO = "auto"
METHOD_LABELS = {
    "databricks-secrets": "Service principal from a Databricks secret scope (needs --secret-scope)",
    "synapse-keyvault": "Service principal from Key Vault, in Synapse (needs --key-vault)",
    "synapse-token": "Synapse token library (the notebook's identity)",
    "env": "Service principal from the environment (env)",
    "workload-identity": "Workload identity (Kubernetes)",
    "managed-identity": "Managed identity",
    "cli": "Azure CLI (az login)",
    "powershell": "Azure PowerShell (Connect-AzAccount)",
    "browser": "Browser on this machine",
    "device-code": "Device code (any browser, any device)",
}


# -- remembered ---------------------------------------------------------------------------------
@dataclass
class Choices:
    """What the panel remembers between sessions: ids and names, never a secret."""

    cloud: str | None = None
    cloud_metadata_url: str | None = None
    method: str | None = None
    tenant: str | None = None
    subscription: str | None = None
    workspace: str | None = None  # ARM id
    experiment: str | None = None


def default_choices_path() -> Path:
    """``~/.jupyter_amlflow/panel.json``."""
    return state_dir() / "panel.json"


class ChoiceStore:
    """Reads and writes ``Choices`` as a small JSON file readable only by its owner.

    Args:
        path: The file (default ``~/.jupyter_amlflow/panel.json``, resolved on each use).
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        """Where the choices live."""
        return self._path if self._path is not None else default_choices_path()

    def load(self) -> Choices:
        """The remembered choices; empty ones when there are none, or the file is unreadable or unsafe."""
        try:
            text = read_private(self.path)
            if text is None:
                return Choices()
            data = json.loads(text)
        except (OSError, ValueError) as exc:  # a broken file (or a folder others can write) only loses the preselection
            log.info("Ignoring remembered panel choices in %s: %s", self.path, exc)
            return Choices()
        if not isinstance(data, dict):
            return Choices()
        known = {f.name for f in fields(Choices)}
        return Choices(**{k: v for k, v in data.items() if k in known and (v is None or isinstance(v, str))})

    def save(self, choices: Choices) -> None:
        """Write ``choices`` atomically (``userfiles.write_private``: folder 0700, file 0600, no links).

        Raises:
            OSError: Not written (``userfiles.UnsafeLocation`` says why the folder is refused).
        """
        write_private(self.path, json.dumps(asdict(choices), indent=1))


# -- shown first --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preselection:
    """The panel's first options and values.

    Attributes:
        cloud_urls: Every cloud offered, by name, with the metadata URL it came from (``None``
            for the session's own clouds).
        cloud: The cloud selected.
        cloud_url: What the Custom cloud box holds (``--cloud-metadata-url`` alone).
        tenant: The tenant to sign in to, if one was given or remembered.
        method_options: ``(label, value)`` pairs of the sign-in methods.
        method: The method selected (one of ``method_options``' values).
        experiment: The experiment name given.
    """

    cloud_urls: dict[str, str | None]
    cloud: str | None
    cloud_url: str
    tenant: str
    method_options: list[tuple[str, str]]
    method: str
    experiment: str


def preselect(session: Session, remembered: Choices, given: ConnectRequest) -> Preselection:
    """What to show first, from ``given`` (checked already), the connection, ``remembered`` and the environment."""
    env_cloud = cloud_name_from_env(session.env)
    cloud_urls: dict[str, str | None] = {}

    def offer(name: str | None, url: str | None) -> None:
        if name and name.lower() not in {n.lower() for n in cloud_urls}:
            cloud_urls[name] = url

    for name in session.catalog.names():
        offer(name, None)
    offer(env_cloud, session.env.get(METADATA_URL_ENV))
    offer(remembered.cloud, remembered.cloud_metadata_url)
    # Unknown yet: sign-in reads it from the metadata document (checked to exist and be https).
    offer(given.cloud, given.cloud_metadata_url or session.env.get(METADATA_URL_ENV))
    connected = session.connection
    cloud = _pick(
        list(cloud_urls),
        given.cloud,
        connected.cloud.name if connected else None,
        remembered.cloud,
        env_cloud or session.default_cloud or "AzureCloud",
    )

    auto = ", ".join(session.auth or default_methods(session.platform))
    method_options = [(f"Automatic ({auto})", AUTO), *((METHOD_LABELS.get(m, m), m) for m in METHODS)]
    if given.methods and len(given.methods) > 1:  # --auth a,b: that order, as one choice
        method_options.append((f"These, in order: {', '.join(given.methods)}", ",".join(given.methods)))
    method = ",".join(given.methods) if given.methods else remembered.method
    return Preselection(
        cloud_urls=cloud_urls,
        cloud=cloud,
        # --cloud-metadata-url alone: Add cloud reads it (which clouds it holds needs the network).
        cloud_url=given.cloud_metadata_url if given.cloud_metadata_url and not given.cloud else "",
        tenant=given.tenant or remembered.tenant or "",
        method_options=method_options,
        method=method if method in {v for _, v in method_options} else AUTO,
        experiment=given.experiment or "",
    )


def _pick(values: list[str], *preferred: str | None) -> str | None:
    """The first preferred value among ``values`` (any letter case), else the first value."""
    lowered = {v.lower(): v for v in values}
    for p in preferred:
        if p is not None and p.lower() in lowered:
            return lowered[p.lower()]
    return values[0] if values else None
