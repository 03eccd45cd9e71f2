"""`amlflow-sandbox` as a newcomer meets it: the help, the line to paste, the demo's summary, --keep-running."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from helpers import extension_shell
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from jupyter_amlflow.pasteable import connect_command, is_inert
from jupyter_amlflow.sandbox.__main__ import main, ready_lines


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


def test_help_is_plain_text_names_both_forms_and_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    shown = _help(["--help"], capsys)
    assert "``" not in shown and ".py" not in shown, shown
    usage = shown.split("\n\n", 1)[0]
    assert usage == (
        "usage: amlflow-sandbox [options]\n"
        "       amlflow-sandbox run NOTEBOOK [options]     (see: amlflow-sandbox run --help)"
    )
    assert re.search(r"--subscriptions N\s+subscriptions to create \(default 2\)", shown), shown
    assert re.search(r"--tenants N\s+tenants \(default 1\)", shown), shown
    assert re.search(r"--workspaces-per-subscription N\s+workspaces in each subscription", shown), shown
    run = _help(["run", "--help"], capsys)
    assert "``" not in run and "--keep-running" in run and "Studio links open while the sandbox runs" in run
    # Every option of either form has a line of help (argparse prints a bare option otherwise).
    for text in (shown, run):
        options = text.split("options:\n", 1)[1]
        bare = [line for line in options.splitlines() if re.fullmatch(r"\s+(-\w, )?--[\w-]+( [A-Z_]+)?", line)]
        followed = [
            line
            for line, after in zip(options.splitlines(), [*options.splitlines()[1:], ""], strict=True)
            if line in bare and not after.startswith(" " * 20)
        ]
        assert followed == [], text


# -- the line `amlflow-sandbox` prints once it serves ------------------------------------------------
@pytest.fixture
def ip(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A shell whose environment holds what the export lines set (the service principal included)."""
    with extension_shell(sandbox, monkeypatch.setenv, load=False) as shell:
        yield shell


def test_the_ready_line_pasted_into_a_cell_connects_to_the_first_workspace(ip: Any, sandbox: Any) -> None:
    lines = ready_lines(sandbox)
    assert lines[0].startswith(f"# sandbox ready at {sandbox.base_url} with {len(sandbox.workspaces)} workspaces")
    pasted = lines[-1]
    assert pasted == f"%amlflow connect {sandbox.workspaces[0].arm_id}"
    ip.run_cell("%load_ext jupyter_amlflow", store_history=False).raise_error()
    ip.run_cell(pasted, store_history=False).raise_error()
    connection = ip.magics_manager.registry["AmlflowMagics"].session.connection
    assert connection is not None and connection.workspace.name == sandbox.workspaces[0].name


@pytest.mark.parametrize(
    "arm_id", ["/subscriptions/{x}/rg", "/subscriptions/$HOME/rg", "/a b", "/a'b", '/a"b', "/a\\b"]
)
def test_an_id_ipython_or_the_split_would_change_is_not_suggested(arm_id: str) -> None:
    assert connect_command(arm_id) == "%amlflow list workspaces"


# Printable characters without the ones the rule names: drawing from all of text and filtering left
# about one word in eight, and Hypothesis's health check failed the test on a slow machine.
_INERT_ALPHABET = st.characters(
    exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"), exclude_characters="'\"\\${}?"
)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_INERT_ALPHABET, min_size=1, max_size=40))
def test_an_inert_word_reaches_the_magic_unchanged(word: str) -> None:
    shell = InteractiveShell.instance()
    # Names IPython would substitute if the word expanded them.
    namespace = {name: "EXPANDED" for name in ("x", "HOME", "a", "b", "_", "self")}
    assume(is_inert(word))
    shell.user_ns.update(namespace)
    try:
        line = f"connect {word} --experiment e"
        assert shlex.split(shell.var_expand(line)) == ["connect", word, "--experiment", "e"]
    finally:
        for name in namespace:
            shell.user_ns.pop(name, None)


# -- amlflow-sandbox run: the demo's summary and --keep-running ---------------------------------------
def _tiny_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_amlflow"),
        nbformat.v4.new_code_cell("%amlflow connect --experiment cli"),
        nbformat.v4.new_code_cell(
            "import mlflow\nwith mlflow.start_run(run_name='tiny'):\n    mlflow.log_metric('m', 1.5)"
        ),
    ]
    nbformat.write(nb, str(path))
    return path


def _as_in_the_background() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_run_summary_is_clean_and_says_how_to_keep_the_links(tmp_path: Path) -> None:
    """Two sandboxes, one after the other: ~40 s."""
    notebook = _tiny_notebook(tmp_path / "tiny.ipynb")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    command = [sys.executable, "-m", "jupyter_amlflow.sandbox", "run", str(notebook)]
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        preexec_fn=_as_in_the_background,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Nothing but our own lines: no kernel warning ("running over TCP without encryption"), no banner.
    assert [line for line in done.stderr.splitlines() if not line.startswith("# ")] == [], done.stderr
    assert re.search(r"tiny\s+\[FINISHED\]", done.stdout) and "Studio:    https://127.0.0.1:" in done.stdout
    note, again = done.stdout.rstrip("\n").splitlines()[-2:]
    assert note == "The Studio links above open only while the sandbox runs, and it stops now. To click them, run:"
    assert shlex.split(again) == [*command, "--keep-running"]
    assert list(tmp.iterdir()) == []

    # The suggested command, as pasted: it serves until SIGTERM, and the links open meanwhile.
    kept = subprocess.Popen(
        shlex.split(again),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_in_the_background,
    )
    try:
        while "keeps running" not in (line := kept.stderr.readline()):
            assert line, kept.stdout.read()
        assert f"Ctrl-C (or kill {kept.pid}) stops it" in line
        # The summary was flushed before that line: a reader of a pipe (| tee) sees the links now.
        summary = os.read(kept.stdout.fileno(), 1 << 20).decode()
        links = re.findall(r"Studio:\s+(\S+)", summary)
        assert links and "--keep-running" not in summary, summary  # no "run it again" advice this time
        ca = next(tmp.glob("amlflow-sandbox-*/sandbox-ca.pem"))
        page = requests.get(links[0], verify=str(ca), timeout=30)
        assert page.status_code == 200 and "tiny" in page.text, page.text[:500]
        kept.send_signal(signal.SIGTERM)
        assert kept.wait(60) == 0, kept.stderr.read()
    finally:
        if kept.poll() is None:
            kept.kill()
            kept.wait(30)
    assert list(tmp.iterdir()) == []
