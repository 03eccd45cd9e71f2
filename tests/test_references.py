"""references.py: ARM ids, tracking URIs, Studio links, config.json search, names; exact error text."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_amlflow.errors import WorkspaceReferenceError
from jupyter_amlflow.references import (
    WorkspaceRef,
    find_config,
    from_names,
    load_config,
    parse_reference,
    quote_input,
)

SUB = "348401aa-407d-4c27-818f-b46dbdd6e1b6"
TENANT = "23557922-5e3a-4ec1-89de-2ee8bfd45052"
PROVIDER = "Microsoft.MachineLearningServices"
WS_ID = f"/subscriptions/{SUB}/resourceGroups/rg-ml-1/providers/{PROVIDER}/workspaces/mlw-1"
ARM_FIX = (
    f"A workspace resource id looks like /subscriptions/<id>/resourceGroups/<group>/providers/{PROVIDER}"
    "/workspaces/<name> (portal: the workspace's Properties > Resource ID)."
)
URI_FIX = (
    "Copy the MLflow tracking URI from the workspace's Overview page in Azure ML Studio, "
    "or give the workspace's resource id instead."
)
FORMS_FIX = (
    "Give the workspace's resource id (/subscriptions/.../workspaces/NAME), its azureml:// tracking URI, "
    "the path of its config.json, or --subscription/--resource-group/--workspace."
)
NAMES_FIX = (
    "Give all three: --subscription SUB --resource-group RG --workspace NAME "
    "(in Python: subscription=, resource_group=, workspace=)."
)
SUB_FIX = (
    "Copy the Subscription ID from the workspace's Overview page in the Azure portal, or run %amlflow list workspaces."
)
RG_FIX = "Copy the resource group name from the workspace's Overview page in the Azure portal."
WS_FIX = "Copy the workspace name from Azure ML Studio or the portal, or run %amlflow list workspaces."
CONFIG_FIX = "Download config.json again from the workspace's Overview page in the Azure portal."
RG_CHARS = "allowed are letters, digits, '_', '-', '.', '(' and ')'"
UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def message(text: str, **kwargs: Any) -> str:
    with pytest.raises(WorkspaceReferenceError) as caught:
        parse_reference(text, **kwargs)
    return str(caught.value)


def assert_clean(text: str) -> None:
    """One line, no control/format characters."""
    assert not any(unicodedata.category(c) in UNSAFE for c in text), repr(text)


def ws_id(sub: str = SUB, group: str = "rg-ml-1", name: str = "mlw-1") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/{PROVIDER}/workspaces/{name}"


def shown(text: str) -> str:
    return quote_input(text)


# -- ARM ids -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        WS_ID,
        WS_ID + "/",
        f"  {WS_ID}\n",
        WS_ID.replace("resourceGroups", "resourcegroups").replace(PROVIDER, PROVIDER.lower()),
        WS_ID.replace("subscriptions", "SUBSCRIPTIONS").replace("workspaces", "Workspaces"),
        WS_ID.replace(SUB, SUB.upper()),
    ],
)
def test_arm_id_forms(text: str) -> None:
    ref = parse_reference(text)
    assert ref == WorkspaceRef(SUB, "rg-ml-1", "mlw-1", source="ARM id")
    assert ref.arm_id == WS_ID
    assert str(ref) == f"mlw-1 (rg-ml-1, {SUB})"


@pytest.mark.parametrize(
    "group",
    ["a", "Grupo_ñandú-(1).x", "研究グループ", "r" * 90, "rg.with.dots", "(x)", "Ünïcödé_Ǆ"],
)
def test_resource_group_names_azure_allows(group: str) -> None:
    assert parse_reference(ws_id(group=group)).resource_group == group


@pytest.mark.parametrize("name", ["abc", "A1_", "9-lives", "w" * 33, "mlw-1_x"])
def test_workspace_names_azure_allows(name: str) -> None:
    assert parse_reference(ws_id(name=name)).workspace == name


def _id_message(text: str, why: str) -> str:
    return f"Not a workspace resource id: {shown(text)}. {why[:1].upper() + why[1:]}. {ARM_FIX}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("/subscriptions", "it ends after 'subscriptions'; the subscription id is missing"),
        ("/subscriptions/", "it ends after 'subscriptions'; the subscription id is missing"),
        (f"/subscriptions/{SUB}", f"it ends after '{SUB}'; '/resourceGroups/...' is missing"),
        (f"/subscriptions/{SUB}/resourceGroups", "it ends after 'resourceGroups'; the resource group name is missing"),
        (f"/subscriptions/{SUB}/resourceGroups/rg", "it ends after 'rg'; '/providers/...' is missing"),
        (f"/subscriptions/{SUB}/resourceGroups/rg/providers", f"it ends after 'providers'; '{PROVIDER}' is missing"),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/{PROVIDER}",
            f"it ends after '{PROVIDER}'; '/workspaces/...' is missing",
        ),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/{PROVIDER}/workspaces",
            "it ends after 'workspaces'; the workspace name is missing",
        ),
        (WS_ID + "/computes/ci-1", "it has extra segments after the workspace name: '/computes/ci-1'"),
        (WS_ID + "/jobs/j1/x", "it has extra segments after the workspace name: '/jobs/j1/x'"),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st1",
            f"it names provider 'Microsoft.Storage'; a workspace is under {PROVIDER}",
        ),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/{PROVIDER}/registries/reg1",
            "it names an Azure ML registry ('registries'); MLflow tracking needs a workspace",
        ),
        (
            f"/subscriptions/{SUB}/resourceGroups/rg/providers/{PROVIDER}/onlineEndpoints/e1",
            "it names resource type 'onlineEndpoints'; expected 'workspaces'",
        ),
        (
            WS_ID.replace("resourceGroups", "resourceGroup"),
            f"expected 'resourceGroups' after '{SUB}', found 'resourceGroup'",
        ),
        (
            WS_ID.replace("/providers/", "/provider/"),
            "expected 'providers' after 'rg-ml-1', found 'provider'",
        ),
        (WS_ID.replace("/resourceGroups/", "//"), "it has an empty segment ('//')"),
        (WS_ID + "//", "it has an empty segment ('//')"),
    ],
)
def test_arm_id_structure_errors(text: str, why: str) -> None:
    assert message(text) == _id_message(text, why)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ws_id(sub="not-a-guid"),
            "Subscription id 'not-a-guid' is not valid. "
            f"A subscription id is a GUID like 00000000-0000-0000-0000-000000000000. {SUB_FIX}",
        ),
        (
            ws_id(sub="{" + SUB + "}"),
            "Subscription id '{" + SUB + "}' is not valid. "
            f"A subscription id is a GUID like 00000000-0000-0000-0000-000000000000. {SUB_FIX}",
        ),
        (ws_id(group="rg."), f"Resource group name 'rg.' is not valid. It ends with a period. {RG_FIX}"),
        (
            ws_id(group="my rg"),
            f"Resource group name 'my rg' is not valid. It contains ' ' (U+0020); {RG_CHARS}. {RG_FIX}",
        ),
        (
            ws_id(group="rg\u00a01"),
            f"Resource group name 'rg\u00a01' is not valid. It contains '\u00a0' (U+00A0); {RG_CHARS}. {RG_FIX}",
        ),
        (
            ws_id(group="rg\u200b1"),
            f"Resource group name 'rg\\u200b1' is not valid. It contains '\\u200b' (U+200B); {RG_CHARS}. {RG_FIX}",
        ),
        (
            ws_id(group="r" * 91),
            f"Resource group name '{'r' * 60}…' (91 characters) is not valid. "
            f"It has 91 characters; the limit is 90. {RG_FIX}",
        ),
        (
            ws_id(name="ab"),
            f"Workspace name 'ab' is not valid. It has 2 characters; it must have 3 to 33. {WS_FIX}",
        ),
        (
            ws_id(name="w" * 34),
            f"Workspace name '{'w' * 34}' is not valid. It has 34 characters; it must have 3 to 33. {WS_FIX}",
        ),
        (
            ws_id(name="-mlw"),
            f"Workspace name '-mlw' is not valid. It starts with '-'; it must start with a letter or digit. {WS_FIX}",
        ),
        (
            ws_id(name="_mlw"),
            f"Workspace name '_mlw' is not valid. It starts with '_'; it must start with a letter or digit. {WS_FIX}",
        ),
        (
            ws_id(name="mlw.1"),
            "Workspace name 'mlw.1' is not valid. "
            f"It contains '.' (U+002E); allowed are letters, digits, '-' and '_'. {WS_FIX}",
        ),
        (
            ws_id(name="mlwé"),
            "Workspace name 'mlwé' is not valid. "
            f"It contains 'é' (U+00E9); allowed are letters, digits, '-' and '_'. {WS_FIX}",
        ),
    ],
)
def test_arm_id_value_errors(text: str, expected: str) -> None:
    assert message(text) == expected


def test_missing_leading_slash() -> None:
    text = WS_ID[1:]
    assert message(text) == (
        f"Not a workspace resource id: {shown(text)}. A resource id starts with '/'. "
        "Add the leading slash: /subscriptions/..."
    )


# -- tracking URIs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "host"),
    [
        (f"azureml://eastus.api.azureml.ms/mlflow/v1.0{WS_ID}", "eastus.api.azureml.ms"),
        (f"azureml://eastus.api.azureml.ms/mlflow/v2.0{WS_ID}", "eastus.api.azureml.ms"),
        (f"azureml://eastus.api.azureml.ms/mlflow/v2.0{WS_ID}/", "eastus.api.azureml.ms"),
        (f"azureml://westeurope.api.azureml.ms/mlflow/v1.0{WS_ID}?is-remote=True", "westeurope.api.azureml.ms"),
        (f"azureml://eastus.api.azureml.ms/mlflow/v2.0{WS_ID}?region=eastus&auth-type=x#frag", "eastus.api.azureml.ms"),
        (
            f"azureml://9345915a-f92f-47c3-b7a5-07fd136717dc.workspace.eastus.api.azureml.ms/mlflow/v2.0{WS_ID}",
            "9345915a-f92f-47c3-b7a5-07fd136717dc.workspace.eastus.api.azureml.ms",
        ),
        (f"azureml://chinaeast2.api.ml.azure.cn/mlflow/v2.0{WS_ID}", "chinaeast2.api.ml.azure.cn"),
        (f"azureml://127.0.0.1:38795/mlflow/v2.0{WS_ID}", "127.0.0.1:38795"),
        (f"AzureML://EastUS.api.azureml.ms/MLflow/V2.0{WS_ID}", "eastus.api.azureml.ms"),
        (f"azureml://eastus.api.azureml.ms/mlflow/v1.0{WS_ID.lower()}", "eastus.api.azureml.ms"),
    ],
)
def test_tracking_uris(text: str, host: str) -> None:
    ref = parse_reference(text)
    assert ref == WorkspaceRef(SUB, "rg-ml-1", "mlw-1", host=host, source="tracking URI")


def test_tracking_uri_percent_encoded_names() -> None:
    text = f"azureml://h.api.azureml.ms/mlflow/v2.0{ws_id(group='Grupo%20%28%C3%B1%29'.replace('%20', '_'))}"
    assert parse_reference(text).resource_group == "Grupo_(ñ)"


def _uri_message(text: str, why: str) -> str:
    return f"Not an Azure ML tracking URI: {shown(text)}. {why[:1].upper() + why[1:]}. {URI_FIX}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            f"azureml://h.api.azureml.ms/mlflow/v3.0{WS_ID}",
            "its API version 'v3.0' is not one Azure ML serves (v1.0 or v2.0)",
        ),
        (f"azureml://h.api.azureml.ms/mlflow{WS_ID}", "its path must start with /mlflow/v1.0/ or /mlflow/v2.0/"),
        (
            f"azureml://h.api.azureml.ms/mlflow/v2{WS_ID}",
            "its API version 'v2' is not one Azure ML serves (v1.0 or v2.0)",
        ),
        (f"azureml://h.api.azureml.ms{WS_ID}", "its path must start with /mlflow/v1.0/ or /mlflow/v2.0/"),
        ("azureml://h.api.azureml.ms", "its path must start with /mlflow/v1.0/ or /mlflow/v2.0/"),
        (
            "azureml://h.api.azureml.ms/mlflow/v2.0/",
            "it ends after /mlflow/v2.0; the workspace part /subscriptions/... is missing",
        ),
        (f"azureml:///mlflow/v2.0{WS_ID}", "it has no host"),
        (f"azureml://user@h.api.azureml.ms/mlflow/v2.0{WS_ID}", "its host part contains '@'"),
        (f"azureml://h.api.azureml.ms:x1/mlflow/v2.0{WS_ID}", "its port 'x1' is not a number from 1 to 65535"),
        (f"azureml://h.api.azureml.ms:70000/mlflow/v2.0{WS_ID}", "its port '70000' is not a number from 1 to 65535"),
        (f"azureml://east_us.api/mlflow/v2.0{WS_ID}", "its host 'east_us.api' is not a valid host name"),
        (f"azureml://-h.api/mlflow/v2.0{WS_ID}", "its host '-h.api' is not a valid host name"),
        (
            f"azureml://h.api.azureml.ms/mlflow/v2.0{WS_ID}/experiments/e1",
            "it has extra segments after the workspace name: '/experiments/e1'",
        ),
        (
            f"azureml://h.api.azureml.ms/mlflow/v2.0/subscriptions/{SUB}/resourceGroups/rg/providers/{PROVIDER}/registries/r1",
            "it names an Azure ML registry ('registries'); MLflow tracking needs a workspace",
        ),
        (
            f"azureml://h.api.azureml.ms/mlflow/v2.0/subscriptions/{SUB}/resourceGroups/rg",
            "it ends after 'rg'; '/providers/...' is missing",
        ),
    ],
)
def test_tracking_uri_errors(text: str, why: str) -> None:
    assert message(text) == _uri_message(text, why)


def test_tracking_uri_with_bad_workspace_name() -> None:
    text = f"azureml://h.api.azureml.ms/mlflow/v2.0{ws_id(name='x')}"
    assert message(text) == f"Workspace name 'x' is not valid. It has 1 character; it must have 3 to 33. {WS_FIX}"


# -- Studio links and other addresses ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        f"https://ml.azure.com/runs/r1?wsid=/subscriptions/{SUB}/resourcegroups/rg-ml-1/workspaces/mlw-1&tid={TENANT}",
        f"https://ml.azure.com/?wsid={WS_ID}&tid={TENANT.upper()}",
        f"https://ml.azure.com/experiments/id/e1?tid={TENANT}&wsid=%2Fsubscriptions%2F{SUB}%2Fresourcegroups%2Frg-ml-1"
        "%2Fworkspaces%2Fmlw-1",
    ],
)
def test_studio_links(text: str) -> None:
    assert parse_reference(text) == WorkspaceRef(
        SUB, "rg-ml-1", "mlw-1", tenant_id=TENANT, source="Azure ML Studio link"
    )


def test_studio_link_without_tenant() -> None:
    ref = parse_reference(f"https://ml.azure.us/?wsid=/subscriptions/{SUB}/resourcegroups/rg-ml-1/workspaces/mlw-1")
    assert ref.tenant_id is None and ref.workspace == "mlw-1"


def test_web_address_without_wsid() -> None:
    text = "https://portal.azure.com/#home"
    assert message(text) == (
        f"Not a workspace link: {shown(text)}. It is a web address without a wsid= workspace parameter. {FORMS_FIX}"
    )


def test_studio_link_with_bad_tenant() -> None:
    text = f"https://ml.azure.com/?wsid={WS_ID}&tid=bad tenant!"
    assert message(text) == (
        "Tenant id 'bad tenant!' in the link is not valid. A tenant id is a GUID or a domain such as "
        "contoso.onmicrosoft.com. Copy the link again from Azure ML Studio, or give the workspace's resource id."
    )


@pytest.mark.parametrize("text", ["ftp://host/config.json", "s3://bucket/x", "file:///tmp/config.json"])
def test_other_schemes(text: str) -> None:
    scheme = text.split("://")[0] + "://"
    assert message(text) == (
        f"Not a workspace reference: {shown(text)}. '{scheme}' is not a scheme jupyter_amlflow reads. {FORMS_FIX}"
    )


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_reference(text: str) -> None:
    assert message(text) == f"No workspace given. The reference is empty. {FORMS_FIX}"


def test_bare_word_is_taken_for_a_name(tmp_path: Path) -> None:
    assert message("mlw-1", cwd=tmp_path) == (
        "Not a workspace reference: 'mlw-1'. It is not a resource id, a tracking URI, or the path of a config.json. "
        + NAMES_FIX
    )


# -- long, unicode and hostile input -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "/subscriptions/" + "a" * 10_000,
        WS_ID + "/" + "x" * 5000,
        "azureml://" + "h" * 5000 + "/mlflow/v2.0" + WS_ID,
        ws_id(group="\x1b[31mred\x1b[0m"),
        ws_id(name="evil\u202etxt.exe"),
        ws_id(group="line\nbreak"),
        ws_id(group="para\u2029sep"),
        ws_id(sub="\x00" * 3),
        "/subscriptions/\U0001f600/\u0000",
        "https://ml.azure.com/?wsid=/subscriptions/\x07" + "é" * 500,
    ],
)
def test_errors_are_one_short_clean_line(text: str, tmp_path: Path) -> None:
    text_message = message(text, cwd=tmp_path)
    assert_clean(text_message)
    assert len(text_message) < 500


def test_long_input_is_cut_and_counted() -> None:
    text = "/subscriptions/" + "a" * 10_000
    assert message(text).startswith(f"Not a workspace resource id: '{text[:60]}…' ({len(text)} characters). ")


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", "'plain'"),
        ("tab\there", "'tab\\there'"),
        ("nul\x00", "'nul\\x00'"),
        ("esc\x1b[0m", "'esc\\x1b[0m'"),
        ("rtl\u202e", "'rtl\\u202e'"),
        ("ls\u2028", "'ls\\u2028'"),
        ("emoji \U0001f600", "'emoji \U0001f600'"),
        ("private \U000f0000", "'private \\U000f0000'"),
        ("x" * 61, "'" + "x" * 60 + "…' (61 characters)"),
        ("\n" * 40, "'" + "\\n" * 30 + "…' (40 characters)"),
    ],
)
def test_quote_input(text: str, quoted: str) -> None:
    assert quote_input(text) == quoted


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400))
def test_any_text_parses_or_fails_with_one_clean_line(tmp_path: Path, text: str) -> None:
    try:
        ref = parse_reference(text, cwd=tmp_path)
    except WorkspaceReferenceError as exc:
        assert_clean(str(exc))
        assert len(str(exc)) < 700
    else:
        assert ref.workspace and ref.resource_group and ref.subscription_id


ARM_WORDS = ["subscriptions", "resourceGroups", "providers", PROVIDER, "workspaces", SUB, "rg", "mlw-1", "", "x"]


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from(ARM_WORDS), max_size=11))
def test_arm_id_shapes_never_crash(segments: list[str]) -> None:
    text = "/" + "/".join(segments)
    try:
        ref = parse_reference(text)
    except WorkspaceReferenceError as exc:
        assert_clean(str(exc))
    else:
        assert ref.arm_id.lower() == text.rstrip("/").lower()


# -- names ----------------------------------------------------------------------------------------------------
def test_from_names() -> None:
    ref = from_names(f" {SUB.upper()} ", "rg-ml-1", "mlw-1\n")
    assert ref == WorkspaceRef(SUB, "rg-ml-1", "mlw-1", source="arguments")
    assert ref.arm_id == WS_ID


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        ((None, None, None), "subscription, resource group and workspace name"),
        ((SUB, None, None), "resource group and workspace name"),
        ((None, "rg", "mlw-1"), "subscription"),
        ((SUB, "  ", "mlw-1"), "resource group"),
        ((SUB, "rg", ""), "workspace name"),
    ],
)
def test_from_names_names_what_is_missing(args: tuple[str | None, str | None, str | None], missing: str) -> None:
    with pytest.raises(WorkspaceReferenceError) as caught:
        from_names(*args)
    assert str(caught.value) == (
        f"The workspace is not fully named: {missing} missing. "
        f"A workspace is identified by its subscription, resource group and name. {NAMES_FIX}"
    )


@pytest.mark.parametrize(
    ("args", "label", "value"),
    [
        ((SUB, "rg", WS_ID), "workspace name", WS_ID),
        ((f"azureml://h/mlflow/v2.0{WS_ID}", "rg", "mlw-1"), "subscription", f"azureml://h/mlflow/v2.0{WS_ID}"),
        ((SUB, "/subscriptions/x", "mlw-1"), "resource group", "/subscriptions/x"),
    ],
)
def test_from_names_refuses_a_whole_reference(args: tuple[str, str, str], label: str, value: str) -> None:
    with pytest.raises(WorkspaceReferenceError) as caught:
        from_names(*args)
    assert str(caught.value) == (
        f"The {label} {shown(value)} is a whole workspace reference, not a name. "
        "Pass it on its own: %amlflow connect <reference> (in Python: connect(reference))."
    )


def test_from_names_checks_each_value() -> None:
    with pytest.raises(WorkspaceReferenceError) as caught:
        from_names(SUB, "rg", "a b")
    assert str(caught.value) == (
        "Workspace name 'a b' is not valid. "
        f"It contains ' ' (U+0020); allowed are letters, digits, '-' and '_'. {WS_FIX}"
    )


# -- config.json -------------------------------------------------------------------------------------------
def write_config(path: Path, **overrides: Any) -> Path:
    config: dict[str, Any] = {"subscription_id": SUB, "resource_group": "rg-ml-1", "workspace_name": "mlw-1"}
    config.update(overrides)
    config = {k: v for k, v in config.items() if v is not ...}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def test_portal_config_json(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.json")
    assert load_config(path) == WorkspaceRef(SUB, "rg-ml-1", "mlw-1", source=f"config.json ({path})")


def test_config_with_tenant_and_extra_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.json", tenant_id=TENANT.upper(), friendly_name="x", location="eastus")
    assert load_config(path).tenant_id == TENANT
    path = write_config(tmp_path / "config.json", tenant_id="contoso.onmicrosoft.com")
    assert load_config(path).tenant_id == "contoso.onmicrosoft.com"
    path = write_config(tmp_path / "config.json", tenant_id="")
    assert load_config(path).tenant_id is None


def test_config_with_scope(tmp_path: Path) -> None:
    # azureml-sdk's project.json: "Scope" is the workspace id and wins over the other keys (as in MLClient).
    path = tmp_path / "project.json"
    path.write_text(json.dumps({"Scope": WS_ID, "RunHistoryName": "x", "workspace_name": "other"}))
    assert load_config(path) == WorkspaceRef(SUB, "rg-ml-1", "mlw-1", source=f"project.json ({path})")


def test_config_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"subscription_id": SUB, "resource_group": "r", "workspace_name": "w12"}).encode()
    )
    assert load_config(path).workspace == "w12"


def _load_message(path: Path) -> str:
    with pytest.raises(WorkspaceReferenceError) as caught:
        load_config(path)
    return str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "{not json",
            "{p} is not valid JSON. Expecting property name enclosed in double quotes at line 1 column 2. {fix}",
        ),
        ("", "{p} is not valid JSON. Expecting value at line 1 column 1. {fix}"),
        ("[1, 2]", "{p} is not a workspace config file. It holds a JSON list, not an object. {fix}"),
        ('"text"', "{p} is not a workspace config file. It holds a JSON string, not an object. {fix}"),
        (
            "{}",
            "{p} does not name a workspace. It has no subscription_id, resource_group and workspace_name. "
            "A workspace config.json has subscription_id, resource_group and workspace_name; {fix}",
        ),
        (
            json.dumps({"subscription_id": SUB, "workspace_name": "mlw-1"}),
            "{p} does not name a workspace. It has no resource_group. "
            "A workspace config.json has subscription_id, resource_group and workspace_name; {fix}",
        ),
        (
            json.dumps({"subscription_id": 12, "resource_group": "r", "workspace_name": "mlw-1"}),
            "{p} is not a workspace config file. Its subscription_id is a number, not a string. {fix}",
        ),
        (
            json.dumps({"subscription_id": SUB, "resource_group": None, "workspace_name": "mlw-1"}),
            "{p} is not a workspace config file. Its resource_group is null, not a string. {fix}",
        ),
        (
            json.dumps({"Scope": ["x"]}),
            "{p} is not a workspace config file. Its Scope is a list, not a string. {fix}",
        ),
        (
            json.dumps({"subscription_id": SUB, "resource_group": "r", "workspace_name": "mlw-1", "tenant_id": 5}),
            "{p} is not a workspace config file. Its tenant_id is a number, not a string. {fix}",
        ),
    ],
)
def test_config_file_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    assert _load_message(path) == expected.format(p=path, fix=CONFIG_FIX)


def test_config_values_are_checked_and_the_file_named(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.json", workspace_name="x")
    assert _load_message(path) == (
        f"Workspace name 'x' in {path} is not valid. It has 1 character; it must have 3 to 33. {WS_FIX}"
    )
    path = write_config(tmp_path / "config.json", subscription_id="sub")
    assert _load_message(path).startswith(f"Subscription id 'sub' in {path} is not valid. ")
    path = write_config(tmp_path / "config.json", tenant_id="not a tenant")
    assert _load_message(path) == (
        f"Tenant id 'not a tenant' in {path} is not valid. A tenant id is a GUID or a domain such as "
        "contoso.onmicrosoft.com. Correct tenant_id or remove it."
    )
    path.write_text(json.dumps({"Scope": "/subscriptions/x"}))
    assert _load_message(path) == (
        f"Not a workspace resource id in {path}: '/subscriptions/x'. "
        f"It ends after 'x'; '/resourceGroups/...' is missing. {ARM_FIX}"
    )


def test_unreadable_and_binary_config(tmp_path: Path) -> None:
    folder = tmp_path / "config.json"
    folder.mkdir()
    assert _load_message(folder) == (
        f"Cannot read {folder}. Is a directory. Check that the file exists and you may read it."
    )
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert _load_message(binary) == f"{binary} is not a workspace config file. It is not UTF-8 text. {CONFIG_FIX}"
    big = tmp_path / "big.json"
    big.write_text(" " * 1_000_001)
    assert _load_message(big) == (
        f"{big} is not a workspace config file. It has 1000001 bytes; a config.json has a few hundred. {CONFIG_FIX}"
    )


def test_config_path_with_control_characters_stays_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "bad\nname\x1b"
    path = folder / "config.json"
    folder.mkdir()
    path.write_text("{oops")
    text = _load_message(path)
    assert_clean(text)
    assert "bad\\nname\\x1b/config.json is not valid JSON" in text


def test_long_config_path_is_shortened_from_the_left(tmp_path: Path) -> None:
    folder = tmp_path.joinpath(*(["d" * 50] * 5))
    path = folder / "config.json"
    folder.mkdir(parents=True)
    path.write_text("[]")
    text = _load_message(path)
    assert len(str(path)) > 250
    assert text.startswith("…" + str(path)[-99:] + " is not a workspace config file. ")


# -- config.json search (MLClient.from_config's order) ---------------------------------------------------------
def test_find_config_in_the_folder_itself(tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.json")
    assert find_config(tmp_path) == path


def test_find_config_in_dot_azureml(tmp_path: Path) -> None:
    path = write_config(tmp_path / ".azureml" / "config.json")
    assert find_config(tmp_path) == path


def test_find_config_in_aml_config_and_project_json(tmp_path: Path) -> None:
    path = tmp_path / "aml_config" / "project.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"Scope": WS_ID}))
    assert find_config(tmp_path) == path


def test_find_config_in_parents(tmp_path: Path) -> None:
    start = tmp_path / "a" / "b" / "c"
    start.mkdir(parents=True)
    path = write_config(tmp_path / "a" / "config.json")
    assert find_config(start).resolve() == path.resolve()


def test_dot_azureml_in_a_parent_wins_over_config_json_here(tmp_path: Path) -> None:
    start = tmp_path / "project"
    write_config(start / "config.json", workspace_name="near")
    far = write_config(tmp_path / ".azureml" / "config.json", workspace_name="far")
    assert find_config(start).resolve() == far.resolve()


def test_find_config_stops_after_twenty_parents(tmp_path: Path) -> None:
    write_config(tmp_path / "config.json")
    start = tmp_path.joinpath(*["d"] * 21)
    start.mkdir(parents=True)
    assert find_config(start) is None
    assert find_config(start.parent) is not None


def test_find_config_nothing_there(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()  # a folder named config.json is not a config file
    assert find_config(tmp_path) is None


def test_find_config_defaults_to_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path / ".azureml" / "config.json")
    monkeypatch.chdir(tmp_path)
    assert find_config() == Path.cwd() / ".azureml" / "config.json"
    assert find_config().resolve() == path.resolve()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
@pytest.mark.parametrize(
    "layout",
    [
        {"config.json": "here"},
        {".azureml/config.json": "dot", "config.json": "here"},
        {"../.azureml/config.json": "parent-dot", "config.json": "here"},
        {"aml_config/config.json": "aml", "config.json": "here"},
        {"../../config.json": "grandparent"},
        {"project.json": "project", "../config.json": "parent"},
    ],
)
def test_search_order_matches_mlclient_from_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: dict[str, str]
) -> None:
    from azure.ai.ml import MLClient

    class NoCredential:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("MLClient must not sign in here")

    start = tmp_path / "x" / "y"
    start.mkdir(parents=True)
    for relative, name in layout.items():
        path = (start / relative).resolve()
        if relative.endswith("project.json"):
            path.write_text(json.dumps({"Scope": ws_id(name=f"{name}-ws")}))
        else:
            write_config(path, workspace_name=f"{name}-ws")
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)  # MLClient writes it; undone after the test
    theirs = MLClient.from_config(NoCredential(), path=str(start), enable_telemetry=False)
    found = find_config(start)
    assert found is not None
    assert load_config(found).workspace == theirs.workspace_name


# -- parse_reference with paths ----------------------------------------------------------------------------
def test_reference_is_a_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "sub" / "my-ws.json")
    assert parse_reference(str(path)).source == f"my-ws.json ({path})"
    assert parse_reference("sub/my-ws.json", cwd=tmp_path).workspace == "mlw-1"


def test_reference_is_a_folder(tmp_path: Path) -> None:
    path = write_config(tmp_path / "proj" / ".azureml" / "config.json")
    ref = parse_reference(str(tmp_path / "proj"))
    assert ref == WorkspaceRef(SUB, "rg-ml-1", "mlw-1", source=f"config.json ({path})")
    assert parse_reference(".", cwd=tmp_path / "proj").workspace == "mlw-1"


def test_reference_folder_without_config(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    assert message(str(folder)) == (
        f"No config.json in {folder} or its parents. Download config.json from the workspace's Overview page "
        "in the Azure portal into that folder, or give the workspace's resource id."
    )


def test_reference_missing_file(tmp_path: Path) -> None:
    assert message("nope/config.json", cwd=tmp_path) == (
        f"No config file at {tmp_path / 'nope' / 'config.json'}. The path does not exist. "
        "Check the path, or download config.json from the workspace's Overview page in the Azure portal."
    )


def test_reference_home_relative_path(test_home: Path) -> None:
    path = write_config(test_home / "amlflow-ref-test" / "config.json")
    try:
        assert parse_reference("~/amlflow-ref-test/config.json").source == f"config.json ({path})"
    finally:
        path.unlink()
        path.parent.rmdir()


def test_reference_unknown_user_home_is_not_a_crash(tmp_path: Path) -> None:
    assert message("~no-such-user-amlflow/config.json", cwd=tmp_path).startswith("No config file at ")


def test_workspace_ref_is_frozen() -> None:
    ref = parse_reference(WS_ID)
    with pytest.raises(AttributeError):
        ref.workspace = "other"  # type: ignore[misc]
    assert os.fspath(Path(ref.arm_id)) == WS_ID
