"""Databricks source notebooks as notebook cells, so they can run in a plain Jupyter kernel.

A notebook exported from Databricks as "Source" (or kept in a Databricks Git folder) is a
``.py`` file in this shape::

    # Databricks notebook source
    # MAGIC %md
    # MAGIC # A title

    # COMMAND ----------

    # DBTITLE 1,Log a metric
    import mlflow

The first line marks the format; ``# COMMAND ----------`` lines separate cells; a cell whose
lines all start with ``# MAGIC`` holds a magic command with that prefix added to each line
(``%md`` markdown, ``%sql`` SQL, ``%pip ...``, any IPython magic); an optional first line
``# DBTITLE <shown>,<title>`` names the cell.

``load_databricks_source`` turns that into ``Cell`` s: Python and IPython magics (``%pip``,
``%load_ext``, ``%amlflow``, ``%%amlflow``...) become code cells, ``%md`` markdown cells, and
cells in other languages (``%sql``, ``%scala``, ``%r``, ``%sh``, ``%fs``, Databricks' ``%run``)
raw cells with a note, which a kernel does not run. ``to_notebook`` builds an nbformat notebook
from them (nbformat is imported only there).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["HEADER", "SEPARATOR", "Cell", "load_databricks_source", "parse_databricks_source", "to_notebook"]

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"
_TITLE = re.compile(r"^# DBTITLE (\d+),(.*)$")
# Magic cells in another language than Python: a Python kernel cannot run them. (``%run`` is
# Databricks' notebook include, not IPython's ``%run script.py``.)
OTHER_LANGUAGES = frozenset({"sql", "scala", "r", "sh", "fs", "run", "lsp"})
MARKDOWN = frozenset({"md", "md-sandbox"})


@dataclass(frozen=True)
class Cell:
    """One cell of a Databricks source notebook.

    Args:
        cell_type: ``"code"`` (run), ``"markdown"``, or ``"raw"`` (kept, not run).
        source: The cell's text without ``# MAGIC`` prefixes (and without the ``%md`` line).
        title: The ``# DBTITLE`` title, if the cell had one.
        magic: The magic the cell starts with (``"md"``, ``"sql"``, ``"pip"``, ``"amlflow"``...),
            or None for plain Python.
        note: Why a raw cell is not run.
    """

    cell_type: Literal["code", "markdown", "raw"]
    source: str
    title: str | None = None
    magic: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The cell as an nbformat v4 cell (a plain dict)."""
        metadata: dict[str, Any] = {}
        if self.title is not None:
            metadata["title"] = self.title
        if self.note is not None:
            metadata["amlflow_note"] = self.note
        cell: dict[str, Any] = {"cell_type": self.cell_type, "metadata": metadata, "source": self.source}
        if self.cell_type == "code":
            cell.update(execution_count=None, outputs=[])
        return cell


def load_databricks_source(path: str | Path, *, skip_magics: Collection[str] = ()) -> list[Cell]:
    """Read a Databricks source notebook (``.py``) into cells.

    Args:
        path: The file.
        skip_magics: Magics whose cells are kept as raw cells instead of run, e.g. ``{"pip"}``
            where the packages are installed already.

    Raises:
        ValueError: The file is not a Databricks source notebook.
    """
    return parse_databricks_source(Path(path).read_text(encoding="utf-8"), skip_magics=skip_magics)


def parse_databricks_source(text: str, *, skip_magics: Collection[str] = ()) -> list[Cell]:
    """Split a Databricks source notebook's text into cells (see ``load_databricks_source``)."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or lines[0].rstrip() != HEADER:
        first = lines[0][:60] if lines else ""
        raise ValueError(f"Not a Databricks source notebook: the first line is {first!r}, not {HEADER!r}")
    skipped = {m.lstrip("%").lower() for m in skip_magics}
    cells = (_cell(chunk, skipped) for chunk in _chunks(lines[1:]))
    return [cell for cell in cells if cell is not None]


def _chunks(lines: list[str]) -> Iterable[list[str]]:
    chunk: list[str] = []
    for line in lines:
        if line.rstrip() == SEPARATOR:
            yield chunk
            chunk = []
        else:
            chunk.append(line)
    yield chunk


def _cell(lines: list[str], skipped: set[str]) -> Cell | None:
    lines = _trim(lines)
    title = None
    if lines and (found := _TITLE.match(lines[0].rstrip())):
        title = found.group(2).strip()
        lines = _trim(lines[1:])
    if not lines:
        return None  # an empty command
    if not all(line.startswith(MAGIC) for line in lines if line.strip()):
        return Cell("code", "\n".join(lines), title)
    body = _trim([_unmagic(line) for line in lines])
    if not body:
        return None  # only empty "# MAGIC" lines
    if not body[0].startswith("%"):
        return Cell("code", "\n".join(body), title)  # "# MAGIC" lines without a magic: plain code
    first, _, rest = body[0].partition(" ")
    magic = first.lstrip("%").lower()
    if magic in MARKDOWN:
        return Cell("markdown", "\n".join(_trim([rest, *body[1:]])), title, magic)
    if magic == "python":
        return Cell("code", "\n".join(_trim([rest, *body[1:]])), title, magic)
    source = "\n".join(body)
    if magic in OTHER_LANGUAGES:
        return Cell("raw", source, title, magic, f"%{magic} cell: runs on Databricks only, not in a Python kernel")
    if magic in skipped:
        return Cell("raw", source, title, magic, f"%{magic} cell skipped (skip_magics)")
    return Cell("code", source, title, magic)


def _unmagic(line: str) -> str:
    """``# MAGIC %md`` -> ``%md``; ``# MAGIC`` -> ``""`` (Databricks writes empty lines that way)."""
    rest = line[len(MAGIC) :]
    return rest[1:] if rest.startswith(" ") else rest


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return [line.rstrip() for line in lines[start:end]]


def to_notebook(cells: Iterable[Cell], *, kernel_name: str = "python3") -> Any:
    """An nbformat v4 notebook of ``cells`` (needs ``nbformat``, imported here only)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    makers = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }
    nb.cells = [makers[c.cell_type](c.source, metadata=c.to_dict()["metadata"]) for c in cells]
    return nb
