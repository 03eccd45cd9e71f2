"""The arm package against the sandbox: listing and paging, discovery, error translation, faults, concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.identity import ClientSecretCredential, DeviceCodeCredential
from helpers import answer_device_code

from jupyter_amlflow import auth
from jupyter_amlflow.arm import ArmClient, Discovery, WorkspaceInfo, WrongTenant, fetch_cloud_metadata
from jupyter_amlflow.clouds import Cloud, clouds_from_metadata
from jupyter_amlflow.errors import (
    CloudError,
    ConnectTimeout,
    NotFound,
    PermissionDenied,
    ServiceError,
    SignInError,
)
from jupyter_amlflow.references import WorkspaceRef, from_names

READ = "Microsoft.MachineLearningServices/workspaces/read"


# -- sandboxes ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sb(sandbox_factory: Any) -> Any:
    """Seven subscriptions over three tenants, pages of two everywhere (Resource Graph too)."""
    box = sandbox_factory(
        mlflow=False, subscriptions=7, workspaces_per_subscription=3, tenants=3, page_size=2, resource_graph_page_size=2
    )
    # A private-link workspace: its tracking URI names its own host, which must survive as is.
    box.add_workspace(box.subscriptions[0], "rg-private", "mlw-private", "eastus", private_link=True)
    return box


@pytest.fixture(scope="module")
def sb2(sandbox_factory: Any) -> Any:
    """Three subscriptions in two tenants (the issue's cross-tenant case)."""
    return sandbox_factory(mlflow=False, subscriptions=3, workspaces_per_subscription=2, tenants=2)


@pytest.fixture(scope="module")
def big(sandbox_factory: Any) -> Any:
    """100 subscriptions x 5 workspaces (the concurrency benchmark)."""
    return sandbox_factory(mlflow=False, subscriptions=100, workspaces_per_subscription=5)


@pytest.fixture(autouse=True, scope="module")
def _mask_msal_debug_log() -> None:
    # The device-code test drives azure-identity directly; MSAL logs the redeemed code at DEBUG.
    from jupyter_amlflow import _redact

    _redact.install()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], Any]:
    """Point this test's environment (CA bundle above all) at a sandbox; clear its faults after."""
    used: list[Any] = []

    def use(box: Any) -> Any:
        for k, v in box.env.items():
            monkeypatch.setenv(k, v)
        used.append(box)
        return box

    yield use
    for box in used:
        box.clear_faults()


@pytest.fixture
def s(env: Callable[[Any], Any], sb: Any) -> Any:
    return env(sb)


@pytest.fixture
def s2(env: Callable[[Any], Any], sb2: Any) -> Any:
    return env(sb2)


# -- helpers -----------------------------------------------------------------------------------
def cloud_of(box: Any) -> Cloud:
    (cloud,) = clouds_from_metadata(box.cloud_metadata(), box.metadata_url)
    return cloud


def secret_credential(box: Any, tenant: str | None = None, principal: Any = None) -> ClientSecretCredential:
    p = principal or box.sp
    return ClientSecretCredential(
        tenant or box.tenant_id,
        p.client_id,
        p.client_secret,
        authority=box.authority_url,
        disable_instance_discovery=True,
    )


def client(box: Any, principal: Any = None, **kwargs: Any) -> ArmClient:
    """An ArmClient for a service principal, with a credential per tenant like auth provides."""
    per_tenant: dict[str, ClientSecretCredential] = {}

    def for_tenant(tenant_id: str) -> ClientSecretCredential:
        return per_tenant.setdefault(tenant_id, secret_credential(box, tenant_id, principal))

    return ArmClient(for_tenant(box.tenant_id), cloud_of(box), credential_for_tenant=for_tenant, **kwargs)


def new_principal(box: Any, name: str) -> Any:
    """A service principal of its own (in every tenant) for tests that take rights away."""
    return box.add_service_principal(name, tenants=[t.tenant_id for t in box.tenants])


def ref(w: Any) -> WorkspaceRef:
    return from_names(w.subscription_id, w.resource_group, w.name)


def ids(workspaces: list[WorkspaceInfo]) -> set[str]:
    return {w.arm_id for w in workspaces}


def expected(box: Any, tenants: set[str] | None = None, subs: set[str] | None = None) -> set[str]:
    return {
        w.arm_id
        for w in box.workspaces
        if (tenants is None or w.tenant_id in tenants) and (subs is None or w.subscription_id in subs)
    }


def settled(box: Any) -> list[Any]:
    """The request log once it has stopped growing.

    The sandbox logs a request just after answering it, so a client can be done before the
    line is written; reading the log at once can miss the last request (or count it in the
    next test step).
    """
    log = box.requests
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        time.sleep(0.03)
        now = box.requests
        if len(now) == len(log):
            return now
        log = now
    return log


def mark(box: Any) -> int:
    """Where the next step's requests start in the log."""
    return len(settled(box))


def arm_calls(box: Any, since: int = 0) -> list[Any]:
    """Requests to Resource Manager (not Entra ID) since index ``since`` of the log."""
    return [r for r in settled(box)[since:] if r.endpoint not in ("token", "openid", "instance", "authorize")]


def calls(box: Any, endpoint: str, since: int = 0) -> list[Any]:
    return [r for r in settled(box)[since:] if r.endpoint == endpoint]


class Collector:
    """An ``on_found`` that records what arrived, when, and on which thread."""

    def __init__(self) -> None:
        self.batches: list[list[WorkspaceInfo]] = []
        self.times: list[float] = []
        self.threads: set[int] = set()

    def __call__(self, batch: list[WorkspaceInfo]) -> None:
        self.batches.append(batch)
        self.times.append(time.monotonic())
        self.threads.add(threading.get_ident())

    @property
    def found(self) -> list[WorkspaceInfo]:
        return [w for b in self.batches for w in b]


def home_subs(box: Any) -> list[Any]:
    return [x for x in box.subscriptions if x.tenant_id == box.tenant_id]


# -- module hygiene ----------------------------------------------------------------------------
def test_importing_arm_loads_no_azure_library() -> None:
    code = "import sys, jupyter_amlflow.arm; print(sorted(m for m in sys.modules if m.split('.')[0] == 'azure'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# -- cloud metadata ------------------------------------------------------------------------------
def test_fetch_cloud_metadata_returns_the_document(s: Any) -> None:
    assert fetch_cloud_metadata(s.metadata_url, timeout=10) == s.cloud_metadata()
    assert [r.endpoint for r in settled(s)[-1:]] == ["metadata"]


def test_fetch_cloud_metadata_errors_say_what_to_check(s: Any) -> None:
    with pytest.raises(CloudError) as err:
        fetch_cloud_metadata(f"{s.base_url}/no/such/document", timeout=10)
    assert str(err.value) == (
        f"Could not fetch the cloud metadata document {s.base_url.split('//')[1]}/no/such/document. "
        "It answered 404 Not Found. "
        "Check the URL (it usually ends /metadata/endpoints?api-version=2019-05-01)."
    )
    with pytest.raises(CloudError, match="not an http"):
        fetch_cloud_metadata("file:///etc/passwd")


def test_fetch_cloud_metadata_gives_up_at_the_timeout(s: Any) -> None:
    s.inject("metadata", stall=5, times=1)
    started = time.monotonic()
    with pytest.raises(ConnectTimeout) as err:
        fetch_cloud_metadata(s.metadata_url, timeout=1)
    assert time.monotonic() - started < 2
    assert err.value.endpoint == f"Cloud metadata: GET {s.base_url}/metadata/endpoints"
    assert str(err.value).startswith(f"Cloud metadata: GET {s.base_url}/metadata/endpoints did not answer within 1 s.")


# -- listing and paging ----------------------------------------------------------------------------
def test_tenants_follow_paging(s: Any) -> None:
    start = mark(s)
    tenants = client(s).tenants()
    assert [(t.tenant_id, t.display_name, t.default_domain) for t in tenants] == [
        (t.tenant_id, t.display_name, t.default_domain) for t in s.tenants
    ]
    assert len(calls(s, "tenants", start)) == 2  # three tenants, two per page


def test_subscriptions_follow_paging_in_each_tenant(s: Any) -> None:
    c = client(s)
    start = mark(s)
    subs = c.subscriptions()
    assert {x.subscription_id for x in subs} == {x.subscription_id for x in home_subs(s)}
    assert len(subs) == 3 and len(calls(s, "subscriptions", start)) == 2
    assert {x.tenant_id for x in subs} == {s.tenant_id} and {x.state for x in subs} == {"Enabled"}
    second = s.tenants[1].tenant_id
    assert {x.subscription_id for x in c.subscriptions(tenant_id=second)} == {
        x.subscription_id for x in s.subscriptions if x.tenant_id == second
    }
    assert calls(s, "subscriptions")[-1].tenant == second


def test_workspaces_follow_paging_per_subscription_and_resource_group(s: Any) -> None:
    c = client(s)
    sub = home_subs(s)[1]
    start = mark(s)
    found = c.workspaces(sub.subscription_id)
    assert ids(found) == expected(s, subs={sub.subscription_id})
    assert len(calls(s, "workspaces", start)) == 2  # three workspaces, two per page
    assert ids(c.workspaces(sub.subscription_id, found[0].resource_group)) == ids(found)
    assert all(w.tenant_id == sub.tenant_id and w.tracking_uri and w.workspace_id for w in found)


def test_workspace_get_is_exactly_one_request(s: Any) -> None:
    c = client(s)
    c.subscriptions()  # the token is fetched; only the workspace GET is counted
    w = s.workspaces[0]
    start = mark(s)
    info = c.workspace(ref(w))
    assert [(r.endpoint, r.status) for r in settled(s)[start:]] == [("workspace", 200)]
    assert info == WorkspaceInfo(
        subscription_id=w.subscription_id,
        resource_group=w.resource_group,
        name=w.name,
        location=w.location,
        tracking_uri=w.tracking_uri,
        workspace_id=w.workspace_id,
        tenant_id=w.tenant_id,
        arm_id=w.arm_id,
        friendly_name=w.name,
    )
    assert info.label == f"{w.name} — {w.resource_group} — {w.location}"


def test_private_link_tracking_uri_is_kept(s: Any) -> None:
    private = next(w for w in s.workspaces if w.private_link)
    info = client(s).workspace(ref(private))
    assert info.tracking_uri == private.tracking_uri
    assert info.tracking_uri.startswith(f"azureml://localhost:{s.base_url.rsplit(':', 1)[1]}/mlflow/v1.0/")


# -- discovery -----------------------------------------------------------------------------------
def test_discovery_uses_resource_graph_and_delivers_each_page(s: Any) -> None:
    c = client(s)
    c.subscriptions()
    start = mark(s)
    seen = Collector()
    result = c.discover_workspaces(on_found=seen)
    want = expected(s, tenants={s.tenant_id})
    assert result.method == "Resource Graph" and result.errors == {}
    assert ids(result.workspaces) == want and ids(seen.found) == want
    graph = calls(s, "resource_graph", start)
    assert len(graph) == -(-len(want) // 2)  # one POST per page of two rows, nothing else
    assert {r.endpoint for r in arm_calls(s, start)} == {"resource_graph"}
    assert len(seen.batches) == len(graph) and all(len(b) <= 2 for b in seen.batches)
    assert seen.threads == {threading.get_ident()}  # handed over on the caller's thread
    names = [w.name.lower() for w in result.workspaces]
    assert names == sorted(names)


def test_discovery_falls_back_to_listing_each_subscription(s: Any) -> None:
    p = new_principal(s, "arm-test-no-graph")
    s.deny_resource_graph(p)
    c = client(s, p)
    start = mark(s)
    seen = Collector()
    result = c.discover_workspaces(on_found=seen)
    want = expected(s, tenants={s.tenant_id})
    assert result.method == "per-subscription listing" and result.errors == {}
    assert ids(result.workspaces) == want and ids(seen.found) == want
    assert [r.status for r in calls(s, "resource_graph", start)] == [403]
    assert len(calls(s, "subscriptions", start)) == 2
    listed = calls(s, "workspaces", start)
    assert len(listed) == len(seen.batches) == 6  # three subscriptions of three or four workspaces, two a page
    assert seen.threads == {threading.get_ident()}


def test_discovery_of_some_subscriptions(s: Any) -> None:
    subs = [x.subscription_id for x in home_subs(s)[:2]]
    want = expected(s, subs=set(subs))
    assert ids(client(s).discover_workspaces(subs).workspaces) == want
    p = new_principal(s, "arm-test-some-subs")
    s.deny_resource_graph(p)
    start = mark(s)
    result = client(s, p).discover_workspaces(subs)
    assert ids(result.workspaces) == want and result.method == "per-subscription listing"
    assert calls(s, "subscriptions", start) == []  # the subscriptions were given: no need to list them


def test_discovery_across_all_tenants(s: Any) -> None:
    start = mark(s)
    result = client(s).discover_workspaces(all_tenants=True)
    assert ids(result.workspaces) == expected(s) and result.errors == {}
    assert result.method == "Resource Graph"
    assert {r.tenant for r in calls(s, "resource_graph", start)} == {t.tenant_id for t in s.tenants}
    assert [r.endpoint for r in arm_calls(s, start)].count("tenants") == 2  # three tenants, two a page
    # The caller knows the tenants already: no second GET /tenants.
    start = mark(s)
    two = [t.tenant_id for t in s.tenants[:2]]
    some = client(s).discover_workspaces(tenant_ids=two)
    assert ids(some.workspaces) == expected(s, tenants=set(two))
    assert "tenants" not in {r.endpoint for r in arm_calls(s, start)}
    with pytest.raises(ValueError, match="credential_for_tenant"):
        ArmClient(secret_credential(s), cloud_of(s)).discover_workspaces(all_tenants=True)


def test_same_set_across_two_tenants_with_and_without_resource_graph(s2: Any) -> None:
    """Discovery over 3 subscriptions in 2 tenants, with Resource Graph allowed and denied, returns the same set."""
    p = new_principal(s2, "arm-test-two-tenants")
    every = expected(s2)
    assert len(every) == 6 and len({w.tenant_id for w in s2.workspaces}) == 2
    allowed = client(s2, p).discover_workspaces(all_tenants=True)
    s2.deny_resource_graph(p)
    denied = client(s2, p).discover_workspaces(all_tenants=True)
    assert allowed.method == "Resource Graph" and denied.method == "per-subscription listing"
    assert ids(allowed.workspaces) == ids(denied.workspaces) == every
    assert allowed.workspaces == denied.workspaces
    assert allowed.errors == denied.errors == {}


def test_same_set_for_a_device_code_user_in_two_tenants(s2: Any) -> None:
    """Alice signs in once by device code; auth.credential_for_tenant gets her a token per tenant."""
    thread = answer_device_code(s2, "approve", timeout=30)
    device = DeviceCodeCredential(
        tenant_id=s2.tenant_id,
        authority=s2.authority_url,
        disable_instance_discovery=True,
        additionally_allowed_tenants=["*"],
        prompt_callback=lambda *_: None,
    )
    device.authenticate(scopes=[cloud_of(s2).arm_scope])
    thread.join(10)
    signin = auth.SignIn(
        credential=device,
        method="device-code",
        identity=auth.Identity("user", s2.alice.username, s2.alice.object_id, s2.tenant_id),
        tenant_id=s2.tenant_id,
        attempts=[],
    )
    c = ArmClient(device, cloud_of(s2), credential_for_tenant=lambda t: auth.credential_for_tenant(signin, t))
    start = mark(s2)
    allowed = c.discover_workspaces(all_tenants=True)
    s2.deny_resource_graph(s2.alice)
    try:
        denied = c.discover_workspaces(all_tenants=True)
    finally:
        s2.deny_resource_graph(s2.alice, False)
    assert ids(allowed.workspaces) == ids(denied.workspaces) == expected(s2)
    assert (allowed.method, denied.method) == ("Resource Graph", "per-subscription listing")
    assert {r.tenant for r in arm_calls(s2, start)} == {t.tenant_id for t in s2.tenants}
    assert {r.identity_name for r in arm_calls(s2, start)} == {s2.alice.username}
    assert calls(s2, "devicecode", start) == []  # the second tenant's token came silently


def test_denied_and_slow_subscriptions_do_not_hold_up_the_others(s: Any) -> None:
    p = new_principal(s, "arm-test-denied-slow")
    s.deny_resource_graph(p)
    subs = home_subs(s)
    denied = subs[1].subscription_id
    s.revoke_roles(p, f"/subscriptions/{denied}")
    # The first workspace listing this principal sends answers 1.5 s late; the rest at once.
    s.inject("workspaces", latency=1.5, times=1, identity=p)
    seen = Collector()
    started = time.monotonic()
    result = client(s, p).discover_workspaces([x.subscription_id for x in subs], on_found=seen)
    elapsed = time.monotonic() - started
    others = {x.subscription_id for x in subs} - {denied}
    assert ids(result.workspaces) == expected(s, subs=others)
    assert list(result.errors) == [denied]
    err = result.errors[denied]
    assert isinstance(err, PermissionDenied) and err.action == READ
    assert str(err) == (
        f"Could not list the workspaces of subscription {denied}. "
        f"The signed-in identity is not allowed '{READ}' on /subscriptions/{denied} (AuthorizationFailed). "
        "Ask an owner for a role that allows it, such as Reader or AzureML Data Scientist on the subscription; "
        "then run %amlflow list workspaces again."
    )
    assert elapsed >= 1.5
    # The late listing's subscription; every other subscription's pages arrived while it waited.
    (late,) = [r for r in settled(s) if r.identity == p.object_id and r.duration >= 1.5]
    slow_sub = late.path.split("/")[2]
    early = [t - started for b, t in zip(seen.batches, seen.times, strict=True) if b[0].subscription_id != slow_sub]
    late_ones = [t - started for b, t in zip(seen.batches, seen.times, strict=True) if b[0].subscription_id == slow_sub]
    assert early and max(early) < 1.0, early
    assert all(t >= 1.5 for t in late_ones)


def test_discovery_raises_when_the_signed_in_tenant_gives_no_token(s: Any) -> None:
    wrong = ClientSecretCredential(
        s.tenant_id, s.sp.client_id, "not-the-secret", authority=s.authority_url, disable_instance_discovery=True
    )
    with pytest.raises(SignInError) as err:
        ArmClient(wrong, cloud_of(s)).discover_workspaces()
    assert str(err.value).startswith(
        "Could not query Resource Graph for workspaces. No Resource Manager token could be had: "
    )
    assert str(err.value).endswith("Sign in again: %amlflow logout, then %amlflow list workspaces.")


# -- error translation -----------------------------------------------------------------------------
def test_403_quotes_the_action(s: Any, secret_check: Any) -> None:
    w = s.workspaces[0]
    with pytest.raises(PermissionDenied) as err:
        client(s, s.norole_sp).workspace(ref(w))
    assert err.value.action == READ
    assert err.value.endpoint == f"Resource Manager: GET workspace {w.name}"
    assert str(err.value) == (
        f"Could not read workspace '{w.name}' (resource group '{w.resource_group}', subscription {w.subscription_id}). "
        f"The signed-in identity is not allowed '{READ}' on {w.arm_id} (AuthorizationFailed). "
        f"Ask an owner for a role that allows it, such as AzureML Data Scientist on workspace '{w.name}'; "
        "then run %amlflow connect again."
    )
    secret_check.scan(str(err.value))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("workspace", "There is no workspace 'no-such-ws' in resource group '{rg}'"),
        ("resource_group", "Resource group 'no-such-rg' does not exist in subscription {sub}"),
        ("subscription", "Subscription {sub} does not exist or is not visible to this sign-in"),
    ],
)
def test_404s_name_the_missing_part_and_the_next_step(s: Any, change: str, why: str) -> None:
    w = s.workspaces[0]
    parts = {"subscription": w.subscription_id, "resource_group": w.resource_group, "workspace": w.name}
    parts[change] = {
        "workspace": "no-such-ws",
        "resource_group": "no-such-rg",
        "subscription": "00000000-0000-4000-8000-000000000000",
    }[change]
    sub, rg, name = parts["subscription"], parts["resource_group"], parts["workspace"]
    start = mark(s)
    with pytest.raises(NotFound) as err:
        client(s).workspace(from_names(sub, rg, name))
    assert str(err.value) == (
        f"Could not read workspace '{name}' (resource group '{rg}', subscription {sub}). "
        + why.format(rg=rg, sub=sub)
        + ". See the workspaces you can use: %amlflow list workspaces."
    )
    assert err.value.endpoint == f"Resource Manager: GET workspace {name}"
    assert len(arm_calls(s, start)) == 1  # a 404 is not retried


def test_wrong_tenant_names_the_tenant_to_use(s: Any) -> None:
    w = next(x for x in s.workspaces if x.tenant_id != s.tenant_id)
    with pytest.raises(WrongTenant) as err:
        ArmClient(secret_credential(s), cloud_of(s)).workspace(ref(w))
    assert isinstance(err.value, SignInError) and err.value.tenant_id == w.tenant_id
    assert str(err.value) == (
        f"Could not read workspace '{w.name}' (resource group '{w.resource_group}', subscription {w.subscription_id}). "
        f"Subscription {w.subscription_id} belongs to tenant {w.tenant_id}, and this sign-in is for another tenant. "
        f"Sign in to that tenant: %amlflow connect --tenant {w.tenant_id} --subscription {w.subscription_id} "
        f"--resource-group {w.resource_group} --workspace {w.name}."
    )
    # Listing reports it per subscription, naming the tenant too.
    p = new_principal(s, "arm-test-wrong-tenant")
    s.deny_resource_graph(p)
    result = client(s, p).discover_workspaces([w.subscription_id])
    listed = result.errors[w.subscription_id]
    assert isinstance(listed, WrongTenant) and listed.tenant_id == w.tenant_id
    assert listed.fix == f"Sign in to that tenant: %amlflow list workspaces --tenant {w.tenant_id}"


def test_a_token_failure_is_a_sign_in_error(s: Any) -> None:
    wrong = ClientSecretCredential(
        s.tenant_id, s.sp.client_id, "not-the-secret", authority=s.authority_url, disable_instance_discovery=True
    )
    start = mark(s)
    with pytest.raises(SignInError) as err:
        ArmClient(wrong, cloud_of(s)).workspace(ref(s.workspaces[0]))
    assert arm_calls(s, start) == []  # refused at the token endpoint: nothing reached Resource Manager
    assert "No Resource Manager token could be had" in str(err.value)
    assert err.value.__cause__ is not None  # translated once, with the cause kept


# -- faults ----------------------------------------------------------------------------------------
@pytest.fixture
def warm(s: Any) -> ArmClient:
    """A client with its token and connection ready, so only the faulted request is timed."""
    c = client(s, timeout=2)
    c.workspace(ref(s.workspaces[0]))
    return c


def test_429_is_retried_no_earlier_than_retry_after(s: Any, warm: ArmClient) -> None:
    fault = s.inject("workspace", status=429, retry_after=1, times=1)
    start = mark(s)
    assert warm.workspace(ref(s.workspaces[0])).name == s.workspaces[0].name
    log = calls(s, "workspace", start)
    assert [r.status for r in log] == [429, 200] and fault.hits == 1
    assert log[1].time - log[0].time >= 1.0


def test_retry_after_beyond_the_timeout_fails_at_once(s: Any, warm: ArmClient) -> None:
    s.inject("workspace", status=429, retry_after=30, times=1)
    start = mark(s)
    started = time.monotonic()
    with pytest.raises(ServiceError) as err:
        warm.workspace(ref(s.workspaces[0]))
    assert time.monotonic() - started < 1.0
    assert [r.status for r in calls(s, "workspace", start)] == [429]
    assert "it asked to wait 30 s, longer than the time left" in str(err.value)
    assert err.value.fix == "Wait a minute, then run %amlflow connect again"


def test_503_then_success(s: Any, warm: ArmClient) -> None:
    s.inject("workspace", status=503, times=1)
    start = mark(s)
    assert warm.workspace(ref(s.workspaces[0])).name == s.workspaces[0].name
    assert [r.status for r in calls(s, "workspace", start)] == [503, 200]


def test_503_every_time_fails_within_the_timeout(s: Any, warm: ArmClient) -> None:
    s.inject("workspace", status=503)
    start = mark(s)
    started = time.monotonic()
    with pytest.raises(ServiceError) as err:
        warm.workspace(ref(s.workspaces[0]))
    assert time.monotonic() - started < warm.timeout + 1
    assert 2 <= len(calls(s, "workspace", start)) <= warm.retries + 1
    assert "Resource Manager kept failing (503 ServiceUnavailable" in str(err.value)


def test_dropped_connection_then_success(s: Any, warm: ArmClient) -> None:
    s.inject("workspace", drop=True, times=1)
    start = mark(s)
    assert warm.workspace(ref(s.workspaces[0])).name == s.workspaces[0].name
    assert [r.status for r in calls(s, "workspace", start)] == [0, 200]  # 0: closed without an answer


def test_dropped_resource_graph_query_is_sent_again(s: Any) -> None:
    c = client(s)
    c.subscriptions()
    s.inject("resource_graph", drop=True, times=1)
    start = mark(s)
    result = c.discover_workspaces()
    assert result.method == "Resource Graph"
    assert [r.status for r in calls(s, "resource_graph", start)][:2] == [0, 200]


def test_a_stall_longer_than_the_timeout_fails_naming_the_endpoint(s: Any, warm: ArmClient) -> None:
    w = s.workspaces[0]
    s.inject("workspace", stall=5, times=1)
    started = time.monotonic()
    with pytest.raises(ConnectTimeout) as err:
        warm.workspace(ref(w))
    elapsed = time.monotonic() - started
    assert warm.timeout - 0.1 <= elapsed < warm.timeout + 1
    host = s.base_url.split("//")[1]
    assert err.value.endpoint == f"Resource Manager: GET workspace {w.name}"
    assert str(err.value) == (
        f"Resource Manager: GET workspace {w.name} did not answer within 2 s. "
        f"{host} is slow or unreachable from this kernel. "
        f"Try again; if it persists, check the network and proxy (HTTPS_PROXY) to {host}, "
        "or allow more time: --timeout 60 (%config AmlflowMagics.timeout = 60)."
    )


def test_latency_within_the_timeout_is_waited_for(s: Any, warm: ArmClient) -> None:
    s.inject("workspace", latency=1.2, times=1)
    assert warm.workspace(ref(s.workspaces[0])).name == s.workspaces[0].name


# -- concurrency -----------------------------------------------------------------------------------
@pytest.fixture
def bench(env: Callable[[Any], Any], big: Any) -> Iterator[tuple[Any, ArmClient]]:
    box = env(big)
    c = client(box)
    c.credential.get_token(c.cloud.arm_scope)  # signed in already, as after connect
    box.inject("*", latency=0.1)
    yield box, c
    box.clear_faults()
    box.deny_resource_graph(box.sp, False)


def test_discovery_with_resource_graph_is_one_request(bench: tuple[Any, ArmClient]) -> None:
    box, c = bench
    start = mark(box)
    result = c.discover_workspaces()
    assert len(result.workspaces) == 500 and result.method == "Resource Graph"
    assert [r.endpoint for r in arm_calls(box, start)] == ["resource_graph"]


def test_fallback_lists_subscriptions_concurrently(bench: tuple[Any, ArmClient]) -> None:
    box, c = bench
    box.deny_resource_graph(box.sp)
    start = mark(box)
    seen = Collector()
    result: Discovery = c.discover_workspaces(on_found=seen)
    assert len(result.workspaces) == 500 and result.method == "per-subscription listing"
    listed = calls(box, "workspaces", start)
    assert len(listed) == 100 and len(seen.batches) == 100
    # The request log shows how many were in flight together.
    spans = [(r.time - r.duration, r.time) for r in listed]
    peak = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert peak >= 8
