"""The suite started in the background: SIGINT ignored, no terminal, a per-test timeout.

``cmd &``, ``nohup`` and several CI runners start the test command with SIGINT ignored. The tests
that press Ctrl-C must still interrupt (``ctrl_c`` in conftest.py); a hang must fail one test
after the configured timeout instead of stalling the run.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Every test that simulates Ctrl-C in the test process (kernels get SIGINT from jupyter_client).
CTRL_C_TESTS = (
    "tests/test_auth.py::test_keyboard_interrupt_during_the_wait_tells_the_renderer_and_saves_nothing",
    "tests/test_magics.py::test_interrupting_a_device_code_wait_changes_nothing",
    "tests/test_faults.py::test_interrupting_a_slow_experiment_lookup_restores_everything",
)


def _as_in_the_background() -> None:
    # What `cmd &` in a non-interactive shell does to the command it starts.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pytest(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_as_in_the_background,
    )


def test_ctrl_c_tests_pass_when_the_suite_ignores_sigint() -> None:
    """Before the fix each of these waited out its whole timeout (the device code's 900 s)."""
    # Takes ~1 min: a pytest session of its own, with its own sandbox and mlflow server.
    # A tighter timeout than the configured one, so a regression fails here in minutes.
    result = _pytest("--timeout", "240", *CTRL_C_TESTS, timeout=900)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert re.search(rf"\b{len(CTRL_C_TESTS)} passed\b", out), out[-2000:]
    # Each interrupt lands within seconds of the press, not at the timeout.
    durations = [float(m.group(1)) for m in re.finditer(r"^([\d.]+)s call\s+tests/", out, re.M)]
    assert len(durations) == len(CTRL_C_TESTS) and max(durations) < 120, out[-3000:]


def test_the_configured_timeout_fails_a_hung_test_with_its_stack(tmp_path: Path) -> None:
    # The configuration is read from pyproject.toml: run a hanging test under it, overriding only
    # the limit, so the check takes seconds and shows the method and the report are the configured ones.
    hung = tmp_path / "test_hung.py"
    hung.write_text("import time\n\n\ndef test_waits_forever():\n    time.sleep(3600)\n")
    header = _pytest("--co", str(hung), "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO), timeout=120)
    assert "timeout: 600.0s" in header.stdout and "timeout method: signal" in header.stdout, header.stdout
    result = _pytest(
        str(hung), "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO), "--timeout", "3", timeout=120
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert "Failed: Timeout" in out and "time.sleep(3600)" in out, out
    assert "slowest 15 durations" in out, out

