"""``%%amlflow run``: execute a cell inside an MLflow run, with its source logged as an artifact."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import tracking
from .display import Link, Message
from .errors import AmlflowError

if TYPE_CHECKING:
    from .connection import Session

CELL_ARTIFACT = "cell.py"


def _split_last_expression(source: str) -> tuple[ast.Module, ast.Expression | None]:
    """The cell's statements and its trailing expression, whose value the cell shows."""
    tree = ast.parse(source)
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr):
        tree.body.pop()
        return tree, ast.Expression(last.value)
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
    live: Callable[[str, str, str], Any] | None = None,
) -> Any:
    """Run ``cell`` in a new MLflow run; FAILED and re-raised if the cell raises.

    Returns the value of the cell's last expression, like a normal cell. ``live(tracking_uri,
    run_id, run_name)`` starts a live chart of the run (``runs.live.Watching``): it stops when the
    cell ends and is redrawn from the workspace once the run has ended.
    """
    conn = session.require_connection()
    tracking.refuse_active_run(
        "%%amlflow run starts its own run",
        "End it first (mlflow.end_run()), or log in this cell without %%amlflow run",
        already=True,
    )
    experiment_id = conn.experiment.experiment_id
    if experiment is not None:
        experiment_id = session.find_experiment(experiment).experiment_id
    # IPython syntax inside the cell (magics, !shell) is turned into Python first.
    source = shell.transform_cell(cell) if shell is not None else cell
    tree, last = _split_last_expression(source)
    filename = _cache_as_the_cell(shell, cell, source, tree, last) if shell is not None else "<amlflow-run>"
    import mlflow

    run = mlflow.start_run(run_name=name, experiment_id=experiment_id, tags=tags or None)
    run_id = run.info.run_id
    namespace = shell.user_ns if shell is not None else {}
    watching = None
    try:
        if live is not None:
            watching = live(conn.tracking_uri, run_id, run.info.run_name or run_id)
        mlflow.log_text(cell, CELL_ARTIFACT)
        exec(compile(tree, filename, "exec"), namespace)
        value = eval(compile(last, filename, "eval"), namespace) if last is not None else None
    except BaseException as exc:
        _end(mlflow, watching, "FAILED")
        show(_summary(conn.run_url(run_id), run, "FAILED"))
        if isinstance(exc, KeyboardInterrupt):
            # Not "nothing was changed" (what an interrupted command says): part of the cell ran.
            raise _interrupted(run, conn.run_url(run_id)) from None
        if shell is not None and isinstance(exc, Exception):
            _traceback_from_the_cell(shell, exc, filename)
        raise
    _end(mlflow, watching, "FINISHED")
    show(_summary(conn.run_url(run_id), run, "FINISHED"))
    return value


def _end(mlflow: Any, watching: Any, status: str) -> None:
    """End the run; a live chart stops watching first and is redrawn from the workspace after.

    ``end_run`` sends what is still queued, so the final chart reads every value back.
    """
    if watching is not None:
        watching.stop()
    mlflow.end_run(status=status)
    if watching is not None:
        watching.final(mlflow.MlflowClient())


def _interrupted(run: Any, url: str | None) -> AmlflowError:
    name = run.info.run_name or run.info.run_id
    link = f" ({url})" if url else ""
    return AmlflowError(
        "%%amlflow run: interrupted while the cell ran",
        f"the cell ran up to the interruption, and its MLflow run {name} ({run.info.run_id}) is in the workspace "
        f"with status FAILED{link}",
        "It keeps what it logged; run the cell again for a new run",
    )


def _cache_as_the_cell(shell: Any, cell: str, source: str, tree: ast.Module, last: ast.Expression | None) -> str:
    """Register the code under the running cell's number and lines, so tracebacks read as a plain cell's.

    IPython keeps a cell's raw text in its input history (``In``) before running it; a cell magic
    receives only what follows its first line. With that line back on top (and the code's line
    numbers moved down one), a traceback says "Cell In[7], line 3" and shows the cell as written.
    Without it (a cell run without history), the body is numbered on its own.
    """
    history = shell.history_manager.input_hist_raw if shell.history_manager is not None else []
    first, newline, body = history[-1].partition("\n") if history else ("", "", "")
    if not (newline and first.lstrip().startswith("%%") and body.rstrip() == cell.rstrip()):
        return str(shell.compile.cache(source, shell.execution_count))
    ast.increment_lineno(tree, 1)
    if last is not None:
        ast.increment_lineno(last, 1)
    return str(shell.compile.cache(f"{first}\n{source}", len(history) - 1))


def _traceback_from_the_cell(shell: Any, exc: Exception, filename: str) -> None:
    """Have IPython show ``exc`` from the cell's own code on, as it does for a plain cell.

    Unwinding, the exception also passes IPython's ``run_cell_magic``, the magic and this module:
    frames a person did not write and cannot act on. IPython asks an exception for its own
    rendering (``_render_traceback_``, its protocol for remote tracebacks) before formatting one;
    this one renders the same traceback, minus those frames, in the shell's current ``%xmode``.
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    if tb is None or hasattr(exc, "_render_traceback_"):  # not from the cell, or it renders itself
        return
    cell_tb = tb

    def render() -> list[str]:
        return shell.InteractiveTB.structured_traceback(type(exc), exc, cell_tb, 0)

    try:
        exc._render_traceback_ = render  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # an exception type without instance attributes: shown in full
        pass


def _summary(url: str | None, run: Any, status: str) -> Message:
    text = f"MLflow run {run.info.run_name or run.info.run_id} {status}"
    return Message(text + ("." if url is None else ":"), Link("view in Azure ML Studio", url) if url else None)
