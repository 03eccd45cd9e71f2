"""Run notebook cells in a real IPython kernel (nbclient), with the environment a test chooses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


def notebook(*cells: str) -> Any:
    """A notebook of code cells."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


def execute(nb: Any, *, env: dict[str, str], cwd: Path, timeout: int = 180, allow_errors: bool = True) -> Any:
    """Execute ``nb`` in a fresh python3 kernel whose environment is ``os.environ`` + ``env``."""
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    )
    full_env = {**os.environ, **env}
    client.execute(env=full_env, cwd=str(cwd))
    return nb


def outputs(nb: Any, index: int) -> list[dict[str, Any]]:
    """The outputs of cell ``index``."""
    return list(nb.cells[index].get("outputs", []))


def text_of(nb: Any, index: int) -> str:
    """Everything cell ``index`` showed as text (stream, text/plain, error)."""
    parts = []
    for out in outputs(nb, index):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data", "update_display_data"):
            parts.append(out["data"].get("text/plain", ""))
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(parts)


def html_of(nb: Any, index: int) -> str:
    """Everything cell ``index`` showed as HTML."""
    return "\n".join(
        out["data"].get("text/html", "")
        for out in outputs(nb, index)
        if out["output_type"] in ("execute_result", "display_data", "update_display_data")
    )


def errors_of(nb: Any, index: int) -> list[dict[str, Any]]:
    """The error outputs of cell ``index``."""
    return [out for out in outputs(nb, index) if out["output_type"] == "error"]
