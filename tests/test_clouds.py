"""clouds.py: built-in clouds, metadata documents (the sandbox's real one), the catalog, Studio links."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any

import pytest
import requests

from jupyter_amlflow.clouds import (
    BUILTIN_CLOUDS,
    Cloud,
    CloudCatalog,
    cloud_name_from_env,
    clouds_from_metadata,
)
from jupyter_amlflow.errors import CloudError
from jupyter_amlflow.references import parse_reference

SUB = "348401aa-407d-4c27-818f-b46dbdd6e1b6"
TENANT = "23557922-5e3a-4ec1-89de-2ee8bfd45052"
DOC_URL = "https://arm.contoso.test/metadata/endpoints?api-version=2019-05-01"
METADATA_FIX = (
    "Check the URL: it must be Resource Manager's /metadata/endpoints?api-version=2019-05-01 document "
    "(ARM_CLOUD_METADATA_URL)."
)
CUSTOM_FIX = (
    "add a custom cloud from its Resource Manager metadata document: --cloud NAME --cloud-metadata-url URL "
    "(in Python: cloud=, cloud_metadata_url=), or set ARM_CLOUD_METADATA_URL."
)
KNOWN = "Known clouds: AzureCloud, AzureChinaCloud, AzureUSGovernment."


@pytest.fixture(scope="module")
def sandbox_doc(sandbox_factory: Any) -> tuple[Any, object]:
    """A sandbox and its metadata document, fetched over HTTPS as Resource Manager serves it."""
    sb = sandbox_factory(mlflow=False)
    response = requests.get(sb.metadata_url, verify=sb.ca_bundle, timeout=30)
    response.raise_for_status()
    return sb, response.json()


def by_name(name: str) -> Cloud:
    return next(cloud for cloud in BUILTIN_CLOUDS if cloud.name == name)


# -- built-in clouds ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "authority", "resource_manager", "storage", "portal", "studio"),
    [
        (
            "AzureCloud",
            "https://login.microsoftonline.com",
            "https://management.azure.com/",
            "core.windows.net",
            "https://portal.azure.com",
            "https://ml.azure.com",
        ),
        (
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn",
            "https://management.chinacloudapi.cn/",
            "core.chinacloudapi.cn",
            "https://portal.azure.cn",
            "https://ml.azure.cn",
        ),
        (
            "AzureUSGovernment",
            "https://login.microsoftonline.us",
            "https://management.usgovcloudapi.net/",
            "core.usgovcloudapi.net",
            "https://portal.azure.us",
            "https://ml.azure.us",
        ),
    ],
)
def test_builtin_cloud_values(
    name: str, authority: str, resource_manager: str, storage: str, portal: str, studio: str
) -> None:
    cloud = by_name(name)
    assert dataclasses.replace(cloud, device_login_hosts=()) == Cloud(
        name, authority, resource_manager, storage, portal, studio
    )
    assert "microsoft.com" in cloud.device_login_hosts  # microsoft.com/devicelogin[china|us]
    assert cloud.arm_scope == resource_manager + ".default"
    assert cloud.authority_host == authority
    assert cloud.is_public_authority
    assert not cloud.custom and cloud.metadata_url is None


def test_builtin_clouds_match_azure_identity_and_the_plugin() -> None:
    from azure.identity import AzureAuthorityHosts
    from azureml.mlflow._common._cloud.cloud import HARD_CODED_CLOUD_LIST

    hosts = {
        "AzureCloud": AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
        "AzureChinaCloud": AzureAuthorityHosts.AZURE_CHINA,
        "AzureUSGovernment": AzureAuthorityHosts.AZURE_GOVERNMENT,
    }
    plugin = {cloud.name: cloud for cloud in HARD_CODED_CLOUD_LIST}
    assert [cloud.name for cloud in BUILTIN_CLOUDS] == list(hosts)
    for cloud in BUILTIN_CLOUDS:
        assert cloud.authority == "https://" + hosts[cloud.name]
        theirs = plugin[cloud.name]
        assert cloud.authority == theirs.endpoints.active_directory
        assert cloud.resource_manager.rstrip("/") == theirs.endpoints.resource_manager.rstrip("/")
        assert cloud.arm_scope == theirs._get_default_scope()
        assert cloud.storage_suffix == theirs.suffixes.storage_endpoint
        assert cloud.portal == theirs.endpoints.portal


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_builtin_clouds_match_azure_ai_ml() -> None:
    from azure.ai.ml._azure_environments import EndpointURLS, _environments

    for cloud in BUILTIN_CLOUDS:
        theirs = _environments[cloud.name]
        assert cloud.studio == theirs[EndpointURLS.AML_RESOURCE_ID].rstrip("/")
        assert cloud.portal == theirs[EndpointURLS.AZURE_PORTAL_ENDPOINT].rstrip("/")
        assert cloud.resource_manager == theirs[EndpointURLS.RESOURCE_MANAGER_ENDPOINT]
        assert cloud.authority == theirs[EndpointURLS.ACTIVE_DIRECTORY_ENDPOINT].rstrip("/")
        assert cloud.storage_suffix == theirs[EndpointURLS.STORAGE_ENDPOINT]


@pytest.mark.parametrize(
    ("authority", "public"),
    [
        ("https://login.microsoftonline.com", True),
        ("https://login.microsoftonline.us", True),
        ("https://login.chinacloudapi.cn", True),
        ("https://login.windows.net", True),
        ("https://LOGIN.MICROSOFTONLINE.COM", True),
        ("https://login.microsoftonline.com:443", True),
        ("https://login.microsoftonline.com:8443", False),
        ("http://login.microsoftonline.com", False),
        ("https://login.microsoftonline.com.evil.test", False),
        ("https://adfs.contoso.test/adfs", False),
        ("https://127.0.0.1:38795", False),
    ],
)
def test_is_public_authority(authority: str, public: bool) -> None:
    cloud = dataclasses.replace(by_name("AzureCloud"), authority=authority)
    assert cloud.is_public_authority is public


def test_authority_host_keeps_scheme_and_port() -> None:
    cloud = dataclasses.replace(by_name("AzureCloud"), authority="https://127.0.0.1:38795")
    assert cloud.authority_host == "https://127.0.0.1:38795"
    adfs = dataclasses.replace(by_name("AzureCloud"), authority="https://adfs.contoso.test/adfs")
    assert adfs.authority_host == "https://adfs.contoso.test"


# -- Studio links ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "host"),
    [("AzureCloud", "ml.azure.com"), ("AzureChinaCloud", "ml.azure.cn"), ("AzureUSGovernment", "ml.azure.us")],
)
def test_studio_urls(name: str, host: str) -> None:
    cloud = by_name(name)
    wsid = f"wsid=/subscriptions/{SUB}/resourcegroups/rg-ml-1/workspaces/mlw-1"
    assert cloud.studio_run_url("run-1", SUB, "rg-ml-1", "mlw-1", TENANT) == (
        f"https://{host}/runs/run-1?{wsid}&tid={TENANT}"
    )
    assert cloud.studio_experiment_url("42", SUB, "rg-ml-1", "mlw-1", TENANT) == (
        f"https://{host}/experiments/id/42?{wsid}&tid={TENANT}"
    )
    assert cloud.studio_workspace_url(SUB, "rg-ml-1", "mlw-1", TENANT) == f"https://{host}/?{wsid}&tid={TENANT}"


def test_studio_urls_quote_every_part() -> None:
    cloud = by_name("AzureCloud")
    url = cloud.studio_run_url("a/b c&d?", SUB, "Grupo (ñandú)", "mlw_1", "contoso.onmicrosoft.com")
    assert url == (
        "https://ml.azure.com/runs/a%2Fb%20c%26d%3F"
        f"?wsid=/subscriptions/{SUB}/resourcegroups/Grupo%20%28%C3%B1and%C3%BA%29/workspaces/mlw_1"
        "&tid=contoso.onmicrosoft.com"
    )


def test_studio_urls_without_tenant_have_no_tid() -> None:
    url = by_name("AzureCloud").studio_run_url("r1", SUB, "rg", "mlw-1", None)
    assert url == f"https://ml.azure.com/runs/r1?wsid=/subscriptions/{SUB}/resourcegroups/rg/workspaces/mlw-1"


def test_no_studio_no_links() -> None:
    cloud = dataclasses.replace(by_name("AzureCloud"), studio=None)
    assert cloud.studio_run_url("r1", SUB, "rg", "mlw-1", TENANT) is None
    assert cloud.studio_experiment_url("1", SUB, "rg", "mlw-1", TENANT) is None
    assert cloud.studio_workspace_url(SUB, "rg", "mlw-1", TENANT) is None


def test_a_studio_link_reads_back_as_the_same_workspace() -> None:
    url = by_name("AzureChinaCloud").studio_run_url("r1", SUB, "rg.(x)", "mlw-1", TENANT)
    assert url is not None
    ref = parse_reference(url)
    assert (ref.subscription_id, ref.resource_group, ref.workspace, ref.tenant_id) == (SUB, "rg.(x)", "mlw-1", TENANT)
    assert ref.source == "Azure ML Studio link"


# -- metadata documents -----------------------------------------------------------------------------------
def test_sandbox_metadata_document(sandbox_doc: tuple[Any, object]) -> None:
    sb, document = sandbox_doc
    [cloud] = clouds_from_metadata(document, sb.metadata_url)
    base = sb.base_url
    assert cloud == Cloud(
        name="AzureSandbox",
        authority=base,
        resource_manager=base + "/",
        storage_suffix="core.sandbox.test",
        portal=base + "/portal",
        studio=sb.studio_url,
        metadata_url=sb.metadata_url,
        custom=True,
    )
    assert cloud.name == sb.env["AZUREML_CURRENT_CLOUD"]
    assert cloud.authority_host == sb.env["AZURE_AUTHORITY_HOST"]
    assert cloud.arm_scope == base + "/.default"
    assert not cloud.is_public_authority
    assert cloud.studio_run_url("r1", SUB, "rg", "mlw-1", None) == (
        f"{sb.studio_url}/runs/r1?wsid=/subscriptions/{SUB}/resourcegroups/rg/workspaces/mlw-1"
    )


def test_sandbox_cloud_joins_a_catalog_and_is_found_by_env(sandbox_doc: tuple[Any, object]) -> None:
    sb, document = sandbox_doc
    catalog = CloudCatalog()
    for cloud in clouds_from_metadata(document, sb.metadata_url):
        catalog.add(cloud)
    name = cloud_name_from_env(sb.env)
    assert name == "AzureSandbox"
    assert catalog.get(name).resource_manager == sb.base_url + "/"
    assert catalog.get("azuresandbox").name == "AzureSandbox"
    assert catalog.names() == ["AzureCloud", "AzureChinaCloud", "AzureUSGovernment", "AzureSandbox"]
    # A fresh catalog does not see it: no state shared between sessions.
    assert "AzureSandbox" not in CloudCatalog()


def test_single_cloud_object_is_accepted(sandbox_doc: tuple[Any, object]) -> None:
    sb, document = sandbox_doc
    assert isinstance(document, list)
    assert clouds_from_metadata(document[0], sb.metadata_url) == clouds_from_metadata(document, sb.metadata_url)


def _entry(name: str, login: str, arm: str, storage: str, portal: str) -> dict[str, Any]:
    # The shape of management.azure.com/metadata/endpoints?api-version=2019-05-01, abridged.
    return {
        "portal": portal,
        "authentication": {
            "loginEndpoint": login,
            "audiences": [arm.replace("management.", "management.core."), arm],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "name": name,
        "suffixes": {"storage": storage, "keyVaultDns": "vault.example"},
        "resourceManager": arm,
        "gallery": "https://gallery.example/",
    }


def test_azure_style_document_gives_the_builtin_values() -> None:
    document = json.loads(
        json.dumps(
            [
                _entry(
                    "AzureCloud",
                    "https://login.microsoftonline.com/",
                    "https://management.azure.com/",
                    "core.windows.net",
                    "https://portal.azure.com",
                ),
                _entry(
                    "AzureChinaCloud",
                    "https://login.chinacloudapi.cn/",
                    "https://management.chinacloudapi.cn",
                    "core.chinacloudapi.cn",
                    "https://portal.azure.cn/",
                ),
                _entry(
                    "AzureUSGovernment",
                    "https://login.microsoftonline.us",
                    "https://management.usgovcloudapi.net/",
                    ".core.usgovcloudapi.net",
                    "https://portal.azure.us",
                ),
            ]
        )
    )
    parsed = clouds_from_metadata(document, DOC_URL)
    assert [dataclasses.replace(c, metadata_url=None, custom=False) for c in parsed] == [
        dataclasses.replace(c, device_login_hosts=()) for c in BUILTIN_CLOUDS
    ]
    assert all(parsed[i].same_endpoints(c) for i, c in enumerate(BUILTIN_CLOUDS))
    assert all(c.custom and c.metadata_url == DOC_URL for c in parsed)


@pytest.mark.parametrize(
    ("portal", "studio"),
    [
        ("https://portal.contoso.test", "https://ml.contoso.test"),
        ("https://portal.contoso.test/", "https://ml.contoso.test"),
        ("https://portal.contoso.test:8443", None),
        ("https://contoso.test/portal", None),
        (None, None),
        ("", None),
    ],
)
def test_studio_derived_from_portal(portal: str | None, studio: str | None) -> None:
    entry = _entry("Contoso", "https://login.contoso.test", "https://arm.contoso.test/", "core.contoso.test", "x")
    entry["portal"] = portal
    [cloud] = clouds_from_metadata(entry, None)
    assert cloud.studio == studio


def test_aml_studio_field_wins_over_portal() -> None:
    entry = _entry(
        "Contoso",
        "https://login.contoso.test",
        "https://arm.contoso.test/",
        "core.contoso.test",
        "https://portal.x.test",
    )
    entry["amlStudio"] = "https://studio.contoso.test/"
    [cloud] = clouds_from_metadata([entry], None)
    assert cloud.studio == "https://studio.contoso.test"


def _good() -> dict[str, Any]:
    return _entry("Contoso", "https://login.contoso.test", "https://arm.contoso.test/", "core.contoso.test", "")


def _without(*path: str) -> dict[str, Any]:
    entry = _good()
    target = entry
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return entry


def _with(value: object, *path: str) -> dict[str, Any]:
    entry = _good()
    target = entry
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return entry


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ("not json clouds", "it is a string, not a list of clouds"),
        (None, "it is null, not a list of clouds"),
        (42, "it is a number, not a list of clouds"),
        ([], "it lists no clouds"),
        ([7], "entry 1 is a number, not an object"),
        ([_good(), "x"], "entry 2 is a string, not an object"),
        ([_without("name")], "entry 1 has no name"),
        ([_with("", "name")], "entry 1 has an empty name"),
        ([_with(["AzureCloud"], "name")], "entry 1 has name as a list, not a string"),
        ([_with("bad\nname", "name")], "entry 1 has name 'bad\\nname', which is not a usable cloud name"),
        ([_without("resourceManager")], "cloud 'Contoso' has no resourceManager"),
        (
            [_with("http://arm.contoso.test/", "resourceManager")],
            "cloud 'Contoso' has resourceManager 'http://arm.contoso.test/', which is not an https:// URL",
        ),
        ([_without("authentication")], "cloud 'Contoso' has no authentication"),
        ([_with("https://l", "authentication")], "cloud 'Contoso' has authentication as a string, not an object"),
        ([_without("authentication", "loginEndpoint")], "cloud 'Contoso' has no authentication.loginEndpoint"),
        (
            [_with("login.contoso.test", "authentication", "loginEndpoint")],
            "cloud 'Contoso' has authentication.loginEndpoint 'login.contoso.test', which is not an https:// URL",
        ),
        ([_without("suffixes")], "cloud 'Contoso' has no suffixes"),
        ([_without("suffixes", "storage")], "cloud 'Contoso' has no suffixes.storage"),
        ([_with(".", "suffixes", "storage")], "cloud 'Contoso' has an empty suffixes.storage"),
        ([_with(3, "portal")], "cloud 'Contoso' has portal as a number, not a string"),
        (
            [_with("portal.contoso", "portal")],
            "cloud 'Contoso' has portal 'portal.contoso', which is not a web address",
        ),
        ([_good(), _with("CONTOSO", "name")], "it lists cloud 'CONTOSO' twice"),
    ],
)
def test_malformed_metadata_names_the_field(document: object, why: str) -> None:
    with pytest.raises(CloudError) as caught:
        clouds_from_metadata(document, DOC_URL)
    why = why[:1].upper() + why[1:]
    assert str(caught.value) == f"Cloud metadata from '{DOC_URL}' is not usable. {why}. {METADATA_FIX}"


def test_malformed_metadata_without_url() -> None:
    with pytest.raises(CloudError) as caught:
        clouds_from_metadata({}, None)
    assert str(caught.value) == f"Cloud metadata is not usable. Entry 1 has no name. {METADATA_FIX}"


# -- the catalog -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["AzureCloud", "azurecloud", "AZURECLOUD", "  AzureCloud\t"])
def test_catalog_lookup_ignores_case_and_spaces(name: str) -> None:
    assert CloudCatalog().get(name) is by_name("AzureCloud")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("china", "Did you mean AzureChinaCloud? Otherwise "),
        ("US-Gov", "Did you mean AzureUSGovernment? Otherwise "),
        ("public", "Did you mean AzureCloud? Otherwise "),
        ("AzureCloude", "Did you mean AzureCloud? Otherwise "),
        ("azurechinacloud2", "Did you mean AzureChinaCloud? Otherwise "),
        ("Mars", "Use one of them, or "),
    ],
)
def test_unknown_cloud_lists_known_names_and_the_way_to_add_one(name: str, hint: str) -> None:
    with pytest.raises(CloudError) as caught:
        CloudCatalog().get(name)
    assert str(caught.value) == f"Unknown cloud '{name}'. {KNOWN} {hint}{CUSTOM_FIX}"


def test_unknown_cloud_message_is_one_clean_line() -> None:
    name = "\x1b[2J" + "Ω" * 300 + "\n"
    with pytest.raises(CloudError) as caught:
        CloudCatalog().get(name)
    message = str(caught.value)
    assert message.startswith("Unknown cloud '\\x1b[2J" + "Ω" * 53 + "…' (305 characters). ")
    assert "\n" not in message and "\x1b" not in message


def test_catalog_keeps_a_known_cloud_and_lists_custom_clouds() -> None:
    catalog = CloudCatalog()
    custom = Cloud(
        "Contoso", "https://login.contoso.test", "https://arm.contoso.test/", "core.contoso.test", None, None, custom=True
    )
    catalog.add(custom)
    assert catalog.get("CONTOSO") is custom
    assert "contoso" in catalog and "Mars" not in catalog and 3 not in catalog
    # The same endpoints again (another spelling, a trailing slash) change nothing.
    again = dataclasses.replace(custom, name="contoso", authority="https://login.contoso.test/")
    catalog.add(again)
    assert catalog.get("Contoso") is custom
    # Other endpoints under a known name are refused (tests/test_cloud_trust.py goes through the magics).
    moved = dataclasses.replace(custom, name="contoso", storage_suffix="core2.contoso.test")
    with pytest.raises(CloudError, match="it redefines the cloud added earlier Contoso"):
        catalog.add(moved)
    with pytest.raises(CloudError, match="it redefines the built-in cloud AzureCloud"):
        catalog.add(dataclasses.replace(custom, name="azurecloud"))
    assert catalog.get("Contoso") is custom
    assert catalog.names() == ["AzureCloud", "AzureChinaCloud", "AzureUSGovernment", "Contoso"]
    assert list(catalog) == [*BUILTIN_CLOUDS, custom]
    assert [c.origin for c in catalog] == ["built in", "built in", "built in", "custom"]
    assert len(catalog) == 4
    with pytest.raises(CloudError) as caught:
        catalog.get("Mars")
    assert "Known clouds: AzureCloud, AzureChinaCloud, AzureUSGovernment, Contoso." in str(caught.value)


def test_catalog_can_start_from_other_clouds() -> None:
    only = CloudCatalog([by_name("AzureUSGovernment")])
    assert only.names() == ["AzureUSGovernment"]
    assert CloudCatalog().names() == ["AzureCloud", "AzureChinaCloud", "AzureUSGovernment"]


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, None),
        ({"AZUREML_CURRENT_CLOUD": ""}, None),
        ({"AZUREML_CURRENT_CLOUD": "  "}, None),
        ({"AZUREML_CURRENT_CLOUD": "AzureChinaCloud"}, "AzureChinaCloud"),
        ({"AZUREML_CURRENT_CLOUD": " AzureSandbox\n"}, "AzureSandbox"),
    ],
)
def test_cloud_name_from_env(env: dict[str, str], name: str | None) -> None:
    assert cloud_name_from_env(env) == name


# -- import cost ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["jupyter_amlflow.clouds", "jupyter_amlflow.references", "jupyter_amlflow.platform"])
def test_import_loads_no_mlflow_azure_or_ipython(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('mlflow', 'azure', 'azureml', 'IPython', 'requests', 'msal'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
