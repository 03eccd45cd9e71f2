"""Sandbox part 1: the unmodified azure-identity credentials sign in against the sandbox."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import (
    AuthenticationRequiredError,
    CertificateCredential,
    ClientSecretCredential,
    DeviceCodeCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)


@pytest.fixture(autouse=True, scope="module")
def _mask_msal_debug_log() -> None:
    # These tests drive raw azure-identity. MSAL logs the device code it redeemed at DEBUG;
    # jupyter_amlflow masks it (``_redact``), and so must any test that lets MSAL log.
    from jupyter_amlflow import _redact

    _redact.install()


@pytest.fixture(scope="module")
def sb(sandbox_factory: Any) -> Any:
    return sandbox_factory(subscriptions=3, workspaces_per_subscription=2, tenants=2, mlflow=False)


@pytest.fixture
def sb_env(sb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    return sb


def scope(sb: Any) -> str:
    return sb.arm_url + ".default"


def kw(sb: Any) -> dict[str, Any]:
    return {"authority": sb.authority_url, "disable_instance_discovery": True}


def subscription_names(sb: Any, credential: Any) -> list[str]:
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    client = SubscriptionClient(credential, base_url=sb.arm_url, credential_scopes=[scope(sb)])
    return sorted(s.display_name for s in client.subscriptions.list())


def test_client_secret_lists_tenants_and_home_subscriptions(sb_env: Any) -> None:
    sb = sb_env
    sp = sb.service_principal
    cred = ClientSecretCredential(sp["AZURE_TENANT_ID"], sp["AZURE_CLIENT_ID"], sp["AZURE_CLIENT_SECRET"], **kw(sb))
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    client = SubscriptionClient(cred, base_url=sb.arm_url, credential_scopes=[scope(sb)])
    assert sorted(t.tenant_id for t in client.tenants.list()) == sorted(t.tenant_id for t in sb.tenants)
    # Three subscriptions over two tenants: the home tenant's token sees subscriptions 1 and 3.
    assert subscription_names(sb, cred) == ["Sandbox Subscription 1", "Sandbox Subscription 3"]
    other = ClientSecretCredential(sb.tenants[1].tenant_id, sp["AZURE_CLIENT_ID"], sp["AZURE_CLIENT_SECRET"], **kw(sb))
    assert subscription_names(sb, other) == ["Sandbox Subscription 2"]


def test_wrong_client_secret_is_a_clean_authentication_error(sb_env: Any) -> None:
    sb = sb_env
    cred = ClientSecretCredential(sb.tenant_id, sb.sp.client_id, "not-the-secret", **kw(sb))
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        cred.get_token(scope(sb))


def test_unknown_tenant_is_refused(sb_env: Any) -> None:
    sb = sb_env
    cred = ClientSecretCredential("contoso.example", sb.sp.client_id, sb.sp.client_secret, **kw(sb))
    with pytest.raises(ClientAuthenticationError):
        cred.get_token(scope(sb))


@pytest.mark.parametrize("form", ["pem", "pfx"])
def test_certificate_credential(sb_env: Any, form: str) -> None:
    sb = sb_env
    env = sb.certificate_principal if form == "pem" else sb.certificate_principal_pfx
    cred = CertificateCredential(
        env["AZURE_TENANT_ID"],
        env["AZURE_CLIENT_ID"],
        env["AZURE_CLIENT_CERTIFICATE_PATH"],
        password=env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        **kw(sb),
    )
    assert subscription_names(sb, cred) == ["Sandbox Subscription 1", "Sandbox Subscription 3"]
    assert sb.requests[-1].identity_name == "sandbox-sp-cert"


def test_certificate_of_another_principal_is_refused(sb_env: Any) -> None:
    sb = sb_env
    # The certificate principal's certificate, presented for the secret principal's client id.
    cred = CertificateCredential(
        sb.tenant_id, sb.sp.client_id, sb.certificate_principal["AZURE_CLIENT_CERTIFICATE_PATH"], **kw(sb)
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        cred.get_token(scope(sb))


def test_workload_identity(sb_env: Any) -> None:
    sb = sb_env
    env = sb.workload_identity_env()
    cred = WorkloadIdentityCredential(
        tenant_id=env["AZURE_TENANT_ID"],
        client_id=env["AZURE_CLIENT_ID"],
        token_file_path=env["AZURE_FEDERATED_TOKEN_FILE"],
        **kw(sb),
    )
    assert subscription_names(sb, cred) == ["Sandbox Subscription 1", "Sandbox Subscription 3"]
    assert sb.requests[-1].identity_name == "sandbox-workload"


@pytest.mark.parametrize("style", ["identity_endpoint", "msi_endpoint"])
def test_managed_identity_through_environment_endpoints(
    sb_env: Any, monkeypatch: pytest.MonkeyPatch, style: str
) -> None:
    sb = sb_env
    env = sb.managed_identity_env if style == "identity_endpoint" else sb.msi_endpoint_env
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cred = ManagedIdentityCredential()
    token = cred.get_token(scope(sb))
    assert token.expires_on > time.time() + 60
    msi = [r for r in sb.requests if r.endpoint == "msi"]
    assert msi[-1].identity_name == "sandbox-vm" and msi[-1].status == 200
    assert subscription_names(sb, cred) == ["Sandbox Subscription 1", "Sandbox Subscription 3"]


def test_managed_identity_header_is_checked(sb_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = sb_env
    monkeypatch.setenv("IDENTITY_ENDPOINT", sb.managed_identity_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", "wrong-header-value")
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(scope(sb))


def _device_code_credential(sb: Any, prompts: list[tuple[str, str, Any]], **extra: Any) -> DeviceCodeCredential:
    return DeviceCodeCredential(
        tenant_id=sb.tenant_id,
        prompt_callback=lambda url, code, expires: prompts.append((url, code, expires)),
        **kw(sb),
        **extra,
    )


def _answer_device_code(sb: Any, action: str, user: str | None = None) -> threading.Thread:
    def run() -> None:
        pending = sb.wait_for_device_code(20)
        if action == "approve":
            sb.approve_device_code(pending.user_code, user)
        elif action == "decline":
            sb.decline_device_code(pending.user_code)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("user", [None, "bob"])
def test_device_code_approved_signs_in_the_approving_user(sb_env: Any, user: str | None) -> None:
    sb = sb_env
    username = None if user is None else sb.bob.username
    prompts: list[tuple[str, str, Any]] = []
    thread = _answer_device_code(sb, "approve", username)
    record = _device_code_credential(sb, prompts).authenticate(scopes=[scope(sb)])
    thread.join(5)
    expected = sb.alice.username if user is None else sb.bob.username
    assert record.username == expected
    assert record.tenant_id == sb.tenant_id
    url, code, _expires = prompts[0]
    assert url == f"{sb.base_url}/devicelogin" and len(code) == 9
    assert [r.identity_name for r in sb.requests if r.endpoint == "token"][-1] == expected


def test_device_code_declined(sb_env: Any) -> None:
    sb = sb_env
    thread = _answer_device_code(sb, "decline")
    with pytest.raises(ClientAuthenticationError, match=r"authorization_declined|denied"):
        _device_code_credential(sb, []).get_token(scope(sb))
    thread.join(5)


def test_device_code_expired(sb_factory_short: Any) -> None:
    sb = sb_factory_short
    with pytest.raises(ClientAuthenticationError, match=r"expired|[Tt]imed out"):
        _device_code_credential(sb, []).get_token(scope(sb))


@pytest.fixture(scope="module")
def sb_factory_short(sandbox_factory: Any, monkeypatch_module: pytest.MonkeyPatch) -> Any:
    sb = sandbox_factory(subscriptions=1, workspaces_per_subscription=1, mlflow=False, device_code_lifetime=2)
    for k, v in sb.env.items():
        monkeypatch_module.setenv(k, v)
    return sb


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_device_login_page_approves_by_form(sb_env: Any) -> None:
    import requests

    sb = sb_env
    prompts: list[tuple[str, str, Any]] = []
    result: dict[str, Any] = {}

    def sign_in() -> None:
        result["record"] = _device_code_credential(sb, prompts).authenticate(scopes=[scope(sb)])

    thread = threading.Thread(target=sign_in, daemon=True)
    thread.start()
    pending = sb.wait_for_device_code(20)

    def page_token() -> str:
        # The page's one-time token, which the form must send back (see sandbox/_access.py).
        page = requests.get(f"{sb.base_url}/devicelogin", verify=sb.ca_bundle, timeout=10)
        assert 'name="code"' in page.text and sb.bob.username in page.text
        return re.search(r'name="page_token" value="([^"]+)"', page.text).group(1)

    password = sb.user_password(sb.bob)
    wrong = requests.post(
        f"{sb.base_url}/devicelogin",
        data={
            "code": "NOPE", "user": sb.bob.username, "password": password, "action": "approve",
            "page_token": page_token(),
        },
        verify=sb.ca_bundle,
        timeout=10,
    )  # fmt: skip
    assert wrong.status_code == 400 and "That code did not work" in wrong.text
    ok = requests.post(
        f"{sb.base_url}/devicelogin",
        data={
            "code": pending.user_code.lower(), "user": sb.bob.username, "password": password,
            "action": "approve", "page_token": page_token(),
        },
        verify=sb.ca_bundle,
        timeout=10,
    )  # fmt: skip
    assert ok.status_code == 200 and "You have signed in" in ok.text
    thread.join(20)
    assert result["record"].username == sb.bob.username


def test_user_in_two_tenants_gets_a_token_per_tenant(sb_env: Any) -> None:
    sb = sb_env
    thread = _answer_device_code(sb, "approve")
    cred = _device_code_credential(sb, [], additionally_allowed_tenants=["*"])
    cred.authenticate(scopes=[scope(sb)])
    thread.join(5)
    names = set(subscription_names(sb, cred))
    second = sb.tenants[1].tenant_id
    token = cred.get_token(scope(sb), tenant_id=second)
    assert token.token
    # The second tenant's token was got silently, with the refresh token: no new device code.
    assert [r for r in sb.requests if r.endpoint == "token"][-1].tenant == second
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    class PinnedTenant:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            return cred.get_token(*scopes, tenant_id=second)

    other = SubscriptionClient(PinnedTenant(), base_url=sb.arm_url, credential_scopes=[scope(sb)])
    names |= {s.display_name for s in other.subscriptions.list()}
    assert names == {"Sandbox Subscription 1", "Sandbox Subscription 2", "Sandbox Subscription 3"}


def test_bob_cannot_get_a_token_for_a_tenant_he_is_not_in(sb_env: Any) -> None:
    sb = sb_env
    thread = _answer_device_code(sb, "approve", sb.bob.username)
    cred = _device_code_credential(sb, [], additionally_allowed_tenants=["*"], disable_automatic_authentication=True)
    cred.authenticate(scopes=[scope(sb)])
    thread.join(5)
    second = sb.tenants[1].tenant_id
    # The silent refresh against the second tenant is refused; with automatic authentication
    # off, azure-identity says so instead of starting a new device-code flow.
    with pytest.raises(AuthenticationRequiredError):
        cred.get_token(scope(sb), tenant_id=second)
    refused = [r for r in sb.requests if r.endpoint == "token"][-1]
    assert refused.status == 400 and "/" + second + "/" in refused.path
