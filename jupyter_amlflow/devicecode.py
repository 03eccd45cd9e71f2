"""Device-code prompts: a notebook view (link, code, copy button, countdown) and a terminal one.

``auth.sign_in`` hands a ``DeviceCodePrompt`` (link, user code, expiry; never the secret device
code) to a renderer as soon as Entra ID issued the code, then tells it how the sign-in ended.
Nothing here imports IPython: the notebook renderer displays through a callable it is given,
such as ``IPython.display.display``, and updates that same output when the sign-in ends.
"""

from __future__ import annotations

import html
import math
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .auth import DeviceCodePrompt

__all__ = [
    "DeviceCodeOutcome",
    "DeviceCodeView",
    "NotebookDeviceCodeRenderer",
    "TextDeviceCodeRenderer",
    "prompt_text",
]

Clock = Callable[[], datetime]

# outcome -> (title, accent colour)
_OUTCOMES = {
    "signed-in": ("Signed in", "#107c10"),
    "declined": ("Sign-in declined", "#c0392b"),
    "expired": ("Sign-in code expired", "#c0392b"),
    "cancelled": ("Sign-in cancelled", "#767676"),
    "failed": ("Sign-in failed", "#c0392b"),
}


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _clean(text: str) -> str:
    """Printable characters only: a value from the network must not carry terminal escapes."""
    return "".join(ch for ch in text if ch.isprintable())


def _linkable(url: str, hosts: tuple[str, ...]) -> bool:
    """Whether the sign-in page may be a link: https, and (for a built-in cloud) one of its hosts.

    The address comes from the server's answer; a link to anywhere else is shown as text only.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        return False
    return not hosts or (parts.hostname.lower() in hosts and parts.port in (None, 443))


def _seconds_left(prompt: DeviceCodePrompt, now: datetime) -> int:
    return max(0, math.floor((prompt.expires_at - now).total_seconds()))


def _left_text(seconds: int) -> str:
    if seconds <= 0:
        return "it has expired"
    if seconds < 60:
        return "in less than a minute"
    minutes = math.ceil(seconds / 60)
    return f"in {minutes} minute{'s' if minutes != 1 else ''}"


def _expiry_clock(prompt: DeviceCodePrompt) -> str:
    return prompt.expires_at.astimezone(timezone.utc).strftime("%H:%M:%S UTC")


def prompt_text(prompt: DeviceCodePrompt, now: datetime | None = None) -> str:
    """The prompt as a plain-text block (no trailing newline).

    Args:
        prompt: The device-code prompt.
        now: The time to count the minutes left from (default: now).
    """
    left = _left_text(_seconds_left(prompt, now or _utc_now()))
    return (
        "To sign in, open this page in a browser:\n"
        f"    {_clean(prompt.verification_uri)}\n"
        "and enter the code:\n"
        f"    {_clean(prompt.user_code)}\n"
        f"The code expires at {_expiry_clock(prompt)} ({left})."
    )


# The countdown and the copy button run in the browser: no round trip to the kernel, which is
# busy waiting for the sign-in. No value from the prompt is put in the script; it reads the DOM.
_SCRIPT = """
(function () {
  var root = document.getElementById("__ID__");
  if (!root) { return; }
  var codeEl = root.querySelector(".amlflow-code");
  var status = root.querySelector(".amlflow-copied");
  var left = root.querySelector(".amlflow-left");
  var button = root.querySelector(".amlflow-copy");
  function selectCode() {
    var range = document.createRange();
    range.selectNodeContents(codeEl);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function fallbackCopy() {
    selectCode();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    status.textContent = ok ? "Copied" : "Selected: press Ctrl+C (Cmd+C) to copy";
  }
  button.addEventListener("click", function () {
    var code = codeEl.textContent;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(code).then(function () { status.textContent = "Copied"; }, fallbackCopy);
    } else {
      fallbackCopy();
    }
  });
  var deadline = Date.now() + 1000 * Number(root.getAttribute("data-seconds"));
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  var timer = null;
  function tick() {
    if (!root.isConnected) { clearInterval(timer); return; }
    var s = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    left.textContent = s > 0 ? " (in " + Math.floor(s / 60) + ":" + pad(s % 60) + ")" : " (it has expired)";
    if (s <= 0) { clearInterval(timer); }
  }
  timer = setInterval(tick, 1000);
  tick();
})();
"""


class DeviceCodeView:
    """A device-code prompt as a display object: ``__repr__`` (text) and ``_repr_html_``.

    Args:
        prompt: What to show.
        now: Clock for the time left (the HTML counts down in the browser from there).
    """

    def __init__(self, prompt: DeviceCodePrompt, *, now: Clock = _utc_now) -> None:
        self.prompt = prompt
        self._now = now
        self.element_id = "amlflow-devicecode-" + uuid.uuid4().hex[:12]

    def __repr__(self) -> str:
        return prompt_text(self.prompt, self._now())

    def _repr_html_(self) -> str:
        prompt = self.prompt
        url = _clean(prompt.verification_uri)
        code = html.escape(_clean(prompt.user_code))
        if _linkable(url, prompt.link_hosts):
            link = (
                f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">'
                f"{html.escape(url)}</a>"
            )
        else:  # never make a link of anything but the cloud's own sign-in page
            link = f"<code>{html.escape(url)}</code>"
        seconds = _seconds_left(prompt, self._now())
        return (
            f'<div class="amlflow-devicecode" id="{self.element_id}" data-seconds="{seconds}" '
            'style="border-left:4px solid #0078d4;padding:6px 12px;line-height:1.8">'
            "<div><b>Sign in to Azure</b></div>"
            f"<div>1. Open {link}</div>"
            "<div>2. Enter the code "
            '<code class="amlflow-code" style="font-family:monospace;font-size:1.25em;letter-spacing:0.1em;'
            'padding:1px 8px;border:1px solid #8a8886;border-radius:4px;user-select:all">'
            f"{code}</code> "
            '<button type="button" class="amlflow-copy" title="Copy the code">Copy</button> '
            '<span class="amlflow-copied" role="status" aria-live="polite"></span></div>'
            f"<div>The code expires at {html.escape(_expiry_clock(prompt))}"
            f'<span class="amlflow-left"> ({html.escape(_left_text(seconds))})</span>.</div>'
            f"</div><script>{_SCRIPT.replace('__ID__', self.element_id)}</script>"
        )


class DeviceCodeOutcome:
    """How a device-code sign-in ended, as a display object (replaces the prompt).

    Args:
        outcome: ``"signed-in"``, ``"declined"``, ``"expired"``, ``"cancelled"`` or ``"failed"``.
        detail: One sentence for the person (shown instead of the generic title when given).
    """

    def __init__(self, outcome: str, detail: str = "") -> None:
        self.outcome = outcome
        self.detail = detail

    @property
    def text(self) -> str:
        """The one-line text form."""
        title = _OUTCOMES.get(self.outcome, ("Sign-in ended", ""))[0]
        detail = _clean(self.detail).strip()
        return detail or f"{title}."

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        title, colour = _OUTCOMES.get(self.outcome, ("Sign-in ended", "#767676"))
        return (
            f'<div class="amlflow-devicecode-outcome" data-outcome="{html.escape(self.outcome, quote=True)}" '
            f'style="border-left:4px solid {colour};padding:4px 12px" title="{html.escape(title, quote=True)}">'
            f"{html.escape(self.text)}</div>"
        )


class NotebookDeviceCodeRenderer:
    """Shows the prompt as HTML in the notebook and replaces it with the outcome.

    Args:
        display: Called as ``display(obj, display_id=True)``; if it returns a handle with
            ``update(obj)`` (IPython's ``DisplayHandle``), the outcome replaces the prompt in
            place, else the outcome is displayed after it.
        now: Clock (for tests).
    """

    def __init__(self, display: Callable[..., Any], *, now: Clock = _utc_now) -> None:
        self._display = display
        self._now = now
        self._lock = threading.Lock()
        self._prompt: DeviceCodePrompt | None = None
        self._handle: Any = None
        self._finished = False

    def show(self, prompt: DeviceCodePrompt) -> None:
        """Display the prompt (once per prompt)."""
        with self._lock:
            if prompt == self._prompt:
                return
            self._prompt, self._finished, self._handle = prompt, False, None
        handle = self._display(DeviceCodeView(prompt, now=self._now), display_id=True)
        with self._lock:
            self._handle = handle

    def finish(self, outcome: str, detail: str = "") -> None:
        """Replace the prompt with the outcome (nothing happens if no prompt was shown)."""
        with self._lock:
            if self._prompt is None or self._finished:
                return
            self._finished = True
            handle = self._handle
        view = DeviceCodeOutcome(outcome, detail)
        update = getattr(handle, "update", None)
        if callable(update):
            update(view)
        else:
            self._display(view)


class TextDeviceCodeRenderer:
    """Writes the prompt as one plain-text block, and one line when it ends.

    Args:
        stream: Where to write (default: ``sys.stdout`` at the time of writing).
        now: Clock (for tests).
    """

    def __init__(self, stream: TextIO | None = None, *, now: Clock = _utc_now) -> None:
        self._stream = stream
        self._now = now
        self._lock = threading.Lock()
        self._prompt: DeviceCodePrompt | None = None
        self._finished = False

    def _write(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(text)
        stream.flush()  # a prompt stuck in a buffer is the classic device-code failure

    def show(self, prompt: DeviceCodePrompt) -> None:
        """Write the prompt block (once per prompt)."""
        with self._lock:
            if prompt == self._prompt:
                return
            self._prompt, self._finished = prompt, False
            self._write(prompt_text(prompt, self._now()) + "\n")

    def finish(self, outcome: str, detail: str = "") -> None:
        """Write how the sign-in ended (nothing if no prompt was shown)."""
        with self._lock:
            if self._prompt is None or self._finished:
                return
            self._finished = True
            self._write(DeviceCodeOutcome(outcome, detail).text + "\n")
