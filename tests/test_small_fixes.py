"""Three smaller defects: unloading leaves nothing behind, sign-in links only to the cloud's own page,
and the browser fixture fails instead of skipping when CI demands the browser tests."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_amlflow.auth import DeviceCodePrompt
from jupyter_amlflow.clouds import AZURE_CHINA_CLOUD, AZURE_PUBLIC_CLOUD, AZURE_US_GOVERNMENT
from jupyter_amlflow.devicecode import DeviceCodeView

TESTS = Path(__file__).resolve().parent


# -- unloading ------------------------------------------------------------------------------------
def test_load_unload_cycles_leave_no_magics_instance_or_session_behind() -> None:
    shell = InteractiveShell.instance()

    def ours() -> list[Any]:
        return [c for c in shell.configurables if type(c).__name__ == "AmlflowMagics"]

    before = len(ours())
    sessions = []
    for _ in range(3):
        shell.run_line_magic("load_ext", "jupyter_amlflow")
        [magics] = [m for m in ours() if m is shell.magics_manager.registry["AmlflowMagics"]]
        sessions.append(weakref.ref(magics.session))
        assert len(ours()) == before + 1
        del magics
        shell.run_line_magic("unload_ext", "jupyter_amlflow")
        assert len(ours()) == before
    gc.collect()
    assert [ref() for ref in sessions] == [None, None, None]  # nothing holds a session, its credentials or clients


# -- device-code links ----------------------------------------------------------------------------
def _page(url: str, hosts: tuple[str, ...]) -> str:
    # As auth builds it: the link hosts of the cloud signed in to.
    prompt = DeviceCodePrompt(url, "ABCD2345E", datetime.now(timezone.utc) + timedelta(minutes=15), "", hosts)
    return DeviceCodeView(prompt)._repr_html_()


@pytest.mark.parametrize(
    ("cloud", "url"),
    [
        (AZURE_PUBLIC_CLOUD, "https://microsoft.com/devicelogin"),
        (AZURE_PUBLIC_CLOUD, "https://login.microsoftonline.com/common/oauth2/deviceauth"),
        (AZURE_CHINA_CLOUD, "https://microsoft.com/deviceloginchina"),
        (AZURE_US_GOVERNMENT, "https://microsoft.com/deviceloginus"),
    ],
)
def test_a_built_in_clouds_own_sign_in_page_is_a_link(cloud: Any, url: str) -> None:
    assert f'<a href="{url}" target="_blank" rel="noopener noreferrer">{url}</a>' in _page(
        url, cloud.device_login_hosts
    )


@pytest.mark.parametrize(
    ("hosts", "url"),
    [
        (AZURE_PUBLIC_CLOUD.device_login_hosts, "https://microsoft.com.evil.example/devicelogin"),
        (AZURE_PUBLIC_CLOUD.device_login_hosts, "https://evil.example/devicelogin"),
        (AZURE_PUBLIC_CLOUD.device_login_hosts, "http://microsoft.com/devicelogin"),
        (AZURE_PUBLIC_CLOUD.device_login_hosts, "https://microsoft.com:8443/devicelogin"),
        (AZURE_PUBLIC_CLOUD.device_login_hosts, "https://microsoft.com@evil.example/devicelogin"),
        (AZURE_CHINA_CLOUD.device_login_hosts, "https://login.microsoftonline.com/common/oauth2/deviceauth"),
        ((), "http://adfs.contoso.test/adfs/oauth2/deviceauth"),  # a custom cloud: https only
        ((), "javascript:alert(1)"),
    ],
)
def test_any_other_page_is_shown_as_text_only(hosts: tuple[str, ...], url: str) -> None:
    page = _page(url, hosts)
    assert "<a " not in page and "href" not in page
    assert "<div>1. Open <code>" in page


def test_a_custom_clouds_https_page_is_a_link_and_sign_in_passes_the_clouds_hosts(
    sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from jupyter_amlflow import auth
    from jupyter_amlflow.clouds import clouds_from_metadata

    sb = sandbox_factory(subscriptions=1, workspaces_per_subscription=1, mlflow=False)
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    shown: list[DeviceCodePrompt] = []

    class Renderer:
        def show(self, prompt: DeviceCodePrompt) -> None:
            shown.append(prompt)

        def finish(self, outcome: str, detail: str = "") -> None:
            pass

    thread = threading.Thread(
        target=lambda: sb.approve_device_code(sb.wait_for_device_code(30).user_code), daemon=True
    )
    thread.start()
    cloud = clouds_from_metadata(sb.cloud_metadata(), sb.metadata_url)[0]
    auth.sign_in(cloud, methods=["device-code"], renderer=Renderer(), env={**os.environ})
    thread.join(10)
    [prompt] = shown
    assert prompt.link_hosts == cloud.device_login_hosts == ()
    link = f"{sb.base_url}/devicelogin"
    assert f'<a href="{link}"' in DeviceCodeView(prompt)._repr_html_()


# -- the browser fixture under CI -----------------------------------------------------------------
_FAKE_CHROMIUM_PLUGIN = """
import os
from pathlib import Path

import browser_support

browser_support.CHROMIUM = Path(os.environ["FAKE_CHROMIUM"])  # a Chromium that cannot start
"""


def test_browser_fixture_fails_instead_of_skipping_when_ci_requires_the_browser(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "chromium"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'this chromium cannot start' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "fake_chromium.py").write_text(_FAKE_CHROMIUM_PLUGIN)
    path = os.pathsep.join((str(tmp_path), str(TESTS), os.environ.get("PYTHONPATH", "")))
    env = {**os.environ, "PYTHONPATH": path, "FAKE_CHROMIUM": str(fake)}
    env.pop("AMLFLOW_REQUIRE_BROWSER", None)
    command = [
        sys.executable, "-m", "pytest", str(TESTS / "test_devicecode.py"), "-q", "-p", "no:cacheprovider",
        "-p", "fake_chromium", "-k", "countdown_runs_in_the_browser",
    ]  # fmt: skip
    skipped = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout[-2000:]
    required = subprocess.run(
        command, env={**env, "AMLFLOW_REQUIRE_BROWSER": "1"}, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert required.returncode == 1, required.stdout[-2000:]
    assert "1 error" in required.stdout and f"AMLFLOW_REQUIRE_BROWSER=1 but {fake} did not start" in required.stdout
