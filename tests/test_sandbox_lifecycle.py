"""Sandbox lifecycle: two at once, nothing left behind, the command line, and the suite's guards."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import netguard
import pytest
import requests


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_two_sandboxes_at_once_and_nothing_left_after_stop(secret_check: Any) -> None:
    from jupyter_amlflow.sandbox import Sandbox

    threads_before = {t.ident for t in threading.enumerate()}
    first, second = Sandbox(mlflow=False), Sandbox(mlflow=False)
    for sb in (first, second):
        secret_check.add_source(sb.issued_secrets)
        sb.start()
    roots = [first.root, second.root]
    ports = [first._server.port, second._server.port]
    try:
        assert ports[0] != ports[1]
        for sb in (first, second):
            doc = requests.get(sb.metadata_url, verify=sb.ca_bundle, timeout=10).json()
            assert doc[0]["resourceManager"] == sb.arm_url
        # Each sandbox trusts only its own CA: the other's certificate is refused.
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(first.metadata_url, verify=second.ca_cert, timeout=10)
    finally:
        first.stop()
        second.stop()
    assert not any(_listening(p) for p in ports)
    assert not any(r.exists() for r in roots)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
        if not left:
            break
        time.sleep(0.1)
    assert left == [], f"threads still running after stop: {left}"


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def test_command_line_prints_exports_and_stops_cleanly_on_sigterm(tmp_path: Path, secret_check: Any) -> None:
    home, work, tmp = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
    for d in (home, work, tmp):
        d.mkdir()
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_amlflow.sandbox", "--no-mlflow", "--subscriptions", "1"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line.rstrip("\n"))
            if line.startswith("export AZURE_CLIENT_SECRET="):
                break
        exported = dict(line[len("export ") :].split("=", 1) for line in lines)
        assert exported["AZUREML_CURRENT_CLOUD"] == "AzureSandbox"
        # The secret is read from a 0600 file by the shell, never printed.
        secret_file = exported["AZURE_CLIENT_SECRET"].split("cat ", 1)[1].rstrip(')"').strip("'")
        assert oct(Path(secret_file).stat().st_mode & 0o777) == "0o600"
        secret_check.add_secret(Path(secret_file).read_text())
        # A shell can eval the lines and reach the sandbox with them.
        script = (
            "\n".join(lines)
            + '\ncurl -s --cacert "$REQUESTS_CA_BUNDLE" "$ARM_CLOUD_METADATA_URL" >/dev/null'
            + ' && echo "$AZURE_CLIENT_SECRET" | wc -c'
        )
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, env=env)
        assert out.returncode == 0 and int(out.stdout.strip()) > 20, out.stderr
        children = _children_of(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    said = proc.stderr.read()
    assert "sandbox stopped" in said
    # One line to paste into a notebook, naming the first workspace (tests/test_sandbox_cli.py pastes it).
    assert re.search(
        r"^%amlflow connect /subscriptions/[0-9a-f-]{36}/resourceGroups/rg-ml-1/providers/"
        r"Microsoft\.MachineLearningServices/workspaces/mlw-1-1$",
        said,
        re.M,
    ), said
    assert all(not Path(f"/proc/{c}").exists() for c in children)
    # Nothing written outside the sandbox's own temp dir (which it removed).
    assert list(home.iterdir()) == [] and list(work.iterdir()) == [] and list(tmp.iterdir()) == []


# A process holding a sandbox with a running backend; "stop" on stdin stops it cleanly.
_HOLDER = """
import json, sys
from jupyter_amlflow.sandbox import Sandbox
sb = Sandbox(subscriptions=1, workspaces_per_subscription=1, max_backends=1).start()
print(json.dumps({"root": str(sb.root), "backend": sb.mlflow.backend_status()[0].pid}), flush=True)
if sys.stdin.readline().strip() == "stop":
    sb.stop()
    print("stopped", flush=True)
sys.stdin.readline()
"""


def _process_tree(root: int) -> dict[int, str]:
    """Every descendant of ``root``: pid -> start time (so a reused pid is not taken for it)."""
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)], started[int(entry.name)] = int(fields[1]), fields[19]
    tree, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree[pid] = started[pid]
                frontier.append(pid)
    return tree


def _still_running(processes: dict[int, str]) -> list[str]:
    """The processes of ``processes`` that still run (a zombie has ended; nothing can kill it)."""
    left = []
    for pid, start in processes.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and fields[19] == start:
            left.append(stat.split(")", 1)[0] + ")")
    return left


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGKILL", "stop()"])
def test_an_owner_that_goes_away_leaves_no_process_and_no_folder(ending: str, tmp_path: Path) -> None:
    # TMPDIR of its own: the sandbox folder is created there, and nothing else may be left in it.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        env={**os.environ, "TMPDIR": str(tmp)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = holder.stdout.readline()
        assert line, holder.stderr.read()
        started = json.loads(line)
        root = Path(started["root"])
        processes = _process_tree(holder.pid)
        # At least the mlflow server (a session of its own) and its uvicorn worker.
        assert started["backend"] in processes and len(processes) >= 2, processes
        assert root.parent == tmp and (root / "backends" / "0" / "mlflow.db").exists()
        if ending == "stop()":
            holder.stdin.write("stop\n")
            holder.stdin.flush()
            assert holder.stdout.readline() == "stopped\n", holder.stderr.read()
            assert holder.poll() is None  # the owner runs on; what it started is gone already
        else:
            holder.send_signal(getattr(signal, ending))
            holder.wait(30)
        # The watchdog gives the servers up to 10 s to stop on SIGTERM before it SIGKILLs them.
        deadline = time.monotonic() + 60
        while (_still_running(processes) or root.exists()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _still_running(processes) == []
        assert list(tmp.iterdir()) == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)


def test_guard_refuses_and_records_a_connection_beyond_loopback() -> None:
    with pytest.raises(ConnectionRefusedError, match="network guard"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1: never routed anyway
    with pytest.raises(ConnectionRefusedError, match="network guard"):
        socket.getaddrinfo("login.microsoftonline.com", 443)
    recorded = netguard.take_violations()
    assert len(recorded) == 2 and "192.0.2.1:443" in recorded[0] and "login.microsoftonline.com" in recorded[1]
    Path(os.environ["AMLFLOW_NETGUARD_LOG"]).write_text("")


def test_guard_covers_python_child_processes() -> None:
    code = (
        "import socket\n"
        "try:\n    socket.create_connection(('169.254.169.254', 80), timeout=1)\n"
        "except ConnectionRefusedError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "network guard" in out.stdout
    log = Path(os.environ["AMLFLOW_NETGUARD_LOG"])
    assert "169.254.169.254:80" in log.read_text()
    log.write_text("")
