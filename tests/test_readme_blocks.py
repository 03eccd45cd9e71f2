"""Every code block in the README is exercised.

* ``ipython`` / ``python`` blocks run, in README order, in one real kernel against the sandbox
  (the placeholders replaced by a sandbox workspace; device codes approved as a person would);
* a block preceded by ``<!-- exercised-by: PATH -->`` must appear line for line in PATH, a file
  that CI runs (an example or a test);
* a block preceded by ``<!-- run: shell -->`` runs in bash with the project's commands on PATH;
* the two commands at the top are run by tests/test_readme.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from helpers import backend_runs, write_config
from kernels import errors_of, execute, notebook, text_of

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"<!-- (.*?) -->")


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    marker: str | None


def blocks() -> list[Block]:
    """The fenced blocks, with the marker comment on the line before each (if any)."""
    found: list[Block] = []
    lines = README.read_text().splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```") and len(stripped) > 3:
            indent = len(lines[i]) - len(lines[i].lstrip())
            previous = lines[i - 1].strip() if i else ""
            marker = MARKER.fullmatch(previous)
            body = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i][indent:])
                i += 1
            found.append(Block(stripped[3:], "\n".join(body), marker.group(1) if marker else None))
        i += 1
    return found


def placeholders(sb: Any) -> dict[str, str]:
    ws = sb.workspaces[0]
    return {
        "00000000-0000-0000-0000-000000000000": ws.subscription_id,
        "my-resource-group": ws.resource_group,
        "my-workspace": ws.name,
    }


def test_every_block_is_accounted_for() -> None:
    kinds = {"demo-command", "test-command"}
    for block in blocks():
        assert block.lang in ("bash", "ipython", "python"), block
        marker = block.marker or ""
        if block.lang == "bash":
            assert marker in kinds or marker.startswith(("exercised-by:", "run: shell")), block.body
        if marker.startswith("exercised-by:"):
            assert (REPO / marker.split(":", 1)[1].strip()).is_file(), marker


def _text_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        return "\n".join(c.source for c in nbformat.read(str(path), as_version=4).cells)
    text = path.read_text()
    # Databricks source format keeps magics and markdown behind "# MAGIC ".
    return "\n".join(line.removeprefix("# MAGIC ") for line in text.splitlines())


@pytest.mark.parametrize(
    "block", [b for b in blocks() if (b.marker or "").startswith("exercised-by:")], ids=lambda b: b.marker
)
def test_blocks_exercised_elsewhere_appear_there_line_for_line(block: Block) -> None:
    target = _text_of(REPO / block.marker.split(":", 1)[1].strip())
    missing = [line for line in block.body.splitlines() if line.strip() and line.strip() not in target]
    assert missing == [], f"{block.marker}: not found there: {missing}"


def test_shell_blocks_run(sandbox: Any, tmp_path: Path) -> None:
    shell_blocks = [b for b in blocks() if (b.marker or "").startswith("run: shell")]
    assert shell_blocks
    # The notebook the README's example names, and a config.json as `run` writes its own.
    shutil.copy(REPO / "examples" / "quickstart.ipynb", tmp_path / "my_notebook.ipynb")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for block in shell_blocks:
        script = block.body + "\nfor i in $(seq 1 600); do [ -s sandbox.env ] && break; sleep 0.1; done\n"
        script += ". ./sandbox.env\ncurl -s --cacert \"$REQUESTS_CA_BUNDLE\" \"$ARM_CLOUD_METADATA_URL\" | head -c 200\necho\nkill %1\nwait\n"
        done = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, start_new_session=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "quickstart  [FINISHED]" in done.stdout and '"loginEndpoint"' in done.stdout, done.stdout[-3000:]
        executed = nbformat.read(str(tmp_path / "executed.ipynb"), as_version=4)
        assert any(c.get("outputs") for c in executed.cells)
        assert not (tmp_path / "sandbox.env").exists()  # removed when the sandbox stopped


def test_notebook_blocks_run_in_order_against_the_sandbox(sandbox: Any, tmp_path: Path, secret_check: Any) -> None:
    from helpers import answer_device_code

    runnable = [b for b in blocks() if b.lang in ("ipython", "python") and not b.marker]
    cells = []
    for block in runnable:
        source = block.body
        for placeholder, value in placeholders(sandbox).items():
            source = source.replace(placeholder, value)
        cells.append(source)
    assert any("--auth device-code" in c for c in cells)
    write_config(tmp_path, sandbox.workspaces[0])
    nb = notebook(*cells)
    approver = answer_device_code(sandbox, "approve", timeout=600)
    execute(nb, env={**sandbox.env, **sandbox.service_principal}, cwd=tmp_path, timeout=300)
    approver.join(5)
    secret_check.scan(nb)
    failed = [(i, cells[i][:60], text_of(nb, i)[-500:]) for i in range(len(cells)) if errors_of(nb, i)]
    assert failed == []
    assert approver.result.get("code"), "the device-code block never asked for a code"
    names = {r.info.run_name for r in backend_runs(sandbox, sandbox.workspaces[0])}
    assert {"baseline", "ridge"} <= names
    status = next(i for i, c in enumerate(cells) if c.startswith("%amlflow status"))
    assert f"Connected to {sandbox.workspaces[0].name}" in text_of(nb, status)
