"""``%%amlflow run``: execute a cell inside an MLflow run, with its source logged as an artifact."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import tracking
from .display import Link, Message
from .errors import ActiveRunError, AmlflowError

if TYPE_CHECKING:
    from .connection import Session

CELL_ARTIFACT = "cell.py"


def _split_last_expression(source: str) -> tuple[ast.Module, ast.Expression | None]:
    """The cell's statements and its trailing expression, whose value the cell shows."""
    tree = ast.parse(source)
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        return tree, ast.Expression(tree.body.pop().value)
    return tree, None


def run_cell(
    shell: Any,
    session: Session,
    cell: str,
    *,
    name: str | None,
    experiment: str | None,
    tags: dict[str, str],
    show: Callable[[Any], Any],
) -> Any:
    """Run ``cell`` in a new MLflow run; FAILED and re-raised if the cell raises.

    Returns the value of the cell's last expression, like a normal cell.
    """
    conn = session.require_connection()
    if run_id := tracking.active_run_id():
        raise ActiveRunError(
            f"An MLflow run is already active ({run_id})",
            "%%amlflow run starts its own run",
            "End it first (mlflow.end_run()), or log in this cell without %%amlflow run",
        )
    experiment_id = conn.experiment.experiment_id
    if experiment is not None:
        experiment_id = session.find_experiment(experiment).experiment_id
    # IPython syntax inside the cell (magics, !shell) is turned into Python first.
    source = shell.transform_cell(cell) if shell is not None else cell
    tree, last = _split_last_expression(source)
    filename = shell.compile.cache(source) if shell is not None else "<amlflow-run>"
    import mlflow

    run = mlflow.start_run(run_name=name, experiment_id=experiment_id, tags=tags or None)
    run_id = run.info.run_id
    namespace = shell.user_ns if shell is not None else {}
    try:
        mlflow.log_text(cell, CELL_ARTIFACT)
        exec(compile(tree, filename, "exec"), namespace)
        value = eval(compile(last, filename, "eval"), namespace) if last is not None else None
    except BaseException as exc:
        mlflow.end_run(status="FAILED")
        show(_summary(conn.run_url(run_id), run, "FAILED"))
        if isinstance(exc, KeyboardInterrupt):
            # Not "nothing was changed" (what an interrupted command says): part of the cell ran.
            raise _interrupted(run, conn.run_url(run_id)) from None
        raise
    mlflow.end_run()
    show(_summary(conn.run_url(run_id), run, "FINISHED"))
    return value


def _interrupted(run: Any, url: str | None) -> AmlflowError:
    name = run.info.run_name or run.info.run_id
    link = f" ({url})" if url else ""
    return AmlflowError(
        "%%amlflow run: interrupted while the cell ran",
        f"the cell ran up to the interruption, and its MLflow run {name} ({run.info.run_id}) is in the workspace "
        f"with status FAILED{link}",
        "It keeps what it logged; run the cell again for a new run",
    )


def _summary(url: str | None, run: Any, status: str) -> Message:
    text = f"MLflow run {run.info.run_name or run.info.run_id} {status}"
    return Message(text + ("." if url is None else ":"), Link("view in Azure ML Studio", url) if url else None)
