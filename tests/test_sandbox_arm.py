"""Sandbox part 1: Resource Manager, Resource Graph, token checks, faults, the request log."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest
import requests
from azure.core import PipelineClient
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
from azure.core.rest import HttpRequest
from azure.identity import ClientSecretCredential

WS_API = "2024-10-01"


@pytest.fixture(scope="module")
def sb(sandbox_factory: Any) -> Any:
    return sandbox_factory(subscriptions=3, workspaces_per_subscription=3, tenants=2, mlflow=False, page_size=2)


@pytest.fixture(autouse=True)
def _sandbox_env(sb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    yield
    sb.clear_faults()


def credential(sb: Any, tenant: str | None = None, principal: Any = None) -> ClientSecretCredential:
    p = principal or sb.sp
    return ClientSecretCredential(
        tenant or sb.tenant_id,
        p.client_id,
        p.client_secret,
        authority=sb.authority_url,
        disable_instance_discovery=True,
    )


def arm(sb: Any, cred: Any = None, retry_total: int = 3, **transport: Any) -> PipelineClient:
    """An azure-core client as the Azure management SDKs build one (bearer policy + retries)."""
    return PipelineClient(
        base_url=sb.arm_url,
        policies=[
            RetryPolicy(retry_total=retry_total, retry_backoff_factor=0.1),
            BearerTokenCredentialPolicy(cred or credential(sb), sb.arm_url + ".default"),
        ],
        **transport,
    )


def get(client: PipelineClient, url: str) -> Any:
    url = client.format_url(url)
    response = client.send_request(
        HttpRequest("GET", url, params={} if "api-version" in url else {"api-version": WS_API})
    )
    response.raise_for_status()
    return response.json()


def paged(client: PipelineClient, url: str) -> tuple[list[Any], int]:
    items, pages = [], 0
    next_url: str | None = url
    while next_url:
        body = get(client, next_url)
        items.extend(body["value"])
        pages += 1
        next_url = body.get("nextLink")
    return items, pages


def home_workspaces(sb: Any) -> list[Any]:
    return [w for w in sb.workspaces if w.tenant_id == sb.tenant_id]


def test_cloud_metadata_describes_the_sandbox(sb: Any) -> None:
    doc = requests.get(sb.metadata_url, verify=sb.ca_bundle, timeout=10).json()
    (cloud,) = doc
    assert cloud["name"] == sb.cloud
    assert cloud["resourceManager"] == sb.arm_url
    assert cloud["authentication"]["loginEndpoint"] == sb.authority_url + "/"
    assert cloud["suffixes"]["storage"] == sb.storage_suffix


def test_workspaces_paged_per_subscription_and_resource_group(sb: Any) -> None:
    client = arm(sb)
    sub = sb.subscriptions[0]
    items, pages = paged(
        client, f"/subscriptions/{sub.subscription_id}/providers/Microsoft.MachineLearningServices/workspaces"
    )
    assert pages == 2  # three workspaces, two per page
    assert sorted(i["name"] for i in items) == ["mlw-1-1", "mlw-1-2", "mlw-1-3"]
    rg_items, _ = paged(
        client,
        f"/subscriptions/{sub.subscription_id}/resourceGroups/rg-ml-1/providers/Microsoft.MachineLearningServices/workspaces",
    )
    assert {i["id"] for i in rg_items} == {i["id"] for i in items}


def test_workspace_get_is_shaped_like_the_rest_spec_example(sb: Any) -> None:
    w = sb.workspaces[0]
    body = get(arm(sb), w.arm_id)
    assert body["id"] == w.arm_id and body["name"] == w.name and body["location"] == w.location
    assert body["type"] == "Microsoft.MachineLearningServices/workspaces"
    props = body["properties"]
    assert props["mlFlowTrackingUri"] == w.tracking_uri
    assert props["workspaceId"] == w.workspace_id
    assert props["discoveryUrl"].startswith("https://")


def test_missing_workspace_is_arm_404(sb: Any) -> None:
    w = sb.workspaces[0]
    with pytest.raises(HttpResponseError) as err:
        get(arm(sb), w.arm_id.replace(w.name, "no-such-ws"))
    assert err.value.status_code == 404 and err.value.error.code == "ResourceNotFound"
    with pytest.raises(HttpResponseError) as err:
        get(arm(sb), w.arm_id.replace(w.resource_group, "rg-nope"))
    assert err.value.status_code == 404 and err.value.error.code == "ResourceGroupNotFound"


def test_no_role_is_arm_403_naming_the_action(sb: Any) -> None:
    w = sb.workspaces[0]
    with pytest.raises(HttpResponseError) as err:
        get(arm(sb, credential(sb, principal=sb.norole_sp)), w.arm_id)
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    assert "'Microsoft.MachineLearningServices/workspaces/read'" in err.value.message
    assert w.arm_id in err.value.message
    subs, _ = paged(arm(sb, credential(sb, principal=sb.norole_sp)), "/subscriptions?api-version=2022-12-01")
    assert subs == []


def test_token_sees_only_its_own_tenant(sb: Any) -> None:
    home_subs, _ = paged(arm(sb), "/subscriptions?api-version=2022-12-01")
    other_tenant = sb.tenants[1].tenant_id
    other_subs, _ = paged(arm(sb, credential(sb, other_tenant)), "/subscriptions?api-version=2022-12-01")
    assert {s["tenantId"] for s in home_subs} == {sb.tenant_id}
    assert {s["tenantId"] for s in other_subs} == {other_tenant}
    # A workspace of the home tenant, read with the other tenant's token: ARM's wrong-tenant 401.
    w = home_workspaces(sb)[0]
    client = arm(sb, credential(sb, other_tenant), retry_total=0)
    response = client.send_request(HttpRequest("GET", client.format_url(w.arm_id), params={"api-version": WS_API}))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"


def _raw_get(sb: Any, path: str, token: str) -> requests.Response:
    return requests.get(
        f"{sb.base_url}{path}",
        params={"api-version": WS_API},
        headers={"Authorization": f"Bearer {token}"},
        verify=sb.ca_bundle,
        timeout=10,
    )


def test_tampered_expired_wrong_audience_tokens_get_401(sb: Any, sandbox_factory: Any) -> None:
    w = sb.workspaces[0]
    cred = credential(sb)
    good = cred.get_token(sb.arm_url + ".default").token
    assert _raw_get(sb, w.arm_id, good).status_code == 200

    head, payload, signature = good.split(".")
    flipped = signature[:-5] + ("A" if signature[-5] != "A" else "B") + signature[-4:]
    tampered = _raw_get(sb, w.arm_id, f"{head}.{payload}.{flipped}")
    assert tampered.status_code == 401 and tampered.json()["error"]["code"] == "InvalidAuthenticationToken"

    wrong_aud = cred.get_token("https://storage.azure.com/.default").token
    response = _raw_get(sb, w.arm_id, wrong_aud)
    assert response.status_code == 401 and response.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"

    other = sandbox_factory(subscriptions=1, workspaces_per_subscription=1, mlflow=False)
    foreign_cred = ClientSecretCredential(
        other.tenant_id,
        other.sp.client_id,
        other.sp.client_secret,
        authority=other.authority_url,
        disable_instance_discovery=True,
        connection_verify=other.ca_bundle,
    )
    foreign = foreign_cred.get_token(other.arm_url + ".default").token
    assert _raw_get(sb, w.arm_id, foreign).status_code == 401

    missing = requests.get(f"{sb.base_url}{w.arm_id}", params={"api-version": WS_API}, verify=sb.ca_bundle, timeout=10)
    assert missing.status_code == 401 and "WWW-Authenticate" in missing.headers

    sb.token_lifetime = 1
    try:
        short = credential(sb).get_token(sb.arm_url + ".default").token
    finally:
        sb.token_lifetime = 3600
    time.sleep(1.2)
    expired = _raw_get(sb, w.arm_id, short)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "ExpiredAuthenticationToken"


def _graph(client: PipelineClient, body: dict[str, Any]) -> Any:
    url = client.format_url("/providers/Microsoft.ResourceGraph/resources")
    response = client.send_request(HttpRequest("POST", url, params={"api-version": "2021-03-01"}, json=body))
    response.raise_for_status()
    return response.json()


def test_resource_graph_pages_with_skip_token(sb: Any) -> None:
    client = arm(sb)
    query = "resources | where type =~ 'microsoft.machinelearningservices/workspaces' | project id, name"
    rows, token, pages = [], None, 0
    while True:
        options: dict[str, Any] = {"$top": 2}
        if token:
            options["$skipToken"] = token
        body = _graph(client, {"query": query, "options": options})
        rows.extend(body["data"])
        pages += 1
        token = body.get("$skipToken")
        if not token:
            break
    assert pages == 3  # six home-tenant workspaces, two per page
    assert sorted(r["id"] for r in rows) == sorted(w.arm_id for w in home_workspaces(sb))
    one_sub = sb.subscriptions[0].subscription_id
    only = _graph(client, {"query": query, "subscriptions": [one_sub]})
    assert {r["subscriptionId"] for r in only["data"]} == {one_sub}


def test_resource_graph_denied_for_an_identity(sb: Any) -> None:
    client = arm(sb)
    sb.deny_resource_graph(sb.sp)
    try:
        with pytest.raises(HttpResponseError) as err:
            _graph(client, {"query": "resources | where type =~ 'microsoft.machinelearningservices/workspaces'"})
        assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    finally:
        sb.deny_resource_graph(sb.sp, False)
    with pytest.raises(HttpResponseError) as err:
        _graph(client, {"query": "resources | where type =~ 'microsoft.compute/virtualmachines'"})
    assert err.value.status_code == 400


def test_requests_are_served_concurrently_under_latency(sb: Any) -> None:
    client = arm(sb)
    get(client, "/subscriptions?api-version=2022-12-01")  # token fetched before timing
    sb.inject("subscriptions", latency=0.5)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: get(arm(sb), "/subscriptions?api-version=2022-12-01"), range(10)))
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"10 requests with 0.5 s latency each took {elapsed:.1f} s: served one at a time"


def test_429_with_retry_after_is_retried_no_earlier_than_asked(sb: Any) -> None:
    client = arm(sb)
    get(client, "/subscriptions?api-version=2022-12-01")
    sb.clear_requests()
    fault = sb.inject("workspace", status=429, retry_after=1, times=1)
    w = sb.workspaces[0]
    assert get(client, w.arm_id)["name"] == w.name
    calls = [r for r in sb.requests if r.endpoint == "workspace"]
    assert [c.status for c in calls] == [429, 200] and fault.hits == 1
    assert calls[1].time - calls[0].time >= 1.0


def test_503_then_success_and_dropped_connection(sb: Any) -> None:
    client = arm(sb)
    w = sb.workspaces[0]
    sb.inject("workspace", status=503, times=1)
    assert get(client, w.arm_id)["name"] == w.name
    sb.clear_requests()
    sb.inject("workspace", drop=True, times=1)
    assert get(client, w.arm_id)["name"] == w.name
    statuses = [r.status for r in sb.requests if r.endpoint == "workspace"]
    assert statuses == [0, 200]  # 0: dropped without an answer


def test_stall_outlasts_the_client_timeout(sb: Any) -> None:
    client = arm(sb, retry_total=0, read_timeout=1)
    get(client, "/subscriptions?api-version=2022-12-01")
    sb.inject("workspace", stall=3, times=1)
    started = time.monotonic()
    with pytest.raises((ServiceResponseError, ServiceRequestError)):
        get(client, sb.workspaces[0].arm_id)
    assert time.monotonic() - started < 2.5


def test_identity_scoped_fault_and_request_log(sb: Any) -> None:
    fault = sb.inject("workspace", status=500, identity=sb.norole_sp, times=1)
    client = arm(sb)
    sb.clear_requests()
    assert get(client, sb.workspaces[0].arm_id)
    assert fault.hits == 0  # another identity's requests are not affected
    log = sb.requests
    token_calls = [r for r in log if r.endpoint == "token"]
    ws_calls = [r for r in log if r.endpoint == "workspace"]
    assert token_calls[0].identity_name == "sandbox-sp"
    assert ws_calls[0].identity == sb.sp.object_id and ws_calls[0].token_id
    assert ws_calls[0].tenant == sb.tenant_id
    secrets = sb.issued_secrets()
    assert sb.sp.client_secret in secrets
    assert all(s not in repr(log) for s in secrets)
    assert sorted(sb.endpoints) == sorted(set(sb.endpoints))
    assert {"token", "workspace", "resource_graph", "subscriptions", "metadata"} <= set(sb.endpoints)
