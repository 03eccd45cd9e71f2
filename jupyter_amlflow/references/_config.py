"""A workspace's ``config.json``: found the way ``MLClient.from_config`` finds it, and read.

The file is the one the portal downloads (``subscription_id``, ``resource_group``,
``workspace_name``, or a ``Scope`` resource id; optionally ``tenant_id``). Whatever is wrong with
it (too big, not UTF-8, not JSON, not an object, a missing key, a value of the wrong type or
shape) is said with the file's name and the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from itertools import product
from pathlib import Path

from ..echo import path_text, quote_input
from ..errors import WorkspaceReferenceError
from ._arm_id import parse_arm_id
from ._names import (
    NAMES_FIX,
    WorkspaceRef,
    check_resource_group,
    check_subscription,
    check_tenant,
    check_workspace,
    join,
)

__all__ = [
    "CONFIG_DIRS",
    "CONFIG_FILES",
    "CONFIG_FIX",
    "CONFIG_LEVELS",
    "CONFIG_MAX_BYTES",
    "config_from_path",
    "find_config",
    "load_config",
]

# A portal config.json is ~150 bytes; anything this big is some other file.
CONFIG_MAX_BYTES = 1_000_000
# MLClient.from_config (azure-ai-ml, azure/ai/ml/_ml_client.py) looks for these, in this order,
# each one from the start folder up through 20 parents
# (azure/ai/ml/_file_utils/file_utils.py::traverse_up_path_and_find_file, num_levels=20).
CONFIG_DIRS: tuple[str | None, ...] = (".azureml", "aml_config", None)
CONFIG_FILES: tuple[str, ...] = ("config.json", "project.json")
CONFIG_LEVELS = 20
CONFIG_FIX = "Download config.json again from the workspace's Overview page in the Azure portal"


def config_from_path(text: str, cwd: Path | None) -> WorkspaceRef:
    """The reference in a config file, or in the one found from a folder (relative paths from ``cwd``)."""
    # os.path.expanduser leaves "~unknown-user" as it is (Path.expanduser would raise).
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = (Path.cwd() if cwd is None else cwd) / path
    if os.path.isdir(path):
        found = find_config(path)
        if found is None:
            raise WorkspaceReferenceError(
                f"No config.json in {path_text(path)} or its parents",
                "",
                "Download config.json from the workspace's Overview page in the Azure portal into that folder, "
                "or give the workspace's resource id",
            )
        return load_config(found)
    if os.path.isfile(path):
        return load_config(path)
    if "/" not in text and "\\" not in text and not text.lower().endswith(".json"):
        # A bare word: most likely a workspace name given where a whole reference was expected.
        raise WorkspaceReferenceError(
            f"Not a workspace reference: {quote_input(text)}",
            "it is not a resource id, a tracking URI, or the path of a config.json",
            NAMES_FIX,
        )
    raise WorkspaceReferenceError(
        f"No config file at {path_text(path)}",
        "the path does not exist",
        "Check the path, or download config.json from the workspace's Overview page in the Azure portal",
    )


def find_config(start: Path | None = None) -> Path | None:
    """The config file ``MLClient.from_config`` would use, searching from ``start``.

    The order is azure-ai-ml's (``azure/ai/ml/_ml_client.py::from_config``): for each of
    ``.azureml/config.json``, ``.azureml/project.json``, ``aml_config/config.json``,
    ``aml_config/project.json``, ``config.json``, ``project.json`` in turn, ``start`` and up to 20
    parent folders are tried. So a ``.azureml/config.json`` in a parent wins over a plain
    ``config.json`` here, exactly as it does for azure-ai-ml.

    Args:
        start: The folder to start in (default: the current directory).

    Returns:
        The path found, or None.
    """
    origin = Path.cwd() if start is None else start
    for folder, name in product(CONFIG_DIRS, CONFIG_FILES):
        relative = Path(folder, name) if folder else Path(name)
        current = origin
        for _ in range(CONFIG_LEVELS + 1):
            candidate = current / relative
            # os.path.isfile, like azure-ai-ml: an unreadable folder counts as "not here".
            if os.path.isfile(candidate):
                return candidate
            # realpath, like azure-ai-ml, so ".." of a symlinked folder is its real parent.
            parent = current.resolve().parent
            if parent == current.resolve():
                break
            current = parent
    return None


def load_config(path: Path) -> WorkspaceRef:
    """A reference from a workspace config file (``config.json`` / ``project.json``).

    Accepts what ``MLClient.from_config`` accepts (``azure/ai/ml/_ml_client.py::_get_workspace_info``):
    ``subscription_id``, ``resource_group`` and ``workspace_name``, or ``Scope`` (the workspace's
    ARM id, which wins when present); plus an optional ``tenant_id``. Other keys are ignored.

    Args:
        path: The file.

    Returns:
        The reference (``source="config.json (<path>)"``, or the file's own name).

    Raises:
        WorkspaceReferenceError: The file is unreadable, not JSON, not an object, lacks keys, or
            holds malformed values; the message names the file and the key.
    """
    shown = path_text(path)
    text = _config_text(path, shown)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkspaceReferenceError(
            f"{shown} is not valid JSON", f"{exc.msg} at line {exc.lineno} column {exc.colno}", CONFIG_FIX
        ) from exc
    if not isinstance(config, dict):
        raise WorkspaceReferenceError(
            f"{shown} is not a workspace config file",
            f"it holds a JSON {_json_kind(config)}, not an object",
            CONFIG_FIX,
        )
    where = f" in {shown}"
    source = f"{path.name} ({path})"
    tenant = _optional_string(config, "tenant_id", shown)
    tenant_id = check_tenant(tenant, where, "Correct tenant_id or remove it") if tenant else None
    scope = config.get("Scope")
    if scope:
        if not isinstance(scope, str):
            raise _wrong_type(shown, "Scope", scope)
        ref = parse_arm_id(scope.strip(), where)
        return WorkspaceRef(ref.subscription_id, ref.resource_group, ref.workspace, tenant_id=tenant_id, source=source)
    keys = ("subscription_id", "resource_group", "workspace_name")
    missing = [key for key in keys if key not in config]
    if missing:
        raise WorkspaceReferenceError(
            f"{shown} does not name a workspace",
            f"it has no {join(missing)}",
            "A workspace config.json has subscription_id, resource_group and workspace_name; " + CONFIG_FIX,
        )
    values = {}
    for key in keys:
        value = config[key]
        if not isinstance(value, str):
            raise _wrong_type(shown, key, value)
        values[key] = value.strip()
    return WorkspaceRef(
        check_subscription(values["subscription_id"], where),
        check_resource_group(values["resource_group"], where),
        check_workspace(values["workspace_name"], where),
        tenant_id=tenant_id,
        source=source,
    )


def _config_text(path: Path, shown: str) -> str:
    try:
        size = path.stat().st_size
        if size > CONFIG_MAX_BYTES:
            raise WorkspaceReferenceError(
                f"{shown} is not a workspace config file",
                f"it has {size} bytes; a config.json has a few hundred",
                CONFIG_FIX,
            )
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkspaceReferenceError(
            f"{shown} is not a workspace config file", "it is not UTF-8 text", CONFIG_FIX
        ) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkspaceReferenceError(
            f"Cannot read {shown}", reason, "Check that the file exists and you may read it"
        ) from exc


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _wrong_type(shown: str, key: str, value: object) -> WorkspaceReferenceError:
    kind = _json_kind(value)
    found = "null" if kind == "null" else f"a {kind}"
    return WorkspaceReferenceError(
        f"{shown} is not a workspace config file", f"its {key} is {found}, not a string", CONFIG_FIX
    )


def _optional_string(config: Mapping[str, object], key: str, shown: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type(shown, key, value)
    return value.strip() or None
