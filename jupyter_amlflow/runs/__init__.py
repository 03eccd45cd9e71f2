"""See the runs without leaving the notebook: the run table, comparisons and metric charts.

What ``%amlflow runs``, ``%amlflow compare``, ``%amlflow chart`` and ``%%amlflow run --live`` show,
as plain functions of a ``Connection`` (``jupyter_amlflow.connect(...)`` returns one), so scripts
and tests call them without IPython:

* ``run_table(conn, experiment=None, last=20, filter_string=None, sort=())`` -> ``RunsTable``;
* ``compare_runs(conn, ["baseline", "ridge"])`` -> ``Comparison`` (a table, then a chart);
* ``metric_chart(conn, "rmse", runs=())`` -> ``Chart``.

Modules: ``query`` (which runs: one search, sorted here where Azure ML cannot sort), ``table``,
``compare``, ``charts`` (Vega-Lite documents and their text/HTML forms), ``downsample``,
``history`` (metric histories read back), ``tap`` and ``live`` (the live chart). Network calls run
under the session's deadline, responsive to Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .charts import Chart, Renders, renders_for
from .compare import Comparison
from .query import DEFAULT_LAST, WINDOW, QueryError
from .table import RunsTable

if TYPE_CHECKING:
    from ..status import Connection

__all__ = [
    "DEFAULT_LAST",
    "WINDOW",
    "Chart",
    "Comparison",
    "QueryError",
    "RunsTable",
    "compare_runs",
    "metric_chart",
    "renders_here",
    "run_table",
]

#: Runs ``metric_chart`` draws when none are named: the latest that logged the metric.
DEFAULT_CHART_RUNS = 5
#: Seconds a comparison or chart may take to read its runs and histories (many requests).
READ_TIMEOUT = 120.0


def renders_here(conn: Connection) -> Renders:
    """Vega-Lite in a Jupyter kernel (not on Databricks or Synapse), else the HTML table."""
    shell = None
    if "IPython" in sys.modules:
        from IPython import get_ipython

        shell = get_ipython()
    kernel = shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    return renders_for(kernel=kernel, platform=conn.platform.name)


def _client(conn: Connection) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=conn.tracking_uri)


def _current(conn: Connection) -> tuple[str, str]:
    return str(conn.experiment.experiment_id), str(conn.experiment.name)


def run_table(
    conn: Connection,
    *,
    experiment: str | None = None,
    last: int = DEFAULT_LAST,
    filter_string: str | None = None,
    sort: Sequence[str] = (),
) -> RunsTable:
    """The latest ``last`` runs of the experiment (the connected one by default), as a table.

    ``sort``: mlflow ``order_by`` clauses (``"metrics.rmse"``, ``"metrics.rmse DESC"``,
    ``"start_time"``); by metrics, params or tags the latest ``WINDOW`` matching runs are sorted
    here, and the table says so when more match.
    """
    from .query import check_last, experiment_of, find_runs, parse_sort

    check_last(last)
    parse_sort(sort)  # bad input fails before any request
    client = _client(conn)

    def read() -> Any:
        exp = experiment_of(client, experiment, _current(conn))
        return find_runs(client, exp, last=last, filter_string=filter_string, sort=sort)

    found = conn.session.call("MLflow API: search runs", read)
    always = [c.split()[0] for c in sort if c.split()[0].startswith(("metrics.", "params."))]
    return RunsTable.of(found.experiment_name, found.runs, conn.run_url, always=always, note=found.note(last))


def compare_runs(
    conn: Connection, refs: Sequence[str], *, experiment: str | None = None, renders: Renders | None = None
) -> Comparison:
    """Runs named by id or name side by side, and a chart of every metric they all logged."""
    from .compare import compare
    from .query import experiment_of

    client = _client(conn)
    shown = renders or renders_here(conn)

    def read() -> Comparison:
        exp = experiment_of(client, experiment, _current(conn))
        return compare(client, exp, refs, conn.run_url, renders=shown)

    return conn.session.call("MLflow API: read runs and metric histories", read, timeout=READ_TIMEOUT)


def metric_chart(
    conn: Connection,
    metric: str,
    *,
    runs: Sequence[str] = (),
    experiment: str | None = None,
    renders: Renders | None = None,
) -> Chart:
    """``metric``'s history, a line per run: the runs named (ids or names), else the latest that logged it."""
    from .charts import MAX_RUNS
    from .compare import resolve_runs
    from .history import chart_of_runs
    from .query import experiment_of, find_runs

    if len(runs) > MAX_RUNS:
        raise QueryError(f"A chart draws at most {MAX_RUNS} runs, not {len(runs)}", "", "Name fewer runs with --runs")
    client = _client(conn)
    shown = renders or renders_here(conn)

    def read() -> Chart:
        exp = experiment_of(client, experiment, _current(conn))
        notes: list[str] = []
        if runs:
            chosen = resolve_runs(client, exp, runs)
            missing = [r.info.run_name or r.info.run_id for r in chosen if metric not in r.data.metrics]
            if missing:
                notes.append(f"Not logged by: {', '.join(missing)}")
        else:
            latest = find_runs(client, exp, last=100).runs
            chosen = [r for r in latest if metric in r.data.metrics][:DEFAULT_CHART_RUNS]
            if not chosen:
                raise QueryError(
                    f"No run of experiment {exp[1]!r} logged {metric!r} (among its latest 100 runs)",
                    "",
                    "See what the runs logged with %amlflow runs; name runs with --runs",
                )
            notes.append(f"The {len(chosen)} latest runs of experiment {exp[1]} that logged it; --runs picks others")
        return chart_of_runs(client, chosen, [metric], title=metric, renders=shown, notes=notes)

    return conn.session.call("MLflow API: read runs and metric histories", read, timeout=READ_TIMEOUT)
