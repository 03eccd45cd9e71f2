"""Suite-wide guards: loopback-only network, no leaked secrets, a clean environment.

* Every connection or name lookup outside 127.0.0.0/8, in this process or in any Python child
  (kernels, mlflow servers: ``tests/_netguard/sitecustomize.py``), fails the test.
* Every secret, token, device code and SAS a sandbox issued is searched for in the test's captured
  output, log records (all loggers, at DEBUG), exception text, files written under ``tmp_path``
  and the session's HOME, and whatever a test hands to ``secret_check.scan``.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import netguard  # noqa: E402


class SecretCheck:
    """Collects the secrets to look for, and the text and files to look in."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], list[str]]] = []
        self._extra: set[str] = set()
        self._texts: list[str] = []
        self._dirs: list[Path] = []
        self.excluded_dirs: list[Path] = []

    def add_source(self, source: Callable[[], list[str]]) -> None:
        """Watch a callable returning secrets (a sandbox's ``issued_secrets``)."""
        self._sources.append(source)

    def add_secret(self, value: str) -> None:
        """Watch one more secret (e.g. a stand-in platform's secret)."""
        if value:
            self._extra.add(value)

    def scan(self, value: Any) -> None:
        """Look for secrets in this object's text too (notebook outputs, display data...)."""
        self._texts.append(value if isinstance(value, str) else repr(value))

    def scan_dir(self, path: Path) -> None:
        """Look in the files under this directory at the end of the test."""
        self._dirs.append(path)

    def secrets(self) -> set[str]:
        found = set(self._extra)
        for source in self._sources:
            found.update(source())
        # Very short values would match by accident; the sandbox issues none that short.
        return {s for s in found if len(s) >= 8}

    def find_in(self, text: str) -> list[str]:
        """The secrets that occur in ``text`` (shortened, so the report does not leak them)."""
        return [f"{s[:4]}...({len(s)} chars)" for s in self.secrets() if s in text]

    def reset_test(self) -> tuple[list[str], list[Path]]:
        texts, dirs = self._texts, self._dirs
        self._texts, self._dirs = [], []
        return texts, dirs


class _RecordAll(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
        except Exception:  # a record that cannot format is not ours to fail on here
            self.texts.append(str(record.msg))


_CHECK = SecretCheck()
_HANDLER = _RecordAll()


def pytest_configure(config: pytest.Config) -> None:
    from jupyter_amlflow.sandbox import FOREIGN_ENV

    # The sandbox's list; SSH_CONNECTION would change the default sign-in methods under test.
    for name in (*FOREIGN_ENV, "SSH_CONNECTION", "AMLFLOW_NETGUARD_REGISTRIES"):
        os.environ.pop(name, None)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    session_dir = Path(tempfile.mkdtemp(prefix="amlflow-tests-"))
    home = session_dir / "home"
    home.mkdir()
    os.environ["HOME"] = str(home)
    os.environ["AMLFLOW_TEST_HOME"] = str(home)
    guard_log = session_dir / "netguard.log"
    guard_log.touch()
    os.environ["AMLFLOW_NETGUARD_LOG"] = str(guard_log)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE / "_netguard"), os.environ.get("PYTHONPATH", "")) if p
    )
    netguard.install(str(guard_log))
    config.stash[_session_key] = session_dir
    root = logging.getLogger()
    root.addHandler(_HANDLER)
    root.setLevel(logging.DEBUG)


_session_key = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def secret_check() -> SecretCheck:
    """The suite's secret check: register sources, scan extra text."""
    return _CHECK


@pytest.fixture(scope="session")
def test_home() -> Path:
    """The HOME every test (and child process) sees."""
    return Path(os.environ["AMLFLOW_TEST_HOME"])


def _guard_log() -> Path:
    return Path(os.environ["AMLFLOW_NETGUARD_LOG"])


@pytest.fixture(autouse=True)
def _network_guard() -> Iterator[None]:
    log = _guard_log()
    log.write_text("")
    netguard.take_violations()
    yield
    refused = netguard.take_violations()
    child = log.read_text()
    log.write_text("")
    if refused or child.strip():
        pytest.fail(
            "network guard: the test tried to reach beyond 127.0.0.0/8:\n" + "\n".join(refused) + child,
            pytrace=False,
        )


def _text_files(root: Path, since: float, skip: list[Path]) -> Iterator[tuple[Path, str]]:
    if not root.exists():
        return
    for path in root.rglob("*"):
        if any(path.is_relative_to(s) for s in skip):
            continue
        try:
            if not path.is_file() or path.stat().st_mtime < since or path.stat().st_size > 20_000_000:
                continue
            yield path, path.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue


@pytest.fixture(autouse=True)
def _secrets_guard(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    started = time.time() - 1
    _HANDLER.texts.clear()
    yield
    texts, dirs = _CHECK.reset_test()
    logs = "\n".join(_HANDLER.texts)
    problems = []
    if _CHECK.find_in(logs):
        loggers = sorted({t.split(" ", 1)[0] for t in _HANDLER.texts if _CHECK.find_in(t)})
        problems.append(f"log records of {', '.join(loggers)} contain {_CHECK.find_in(logs)}")
    for i, text in enumerate(texts):
        if hits := _CHECK.find_in(text):
            problems.append(f"scanned object #{i} contains {hits}")
    roots = [Path(os.environ["AMLFLOW_TEST_HOME"]), *dirs]
    tmp = getattr(request.node, "funcargs", {}).get("tmp_path")
    if tmp is not None:
        roots.append(tmp)
    for root in roots:
        for path, text in _text_files(root, started, _CHECK.excluded_dirs):
            if hits := _CHECK.find_in(text):
                problems.append(f"file {path} contains {hits}")
    _HANDLER.texts.clear()
    if problems:
        pytest.fail("secret check: " + "; ".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    channels = {
        "stdout": report.capstdout,
        "stderr": report.capstderr,
        "exception text": report.longreprtext if report.failed else "",
    }
    leaks = [f"{name} contains {hits}" for name, text in channels.items() if text and (hits := _CHECK.find_in(text))]
    if leaks:
        report.outcome = "failed"
        report.longrepr = "secret check: " + "; ".join(leaks)


@pytest.fixture(scope="session")
def sandbox_factory(secret_check: SecretCheck) -> Iterator[Callable[..., Any]]:
    """Start extra sandboxes (stopped at session end); their secrets join the check."""
    from jupyter_amlflow.sandbox import Sandbox

    started: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sb = Sandbox(**kwargs)
        secret_check.add_source(sb.issued_secrets)
        secret_check.excluded_dirs.append(sb.root)
        started.append(sb)
        return sb.start()

    yield make
    for sb in started:
        sb.stop()


@pytest.fixture(scope="session")
def sandbox(amlflow_sandbox: Any, secret_check: SecretCheck) -> Any:
    """The session's shared sandbox (the plugin's ``amlflow_sandbox``), secrets watched."""
    secret_check.add_source(amlflow_sandbox.issued_secrets)
    secret_check.excluded_dirs.append(amlflow_sandbox.root)
    return amlflow_sandbox


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_check: SecretCheck) -> Path:
    """A HOME of this test's own. The opted-in plain token cache holds tokens by design: not scanned."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    secret_check.excluded_dirs.append(path / ".IdentityService")
    return path


@pytest.fixture
def sp_env(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The sandbox cloud and its service principal in the environment, MLflow's retries off (a test
    that expects an error status should not wait them out); MLflow's state restored after."""
    from helpers import isolated_mlflow

    for k, v in {**sandbox.env, **sandbox.service_principal}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with isolated_mlflow():
        yield sandbox


@pytest.fixture
def ctrl_c() -> Iterator[Callable[[], None]]:
    """Press Ctrl-C in the main thread: call the returned function from another thread.

    ``_thread.interrupt_main()`` does nothing when SIGINT is ignored, which is what a suite started
    in the background inherits (``cmd &``, ``nohup``, several CI runners). Python's own handler is
    installed for the test's duration, so the press lands whatever disposition the suite inherited.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield _thread.interrupt_main
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A monkeypatch whose environment changes are undone after the test."""
    return monkeypatch
