"""What jupyter_amlflow writes under HOME never goes through a planted link or into a folder others can use.

``~/.jupyter_amlflow`` (saved sign-in, the panel's choice) and the token cache's folder: a folder
open to others, or a symlink where a file or folder should be, is refused with what to run, and
the file the link points to is left alone.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import answer_device_code, isolated_mlflow
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

VICTIM_TEXT = "the victim's own file\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


@pytest.fixture
def shell(sandbox: Any, home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The extension in a shell, signing in by device code with the sign-in kept for new kernels."""
    for k, v in sandbox.env.items():
        monkeypatch.setenv(k, v)
    from jupyter_amlflow import _redact

    _redact.install()  # MSAL logs the device code it redeems at DEBUG; sign-in installs this too
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_amlflow")
    # What %config AmlflowMagics.persist_token_cache = True (and the plain-file opt-in) set, on this instance.
    magics = ip.magics_manager.registry["AmlflowMagics"]
    magics.persist_token_cache, magics.allow_unencrypted_token_cache = True, True
    magics.auth = ["device-code"]
    with isolated_mlflow():
        yield ip
        ip.run_line_magic("unload_ext", "jupyter_amlflow")


def sign_in_by_device_code(sandbox: Any, ip: Any) -> Any:
    thread = answer_device_code(sandbox, "approve", sandbox.alice.username)
    try:
        return ip.run_line_magic("amlflow", "list subscriptions")
    finally:
        thread.join(30)


def test_saved_sign_in_refuses_a_folder_others_can_write_and_never_follows_a_link(
    sandbox: Any, shell: Any, home: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = home / ".jupyter_amlflow"
    folder.mkdir()
    folder.chmod(0o777)  # as another user could have left it, with links planted in it
    record = folder / f"auth-record-{sandbox.cloud}.json"
    (folder / f"{record.name}.tmp").symlink_to(victim)
    record.symlink_to(victim)
    with caplog.at_level(logging.WARNING, logger="jupyter_amlflow"):
        listed = sign_in_by_device_code(sandbox, shell)
    assert "Sandbox Subscription 1" in repr(listed)  # signed in all the same, just not saved
    assert victim.read_text() == VICTIM_TEXT
    assert f"Could not save the sign-in to {record}: others have access to {folder} (its mode is 777); " \
        f"run: chmod 700 {folder}" in caplog.text  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == [record.name, f"{record.name}.tmp"]  # the links only

    # Once the folder is private, the saved sign-in replaces the link with a file of its own.
    folder.chmod(0o700)
    shell.run_line_magic("amlflow", "logout")
    record.symlink_to(victim)
    sign_in_by_device_code(sandbox, shell)
    assert victim.read_text() == VICTIM_TEXT
    st = os.lstat(record)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert sandbox.alice.username in record.read_text()
    assert sorted(p.name for p in folder.iterdir()) == [record.name, f"{record.name}.tmp"]  # no temp left behind


def test_token_cache_folder_that_is_a_link_is_refused(sandbox: Any, shell: Any, home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (home / ".IdentityService").symlink_to(elsewhere)
    sandbox.clear_requests()
    with pytest.raises(UsageError) as err:
        shell.run_line_magic("amlflow", "list subscriptions")
    assert f"the token cache path {home / '.IdentityService'} is a symbolic link" in str(err.value)
    assert f"Remove it (rm {home / '.IdentityService'}), or do not persist the sign-in" in str(err.value)
    assert list(elsewhere.iterdir()) == []
    assert [r for r in sandbox.requests if r.endpoint == "devicecode"] == []


def test_the_panels_choice_is_not_written_into_a_folder_others_can_write(
    sandbox: Any, home: Path, victim: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from test_panel import settled, sign_in, status_state, wait_until

    from jupyter_amlflow.connection import Session
    from jupyter_amlflow.panel import WorkspacePanel

    for k, v in {**sandbox.env, **sandbox.service_principal}.items():
        monkeypatch.setenv(k, v)
    folder = home / ".jupyter_amlflow"
    folder.mkdir()
    folder.chmod(0o777)
    (folder / "panel.json").symlink_to(victim)
    ws = sandbox.workspaces[0]
    with isolated_mlflow():
        panel = WorkspacePanel(Session(timeout=20))  # the default place: ~/.jupyter_amlflow/panel.json
        try:
            sign_in(panel)
            panel.workspace.value = ws.arm_id
            with caplog.at_level(logging.WARNING, logger="jupyter_amlflow"):
                panel.connect_button.click()
                wait_until(lambda: settled(panel), "the connection", panel)
                assert status_state(panel) == "connected", panel.status.value
                wait_until(lambda: "Could not remember" in caplog.text, "the warning", panel)
        finally:
            panel.close()
            if panel.session.connection is not None:
                panel.session.disconnect()
    assert victim.read_text() == VICTIM_TEXT
    assert f"others have access to {folder} (its mode is 777); run: chmod 700 {folder}" in caplog.text
    assert [p.name for p in folder.iterdir()] == ["panel.json"] and (folder / "panel.json").is_symlink()
