"""Which runs to show: one search of the workspace, sorted in this process where Azure ML cannot sort.

Azure ML orders runs by attributes (start time, name, status, ...) but refuses ordering by
metrics, params or tags (Microsoft Learn's support matrix; the sandbox refuses it too, and while
connected ``azureml_limits`` stops such a query before it is sent). So a sort on those fetches the
latest ``WINDOW`` matching runs (newest first, one request) and sorts them here with mlflow's own
sort (``SearchUtils.sort``: what an open-source mlflow server would answer for those runs); when
more runs match, the result says so. Everything else is one server-side search.

Nothing here knows IPython; ``client`` is an ``mlflow.MlflowClient`` for the connected workspace.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import AmlflowError, NotFound
from .table import printable

#: The most runs one query reads, and so the most a client-side sort sees.
WINDOW = 1000
DEFAULT_LAST = 20
NEWEST_FIRST = "attributes.start_time DESC"
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")


class QueryError(AmlflowError):
    """A run query that cannot be made as given (bad sort, filter, count or run reference)."""


@dataclass(frozen=True)
class Found:
    """Runs a query found, newest first unless sorted, and what the table should say about them."""

    experiment_id: str
    experiment_name: str
    runs: Sequence[Any]  # mlflow.entities.Run
    sort: tuple[str, ...]
    sorted_here: bool  # sorted in this process (Azure ML cannot sort by metrics, params or tags)
    more: bool  # more runs match than were read (or than were asked for)
    read: int  # runs read from the server

    def note(self, last: int) -> str:
        """What the table says about how its runs were chosen."""
        parts = []
        if self.sorted_here:
            where = (
                f"among the latest {self.read:,} matching runs; more runs match: narrow --filter to include them"
                if self.more
                else f"among all {self.read:,} matching runs"
            )
            parts.append(
                f"Sorted by {', '.join(self.sort)} in this notebook (Azure ML cannot sort runs by metrics, params "
                f"or tags), {where}."
            )
        elif self.more:
            parts.append(f"More runs match than the {last:,} shown: --last N shows more (up to {WINDOW:,}).")
        return " ".join(parts)


def experiment_of(client: Any, name: str | None, current: tuple[str, str]) -> tuple[str, str]:
    """``(id, name)`` of the experiment ``name`` (the connected one when None); never creates one."""
    if name is None:
        return current
    from mlflow.exceptions import MlflowException

    try:
        experiment = client.get_experiment_by_name(name)
    except MlflowException as exc:
        from ..tracking import translate_mlflow_error

        raise translate_mlflow_error(exc, "MLflow API: get experiment") from exc
    if experiment is None:
        raise NotFound(
            f"There is no experiment {name!r} in this workspace",
            "",
            "See the experiments with %amlflow list experiments",
        )
    return str(experiment.experiment_id), str(experiment.name)


def check_last(last: int) -> int:
    if not 1 <= last <= WINDOW:
        raise QueryError(
            f"--last {last} is out of range",
            f"a query shows 1 to {WINDOW:,} runs",
            f"For example: %amlflow runs --last {DEFAULT_LAST}",
        )
    return last


def parse_sort(sort: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """The clauses as given, and whether any needs a client-side sort (metric, param or tag)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    here = False
    for clause in sort:
        try:
            kind, _, _ = SearchUtils.parse_order_by_for_search_runs(clause)
        except MlflowException as exc:
            raise QueryError(
                f"--sort {clause!r} is not a sort mlflow understands",
                _first_line(exc),
                "Give a column and an optional direction, e.g. --sort metrics.rmse or --sort 'metrics.rmse DESC' "
                "or --sort start_time",
            ) from None
        here = here or kind in ("metric", "parameter", "tag")
    return tuple(sort), here


def find_runs(
    client: Any,
    experiment: tuple[str, str],
    *,
    last: int = DEFAULT_LAST,
    filter_string: str | None = None,
    sort: Sequence[str] = (),
) -> Found:
    """The runs of ``experiment`` (``(id, name)``) to show: at most ``last``, sorted as asked.

    One request: the latest ``last`` runs (server-side order), or, for a sort on metrics, params
    or tags, the latest ``WINDOW`` sorted here.
    """
    check_last(last)
    clauses, here = parse_sort(sort)
    experiment_id, experiment_name = experiment
    wanted = WINDOW if here else last
    order = [NEWEST_FIRST] if here or not clauses else [*clauses, NEWEST_FIRST]
    page = _search(client, experiment_id, filter_string or "", wanted, order)
    runs = list(page)
    more = bool(getattr(page, "token", None))
    if here:
        from mlflow.utils.search_utils import SearchUtils

        ordered = SearchUtils.sort(runs, list(clauses))
        return Found(experiment_id, experiment_name, ordered[:last], clauses, True, more, len(runs))
    return Found(experiment_id, experiment_name, runs, clauses, False, more, len(runs))


def _search(client: Any, experiment_id: str, filter_string: str, max_results: int, order: list[str]) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=max_results, order_by=order
        )
    except MlflowException as exc:
        from ..azureml_limits import unsupported_class

        if isinstance(exc, unsupported_class()):  # refused before sending: the message has the workaround
            raise QueryError("Azure ML cannot run this query", _first_line(exc), "") from None
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
            raise QueryError(
                f"The workspace refused the run filter {filter_string!r}",
                _first_line(exc),
                "Filters compare metrics, params, tags or attributes with AND, e.g. "
                "--filter \"metrics.rmse < 0.3 and params.model = 'ridge'\"",
            ) from None
        from ..tracking import translate_mlflow_error

        raise translate_mlflow_error(exc, "MLflow API: search runs") from exc


def _first_line(exc: BaseException) -> str:
    """The first line of an error (the server's words: it may echo what was sent), printable."""
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return printable(line[:300])
