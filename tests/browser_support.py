"""A real Jupyter server (JupyterLab or Notebook 7) and headless Chromium, for the browser tests.

The server listens on 127.0.0.1 with a random token, in its own process group, with its own
config, data and runtime directories (the widget labextension is a prebuilt extension under the
venv's ``share/jupyter``, found whatever ``JUPYTER_DATA_DIR`` says). Kernels it starts inherit
its environment, so a test points them at a sandbox by starting the server with ``sb.env``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_amlflow.sandbox import free_port

CHROMIUM = Path("/usr/bin/chromium")
# The machine has no internet: without these flags Chromium tries to reach Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _unavailable(reason: str) -> None:
    if os.environ.get("AMLFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"AMLFLOW_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_chromium() -> None:
    """Skip when Debian's chromium is missing, unless CI demands the browser tests run."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless; a skip saying why when it is missing or does not start."""
    require_chromium()
    try:
        return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:  # playwright's Error: its message says what the browser printed
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        _unavailable(f"{CHROMIUM} did not start: {detail}")
        raise  # not reached: skip and fail raise


@dataclass
class JupyterServer:
    """A running ``jupyter lab`` / ``jupyter notebook``."""

    app: str  # "lab" or "notebook"
    base_url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def notebook_url(self, name: str) -> str:
        """Where the front end opens notebook ``name`` (relative to the root)."""
        path = "lab/tree" if self.app == "lab" else "notebooks"
        return f"{self.base_url}/{path}/{name}?token={self.token}"

    def api(self, path: str) -> Any:
        """GET a server REST endpoint (JSON)."""
        request = urllib.request.Request(f"{self.base_url}/{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the server answers its REST API (it takes seconds to import and start)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter {self.app} exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")
            try:
                self.api("api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter {self.app} did not answer within {timeout:g} s") from None
                time.sleep(0.1)


def write_notebook(path: Path, *cells: str) -> Path:
    """A notebook of code cells with the python3 kernelspec (no kernel picker dialog)."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{i}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))
    return path


@contextmanager
def jupyter_server(app: str, root: Path, env: Mapping[str, str]) -> Iterator[JupyterServer]:
    """Start ``jupyter <app>`` on 127.0.0.1 (``wait_ready`` before use); stop its process group afterwards."""
    port = free_port()
    token = secrets.token_hex(16)
    home = root.parent / f"jupyter-{app}"
    dirs = {name: home / name for name in ("config", "data", "runtime")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    # No "get notified about Jupyter news?" toast over the page (and no news fetch).
    notification = dirs["config"] / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    full_env = {
        **os.environ,
        **env,
        "JUPYTER_CONFIG_DIR": str(dirs["config"]),
        "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "jupyter"),
        app,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.open_browser=False",
        # JupyterLab asks PyPI for updates and fetches a news feed: there is no internet here.
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=full_env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = JupyterServer(app, f"http://127.0.0.1:{port}", token, root, process, log)
    try:
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and every kernel it started (its process group)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # Kernels are in the same group; make sure none outlives the server.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium context: sandbox CA ignored, clipboard permission granted."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(
                ignore_https_errors=True,
                permissions=["clipboard-read", "clipboard-write"],
                viewport={"width": 1280, "height": 900},
            )
            yield context
        finally:
            browser.close()
