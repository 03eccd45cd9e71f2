"""The workspace panel in a real browser: JupyterLab and Notebook 7, headless Chromium, the sandbox.

Each test serves a notebook from a real Jupyter server (127.0.0.1, random token), runs its cells
with keystrokes, signs in by device code through the panel, approves the code on the sandbox's
``/devicelogin`` page in a second tab as a person would (pasting the code the panel's Copy button
put on the clipboard), picks a workspace, connects, and runs a cell that logs a run. Screenshots
of each state go to ``test-artifacts/``; with AMLFLOW_UPDATE_SCREENSHOT=1, JupyterLab's connected panel also to ``docs/panel.png``.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from browser_support import ARTIFACTS, JupyterServer, chromium, jupyter_server, require_chromium, write_notebook
from helpers import backend_runs

pytestmark = pytest.mark.browser
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "panel.png"
PANEL_TITLE = "Connect MLflow to an Azure Machine Learning workspace"


class Shots:
    """Numbered screenshots of one test's states, and when each was reached (``<name>-timings.txt``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.started = time.monotonic()
        self.timings: list[str] = []
        ARTIFACTS.mkdir(exist_ok=True)

    def take(self, target: Any, state: str) -> Path:
        self.count += 1
        path = ARTIFACTS / f"{self.name}-{self.count}-{state}.png"
        target.screenshot(path=str(path))
        self.timings.append(f"{time.monotonic() - self.started:6.1f} s  {state}")
        (ARTIFACTS / f"{self.name}-timings.txt").write_text("\n".join(self.timings) + "\n")
        return path


def wait_for_kernel(server: JupyterServer, timeout: float = 60) -> None:
    """Until the page's kernel is started, idle and connected (keystrokes before that are lost)."""
    deadline = time.monotonic() + timeout
    kernels: Any = None
    while True:
        try:
            kernels = server.api("api/kernels")
        except urllib.error.HTTPError:  # the server answers 500 while a kernel is half started
            kernels = []
        if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no kernel became ready: {kernels}\n{server.log_text()[-2000:]}")
        time.sleep(0.1)


def run_cell(page: Any, index: int) -> None:
    """Click into cell ``index`` and run it with Shift+Enter."""
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def button(panel: Any, text: str) -> Any:
    """A widget button by its text (its Font Awesome icon is part of the accessible name)."""
    return panel.locator(f"button.widget-button:text-is('{text}')")


def labelled(panel: Any, kind: str, label: str, element: str) -> Any:
    """The ``element`` of the ``widget-<kind>`` whose label reads ``label``."""
    return panel.locator(f".widget-{kind}:has(> label:text-is('{label}')) {element}")


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_panel_in_the_browser_signs_in_by_device_code_and_connects(
    app: str, sandbox: Any, tmp_path: Path, secret_check: Any
) -> None:
    require_chromium()
    from playwright.sync_api import expect

    sb = sandbox
    ws = sb.workspaces[0]  # its MLflow backend is up already (the sandbox prestarts one)
    experiment = f"browser-{app}"
    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "home"  # the remembered choice of one test must not preselect the other's
    home.mkdir()
    write_notebook(
        root / "panel.ipynb",
        "%load_ext jupyter_amlflow\n%amlflow panel",
        "import mlflow\n"
        f"with mlflow.start_run(run_name='clicked-{app}'):\n"
        "    mlflow.log_metric('clicks', 1.0)\n"
        "print('logged to', mlflow.get_tracking_uri())",
    )
    shots = Shots(f"panel-{app}")
    # No service principal in the environment: the person signs in by device code.
    with jupyter_server(app, root, {**sb.env, "HOME": str(home)}) as server, chromium() as context:
        page = context.new_page()  # Chromium started while the server was still starting
        try:
            server.wait_ready()
            page.goto(server.notebook_url("panel.ipynb"))
            wait_for_kernel(server)
            run_cell(page, 0)
            panel = page.locator(".jp-OutputArea-output").filter(has_text=PANEL_TITLE)
            sign_in = button(panel, "Sign in")
            expect(sign_in).to_be_visible(timeout=30_000)
            expect(labelled(panel, "dropdown", "Cloud", "select")).to_have_value(sb.cloud)
            shots.take(panel, "start")

            labelled(panel, "dropdown", "Sign in with", "select").select_option(
                label="Device code (any browser, any device)"
            )
            sign_in.click()
            code_box = panel.locator(".amlflow-devicecode .amlflow-code")
            expect(code_box).to_be_visible(timeout=30_000)
            code = code_box.inner_text().strip()
            expect(panel.locator(".amlflow-devicecode .amlflow-left")).to_contain_text(":")  # the countdown runs
            panel.locator(".amlflow-devicecode .amlflow-copy").click()
            expect(panel.locator(".amlflow-devicecode .amlflow-copied")).to_have_text("Copied")
            assert page.evaluate("navigator.clipboard.readText()") == code
            shots.take(panel, "device-code")

            link = panel.locator(".amlflow-devicecode a").get_attribute("href")
            assert link == f"{sb.base_url}/devicelogin"
            login = context.new_page()
            login.goto(link)
            login.locator("#code").click()
            login.keyboard.press("Control+V")  # what the Copy button put on the clipboard
            expect(login.locator("#code")).to_have_value(code)
            login.locator("#user").select_option(sb.alice.username)
            login.locator("#password").fill(sb.user_password(sb.alice))
            shots.take(login, "devicelogin")
            login.locator("#approve").click()
            expect(login.locator("h1#result")).to_have_text("You have signed in")
            login.close()

            expect(panel.locator(".amlflow-signed-in")).to_contain_text(sb.alice.username, timeout=30_000)
            expect(panel.locator(".amlflow-devicecode")).to_have_count(0)  # the prompt is gone
            expect(panel.locator('.amlflow-found[data-count="4"]')).to_be_visible(timeout=30_000)
            workspaces = labelled(panel, "select", "Workspace", "select")
            expect(workspaces.locator("option")).to_have_count(4)
            shots.take(panel, "workspaces")

            labelled(panel, "text", "Filter", "input").click()
            page.keyboard.type(ws.name)
            expect(workspaces.locator("option")).to_have_count(1)
            workspaces.select_option(label=f"{ws.name} — {ws.resource_group} — {ws.location}")
            labelled(panel, "text", "Experiment", "input").click()
            page.keyboard.type(experiment)
            # ipywidgets holds back value updates while the kernel is busy with the previous one; a
            # click is sent at once. Wait until the kernel has the whole name before clicking.
            expect(panel.locator(f'.amlflow-experiment-note[data-experiment="{experiment}"]')).to_be_visible()
            connect = button(panel, "Connect")
            expect(connect).to_be_enabled()
            connect.click()
            status = panel.locator('.amlflow-status[data-state="connected"]')
            expect(status).to_be_visible(timeout=90_000)
            expect(status).to_contain_text(f"Connected to {ws.name}")
            expect(status).to_contain_text(experiment)
            studio = status.locator("a").get_attribute("href")
            assert studio and studio.startswith(f"{sb.studio_url}/?wsid=/subscriptions/{ws.subscription_id}")
            connected = shots.take(panel, "connected")
            if app == "lab" and os.environ.get("AMLFLOW_UPDATE_SCREENSHOT"):
                # Refresh the README's picture on request only: a test run leaves the tree clean.
                DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
                shutil.copyfile(connected, DOCS_SCREENSHOT)

            run_cell(page, 1)
            expect(page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")).to_contain_text(
                "logged to azureml://", timeout=60_000
            )
            shots.take(page, "run-logged")
            secret_check.scan(page.content())
        except Exception:
            shots.take(page, "failure")
            print(server.log_text()[-4000:])
            raise

    runs = backend_runs(sb, ws, experiment)
    assert [(r.info.run_name, r.info.status, r.data.metrics) for r in runs] == [
        (f"clicked-{app}", "FINISHED", {"clicks": 1.0})
    ]
