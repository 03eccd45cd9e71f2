"""Azure clouds: where to sign in, where Resource Manager is, and where Studio shows a run.

The three public clouds are built in. Others (Azure Stack, air-gapped clouds, the sandbox) come
from a Resource Manager ``/metadata/endpoints`` document; ``arm.fetch_cloud_metadata`` fetches
it and ``clouds_from_metadata`` here turns it into ``Cloud`` objects. A ``CloudCatalog`` holds the
clouds one session knows.

Built-in values are those of azure-identity (``AzureAuthorityHosts``), the azureml-mlflow plugin
(``azureml/mlflow/_common/_cloud/cloud.py``) and azure-ai-ml (``azure/ai/ml/_azure_environments.py``,
which also gives the Studio hosts ml.azure.com / ml.azure.cn / ml.azure.us).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import quote, urlsplit

from .errors import CloudError
from .references import quote_input

__all__ = [
    "BUILTIN_CLOUDS",
    "CLOUD_ENV",
    "METADATA_URL_ENV",
    "Cloud",
    "CloudCatalog",
    "cloud_name_from_env",
    "clouds_from_metadata",
]

CLOUD_ENV = "AZUREML_CURRENT_CLOUD"
METADATA_URL_ENV = "ARM_CLOUD_METADATA_URL"

# Entra ID hosts for which MSAL may run instance discovery (msal/authority.py,
# WELL_KNOWN_AUTHORITY_HOSTS). Any other authority needs disable_instance_discovery=True, or MSAL
# asks login.microsoftonline.com about it and fails.
PUBLIC_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }
)

CUSTOM_CLOUD_FIX = (
    "add a custom cloud from its Resource Manager metadata document: --cloud NAME --cloud-metadata-url URL "
    "(in Python: cloud=, cloud_metadata_url=), or set ARM_CLOUD_METADATA_URL"
)
# Builds the error for one malformed field of a metadata document.
_Fail = Callable[[str], CloudError]

METADATA_FIX = (
    "Check the URL: it must be Resource Manager's /metadata/endpoints?api-version=2019-05-01 document "
    "(ARM_CLOUD_METADATA_URL)"
)


@dataclass(frozen=True)
class Cloud:
    """One Azure cloud's endpoints.

    Args:
        name: Canonical spelling, e.g. ``"AzureCloud"`` (also the key in azureml-mlflow's table).
        authority: Entra ID login endpoint, no trailing slash.
        resource_manager: Resource Manager endpoint, with trailing slash.
        storage_suffix: Storage DNS suffix, e.g. ``"core.windows.net"``.
        portal: The Azure portal, no trailing slash (None when unknown).
        studio: Azure ML Studio, no trailing slash (None when the cloud has no Studio).
        metadata_url: The metadata document a custom cloud came from.
        custom: True when read from a metadata document rather than built in.
        device_login_hosts: The hosts of the device-code sign-in page (``verification_uri``) that
            may be shown as a link; empty for a custom cloud (any https host then).
    """

    name: str
    authority: str
    resource_manager: str
    storage_suffix: str
    portal: str | None
    studio: str | None
    metadata_url: str | None = None
    custom: bool = False
    device_login_hosts: tuple[str, ...] = ()

    @property
    def origin(self) -> str:
        """Where this cloud's endpoints come from, as ``status`` and ``clouds`` show it."""
        if not self.custom:
            return "built in"
        return f"custom, from {self.metadata_url}" if self.metadata_url else "custom"

    def same_endpoints(self, other: Cloud) -> bool:
        """Whether ``other`` sends sign-ins, tokens, data and links to the same places."""

        def key(c: Cloud) -> tuple[str, ...]:
            return (
                c.authority.rstrip("/").lower(),
                c.resource_manager.rstrip("/").lower(),
                c.storage_suffix.lstrip(".").lower(),
                (c.portal or "").rstrip("/").lower(),
                (c.studio or "").rstrip("/").lower(),
            )

        return key(self) == key(other)

    @property
    def arm_scope(self) -> str:
        """The token scope for Resource Manager and the Azure ML MLflow API (as the plugin asks)."""
        return self.resource_manager.rstrip("/") + "/.default"

    @property
    def authority_host(self) -> str:
        """``https://HOST[:PORT]`` of the authority, for azure-identity's ``authority=``.

        The scheme and port are kept: azure-identity accepts a full URL, and custom clouds (the
        sandbox) listen on a port.
        """
        parts = urlsplit(self.authority)
        return f"{parts.scheme or 'https'}://{parts.netloc or parts.path}".rstrip("/")

    @property
    def is_public_authority(self) -> bool:
        """True for Microsoft's own Entra ID hosts, where MSAL instance discovery is allowed."""
        parts = urlsplit(self.authority)
        return (
            parts.scheme == "https" and (parts.hostname or "") in PUBLIC_AUTHORITY_HOSTS and parts.port in (None, 443)
        )

    def studio_workspace_url(
        self, subscription_id: str, resource_group: str, workspace: str, tenant_id: str | None
    ) -> str | None:
        """The workspace's home page in Azure ML Studio (None without Studio)."""
        return self._studio_url("", subscription_id, resource_group, workspace, tenant_id)

    def studio_experiment_url(
        self,
        experiment_id: str,
        subscription_id: str,
        resource_group: str,
        workspace: str,
        tenant_id: str | None,
    ) -> str | None:
        """An experiment's page in Azure ML Studio (``/experiments/id/<id>``; None without Studio)."""
        path = f"experiments/id/{quote(experiment_id, safe='')}"
        return self._studio_url(path, subscription_id, resource_group, workspace, tenant_id)

    def studio_run_url(
        self,
        run_id: str,
        subscription_id: str,
        resource_group: str,
        workspace: str,
        tenant_id: str | None,
    ) -> str | None:
        """A run's page in Azure ML Studio (None without Studio).

        ``https://ml.azure.com/runs/<run_id>?wsid=/subscriptions/<s>/resourcegroups/<rg>/workspaces/<w>&tid=<t>``;
        every part is URL-quoted.
        """
        return self._studio_url(f"runs/{quote(run_id, safe='')}", subscription_id, resource_group, workspace, tenant_id)

    def _studio_url(
        self, path: str, subscription_id: str, resource_group: str, workspace: str, tenant_id: str | None
    ) -> str | None:
        if not self.studio:
            return None
        wsid = (
            f"/subscriptions/{quote(subscription_id, safe='')}/resourcegroups/{quote(resource_group, safe='')}"
            f"/workspaces/{quote(workspace, safe='')}"
        )
        tid = f"&tid={quote(tenant_id, safe='')}" if tenant_id else ""
        return f"{self.studio.rstrip('/')}/{path}?wsid={wsid}{tid}"


# Device-code pages: Entra ID answers https://microsoft.com/devicelogin (public cloud),
# .../deviceloginchina and .../deviceloginus (MSAL's device-code tests and Azure CLI output show
# them); the v1 endpoint answers its own login host (.../common/oauth2/deviceauth), and
# login.microsoft.com/device is the newer form of the public page.
_MICROSOFT = ("microsoft.com", "www.microsoft.com")

AZURE_PUBLIC_CLOUD = Cloud(
    name="AzureCloud",
    authority="https://login.microsoftonline.com",
    resource_manager="https://management.azure.com/",
    storage_suffix="core.windows.net",
    portal="https://portal.azure.com",
    studio="https://ml.azure.com",
    device_login_hosts=(*_MICROSOFT, "login.microsoftonline.com", "login.microsoft.com"),
)
AZURE_CHINA_CLOUD = Cloud(
    name="AzureChinaCloud",
    authority="https://login.chinacloudapi.cn",
    resource_manager="https://management.chinacloudapi.cn/",
    storage_suffix="core.chinacloudapi.cn",
    portal="https://portal.azure.cn",
    studio="https://ml.azure.cn",
    device_login_hosts=(*_MICROSOFT, "login.chinacloudapi.cn", "login.partner.microsoftonline.cn"),
)
AZURE_US_GOVERNMENT = Cloud(
    name="AzureUSGovernment",
    authority="https://login.microsoftonline.us",
    resource_manager="https://management.usgovcloudapi.net/",
    storage_suffix="core.usgovcloudapi.net",
    portal="https://portal.azure.us",
    studio="https://ml.azure.us",
    device_login_hosts=(*_MICROSOFT, "login.microsoftonline.us"),
)
BUILTIN_CLOUDS: tuple[Cloud, ...] = (AZURE_PUBLIC_CLOUD, AZURE_CHINA_CLOUD, AZURE_US_GOVERNMENT)

# Names people try for the built-in clouds; used only to suggest the right one.
_ALIASES = MappingProxyType(
    {
        "public": "AzureCloud",
        "global": "AzureCloud",
        "azure": "AzureCloud",
        "china": "AzureChinaCloud",
        "azurechina": "AzureChinaCloud",
        "usgov": "AzureUSGovernment",
        "usgovernment": "AzureUSGovernment",
        "government": "AzureUSGovernment",
        "azureusgov": "AzureUSGovernment",
    }
)


# -- metadata documents ---------------------------------------------------------------------------
def clouds_from_metadata(document: object, metadata_url: str | None) -> list[Cloud]:
    """The clouds in a Resource Manager ``/metadata/endpoints`` document.

    Reads ``name``, ``resourceManager``, ``authentication.loginEndpoint``, ``suffixes.storage``
    and ``portal``, plus the non-standard ``amlStudio`` (the sandbox sets it). Without
    ``amlStudio``, Studio is derived from the portal's host as azure-ai-ml does
    (``portal.X`` -> ``ml.X``), else there is none.

    Args:
        document: The parsed JSON: a list of clouds, or one cloud object.
        metadata_url: Where it came from (kept on each cloud, named in errors).

    Returns:
        The clouds, in document order, all ``custom=True``.

    Raises:
        CloudError: The document is not a list of cloud objects, a cloud lacks a field or has a
            malformed one (the field is named), or two clouds share a name.
    """
    source = f"Cloud metadata from {quote_input(metadata_url, 100)}" if metadata_url else "Cloud metadata"
    entries: Sequence[object]
    if isinstance(document, Mapping):
        entries = [document]
    elif isinstance(document, Sequence) and not isinstance(document, (str, bytes)):
        entries = document
    else:
        raise CloudError(f"{source} is not usable", f"it is {_kind(document)}, not a list of clouds", METADATA_FIX)
    if not entries:
        raise CloudError(f"{source} is not usable", "it lists no clouds", METADATA_FIX)
    clouds: list[Cloud] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        cloud = _cloud_from_entry(entry, index, source, metadata_url)
        if cloud.name.lower() in seen:
            raise CloudError(f"{source} is not usable", f"it lists cloud {quote_input(cloud.name)} twice", METADATA_FIX)
        seen.add(cloud.name.lower())
        clouds.append(cloud)
    return clouds


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _cloud_from_entry(entry: object, index: int, source: str, metadata_url: str | None) -> Cloud:
    if not isinstance(entry, Mapping):
        raise CloudError(f"{source} is not usable", f"entry {index} is {_kind(entry)}, not an object", METADATA_FIX)
    label = f"entry {index}"

    def fail(why: str) -> CloudError:
        return CloudError(f"{source} is not usable", f"{label} {why}", METADATA_FIX)

    name = _field(entry, ("name",), fail)
    if any(not ch.isprintable() for ch in name) or len(name) > 100:
        raise fail(f"has name {quote_input(name)}, which is not a usable cloud name")
    label = f"cloud {quote_input(name)}"
    resource_manager = _https_url(_field(entry, ("resourceManager",), fail), "resourceManager", fail)
    authority = _https_url(
        _field(entry, ("authentication", "loginEndpoint"), fail), "authentication.loginEndpoint", fail
    )
    storage = _field(entry, ("suffixes", "storage"), fail).lstrip(".")
    if not storage:
        raise fail("has an empty suffixes.storage")
    portal = _optional_url(entry, "portal", fail)
    studio = _optional_url(entry, "amlStudio", fail) or _studio_from_portal(portal)
    return Cloud(
        name=name,
        authority=authority.rstrip("/"),
        resource_manager=resource_manager.rstrip("/") + "/",
        storage_suffix=storage,
        portal=portal,
        studio=studio,
        metadata_url=metadata_url,
        custom=True,
    )


def _field(entry: Mapping[str, object], path: tuple[str, ...], fail: _Fail) -> str:
    value: object = entry
    for depth, key in enumerate(path):
        if not isinstance(value, Mapping):
            raise fail(f"has {'.'.join(path[:depth])} as {_kind(value)}, not an object")
        if key not in value or value[key] is None:
            raise fail(f"has no {'.'.join(path[: depth + 1])}")
        value = value[key]
    if not isinstance(value, str):
        raise fail(f"has {'.'.join(path)} as {_kind(value)}, not a string")
    if not value.strip():
        raise fail(f"has an empty {'.'.join(path)}")
    return value.strip()


def _https_url(value: str, field: str, fail: _Fail) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() != "https" or not parts.netloc:
        # Tokens travel to these endpoints; azure-identity and MSAL refuse plain http anyway.
        raise fail(f"has {field} {quote_input(value)}, which is not an https:// URL")
    return value


def _optional_url(entry: Mapping[str, object], key: str, fail: _Fail) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise fail(f"has {key} as {_kind(value)}, not a string")
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("https", "http") or not parts.netloc:
        raise fail(f"has {key} {quote_input(value)}, which is not a web address")
    return value.strip().rstrip("/")


def _studio_from_portal(portal: str | None) -> str | None:
    """``https://portal.X`` -> ``https://ml.X`` (azure-ai-ml's rule for clouds from metadata)."""
    if not portal:
        return None
    parts = urlsplit(portal)
    host = parts.hostname or ""
    if not host.startswith("portal.") or parts.port is not None:
        return None
    return f"https://ml.{host[len('portal.') :]}"


# -- the catalog --------------------------------------------------------------------------------------
class CloudCatalog:
    """The clouds one session knows: the built-ins plus custom clouds added to it.

    Args:
        clouds: The starting clouds (default: ``BUILTIN_CLOUDS``).
    """

    def __init__(self, clouds: Iterable[Cloud] = BUILTIN_CLOUDS) -> None:
        self._clouds: dict[str, Cloud] = {}
        for cloud in clouds:
            self.add(cloud)

    def get(self, name: str) -> Cloud:
        """The cloud called ``name`` (any letter case).

        Raises:
            CloudError: No such cloud; the message lists the known ones, suggests the closest,
                and says how to add a custom cloud.
        """
        key = name.strip().lower()
        if key in self._clouds:
            return self._clouds[key]
        known = self.names()
        suggestion = _ALIASES.get(key.replace(" ", "").replace("-", "").replace("_", ""))
        if suggestion is None or suggestion.lower() not in self._clouds:
            close = difflib.get_close_matches(key, list(self._clouds), n=1, cutoff=0.6)
            suggestion = self._clouds[close[0]].name if close else None
        hint = f"Did you mean {suggestion}? Otherwise " if suggestion else "Use one of them, or "
        raise CloudError(
            f"Unknown cloud {quote_input(name)}",
            f"known clouds: {', '.join(known)}",
            hint + CUSTOM_CLOUD_FIX,
        )

    def check(self, cloud: Cloud) -> None:
        """Refuse ``cloud`` if it would change a cloud this catalog knows (any letter case).

        A metadata document is fetched from wherever a URL points; if it could redefine
        ``AzureCloud`` (or a cloud added earlier), the next sign-in to that cloud, a service
        principal's secret included, would go to the document's hosts. The same endpoints again
        are fine: Azure's own document lists the public clouds.

        Raises:
            CloudError: ``cloud`` has the name of a known cloud and other endpoints.
        """
        known = self._clouds.get(cloud.name.strip().lower())
        if known is None or known.same_endpoints(cloud):
            return
        source = f"Cloud metadata from {quote_input(cloud.metadata_url, 100)}" if cloud.metadata_url else "A cloud"
        what = "built-in cloud" if not known.custom else "cloud added earlier"
        changed = [
            f"{label} {quote_input(new)} instead of {quote_input(old)}"
            for label, new, old in (
                ("sign-in", cloud.authority, known.authority),
                ("Resource Manager", cloud.resource_manager, known.resource_manager),
                ("storage", cloud.storage_suffix, known.storage_suffix),
                ("portal", cloud.portal or "none", known.portal or "none"),
                ("Studio", cloud.studio or "none", known.studio or "none"),
            )
            if new.rstrip("/").lower() != old.rstrip("/").lower()
        ]
        raise CloudError(
            f"{source} is refused: it redefines the {what} {known.name}",
            f"it gives {'; '.join(changed)}, and sign-ins to {known.name} would go there",
            "A custom cloud needs a name of its own: check that the URL is your cloud's Resource Manager "
            "metadata document; nothing was added",
        )

    def add(self, cloud: Cloud) -> None:
        """Add ``cloud``; the same cloud again changes nothing (the one known stays).

        Raises:
            CloudError: It would change a known cloud's endpoints (see ``check``).
        """
        self.check(cloud)
        self._clouds.setdefault(cloud.name.lower(), cloud)

    def names(self) -> list[str]:
        """The clouds' names, built-ins first, in the order they were added."""
        return [cloud.name for cloud in self._clouds.values()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._clouds

    def __iter__(self) -> Iterator[Cloud]:
        return iter(list(self._clouds.values()))

    def __len__(self) -> int:
        return len(self._clouds)

    def __repr__(self) -> str:
        return f"CloudCatalog({', '.join(self.names())})"


def cloud_name_from_env(env: Mapping[str, str]) -> str | None:
    """The cloud named by ``AZUREML_CURRENT_CLOUD`` (the variable azure-ai-ml and the plugin read)."""
    value = env.get(CLOUD_ENV, "").strip()
    return value or None
