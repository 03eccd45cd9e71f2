"""Device-code renderers: the terminal block, the notebook view (escaping, copy, countdown), IPython, Chromium."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jupyter_amlflow import auth
from jupyter_amlflow.auth import DeviceCodePrompt
from jupyter_amlflow.clouds import clouds_from_metadata
from jupyter_amlflow.devicecode import (
    DeviceCodeOutcome,
    DeviceCodeView,
    NotebookDeviceCodeRenderer,
    TextDeviceCodeRenderer,
)

NOW = datetime(2026, 1, 2, 13, 50, 30, tzinfo=timezone.utc)
PROMPT = DeviceCodePrompt(
    verification_uri="https://microsoft.com/devicelogin",
    user_code="ABCD2345E",
    expires_at=NOW + timedelta(minutes=15),
    message="To sign in, open https://microsoft.com/devicelogin and enter the code ABCD2345E.",
)
BLOCK = (
    "To sign in, open this page in a browser:\n"
    "    https://microsoft.com/devicelogin\n"
    "and enter the code:\n"
    "    ABCD2345E\n"
    "The code expires at 14:05:30 UTC (in 15 minutes).\n"
)


def clock() -> datetime:
    return NOW


class Display:
    """Stands in for ``IPython.display.display``: records objects, returns an updatable handle."""

    def __init__(self, handles: bool = True) -> None:
        self.shown: list[tuple[Any, dict[str, Any]]] = []
        self.updates: list[Any] = []
        self.handles = handles

    def __call__(self, obj: Any, **kwargs: Any) -> Any:
        self.shown.append((obj, kwargs))
        return self if self.handles else None

    def update(self, obj: Any) -> None:
        self.updates.append(obj)


# -- terminal -----------------------------------------------------------------------------------------
def test_text_renderer_writes_one_block_then_one_line() -> None:
    out = io.StringIO()
    renderer = TextDeviceCodeRenderer(out, now=clock)
    renderer.show(PROMPT)
    renderer.show(PROMPT)  # the same prompt again: not printed twice
    assert out.getvalue() == BLOCK
    renderer.finish("signed-in", "Signed in as bob@contoso.com.")
    renderer.finish("signed-in", "Signed in as bob@contoso.com.")
    assert out.getvalue() == BLOCK + "Signed in as bob@contoso.com.\n"


def test_text_renderer_defaults_to_stdout_and_says_when_less_than_a_minute_is_left(
    capsys: pytest.CaptureFixture[str],
) -> None:
    renderer = TextDeviceCodeRenderer(now=lambda: PROMPT.expires_at - timedelta(seconds=30))
    renderer.show(PROMPT)
    renderer.finish("expired")
    assert capsys.readouterr().out == BLOCK.replace("in 15 minutes", "in less than a minute") + (
        "Sign-in code expired.\n"
    )


def test_text_renderer_strips_terminal_escapes_from_what_the_server_sent() -> None:
    out = io.StringIO()
    prompt = DeviceCodePrompt("https://x.test/\x1b[2Jlogin", "\x1b[31mABC\x07DEF\x1b[0m", PROMPT.expires_at, "")
    TextDeviceCodeRenderer(out, now=clock).show(prompt)
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "    [31mABCDEF[0m\n" in out.getvalue()


def test_finish_without_a_prompt_shows_nothing() -> None:
    out = io.StringIO()
    TextDeviceCodeRenderer(out).finish("failed", "No renderer.")
    display = Display()
    NotebookDeviceCodeRenderer(display).finish("failed", "No renderer.")
    assert out.getvalue() == "" and display.shown == []


# -- notebook -----------------------------------------------------------------------------------------
def test_notebook_renderer_shows_link_code_copy_and_countdown_then_updates_in_place() -> None:
    display = Display()
    renderer = NotebookDeviceCodeRenderer(display, now=clock)
    renderer.show(PROMPT)
    [(view, kwargs)] = display.shown
    assert kwargs == {"display_id": True}
    assert repr(view) == BLOCK.rstrip("\n")
    page = view._repr_html_()
    assert (
        '<a href="https://microsoft.com/devicelogin" target="_blank" rel="noopener noreferrer">'
        "https://microsoft.com/devicelogin</a>" in page
    )
    assert '<code class="amlflow-code" style="font-family:monospace;' in page and ">ABCD2345E</code>" in page
    assert '<button type="button" class="amlflow-copy"' in page
    assert "navigator.clipboard.writeText(code)" in page and 'document.execCommand("copy")' in page
    assert 'data-seconds="900"' in page and "setInterval(tick, 1000)" in page
    assert "The code expires at 14:05:30 UTC" in page and "(in 15 minutes)" in page
    assert f'document.getElementById("{view.element_id}")' in page

    renderer.finish("signed-in", "Signed in as bob@contoso.com.")
    [outcome] = display.updates
    assert len(display.shown) == 1  # replaced in place, not shown again
    assert repr(outcome) == "Signed in as bob@contoso.com."
    assert outcome._repr_html_() == (
        '<div class="amlflow-devicecode-outcome" data-outcome="signed-in" '
        'style="border-left:4px solid #107c10;padding:4px 12px" title="Signed in">'
        "Signed in as bob@contoso.com.</div>"
    )


def test_notebook_view_escapes_everything_it_shows() -> None:
    prompt = DeviceCodePrompt(
        'https://login.test/device?a=1&b="><script>alert(1)</script>', "<b>&'\"", PROMPT.expires_at, ""
    )
    page = DeviceCodeView(prompt, now=clock)._repr_html_()
    assert page.count("<script>") == 1  # ours only
    assert 'href="https://login.test/device?a=1&amp;b=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert ">&lt;b&gt;&amp;&#x27;&quot;</code>" in page
    outcome = DeviceCodeOutcome("failed", "<img src=x onerror=alert(1)>")._repr_html_()
    assert "<img" not in outcome and "&lt;img src=x onerror=alert(1)&gt;" in outcome


def test_a_verification_uri_that_is_not_a_web_address_is_not_a_link() -> None:
    prompt = DeviceCodePrompt("javascript:alert(1)", "ABC", PROMPT.expires_at, "")
    page = DeviceCodeView(prompt, now=clock)._repr_html_()
    assert "href" not in page and "<div>1. Open <code>javascript:alert(1)</code></div>" in page


def test_without_a_display_handle_the_outcome_is_displayed_after_the_prompt() -> None:
    display = Display(handles=False)
    renderer = NotebookDeviceCodeRenderer(display, now=clock)
    renderer.show(PROMPT)
    renderer.finish("cancelled")
    assert [repr(obj) for obj, _ in display.shown] == [BLOCK.rstrip("\n"), "Sign-in cancelled."]
    assert display.updates == []


_IPYTHON = textwrap.dedent(
    """
    import json
    from datetime import datetime, timedelta, timezone
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output
    from jupyter_amlflow.auth import DeviceCodePrompt
    from jupyter_amlflow.devicecode import NotebookDeviceCodeRenderer

    InteractiveShell.instance()
    prompt = DeviceCodePrompt("https://microsoft.com/devicelogin", "ABCD2345E",
                              datetime.now(timezone.utc) + timedelta(minutes=15), "")
    with capture_output() as captured:
        renderer = NotebookDeviceCodeRenderer(display)
        renderer.show(prompt)
        renderer.finish("declined", "The sign-in was declined.")
    print(json.dumps([
        {"data": o.data, "display_id": (o.transient or {}).get("display_id"), "update": o.update}
        for o in captured.outputs
    ]))
    """
)


def test_with_ipython_display_the_outcome_replaces_the_prompt() -> None:
    child = subprocess.run([sys.executable, "-c", _IPYTHON], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr[-2000:]
    prompt, outcome = json.loads(child.stdout)
    assert prompt["update"] is False and outcome["update"] is True
    assert prompt["display_id"] and outcome["display_id"] == prompt["display_id"]
    assert "ABCD2345E" in prompt["data"]["text/html"] and "ABCD2345E" in prompt["data"]["text/plain"]
    assert outcome["data"]["text/plain"] == "The sign-in was declined."


# -- the page in a real browser -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> Any:
    from browser_support import launch

    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = launch(p)  # a skip that names what is missing (the HTML checks above still ran)
        yield browser
        browser.close()


@pytest.mark.browser
def test_countdown_runs_in_the_browser_and_copy_puts_the_code_on_the_clipboard(chromium: Any) -> None:
    context = chromium.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    prompt = DeviceCodePrompt(
        "https://microsoft.com/devicelogin", "ABCD2345E", datetime.now(timezone.utc) + timedelta(seconds=3), ""
    )
    html = DeviceCodeView(prompt)._repr_html_()
    # Served from a loopback origin (a secure context, like a notebook server) without any server:
    # the browser's request is answered right here.
    page.route("http://127.0.0.1:9/**", lambda route: route.fulfill(body=html, content_type="text/html"))
    page.goto("http://127.0.0.1:9/notebook")
    assert page.text_content(".amlflow-left") in (" (in 0:03)", " (in 0:02)")
    page.click(".amlflow-copy")
    page.wait_for_function("document.querySelector('.amlflow-copied').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == "ABCD2345E"
    page.wait_for_function("document.querySelector('.amlflow-left').textContent === ' (it has expired)'", timeout=6000)
    context.close()


@pytest.mark.browser
def test_copy_falls_back_to_selecting_the_code_without_the_clipboard_api(chromium: Any) -> None:
    context = chromium.new_context()
    page = context.new_page()
    page.set_content(DeviceCodeView(PROMPT)._repr_html_())  # about:blank: no navigator.clipboard
    assert page.evaluate("navigator.clipboard === undefined")
    page.click(".amlflow-copy")
    page.wait_for_function("document.querySelector('.amlflow-copied').textContent !== ''")
    assert page.text_content(".amlflow-copied") in ("Copied", "Selected: press Ctrl+C (Cmd+C) to copy")
    assert page.evaluate("window.getSelection().toString()") == "ABCD2345E"
    context.close()


# -- with sign_in, against the sandbox -------------------------------------------------------------------
def test_sign_in_renders_the_code_but_never_the_device_code(
    sandbox_factory: Any, secret_check: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sandbox_factory(subscriptions=1, workspaces_per_subscription=1, mlflow=False)
    for k, v in sb.env.items():
        monkeypatch.setenv(k, v)
    display = Display()
    renderer = NotebookDeviceCodeRenderer(display)
    text = io.StringIO()
    both = _Both(renderer, TextDeviceCodeRenderer(text))

    def approve() -> None:
        pending = sb.wait_for_device_code(30)
        time.sleep(0.2)
        sb.approve_device_code(pending.user_code, sb.bob.username)

    thread = threading.Thread(target=approve, daemon=True)
    thread.start()
    cloud = clouds_from_metadata(sb.cloud_metadata(), sb.metadata_url)[0]
    signin = auth.sign_in(cloud, methods=["device-code"], renderer=both, env={**os.environ})
    thread.join(10)
    assert signin.identity.name == sb.bob.username
    [(view, _)] = display.shown
    [outcome] = display.updates
    for obj in (view, outcome):
        secret_check.scan({"text/html": obj._repr_html_(), "text/plain": repr(obj)})
    secret_check.scan(text.getvalue())
    assert both.prompts[0].user_code in view._repr_html_()
    assert repr(outcome) == f"Signed in as {sb.bob.username}."
    assert text.getvalue().endswith(f"Signed in as {sb.bob.username}.\n")


class _Both:
    """Passes the prompt to two renderers (what a notebook plus a log might both want)."""

    def __init__(self, *renderers: Any) -> None:
        self.renderers = renderers
        self.prompts: list[DeviceCodePrompt] = []

    def show(self, prompt: DeviceCodePrompt) -> None:
        self.prompts.append(prompt)
        for r in self.renderers:
            r.show(prompt)

    def finish(self, outcome: str, detail: str = "") -> None:
        for r in self.renderers:
            r.finish(outcome, detail)
