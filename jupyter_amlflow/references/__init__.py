"""Workspace references: which Azure ML workspace the person means, checked before any network call.

A workspace can be named four ways, all resolved here without touching the network:

* an ARM resource id, ``/subscriptions/S/resourceGroups/R/providers/Microsoft.MachineLearningServices/workspaces/W``;
* an MLflow tracking URI, ``azureml://HOST/mlflow/v1.0|v2.0/subscriptions/.../workspaces/W[?...]``;
* an Azure ML Studio link carrying ``?wsid=...`` (what ``%amlflow status`` shows, pasted back);
* a ``config.json`` as the portal downloads it (a file, or a folder searched like
  azure-ai-ml's ``MLClient.from_config``);

or as three names (``from_names``). Every malformed part raises ``WorkspaceReferenceError`` saying
which part is wrong, why, and what to type instead. Error text is always one line: echoed input is
shortened and its control characters are escaped.

The package, one job a module (the public names are the ones below; the modules are private):
``_names`` (``WorkspaceRef``, the three names and the tenant, ``from_names``), ``_arm_id``
(resource ids), ``_links`` (tracking URIs, Studio links), ``_config`` (finding and reading
config.json); input is echoed in errors by ``jupyter_amlflow.echo``.
"""

from __future__ import annotations

from pathlib import Path

from ..echo import quote_input
from ..errors import WorkspaceReferenceError
from ._arm_id import parse_arm_id
from ._config import config_from_path, find_config, load_config
from ._links import FORMS_FIX, parse_studio_link, parse_tracking_uri
from ._names import PROVIDER, WorkspaceRef, from_names

__all__ = [
    "PROVIDER",
    "WorkspaceRef",
    "find_config",
    "from_names",
    "load_config",
    "parse_reference",
    "quote_input",
]


def parse_reference(text: str, *, cwd: Path | None = None) -> WorkspaceRef:
    """Whatever the person gave as "the workspace", checked.

    Args:
        text: An ARM resource id, an ``azureml://`` tracking URI, an Azure ML Studio link with
            ``wsid=``, or the path of a config file or of a folder to search for one.
        cwd: Folder that relative paths start from (default: the current directory).

    Returns:
        The reference.

    Raises:
        WorkspaceReferenceError: The text is none of those, or a part of it is malformed.
    """
    stripped = text.strip()
    if not stripped:
        raise WorkspaceReferenceError("No workspace given", "the reference is empty", FORMS_FIX)
    lowered = stripped.lower()
    if lowered.startswith("azureml://"):
        return parse_tracking_uri(stripped)
    if lowered.startswith(("https://", "http://")):
        return parse_studio_link(stripped)
    if lowered.startswith("/subscriptions/") or lowered == "/subscriptions":
        return parse_arm_id(stripped)
    if lowered.startswith("subscriptions/"):
        raise WorkspaceReferenceError(
            f"Not a workspace resource id: {quote_input(stripped)}",
            "a resource id starts with '/'",
            "Add the leading slash: /subscriptions/...",
        )
    if "://" in stripped:
        scheme = stripped.split("://", 1)[0]
        raise WorkspaceReferenceError(
            f"Not a workspace reference: {quote_input(stripped)}",
            f"{quote_input(scheme + '://')} is not a scheme jupyter_amlflow reads",
            FORMS_FIX,
        )
    return config_from_path(stripped, cwd)
