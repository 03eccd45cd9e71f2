"""Who may use a sandbox: per-run secrets on every listener, read-only SAS for readers, the env file.

These are the sandbox's defences on a shared machine, where every local process reaches 127.0.0.1:
a process without the sandbox's secrets gets 401 everywhere and reaches no mlflow server; a
reader's download link cannot write; ``amlflow-sandbox --env-file`` never destroys a file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from helpers import backend_client, isolated_mlflow

import jupyter_amlflow


@pytest.fixture(scope="module")
def sb(sandbox_factory: Any) -> Any:
    return sandbox_factory(subscriptions=1, workspaces_per_subscription=2)


@pytest.fixture
def as_principal(sb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Put a service principal of ``sb`` into the environment (as CI would), MLflow state restored after."""

    def use(identity: Any) -> None:
        env = {
            **sb.env,
            "AZURE_TENANT_ID": sb.tenant_id,
            "AZURE_CLIENT_ID": identity.client_id,
            "AZURE_CLIENT_SECRET": identity.client_secret,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    with isolated_mlflow():
        yield use


def _token(sb: Any, identity: Any) -> str:
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(
        sb.tenant_id, identity.client_id, identity.client_secret, authority=sb.authority_url,
        disable_instance_discovery=True,
    )  # fmt: skip
    return credential.get_token(sb.arm_url + ".default").token


# -- item 2: a reader's download link is read-only ------------------------------------------
def test_a_reader_downloads_but_its_sas_cannot_overwrite_the_artifact(sb: Any, as_principal: Any) -> None:
    import mlflow

    ws = sb.workspaces[0]
    experiment = f"shared-{uuid.uuid4().hex[:8]}"
    as_principal(sb.sp)
    conn = jupyter_amlflow.connect(ws.arm_id, auth="env", experiment=experiment, timeout=30)
    with mlflow.start_run(run_name="owner") as run:
        mlflow.log_text("the owner's numbers", "report.txt")
    conn.disconnect()

    reader = sb.add_service_principal(f"reader-{uuid.uuid4().hex[:6]}", role=None)
    sb.assign_role(reader, "Reader", ws.arm_id)
    as_principal(reader)
    conn = jupyter_amlflow.connect(ws.arm_id, auth="env", experiment=experiment, timeout=30)
    # A reader reads, through the plugin as anyone would.
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report.txt")
    assert Path(local).read_text() == "the owner's numbers"
    conn.disconnect()

    # The link the plugin was handed for that download, asked for by the reader directly.
    info = requests.get(
        f"{sb.base_url}/history/v1.0{ws.arm_id}/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        "/artifacts/contentinfo",
        params={"path": "report.txt"},
        headers={"Authorization": f"Bearer {_token(sb, reader)}"},
        verify=sb.ca_bundle,
        timeout=30,
    )
    assert info.status_code == 200, info.text
    content_uri = info.json()["contentUri"]
    assert parse_qs(urlsplit(content_uri).query)["sp"] == ["r"]  # (the URL itself holds a signature)
    overwrite = requests.put(
        content_uri, data=b"the reader's numbers", headers={"x-ms-blob-type": "BlockBlob"}, verify=sb.ca_bundle,
        timeout=30,
    )  # fmt: skip
    assert overwrite.status_code == 403 and overwrite.headers["x-ms-error-code"] == "AuthorizationPermissionMismatch"
    assert requests.get(content_uri, verify=sb.ca_bundle, timeout=30).content == b"the owner's numbers"
    landed = backend_client(sb, ws).download_artifacts(run.info.run_id, "report.txt")
    assert Path(landed).read_text() == "the owner's numbers"


# -- item 3: without the sandbox's secrets, 401 everywhere and no backend -------------------
_NO_SECRET_PROBE = r"""
import json, sys
import requests

p = json.loads(sys.argv[1])
base, plain, wsid, run, arm = p["base"], p["plain"], p["wsid"], p["run"], p["arm"]
h = {"verify": False, "timeout": 30}
answers = {
    "studio index": requests.get(base + "/studio", **h),
    "studio index, wrong key": requests.get(base + "/studio/not-the-key", **h),
    "studio run page": requests.get(base + "/studio/runs/" + run, params={"wsid": arm}, **h),
    "studio run page, wrong key": requests.get(
        base + "/studio/not-the-key/runs/" + run, params={"wsid": arm}, **h),
    "msi token (Metadata: true only)": requests.post(
        base + "/msi/token", headers={"Metadata": "true"}, data={"resource": base + "/"}, **h),
    "msi app service": requests.get(base + "/msi/appservice", params={"resource": base + "/"}, **h),
    "msi token, Azure ML form without the secret": requests.get(
        base + "/msi/token", params={"api-version": "2017-09-01", "resource": base + "/"}, **h),
    "mlflow api": requests.post(
        base + "/mlflow/v2.0" + arm + "/api/2.0/mlflow/experiments/search", json={"max_results": 5}, **h),
    "backend search": requests.post(
        plain + "/backend/" + wsid + "/api/2.0/mlflow/experiments/search", json={"max_results": 5}, timeout=30),
    "backend run": requests.get(plain + "/backend/" + wsid + "/api/2.0/mlflow/runs/get", params={"run_id": run},
        timeout=30),
    "backend root": requests.get(plain + "/", timeout=30),
    "backend unknown workspace": requests.get(plain + "/backend/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12
        + "/api/2.0/mlflow/experiments/search", timeout=30),
    "backend, wrong key": requests.get(plain + "/backend/" + wsid + "/api/2.0/mlflow/runs/get",
        params={"run_id": run}, auth=("sandbox", "not-the-key"), timeout=30),
}
# The device-login page is public, as Entra ID's is; approving needs the user's password.
s = requests.Session()
page = s.get(base + "/devicelogin", **h).text
token = page.partition('name="page_token" value="')[2].partition('"')[0]
answers["devicelogin approve without password"] = s.post(base + "/devicelogin", data={
    "code": p["code"], "user": p["user"], "action": "approve", "page_token": token}, **h)
answers["devicelogin without the page token"] = s.post(base + "/devicelogin", data={
    "code": p["code"], "user": p["user"], "password": "guess", "action": "approve"}, **h)
print(json.dumps({k: [r.status_code, r.text[:300]] for k, r in answers.items()}))
"""


def _tcp_listeners(pids: set[int]) -> list[int]:
    """TCP ports any of these processes listens on (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
        except OSError:
            continue
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _process_group(leader: int) -> set[int]:
    members = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == leader:
                    members.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return members


def _connects_as_nobody(path: Path) -> str:
    """Try the Unix socket from a child running as the unprivileged user ``nobody``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, just the attempt and its outcome
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(path))
            outcome = b"connected"
        except PermissionError:
            outcome = b"permission denied"
        except BaseException as exc:  # reported to the parent, which fails the test
            outcome = repr(exc).encode()[:200]
        os.write(write, outcome)
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as fh:
        return fh.read().decode()


def test_a_process_without_the_secrets_gets_401_everywhere_and_reaches_no_backend(sb: Any, as_principal: Any) -> None:
    import mlflow

    ws = sb.workspaces[1]
    as_principal(sb.sp)
    conn = jupyter_amlflow.connect(ws.arm_id, auth="env", experiment="private", timeout=30)
    with mlflow.start_run(run_name="private") as run:
        mlflow.log_param("secret_sauce", "42")
    conn.disconnect()
    # The plain URI still works for whoever holds it: a plain MlflowClient reads what landed.
    assert backend_client(sb, ws).get_run(run.info.run_id).data.params == {"secret_sauce": "42"}

    # A device code someone started, which the probe tries to approve as Alice.
    started = requests.post(
        f"{sb.base_url}/{sb.tenant_id}/oauth2/v2.0/devicecode",
        data={"client_id": str(uuid.uuid4()), "scope": sb.arm_url + ".default"},
        verify=sb.ca_bundle,
        timeout=30,
    ).json()
    backend_listener = re.sub(r"//[^@/]*@", "//", sb.backend_tracking_uri(ws)).split("/backend/")[0]
    public = {
        "base": sb.base_url, "plain": backend_listener, "wsid": ws.workspace_id, "run": run.info.run_id,
        "arm": ws.arm_id, "code": started["user_code"], "user": sb.alice.username,
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MLFLOW_", "IDENTITY_", "MSI_"))}
    probe = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _NO_SECRET_PROBE, json.dumps(public)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-2000:]
    answers = json.loads(probe.stdout)
    statuses = {name: status for name, (status, _) in answers.items()}
    expected = {name: 401 for name in statuses}
    expected["devicelogin without the page token"] = 403  # the form was not one the sandbox served
    assert statuses == expected, answers
    assert "secret_sauce" not in probe.stdout
    assert sb.access_key not in json.dumps(public)  # the probe was given no secret
    assert [p.user_code for p in sb.pending_device_codes()].count(started["user_code"]) == 1  # still pending

    # Every mlflow server listens on a Unix socket in a folder only this user may enter, on no TCP port.
    running = [s for s in sb.mlflow.backend_status() if s.running]
    assert running
    for status in running:
        members = _process_group(status.pid)
        assert members and _tcp_listeners(members) == [], status
        folder = status.socket_path.parent
        assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700 and os.lstat(folder).st_uid == os.getuid()
        assert stat.S_ISSOCK(os.lstat(status.socket_path).st_mode)
        if os.getuid() == 0:  # another user's process: the folder keeps it out
            assert _connects_as_nobody(status.socket_path) == "permission denied"


def test_device_login_needs_the_page_token_and_the_users_password(sb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import DeviceCodeCredential

    from jupyter_amlflow import _redact

    _redact.install()  # MSAL logs the device code it redeems at DEBUG; the product masks it
    for name, value in sb.env.items():
        monkeypatch.setenv(name, value)

    prompts: list[str] = []
    credential = DeviceCodeCredential(
        tenant_id=sb.tenant_id, authority=sb.authority_url, disable_instance_discovery=True,
        prompt_callback=lambda url, code, expires: prompts.append(code),
    )  # fmt: skip
    import threading
    import time

    asked = time.time()
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("record", credential.authenticate(scopes=[sb.arm_url + ".default"])),
        daemon=True,
    )
    thread.start()
    pending = sb.wait_for_device_code(30, newer_than=asked)
    session = requests.Session()
    session.verify = sb.ca_bundle

    def form(**fields: str) -> requests.Response:
        page = session.get(f"{sb.base_url}/devicelogin", timeout=30).text
        token = re.search(r'name="page_token" value="([^"]+)"', page).group(1)
        return session.post(f"{sb.base_url}/devicelogin", data={"page_token": token, **fields}, timeout=30)

    wrong = form(code=pending.user_code, user=sb.alice.username, password="not-her-password", action="approve")
    assert wrong.status_code == 401 and "Your account or password is incorrect" in wrong.text
    # Bob's password does not sign Alice in.
    swapped = form(code=pending.user_code, user=sb.alice.username, password=sb.user_password(sb.bob), action="approve")
    assert swapped.status_code == 401
    # A page token works once.
    page = session.get(f"{sb.base_url}/devicelogin", timeout=30).text
    token = re.search(r'name="page_token" value="([^"]+)"', page).group(1)
    fields = {"code": pending.user_code, "user": sb.alice.username, "password": sb.user_password(sb.alice)}
    assert session.post(f"{sb.base_url}/devicelogin", data={**fields, "page_token": token, "action": "approve"},
                        timeout=30).status_code == 200  # fmt: skip
    thread.join(30)
    assert result["record"].username == sb.alice.username
    replay = session.post(
        f"{sb.base_url}/devicelogin", data={**fields, "page_token": token, "action": "approve"}, timeout=30
    )
    assert replay.status_code == 403


# -- item 4: --env-file never destroys a file ----------------------------------------------
def _sandbox_command(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_amlflow.sandbox", "--no-mlflow", "--subscriptions", "1", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["file", "symlink", "dangling symlink"])
def test_env_file_refuses_an_existing_path_and_leaves_it_alone(tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "my-secrets.env"
    victim.write_text("MY_TOKEN=keep-me\n")
    path = tmp_path / ".env"
    if kind == "file":
        path = victim
    elif kind == "symlink":
        path.symlink_to(victim)
    else:
        path.symlink_to(tmp_path / "elsewhere.env")
    proc = _sandbox_command(["--env-file", str(path)], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert err.strip() == (
        f"amlflow-sandbox: --env-file {path} exists; it is never overwritten. "
        "Give a path that does not exist yet, or remove that file first."
    )
    assert out == ""
    assert victim.read_text() == "MY_TOKEN=keep-me\n"
    assert os.path.lexists(path) and not (tmp_path / "elsewhere.env").exists()


def test_env_file_is_created_0600_and_only_that_file_is_removed(tmp_path: Path, secret_check: Any) -> None:
    path = tmp_path / "sandbox.env"
    proc = _sandbox_command(["--env-file", str(path)], tmp_path)
    try:
        while not (line := proc.stdout.readline()).startswith("export AZURE_CLIENT_SECRET="):
            assert line, proc.stderr.read()
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600 and "export ARM_CLOUD_METADATA_URL=" in path.read_text()
        # The person moves it away and puts a file of their own there while the sandbox runs.
        path.rename(tmp_path / "sandbox.env.moved")
        path.write_text("theirs\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    assert path.read_text() == "theirs\n"  # not the file it made: left alone
    assert (tmp_path / "sandbox.env.moved").exists()

    # Left in place, the file it made is removed at exit.
    again = tmp_path / "again.env"
    proc = _sandbox_command(["--env-file", str(again)], tmp_path)
    try:
        while not proc.stdout.readline().startswith("export AZURE_CLIENT_SECRET="):
            pass
        assert again.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0 and not os.path.lexists(again)
