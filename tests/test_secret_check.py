"""Canary: the suite's secret check catches a sandbox-issued secret in every channel it watches.

An inner pytest session (a subprocess, with this suite's conftest) runs tests that each leak one
secret the sandbox issued through one channel; every one of them must be reported failed by the
"secret check", and a clean test must pass.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent

LEAKS = """
import logging
import sys

import pytest


@pytest.fixture(scope="session")
def secret(sandbox_factory):
    sb = sandbox_factory(subscriptions=0, workspaces_per_subscription=0, mlflow=False)
    assert sb.sp.client_secret in sb.issued_secrets()
    return sb.sp.client_secret


def test_stdout(secret):
    print("client secret:", secret)


def test_stderr(secret):
    print("client secret:", secret, file=sys.stderr)


def test_log_record(secret):
    # A library logger at DEBUG, as a verbose HTTP client would write it.
    logging.getLogger("urllib3.connectionpool").debug("POST /token body=client_secret=%s", secret)


def test_exception_text(secret):
    raise RuntimeError(f"token request failed for client_secret={secret}")


def test_written_file(secret, tmp_path):
    (tmp_path / "notes.txt").write_text(f"client_secret={secret}\\n")


def test_display_data(secret, secret_check):
    secret_check.scan({"text/html": f"<pre>{secret}</pre>", "text/plain": "..."})


def test_clean(secret, secret_check, tmp_path):
    print("signed in as sandbox-sp")
    logging.getLogger("urllib3.connectionpool").debug("POST /token 200")
    (tmp_path / "notes.txt").write_text("nothing secret")
    secret_check.scan({"text/plain": "secret: " + secret[:4] + "..."})
"""

# Each leaking test, and the words of the check's report for its channel. Output and exception
# text are judged on the test's own report; the rest after the test, in the check's teardown.
CHANNELS = {
    "test_stdout": "stdout contains",
    "test_stderr": "stderr contains",
    "test_log_record": "log records of urllib3.connectionpool contain",
    "test_exception_text": "exception text contains",
    "test_written_file": "file .*notes.txt contains",
    "test_display_data": "scanned object #0 contains",
}


def test_secret_check_catches_every_channel(pytester: pytest.Pytester) -> None:
    shutil.copy(HERE / "conftest.py", pytester.path / "conftest.py")
    shutil.copy(HERE / "netguard.py", pytester.path / "netguard.py")
    shutil.copytree(HERE / "_netguard", pytester.path / "_netguard", ignore=shutil.ignore_patterns("__pycache__"))
    pytester.makepyfile(test_leaks=LEAKS)
    report = pytester.path / "report.xml"
    pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "--show-capture=no", f"--junitxml={report}", timeout=120
    )
    verdicts = _verdicts(report)
    for test, channel in CHANNELS.items():
        problems = verdicts[test]
        # e.g. "secret check: stdout contains ['Yk2r...(32 chars)']" (a teardown error says so first)
        pattern = rf"secret check: {channel} \['.{{4}}\.\.\.\(\d+ chars\)'\]"
        assert any(re.search(pattern, p) for p in problems), (test, problems)
    assert verdicts["test_clean"] == []


def _verdicts(report: Path) -> dict[str, list[str]]:
    """Each inner test's failure and error messages (test-phase or teardown), from the JUnit report."""
    verdicts: dict[str, list[str]] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        messages = [e.get("message", "") for e in case if e.tag in ("failure", "error")]
        verdicts.setdefault(case.get("name", ""), []).extend(messages)
    return verdicts
