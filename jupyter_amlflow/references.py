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
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from types import MappingProxyType
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from .errors import WorkspaceReferenceError
from .ids import is_guid, is_host_name, is_tenant

__all__ = [
    "WorkspaceRef",
    "find_config",
    "from_names",
    "load_config",
    "parse_reference",
    "quote_input",
]

PROVIDER = "Microsoft.MachineLearningServices"
ECHO_LIMIT = 60
PATH_LIMIT = 100
# A portal config.json is ~150 bytes; anything this big is some other file.
CONFIG_MAX_BYTES = 1_000_000
# MLClient.from_config (azure-ai-ml, azure/ai/ml/_ml_client.py) looks for these, in this order,
# each one from the start folder up through 20 parents
# (azure/ai/ml/_file_utils/file_utils.py::traverse_up_path_and_find_file, num_levels=20).
CONFIG_DIRS: tuple[str | None, ...] = (".azureml", "aml_config", None)
CONFIG_FILES: tuple[str, ...] = ("config.json", "project.json")
CONFIG_LEVELS = 20

ARM_ID_SHAPE = f"/subscriptions/<id>/resourceGroups/<group>/providers/{PROVIDER}/workspaces/<name>"
ARM_ID_FIX = f"A workspace resource id looks like {ARM_ID_SHAPE} (portal: the workspace's Properties > Resource ID)"
TRACKING_URI_FIX = (
    "Copy the MLflow tracking URI from the workspace's Overview page in Azure ML Studio, "
    "or give the workspace's resource id instead"
)
CONFIG_FIX = "Download config.json again from the workspace's Overview page in the Azure portal"
NAMES_FIX = (
    "Give all three: --subscription SUB --resource-group RG --workspace NAME "
    "(in Python: subscription=, resource_group=, workspace=)"
)
FORMS_FIX = (
    "Give the workspace's resource id (/subscriptions/.../workspaces/NAME), its azureml:// tracking URI, "
    "the path of its config.json, or --subscription/--resource-group/--workspace"
)

_TRACKING_PREFIX = re.compile(r"/mlflow/(v[^/]*)(/.*)?", re.IGNORECASE)
_TRACKING_VERSIONS = ("v1.0", "v2.0")


@dataclass(frozen=True)
class WorkspaceRef:
    """A checked workspace reference (names only; nothing has been looked up yet).

    Args:
        subscription_id: The subscription GUID, lower case.
        resource_group: The resource group name.
        workspace: The workspace name.
        tenant_id: The tenant, when the reference carried one (config.json, Studio link).
        host: The MLflow API host of an ``azureml://`` URI (private-link hosts keep theirs).
        source: Where the reference came from: ``"arguments"``, ``"ARM id"``, ``"tracking URI"``,
            ``"Azure ML Studio link"`` or ``"config.json (<path>)"``.
    """

    subscription_id: str
    resource_group: str
    workspace: str
    tenant_id: str | None = None
    host: str | None = None
    source: str = "arguments"

    @property
    def arm_id(self) -> str:
        """The workspace's resource id, in Resource Manager's canonical spelling."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.workspace}"
        )

    def __str__(self) -> str:
        return f"{self.workspace} ({self.resource_group}, {self.subscription_id})"


# -- echoing input safely -------------------------------------------------------------------------
_NAMED_ESCAPES = MappingProxyType({"\n": "\\n", "\r": "\\r", "\t": "\\t"})
# Categories that must never reach an error line verbatim: controls, formatting (bidi overrides,
# zero-width), surrogates, private use, unassigned, and the Unicode line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape_char(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote_input(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` in single quotes, safe to put in a one-line error.

    Control and formatting characters are escaped (``\\n``, ``\\x1b``, ``\\u202e``); text longer
    than ``limit`` characters (after escaping) is cut with ``…`` and its length is given.

    Args:
        text: What the person typed (or a file contained).
        limit: Most characters of it to show.

    Returns:
        E.g. ``'my-rg'`` or ``'aaaaaaaa…' (300 characters)``.
    """
    shown: list[str] = []
    used = 0
    for char in text:
        piece = _escape_char(char)
        if used + len(piece) > limit:
            return "'" + "".join(shown) + f"…' ({len(text)} characters)"
        shown.append(piece)
        used += len(piece)
    return "'" + "".join(shown) + "'"


def _path_text(path: Path | str, limit: int = PATH_LIMIT) -> str:
    """A path for an error line: escaped, and shortened from the left (the end says the most)."""
    escaped = "".join(_escape_char(c) for c in str(path))
    return escaped if len(escaped) <= limit else "…" + escaped[-(limit - 1) :]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _char_name(char: str) -> str:
    return f"{quote_input(char)} (U+{ord(char):04X})"


# -- names ----------------------------------------------------------------------------------------
def _resource_group_problem(name: str) -> str | None:
    """Why ``name`` is not a resource group name, or None.

    Resource Manager's rule (resource-name-rules, Microsoft.Resources/resourcegroups): 1-90
    characters; letters, digits, underscores, hyphens, periods and parentheses, where letters and
    digits are Unicode ones (the API's pattern is ``^[-\\w\\._\\(\\)]+$`` with .NET's ``\\w``:
    categories L*, Mn, Nd, Pc); it cannot end in a period.
    """
    if not name:
        return "it is empty"
    if len(name) > 90:
        return f"it has {_count(len(name), 'character')}; the limit is 90"
    for char in name:
        if char in "-_.()":
            continue
        category = unicodedata.category(char)
        if category.startswith("L") or category in ("Mn", "Nd", "Pc"):
            continue
        return f"it contains {_char_name(char)}; allowed are letters, digits, '_', '-', '.', '(' and ')'"
    if name.endswith("."):
        return "it ends with a period"
    return None


def _workspace_problem(name: str) -> str | None:
    """Why ``name`` is not a workspace name, or None.

    Azure ML's rule: 3-33 characters, ASCII letters, digits, hyphens and underscores, starting
    with a letter or digit (``^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$``).
    """
    if not name:
        return "it is empty"
    for char in name:
        if not (char.isascii() and (char.isalnum() or char in "-_")):
            return f"it contains {_char_name(char)}; allowed are letters, digits, '-' and '_'"
    if not name[0].isalnum():
        return f"it starts with {quote_input(name[0])}; it must start with a letter or digit"
    if not 3 <= len(name) <= 33:
        return f"it has {_count(len(name), 'character')}; it must have 3 to 33"
    return None


def _check_subscription(value: str, where: str) -> str:
    if not is_guid(value):
        raise WorkspaceReferenceError(
            f"Subscription id {quote_input(value)}{where} is not valid",
            "a subscription id is a GUID like 00000000-0000-0000-0000-000000000000",
            "Copy the Subscription ID from the workspace's Overview page in the Azure portal, "
            "or run %amlflow list workspaces",
        )
    return value.lower()


def _check_resource_group(value: str, where: str) -> str:
    if problem := _resource_group_problem(value):
        raise WorkspaceReferenceError(
            f"Resource group name {quote_input(value)}{where} is not valid",
            problem,
            "Copy the resource group name from the workspace's Overview page in the Azure portal",
        )
    return value


def _check_workspace(value: str, where: str) -> str:
    if problem := _workspace_problem(value):
        raise WorkspaceReferenceError(
            f"Workspace name {quote_input(value)}{where} is not valid",
            problem,
            "Copy the workspace name from Azure ML Studio or the portal, or run %amlflow list workspaces",
        )
    return value


def _check_tenant(value: str, where: str, fix: str) -> str:
    if not is_tenant(value):
        raise WorkspaceReferenceError(
            f"Tenant id {quote_input(value)}{where} is not valid",
            "a tenant id is a GUID or a domain such as contoso.onmicrosoft.com",
            fix,
        )
    return value.lower() if is_guid(value) else value


def _looks_like_reference(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered.startswith(("/subscriptions", "azureml://", "https://", "http://"))


def from_names(subscription_id: str | None, resource_group: str | None, workspace: str | None) -> WorkspaceRef:
    """A reference from the three names, each checked.

    Args:
        subscription_id: The subscription GUID.
        resource_group: The resource group name.
        workspace: The workspace name.

    Returns:
        The reference (``source="arguments"``).

    Raises:
        WorkspaceReferenceError: One is missing (all missing ones are named) or malformed.
    """
    given = {"subscription": subscription_id, "resource group": resource_group, "workspace name": workspace}
    values = {label: (value or "").strip() for label, value in given.items()}
    missing = [label for label, value in values.items() if not value]
    if missing:
        raise WorkspaceReferenceError(
            f"The workspace is not fully named: {_join(missing)} missing",
            "a workspace is identified by its subscription, resource group and name",
            NAMES_FIX,
        )
    for label, value in values.items():
        if _looks_like_reference(value):
            raise WorkspaceReferenceError(
                f"The {label} {quote_input(value)} is a whole workspace reference, not a name",
                "",
                "Pass it on its own: %amlflow connect <reference> (in Python: connect(reference))",
            )
    return WorkspaceRef(
        _check_subscription(values["subscription"], ""),
        _check_resource_group(values["resource group"], ""),
        _check_workspace(values["workspace name"], ""),
    )


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# -- ARM ids ----------------------------------------------------------------------------------------
def _split_arm_id(text: str, what: str, fix: str) -> list[str]:
    """The segments of an ARM id (leading ``/`` and one trailing ``/`` removed)."""

    def fail(why: str) -> WorkspaceReferenceError:
        return WorkspaceReferenceError(what, why, fix)

    if not text.startswith("/"):
        raise fail("it must start with /subscriptions/")
    body = text[1:-1] if text.endswith("/") and len(text) > 1 else text[1:]
    segments = body.split("/")
    if "" in segments:
        raise fail("it has an empty segment ('//')")
    return segments


def _workspace_from_segments(segments: list[str], what: str, fix: str, where: str) -> tuple[str, str, str]:
    """Subscription, resource group and workspace from ARM id segments, all checked."""

    def fail(why: str) -> WorkspaceReferenceError:
        return WorkspaceReferenceError(what, why, fix)

    # (segment index, expected name, what follows it) for the fixed names of the path.
    expected = (
        (0, "subscriptions", "the subscription id"),
        (2, "resourceGroups", "the resource group name"),
        (4, "providers", f"'{PROVIDER}'"),
        (6, "workspaces", "the workspace name"),
    )
    for index, name, follows in expected:
        if len(segments) <= index:
            raise fail(f"it ends after {quote_input(segments[index - 1])}; '/{name}/...' is missing")
        found = segments[index]
        if found.lower() != name.lower():
            if index == 6:
                kind = quote_input(found)
                if found.lower() == "registries":
                    raise fail(f"it names an Azure ML registry ({kind}); MLflow tracking needs a workspace")
                raise fail(f"it names resource type {kind}; expected 'workspaces'")
            before = f"after {quote_input(segments[index - 1])}" if index else "first"
            raise fail(f"expected '{name}' {before}, found {quote_input(found)}")
        if len(segments) <= index + 1:
            raise fail(f"it ends after '{name}'; {follows} is missing")
        if index == 4 and segments[5].lower() != PROVIDER.lower():
            raise fail(f"it names provider {quote_input(segments[5])}; a workspace is under {PROVIDER}")
    if len(segments) > 8:
        extra = "/" + "/".join(segments[8:])
        raise fail(f"it has extra segments after the workspace name: {quote_input(extra)}")
    return (
        _check_subscription(segments[1], where),
        _check_resource_group(segments[3], where),
        _check_workspace(segments[7], where),
    )


def _parse_arm_id(text: str, where: str = "") -> WorkspaceRef:
    what = f"Not a workspace resource id{where}: {quote_input(text)}"
    segments = _split_arm_id(text, what, ARM_ID_FIX)
    subscription, group, workspace = _workspace_from_segments(segments, what, ARM_ID_FIX, where)
    return WorkspaceRef(subscription, group, workspace, source="ARM id")


# -- tracking URIs and Studio links -----------------------------------------------------------------
def _check_host(netloc: str, what: str) -> str:
    """``HOST[:PORT]`` of an azureml:// URI, checked (the plugin sends calls to https://HOST)."""

    def fail(why: str) -> WorkspaceReferenceError:
        return WorkspaceReferenceError(what, why, TRACKING_URI_FIX)

    if not netloc:
        raise fail("it has no host")
    if "@" in netloc:
        raise fail("its host part contains '@'")
    host, _, port = netloc.partition(":")
    if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise fail(f"its port {quote_input(port)} is not a number from 1 to 65535")
    if not is_host_name(host):
        raise fail(f"its host {quote_input(host)} is not a valid host name")
    return netloc.lower()


def _split_url(text: str, what: str, fix: str) -> SplitResult:
    """``urlsplit``, whose ValueError (an unclosed '[' of an IPv6 host) becomes a reference error."""
    try:
        return urlsplit(text)
    except ValueError as exc:
        raise WorkspaceReferenceError(what, f"it is not a well-formed address ({exc})", fix) from None


def _parse_tracking_uri(text: str) -> WorkspaceRef:
    what = f"Not an Azure ML tracking URI: {quote_input(text)}"
    parts = _split_url(text, what, TRACKING_URI_FIX)
    host = _check_host(parts.netloc, what)
    path = parts.path
    match = _TRACKING_PREFIX.fullmatch(path)
    if match is None:
        raise WorkspaceReferenceError(what, "its path must start with /mlflow/v1.0/ or /mlflow/v2.0/", TRACKING_URI_FIX)
    version = match.group(1).lower()
    if version not in _TRACKING_VERSIONS:
        raise WorkspaceReferenceError(
            what,
            f"its API version {quote_input(match.group(1))} is not one Azure ML serves (v1.0 or v2.0)",
            TRACKING_URI_FIX,
        )
    # The path proper is the workspace's resource id; copied URIs may have it percent-encoded.
    rest = match.group(2) or ""
    if rest.strip("/") == "":
        raise WorkspaceReferenceError(
            what, f"it ends after /mlflow/{version}; the workspace part /subscriptions/... is missing", TRACKING_URI_FIX
        )
    segments = _split_arm_id(rest, what, TRACKING_URI_FIX)
    segments = [unquote(s) for s in segments]
    subscription, group, workspace = _workspace_from_segments(segments, what, TRACKING_URI_FIX, "")
    return WorkspaceRef(subscription, group, workspace, host=host, source="tracking URI")


def _parse_studio_link(text: str) -> WorkspaceRef:
    """A Studio URL with ``wsid`` (short ``/subscriptions/S/resourcegroups/R/workspaces/W`` or a full id)."""
    what = f"Not a workspace link: {quote_input(text)}"
    query = parse_qs(_split_url(text, what, FORMS_FIX).query)
    wsid = query.get("wsid", [""])[0].strip()
    if not wsid:
        raise WorkspaceReferenceError(
            what,
            "it is a web address without a wsid= workspace parameter",
            FORMS_FIX,
        )
    fix = "Copy the link again from Azure ML Studio, or give the workspace's resource id"
    segments = _split_arm_id(wsid, what, fix)
    if len(segments) >= 3 and segments[2].lower() == "resourcegroups" and len(segments) <= 6:
        # Studio's short form: /subscriptions/S/resourcegroups/R/workspaces/W
        segments = [*segments[:4], "providers", PROVIDER, *segments[4:]]
    subscription, group, workspace = _workspace_from_segments(segments, what, fix, "")
    tenant_values = query.get("tid", [])
    tenant = _check_tenant(tenant_values[0].strip(), " in the link", fix) if tenant_values else None
    return WorkspaceRef(subscription, group, workspace, tenant_id=tenant, source="Azure ML Studio link")


# -- config.json ------------------------------------------------------------------------------------
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
    shown = _path_text(path)
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
    tenant_id = _check_tenant(tenant, where, "Correct tenant_id or remove it") if tenant else None
    scope = config.get("Scope")
    if scope:
        if not isinstance(scope, str):
            raise _wrong_type(shown, "Scope", scope)
        ref = _parse_arm_id(scope.strip(), where)
        return WorkspaceRef(ref.subscription_id, ref.resource_group, ref.workspace, tenant_id=tenant_id, source=source)
    keys = ("subscription_id", "resource_group", "workspace_name")
    missing = [key for key in keys if key not in config]
    if missing:
        raise WorkspaceReferenceError(
            f"{shown} does not name a workspace",
            f"it has no {_join(missing)}",
            "A workspace config.json has subscription_id, resource_group and workspace_name; " + CONFIG_FIX,
        )
    values = {}
    for key in keys:
        value = config[key]
        if not isinstance(value, str):
            raise _wrong_type(shown, key, value)
        values[key] = value.strip()
    return WorkspaceRef(
        _check_subscription(values["subscription_id"], where),
        _check_resource_group(values["resource_group"], where),
        _check_workspace(values["workspace_name"], where),
        tenant_id=tenant_id,
        source=source,
    )


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


# -- the one entry point ------------------------------------------------------------------------------
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
        return _parse_tracking_uri(stripped)
    if lowered.startswith(("https://", "http://")):
        return _parse_studio_link(stripped)
    if lowered.startswith("/subscriptions/") or lowered == "/subscriptions":
        return _parse_arm_id(stripped)
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
    return _config_from_path(stripped, cwd)


def _config_from_path(text: str, cwd: Path | None) -> WorkspaceRef:
    # os.path.expanduser leaves "~unknown-user" as it is (Path.expanduser would raise).
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = (Path.cwd() if cwd is None else cwd) / path
    if os.path.isdir(path):
        found = find_config(path)
        if found is None:
            raise WorkspaceReferenceError(
                f"No config.json in {_path_text(path)} or its parents",
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
        f"No config file at {_path_text(path)}",
        "the path does not exist",
        "Check the path, or download config.json from the workspace's Overview page in the Azure portal",
    )
