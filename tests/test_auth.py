"""auth.sign_in against the sandbox: every method that can run here, device code, tenants, persistence."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import answer_device_code

from jupyter_amlflow import auth
from jupyter_amlflow.clouds import Cloud, clouds_from_metadata
from jupyter_amlflow.errors import SignInError
from jupyter_amlflow.platform import detect_platform


@pytest.fixture(scope="module")
def sb(sandbox_factory: Any) -> Any:
    return sandbox_factory(subscriptions=3, workspaces_per_subscription=1, tenants=2, mlflow=False)


@pytest.fixture(scope="module")
def short_sb(sandbox_factory: Any) -> Any:
    """Device codes that expire after 2 s."""
    return sandbox_factory(subscriptions=1, workspaces_per_subscription=1, mlflow=False, device_code_lifetime=2)


def sandbox_cloud(sb: Any) -> Cloud:
    return clouds_from_metadata(sb.cloud_metadata(), sb.metadata_url)[0]


@pytest.fixture
def cloud(sb: Any, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    """The sandbox cloud, with this process pointed at it (CA bundle); no credential in the environment."""
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    return sandbox_cloud(sb)


class Recorder:
    """A renderer that records what sign_in tells it, and can wait for the prompt."""

    def __init__(self) -> None:
        self.prompts: list[auth.DeviceCodePrompt] = []
        self.outcomes: list[tuple[str, str]] = []
        self.shown = threading.Event()

    def show(self, prompt: auth.DeviceCodePrompt) -> None:
        self.prompts.append(prompt)
        self.shown.set()

    def finish(self, outcome: str, detail: str = "") -> None:
        self.outcomes.append((outcome, detail))


def answer(sb: Any, recorder: Recorder, action: str = "approve", user: str | None = None) -> threading.Thread:
    """As a person would: wait until the prompt is shown, then approve or decline its code."""

    def run() -> None:
        assert recorder.shown.wait(30)
        code = recorder.prompts[-1].user_code
        if action == "approve":
            sb.approve_device_code(code, user)
        else:
            sb.decline_device_code(code)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def requests_to(sb: Any, endpoint: str, since: float = 0.0) -> list[Any]:
    """The sandbox's log of one endpoint. It logs a request just after answering it, so give the
    last one a moment to land."""
    time.sleep(0.1)
    return [r for r in sb.requests if r.endpoint == endpoint and r.time >= since]


def subscription_names(sb: Any, credential: Any, scope: str) -> set[str]:
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    client = SubscriptionClient(credential, base_url=sb.arm_url, credential_scopes=[scope])
    return {s.display_name for s in client.subscriptions.list()}


# -- non-interactive methods ------------------------------------------------------------------------
def test_env_secret_signs_in_as_the_service_principal(sb: Any, cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in sb.service_principal.items():
        monkeypatch.setenv(k, v)
    signin = auth.sign_in(cloud, methods=["env"])
    assert signin.method == "env"
    assert signin.identity == auth.Identity("service principal", "sandbox-sp", sb.sp.object_id, sb.tenant_id)
    assert signin.tenant_id == sb.tenant_id
    assert signin.attempts == [auth.Attempt("env", "ok", "signed in as sandbox-sp (client secret)", "")]
    assert subscription_names(sb, signin.credential, cloud.arm_scope) == {
        "Sandbox Subscription 1",
        "Sandbox Subscription 3",
    }


@pytest.mark.parametrize("form", ["pem", "pfx"])
def test_env_certificate_signs_in(sb: Any, cloud: Cloud, form: str) -> None:
    env = {**os.environ, **(sb.certificate_principal if form == "pem" else sb.certificate_principal_pfx)}
    signin = auth.sign_in(cloud, methods=["env"], env=env)
    assert (signin.method, signin.identity.name, signin.identity.kind) == (
        "env",
        "sandbox-sp-cert",
        "service principal",
    )
    assert signin.attempts[0].reason == "signed in as sandbox-sp-cert (certificate)"
    assert [r for r in requests_to(sb, "token") if r.status == 200][-1].identity_name == "sandbox-sp-cert"


def test_unreadable_certificate_fails_with_the_variable_named(sb: Any, cloud: Cloud, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("not a certificate")
    env = {**os.environ, **sb.certificate_principal, "AZURE_CLIENT_CERTIFICATE_PATH": str(bad)}
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["env", "device-code"], env=env, renderer=Recorder())
    attempt = err.value.attempts[0]
    assert attempt.outcome == "failed" and "AZURE_CLIENT_CERTIFICATE_PATH could not be loaded" in attempt.reason
    assert len(err.value.attempts) == 1  # failed stops the chain: no device code was started


def test_workload_identity_signs_in(sb: Any, cloud: Cloud) -> None:
    env = {**os.environ, **sb.workload_identity_env()}
    signin = auth.sign_in(cloud, methods=["env", "workload-identity"], env=env)
    assert signin.method == "workload-identity" and signin.identity.name == "sandbox-workload"
    assert [a.outcome for a in signin.attempts] == ["unavailable", "ok"]
    assert signin.attempts[0].reason == "not set: AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)"


@pytest.mark.parametrize("style", ["identity_endpoint", "msi_endpoint"])
def test_managed_identity_signs_in_through_the_identity_endpoint(
    sb: Any, cloud: Cloud, monkeypatch: pytest.MonkeyPatch, style: str
) -> None:
    for k, v in (sb.managed_identity_env if style == "identity_endpoint" else sb.msi_endpoint_env).items():
        monkeypatch.setenv(k, v)
    signin = auth.sign_in(cloud, methods=["managed-identity"])
    assert signin.identity == auth.Identity("managed identity", "sandbox-vm", sb.vm_identity.object_id, sb.tenant_id)
    assert requests_to(sb, "msi")[-1].status == 200
    assert subscription_names(sb, signin.credential, cloud.arm_scope) == {
        "Sandbox Subscription 1",
        "Sandbox Subscription 3",
    }


def test_managed_identity_without_an_endpoint_is_unavailable_and_sends_nothing(sb: Any, cloud: Cloud) -> None:
    time.sleep(0.1)  # let the previous test's last request be logged first
    sb.clear_requests()
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["managed-identity"])
    assert err.value.attempts == [
        auth.Attempt(
            "managed-identity",
            "unavailable",
            "no identity endpoint is configured here (IDENTITY_ENDPOINT with IDENTITY_HEADER, or MSI_ENDPOINT)",
            "Managed identity works on Azure compute that sets IDENTITY_ENDPOINT or MSI_ENDPOINT; "
            "on an Azure VM run az login --identity and use cli",
        )
    ]
    assert sb.requests == []


def test_cli_and_powershell_absent_are_unavailable_with_the_install_hint(
    cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither az nor pwsh here
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["cli", "powershell"])
    assert str(err.value) == (
        "Could not sign in to AzureSandbox: no sign-in method is available here. "
        "Tried cli: unavailable, the Azure CLI (az) is not installed or not on PATH; "
        "powershell: unavailable, PowerShell (pwsh) is not installed or not on PATH. "
        "Set one up (cli: Install the Azure CLI (https://aka.ms/installazurecli), then run az login; "
        "powershell: Install PowerShell 7 (https://aka.ms/install-powershell) and the Az module "
        "(Install-Module Az), then run Connect-AzAccount)."
    )
    assert [a.outcome for a in err.value.attempts] == ["unavailable", "unavailable"]


def test_unavailable_moves_on_failed_stops_and_the_error_lists_both(
    sb: Any, cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    env = {**os.environ, "AZURE_TENANT_ID": sb.tenant_id, "AZURE_CLIENT_ID": sb.sp.client_id}
    env["AZURE_CLIENT_SECRET"] = "wrong-" + "x" * 20
    recorder = Recorder()
    started = time.time()
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["cli", "env", "device-code"], env=env, renderer=recorder)
    message = str(err.value)
    assert message.startswith(
        "Could not sign in to AzureSandbox with env. Tried cli: unavailable, the Azure CLI (az) is not "
        "installed or not on PATH; env: failed, AADSTS7000215: Invalid client secret provided."
    )
    assert message.endswith(
        "Check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (the secret's value, not its id, and not expired) or the "
        "certificate, and AZURE_TENANT_ID; or unset them to skip env."
    )
    assert "\n" not in message and "wrong-" not in message
    assert [a.method for a in err.value.attempts] == ["cli", "env"]
    assert requests_to(sb, "devicecode", started) == [] and recorder.prompts == []


def test_a_slow_token_endpoint_fails_within_the_timeout_and_says_what_to_check(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sandbox of its own: the stalled requests are still being answered (and logged) after the test.
    sb = sandbox_factory(subscriptions=0, workspaces_per_subscription=0, mlflow=False)
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    cloud = sandbox_cloud(sb)
    sb.inject("token", stall=6)
    started = time.monotonic()
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["env"], env={**os.environ, **sb.service_principal}, timeout=1)
    # One try plus two retries, each cut at 1 s, plus azure-core's backoff (0 s, 1.6 s).
    assert time.monotonic() - started < 8
    [attempt] = err.value.attempts
    assert attempt.outcome == "failed" and "Read timed out" in attempt.reason
    assert attempt.hint == (
        f"Check that this machine can reach {cloud.authority_host} (a proxy needs HTTPS_PROXY), "
        "or allow more time (timeout=)"
    )


def test_the_chain_prints_nothing_of_its_own(sb: Any, cloud: Cloud) -> None:
    # With no logging configured, azure-identity's per-credential warnings would go to stderr
    # (Python's last-resort handler), i.e. into the notebook cell. The SignInError is the report.
    code = textwrap.dedent(
        """
        import json, sys
        from jupyter_amlflow import auth
        from jupyter_amlflow.clouds import clouds_from_metadata
        cloud = clouds_from_metadata(json.loads(sys.argv[1]), None)[0]
        try:
            auth.sign_in(cloud, methods=["cli", "managed-identity", "env"])
        except auth.SignInError as exc:
            print(type(exc).__name__, [a.outcome for a in exc.attempts])
        """
    )
    env = {**os.environ, **sb.env, "AZURE_TENANT_ID": sb.tenant_id, "AZURE_CLIENT_ID": sb.sp.client_id}
    env["AZURE_CLIENT_SECRET"] = "wrong-" + "y" * 20
    child = subprocess.run(
        [sys.executable, "-c", code, json.dumps(sb.cloud_metadata())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.stderr == ""
    assert child.stdout == "SignInError ['unavailable', 'unavailable', 'failed']\n"


def test_arguments_are_checked_before_any_request(sb: Any, cloud: Cloud) -> None:
    time.sleep(0.1)  # let the previous test's last request be logged first
    sb.clear_requests()
    with pytest.raises(SignInError, match="Unknown sign-in method 'kerberos'"):
        auth.sign_in(cloud, methods=["env", "kerberos"])
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["env"], tenant_id="not a tenant\x1b[31m")
    assert str(err.value) == (
        "Tenant 'not a tenant\\x1b[31m' is not a tenant id. A tenant is a GUID or a domain such as "
        "contoso.onmicrosoft.com. Check --tenant, AZURE_TENANT_ID or tenant_id in config.json."
    )
    assert sb.requests == []


def test_defaults_come_from_the_platform_and_browser_is_never_tried_over_ssh(
    sb: Any, cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.1 50000 10.0.0.2 22")
    for k, v in sb.service_principal.items():
        monkeypatch.setenv(k, v)
    signin = auth.sign_in(cloud)  # methods by platform: env comes first
    assert signin.method == "env"
    ssh = detect_platform()
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["browser"], platform=ssh)
    assert err.value.attempts == [
        auth.Attempt(
            "browser", "unavailable", "no browser can be opened here (remote machine (SSH))", "Use device-code instead"
        )
    ]


# -- device code --------------------------------------------------------------------------------------
def test_device_code_approved_by_a_second_user_signs_that_user_in(sb: Any, cloud: Cloud) -> None:
    recorder = Recorder()
    thread = answer(sb, recorder, "approve", sb.bob.username)
    before = datetime.now(timezone.utc)
    signin = auth.sign_in(cloud, methods=["env", "device-code"], renderer=recorder)
    thread.join(10)
    assert signin.method == "device-code"
    assert signin.identity == auth.Identity("user", sb.bob.username, sb.bob.object_id, sb.tenant_id)
    [prompt] = recorder.prompts
    assert prompt.verification_uri == f"{sb.base_url}/devicelogin" and len(prompt.user_code) == 9
    assert 890 < (prompt.expires_at - before).total_seconds() < 910 and prompt.expires_at.tzinfo is not None
    assert prompt.message == (
        f"To sign in, open {sb.base_url}/devicelogin and enter the code {prompt.user_code} "
        f"(it expires at {prompt.expires_at:%H:%M:%S} UTC)."
    )
    # The renderer never sees the secret device code: only these fields exist (link_hosts: the
    # cloud's sign-in page hosts, none for the sandbox's custom cloud).
    assert sorted(vars(prompt)) == ["expires_at", "link_hosts", "message", "user_code", "verification_uri"]
    assert prompt.link_hosts == ()
    assert recorder.outcomes == [("signed-in", f"Signed in as {sb.bob.username}.")]
    assert [r for r in requests_to(sb, "token") if r.status == 200][-1].identity_name == sb.bob.username


def test_device_code_declined(sb: Any, cloud: Cloud) -> None:
    recorder = Recorder()
    answer(sb, recorder, "decline")
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["device-code"], renderer=recorder)
    assert str(err.value) == (
        "Could not sign in to AzureSandbox with device-code. Tried device-code: failed, the sign-in was declined. "
        "Run the command again and approve it, or choose another method with --auth."
    )
    assert recorder.outcomes == [("declined", "The sign-in was declined.")]


def test_device_code_expiry(short_sb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in short_sb.env.items():
        monkeypatch.setenv(k, v)
    recorder = Recorder()
    started = time.monotonic()
    with pytest.raises(SignInError) as err:
        auth.sign_in(sandbox_cloud(short_sb), methods=["device-code"], renderer=recorder)
    assert time.monotonic() - started < 10
    code = recorder.prompts[0].user_code
    assert str(err.value) == (
        f"Could not sign in to AzureSandbox with device-code. Tried device-code: failed, the code {code} expired "
        "before anyone signed in with it. Run the command again and enter the new code before it expires."
    )
    assert recorder.outcomes == [("expired", f"The code {code} expired before anyone signed in with it.")]


def test_device_code_wait_is_bounded_by_device_code_timeout(sb: Any, cloud: Cloud) -> None:
    recorder = Recorder()
    started = time.monotonic()
    with pytest.raises(SignInError, match="no one finished signing in within 2 s"):
        auth.sign_in(cloud, methods=["device-code"], renderer=recorder, device_code_timeout=2)
    assert time.monotonic() - started < 8
    assert recorder.outcomes == [("expired", "No one finished signing in within 2 s.")]


def test_device_code_without_a_renderer_is_unavailable(sb: Any, cloud: Cloud) -> None:
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["device-code"])
    assert err.value.attempts[0].outcome == "unavailable"
    assert "no renderer" in err.value.attempts[0].reason


def test_user_in_two_tenants_sees_both_tenants_subscriptions(sb: Any, cloud: Cloud) -> None:
    recorder = Recorder()
    answer(sb, recorder, "approve", sb.alice.username)
    signin = auth.sign_in(cloud, methods=["device-code"], renderer=recorder)
    assert signin.identity.name == sb.alice.username and signin.tenant_id == sb.tenant_id
    seen: set[str] = set()
    for tenant in sb.tenants:
        seen |= subscription_names(sb, auth.credential_for_tenant(signin, tenant.tenant_id), cloud.arm_scope)
    assert seen == {s.display_name for s in sb.subscriptions} and len(seen) == 3
    # One device code; the second tenant's token came silently from the refresh token.
    assert len(recorder.prompts) == 1
    assert {r.tenant for r in requests_to(sb, "token") if r.status == 200} >= {t.tenant_id for t in sb.tenants}


def test_a_tenant_that_needs_a_new_sign_in_raises_instead_of_prompting(sb: Any, cloud: Cloud) -> None:
    from azure.identity import AuthenticationRequiredError

    recorder = Recorder()
    answer(sb, recorder, "approve", sb.bob.username)  # Bob is in the first tenant only
    signin = auth.sign_in(cloud, methods=["device-code"], renderer=recorder)
    started = time.time()
    with pytest.raises(AuthenticationRequiredError):
        auth.credential_for_tenant(signin, sb.tenants[1].tenant_id).get_token(cloud.arm_scope)
    assert requests_to(sb, "devicecode", started) == [] and len(recorder.prompts) == 1


def test_swappable_credential_switches_identity(sb: Any, cloud: Cloud) -> None:
    from azure.identity import CredentialUnavailableError

    swappable = auth.SwappableCredential()
    with pytest.raises(CredentialUnavailableError, match="Not signed in"):
        swappable.get_token(cloud.arm_scope)
    sp = auth.sign_in(cloud, methods=["env"], env={**os.environ, **sb.service_principal})
    cert = auth.sign_in(cloud, methods=["env"], env={**os.environ, **sb.certificate_principal})
    swappable.swap(sp.credential)
    assert auth.describe_token_identity(swappable.get_token(cloud.arm_scope).token).name == "sandbox-sp"
    swappable.swap(cert.credential)
    info = swappable.get_token_info(cloud.arm_scope)
    assert auth.describe_token_identity(info.token).name == "sandbox-sp-cert"


def test_describe_token_identity_of_an_opaque_token() -> None:
    assert auth.describe_token_identity("not-a-jwt") == auth.Identity("unknown", "unknown identity", None, "")


# -- interruption and cancellation -------------------------------------------------------------------
def test_cancelled_device_code_wait_sends_and_saves_nothing_later(sb: Any, cloud: Cloud, home: Path) -> None:
    recorder = Recorder()
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def worker() -> None:
        try:
            auth.sign_in(
                cloud,
                methods=["device-code"],
                renderer=recorder,
                persist=True,
                allow_unencrypted_cache=True,
                cancel=cancel,
            )
        except SignInError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert recorder.shown.wait(30)
    time.sleep(0.3)  # the sign-in is polling now
    cancel.set()  # the caller gives up (timeout, Ctrl-C in the waiting thread)
    cancelled_at = time.time()
    time.sleep(0.2)
    sb.approve_device_code(recorder.prompts[0].user_code)  # ...and then the person approves anyway
    thread.join(10)
    assert not thread.is_alive()
    assert str(outcome["error"]) == (
        "Sign-in to AzureSandbox was cancelled. Nothing was saved. Run the command again to sign in."
    )
    assert recorder.outcomes == [("cancelled", "Sign-in cancelled; nothing was saved.")]
    time.sleep(1.5)  # longer than the poll interval: an abandoned poll would have redeemed the code by now
    assert [r for r in requests_to(sb, "token", cancelled_at) if r.status == 200] == []
    assert not auth.record_path(cloud.name).exists()
    assert not any(p.exists() for p in auth.token_cache_paths())


def test_keyboard_interrupt_during_the_wait_tells_the_renderer_and_saves_nothing(
    sb: Any, cloud: Cloud, home: Path, ctrl_c: Callable[[], None]
) -> None:
    recorder = Recorder()

    def interrupt() -> None:
        if recorder.shown.wait(30):
            ctrl_c()  # what Ctrl-C does to the thread running sign_in

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        auth.sign_in(cloud, methods=["device-code"], renderer=recorder, persist=True, allow_unencrypted_cache=True)
    assert recorder.outcomes == [("cancelled", "Interrupted; nothing was saved.")]
    sb.approve_device_code(recorder.prompts[0].user_code)
    assert not auth.record_path(cloud.name).exists()
    assert not any(p.exists() for p in auth.token_cache_paths())


# -- persistence -------------------------------------------------------------------------------------
_FRESH_KERNEL = textwrap.dedent(
    """
    import json, sys
    from jupyter_amlflow import auth
    from jupyter_amlflow.clouds import clouds_from_metadata

    class NoPrompt:
        def show(self, prompt):
            raise AssertionError("a device code was requested")
        def finish(self, outcome, detail=""):
            pass

    cloud = clouds_from_metadata(json.loads(sys.argv[1]), None)[0]
    signin = auth.sign_in(cloud, methods=["device-code"], renderer=NoPrompt(), persist=True,
                          allow_unencrypted_cache=True)
    print(json.dumps({"method": signin.method, "name": signin.identity.name, "reason": signin.attempts[-1].reason}))
    """
)


def test_persisted_sign_in_is_silent_in_a_fresh_process_and_logout_removes_it(
    sb: Any, cloud: Cloud, home: Path
) -> None:
    recorder = Recorder()
    answer(sb, recorder, "approve", sb.alice.username)
    signin = auth.sign_in(cloud, methods=["device-code"], renderer=recorder, persist=True, allow_unencrypted_cache=True)
    assert signin.attempts[-1].reason == f"signed in as {sb.alice.username}; saved for new kernels"
    record = auth.record_path(cloud.name)
    cache = auth.token_cache_paths()[0]
    assert record == home / ".jupyter_amlflow" / "auth-record-AzureSandbox.json"
    assert cache == home / ".IdentityService" / "jupyter_amlflow.nocae"
    for path, mode in ((record, 0o600), (record.parent, 0o700), (cache, 0o600), (cache.parent, 0o700)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert json.loads(record.read_text())["username"] == sb.alice.username

    started = time.time()
    child = subprocess.run(
        [sys.executable, "-c", _FRESH_KERNEL, json.dumps(sb.cloud_metadata())],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert json.loads(child.stdout) == {
        "method": "device-code",
        "name": sb.alice.username,
        "reason": f"signed in as {sb.alice.username} with the saved sign-in, no prompt",
    }
    assert requests_to(sb, "devicecode", started) == []

    removed = auth.logout()
    assert removed == [str(cache), str(record)]
    assert not record.exists() and not cache.exists()
    assert auth.logout() == []


# A fresh process in a desktop-like session: a D-Bus session bus and an unlocked GNOME keyring
# (the Secret Service libsecret talks to), as on a Linux workstation.
_IN_KEYRING_SESSION = (
    "printf %s keyring-password | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null "
    '&& exec "$0" "$@"'
)
_SECRET_STORE_CHILD = textwrap.dedent(
    """
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    from jupyter_amlflow import auth
    from jupyter_amlflow.clouds import clouds_from_metadata

    class Prompts:
        def __init__(self):
            self.shown = 0
        def show(self, prompt):
            self.shown += 1
        def finish(self, outcome, detail=""):
            pass

    cloud = clouds_from_metadata(json.loads(sys.argv[1]), None)[0]
    out = {}
    first = auth.sign_in(cloud, methods=["device-code"], renderer=Prompts(), persist=True)
    out["first"] = first.attempts[-1].reason
    prompts = Prompts()
    second = auth.sign_in(cloud, methods=["device-code"], renderer=prompts, persist=True)
    out["second"] = [second.attempts[-1].reason, prompts.shown]
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_amlflow")
    out["logout"] = repr(ip.run_line_magic("amlflow", "logout"))
    prompts = Prompts()
    try:
        auth.sign_in(cloud, methods=["device-code"], renderer=prompts, persist=True, device_code_timeout=1)
        out["third"] = "signed in without a prompt"
    except auth.SignInError:
        out["third"] = f"asked again ({prompts.shown} prompt)"
    print(json.dumps(out))
    """
)


def _keyring_python(tmp: Path) -> tuple[list[str], dict[str, str]] | None:
    """How to run this Python inside a keyring session, or None when this machine cannot.

    Needs dbus-run-session and gnome-keyring-daemon, and PyGObject: the venv's own, or Debian's
    python3-gi when it is built for this Python version.
    """
    import shutil

    if not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
        return None
    env = dict(os.environ)
    probe = [sys.executable, "-c", "import gi; gi.require_version('Secret', '1'); from gi.repository import Secret"]
    if subprocess.run(probe, capture_output=True, timeout=60).returncode != 0:
        debian = Path("/usr/lib/python3/dist-packages/gi")
        if not debian.is_dir():
            return None
        (tmp / "gi-path").mkdir()
        (tmp / "gi-path" / "gi").symlink_to(debian)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp / "gi-path"), env.get("PYTHONPATH", "")) if p)
        if subprocess.run(probe, capture_output=True, timeout=60, env=env).returncode != 0:
            return None
    return ["dbus-run-session", "--", "sh", "-c", _IN_KEYRING_SESSION, sys.executable], env


def test_persisted_sign_in_is_encrypted_in_the_secret_store_and_logout_clears_it(
    sb: Any, cloud: Cloud, tmp_path: Path, secret_check: Any
) -> None:
    # HOME is under tmp_path and, unlike the plain-cache tests' HOME, fully searched by the suite's
    # secret check: the cache file next to the keyring must hold no token.
    runner = _keyring_python(tmp_path)
    if runner is None:
        reason = "no Secret Service here (needs dbus-run-session, gnome-keyring and PyGObject / python3-gi)"
        if os.environ.get("AMLFLOW_REQUIRE_SECRET_STORE") == "1":
            pytest.fail(f"AMLFLOW_REQUIRE_SECRET_STORE=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    command, env = runner
    home = tmp_path / "home"
    home.mkdir()
    started = time.time()
    thread = answer_device_code(sb, "approve", sb.alice.username)
    child = subprocess.run(
        [*command, "-c", _SECRET_STORE_CHILD, json.dumps(sb.cloud_metadata())],
        env={**env, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    thread.join(10)
    secret_check.scan(child.stdout + child.stderr)
    assert child.returncode == 0, child.stderr[-3000:]
    assert json.loads(child.stdout.strip().splitlines()[-1]) == {
        "first": f"signed in as {sb.alice.username}; saved for new kernels",
        "second": [f"signed in as {sb.alice.username} with the saved sign-in, no prompt", 0],
        "logout": "Signed out: removed token cache 'jupyter_amlflow' in the system secret store, "
        f"{home / '.IdentityService' / 'jupyter_amlflow.nocae'}, "
        f"{home / '.jupyter_amlflow' / 'auth-record-AzureSandbox.json'}.",
        "third": "asked again (1 prompt)",
    }
    assert len(requests_to(sb, "devicecode", started)) == 2
    # The tokens lived in the keyring (encrypted with its password), never in a plain file.
    issued = [s for s in sb.issued_secrets() if len(s) >= 8]
    for path in home.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert not any(secret in text for secret in issued), path


def test_persistence_without_a_secret_store_says_so_before_any_prompt(sb: Any, cloud: Cloud, home: Path) -> None:
    recorder = Recorder()
    started = time.time()
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["device-code"], renderer=recorder, persist=True)
    assert str(err.value) == (
        "Could not sign in to AzureSandbox with device-code. Tried device-code: failed, this machine has no secret "
        "store to keep the sign-in encrypted (libsecret is missing or unusable, e.g. over SSH). Allow a plain "
        "cache file only you can read: %config AmlflowMagics.allow_unencrypted_token_cache = True "
        "(Python: allow_unencrypted_cache=True), or sign in without persistence."
    )
    assert recorder.prompts == [] and requests_to(sb, "devicecode", started) == []


@pytest.mark.parametrize(
    "lax, mode",
    [("directory", 0o755), ("directory", 0o750), ("file", 0o644), ("file", 0o640), ("file", 0o604)],
    ids=["directory-world", "directory-group", "file-world", "file-group", "file-others-only"],
)
def test_plain_cache_is_refused_when_others_can_read_it(sb: Any, cloud: Cloud, home: Path, lax: str, mode: int) -> None:
    directory = home / ".IdentityService"
    directory.mkdir(mode=0o700)
    target = directory
    if lax == "file":
        target = directory / "jupyter_amlflow.nocae"
        target.write_text("{}")
    target.chmod(mode)
    recorder = Recorder()
    started = time.time()
    with pytest.raises(SignInError) as err:
        auth.sign_in(cloud, methods=["device-code"], renderer=recorder, persist=True, allow_unencrypted_cache=True)
    fix = f"chmod 700 {target}" if lax == "directory" else f"chmod 600 {target}"
    assert str(err.value) == (
        f"Could not sign in to AzureSandbox with device-code. Tried device-code: failed, the token cache {lax} "
        f"{target} is readable by others (its mode is {mode:o}). Run: {fix}."
    )
    assert recorder.prompts == [] and requests_to(sb, "devicecode", started) == []


@pytest.fixture
def shell(cloud: Cloud, home: Path) -> Any:
    """An in-process IPython shell with the extension loaded, pointed at this module's sandbox."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_amlflow")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "jupyter_amlflow")


def test_logout_magic_removes_the_persisted_sign_in(sb: Any, shell: Any, home: Path) -> None:
    magics = shell.magics_manager.registry["AmlflowMagics"]
    # What %config AmlflowMagics.persist_token_cache = True (and the plain-file opt-in) set, on this instance only.
    magics.persist_token_cache, magics.allow_unencrypted_token_cache = True, True
    magics.auth = ["device-code"]
    answer_device_code(sb, "approve", sb.alice.username)
    listed = shell.run_line_magic("amlflow", "list subscriptions")
    assert "Sandbox Subscription 1" in repr(listed)
    record, cache = auth.record_path(sb.cloud), auth.token_cache_paths()[0]
    for path, mode in ((record, 0o600), (record.parent, 0o700), (cache, 0o600), (cache.parent, 0o700)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    started = time.time()

    signed_out = shell.run_line_magic("amlflow", "logout")
    assert repr(signed_out) == f"Signed out: removed {cache}, {record}."
    assert not record.exists() and not cache.exists()
    assert repr(shell.run_line_magic("amlflow", "logout")) == "Signed out: no saved sign-in to remove."
    # The next command asks the person again: nothing was left behind, in memory or on disk.
    thread = answer_device_code(sb, "approve", sb.alice.username)
    shell.run_line_magic("amlflow", "list subscriptions")
    thread.join(10)
    assert len(requests_to(sb, "devicecode", started)) == 1


def test_env_sign_in_is_not_affected_by_persistence(sb: Any, cloud: Cloud, home: Path) -> None:
    # Persistence is for people's sign-ins; a service principal needs no secret store.
    signin = auth.sign_in(cloud, methods=["env"], env={**os.environ, **sb.service_principal}, persist=True)
    assert signin.method == "env"
    assert not auth.record_path(cloud.name).exists()


# -- imports -----------------------------------------------------------------------------------------
def test_importing_the_package_and_auth_loads_neither_mlflow_nor_azure() -> None:
    code = (
        "import sys, jupyter_amlflow, jupyter_amlflow.auth, jupyter_amlflow.devicecode\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'azure', 'msal', 'IPython')))"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "[]"
