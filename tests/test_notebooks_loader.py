"""databricks_notebooks.py: Databricks source notebooks split into cells, the edge cases of the format."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from databricks_notebooks import Cell, load_databricks_source, parse_databricks_source, to_notebook

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "databricks_quickstart.py"


def parse(*lines: str, **kwargs: object) -> list[Cell]:
    return parse_databricks_source("\n".join(lines) + "\n", **kwargs)  # type: ignore[arg-type]


def test_cells_are_split_on_command_lines_and_trimmed() -> None:
    cells = parse(
        "# Databricks notebook source",
        "import mlflow",
        "",
        "# COMMAND ----------",
        "",
        "x = 1",
        "",
        "",
        "y = 2",
        "",
        "# COMMAND ----------",
        "print(x + y)",
    )
    assert cells == [
        Cell("code", "import mlflow"),
        Cell("code", "x = 1\n\n\ny = 2"),
        Cell("code", "print(x + y)"),
    ]


def test_magic_cells_lose_their_prefix_and_bare_magic_lines_are_blank() -> None:
    cells = parse(
        "# Databricks notebook source",
        "# MAGIC %md",
        "# MAGIC # Title",
        "# MAGIC",
        "# MAGIC Some *text*, indented:",
        "# MAGIC     code block",
        "# MAGIC ",
        "# MAGIC last line",
    )
    assert cells == [Cell("markdown", "# Title\n\nSome *text*, indented:\n    code block\n\nlast line", magic="md")]


def test_markdown_text_on_the_magic_line_and_md_sandbox() -> None:
    cells = parse(
        "# Databricks notebook source",
        "# MAGIC %md ## Inline heading",
        "# COMMAND ----------",
        "# MAGIC %md-sandbox",
        "# MAGIC <b>html</b>",
    )
    assert cells == [
        Cell("markdown", "## Inline heading", magic="md"),
        Cell("markdown", "<b>html</b>", magic="md-sandbox"),
    ]


def test_titles_are_kept_and_removed_from_the_source() -> None:
    cells = parse(
        "# Databricks notebook source",
        "# DBTITLE 1,Load the data",
        "df = 1",
        "# COMMAND ----------",
        "# DBTITLE 0,Hidden title, with a comma",
        "# MAGIC %sql",
        "# MAGIC SELECT 1",
        "# COMMAND ----------",
        "# DBTITLE 1,Only a title",
    )
    assert cells[0] == Cell("code", "df = 1", title="Load the data")
    assert cells[1].title == "Hidden title, with a comma" and cells[1].source == "%sql\nSELECT 1"
    assert len(cells) == 2  # a command with only a title is empty


def test_empty_commands_are_dropped() -> None:
    cells = parse(
        "# Databricks notebook source",
        "# COMMAND ----------",
        "",
        "# COMMAND ----------",
        "   ",
        "# COMMAND ----------",
        "# MAGIC",
        "# COMMAND ----------",
        "a = 1",
        "# COMMAND ----------",
    )
    assert cells == [Cell("code", "a = 1")]


@pytest.mark.parametrize("language", ["sql", "scala", "r", "sh", "fs", "run"])
def test_other_languages_are_kept_but_not_run(language: str) -> None:
    (cell,) = parse("# Databricks notebook source", f"# MAGIC %{language}", "# MAGIC something")
    assert cell.cell_type == "raw" and cell.magic == language
    assert cell.source == f"%{language}\nsomething"
    assert cell.note == f"%{language} cell: runs on Databricks only, not in a Python kernel"


def test_ipython_magics_are_code_and_can_be_skipped() -> None:
    source = (
        "# Databricks notebook source",
        "# MAGIC %pip install jupyter-amlflow",
        "# COMMAND ----------",
        "# MAGIC %load_ext jupyter_amlflow",
        "# COMMAND ----------",
        "# MAGIC %%amlflow run --name cell",
        "# MAGIC import mlflow",
        "# MAGIC mlflow.log_metric('x', 1)",
        "# COMMAND ----------",
        "# MAGIC %python",
        "# MAGIC z = 3",
    )
    cells = parse(*source)
    assert [(c.cell_type, c.magic, c.source) for c in cells] == [
        ("code", "pip", "%pip install jupyter-amlflow"),
        ("code", "load_ext", "%load_ext jupyter_amlflow"),
        ("code", "amlflow", "%%amlflow run --name cell\nimport mlflow\nmlflow.log_metric('x', 1)"),
        ("code", "python", "z = 3"),
    ]
    skipped = parse(*source, skip_magics={"%pip"})
    assert skipped[0] == Cell(
        "raw", "%pip install jupyter-amlflow", magic="pip", note="%pip cell skipped (skip_magics)"
    )
    assert skipped[1:] == cells[1:]


def test_a_cell_mixing_code_and_magic_lines_is_code() -> None:
    (cell,) = parse("# Databricks notebook source", "x = 1", "# MAGIC %md not a magic cell")
    assert cell == Cell("code", "x = 1\n# MAGIC %md not a magic cell")


def test_magic_lines_without_a_magic_are_plain_code() -> None:
    (cell,) = parse("# Databricks notebook source", "# MAGIC print('hi')")
    assert cell == Cell("code", "print('hi')")


def test_windows_line_endings_and_a_byte_order_mark() -> None:
    text = "\ufeff# Databricks notebook source\r\n# MAGIC %md\r\n# MAGIC Hi\r\n# COMMAND ----------\r\nx = 1\r\n"
    assert parse_databricks_source(text) == [Cell("markdown", "Hi", magic="md"), Cell("code", "x = 1")]


@pytest.mark.parametrize("text", ["", "import mlflow\n", "# Databricks notebook\nx = 1\n"])
def test_other_files_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^Not a Databricks source notebook: the first line is"):
        parse_databricks_source(text)


def test_to_notebook_builds_a_valid_notebook_that_keeps_titles_and_notes() -> None:
    nb = to_notebook(
        parse(
            "# Databricks notebook source",
            "# DBTITLE 1,Setup",
            "x = 1",
            "# COMMAND ----------",
            "# MAGIC %sql",
            "# MAGIC SELECT 1",
            "# COMMAND ----------",
            "# MAGIC %md",
            "# MAGIC Done",
        )
    )
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["code", "raw", "markdown"]
    assert nb.cells[0].metadata["title"] == "Setup" and nb.cells[0].outputs == []
    assert "runs on Databricks only" in nb.cells[1].metadata["amlflow_note"]
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_the_example_loads_from_a_path_without_importing_nbformat_or_mlflow() -> None:
    loaded = [m for m in ("nbformat", "mlflow") if m in sys.modules]
    cells = load_databricks_source(EXAMPLE, skip_magics={"pip"})
    assert [m for m in ("nbformat", "mlflow") if m in sys.modules] == loaded  # parsing imports neither
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# MLflow on Azure Databricks")
    assert any(c.magic == "amlflow" and "--secret-scope aml-sp" in c.source for c in cells)
    assert all(c.cell_type != "raw" or c.magic == "pip" for c in cells)
