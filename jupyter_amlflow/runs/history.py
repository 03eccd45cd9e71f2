"""Metric histories read from the workspace, made into charts.

One ``get-history`` request per run and metric (mlflow pages long histories itself), several at
once: on Azure each is a round trip, and a comparison of ten runs over a few metrics needs dozens.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Any

from .charts import Chart, Renders, RunValues, Value, make_panel, run_labels

#: Requests in flight at once (mlflow's HTTP session is shared between threads).
PARALLEL = 8


def metric_values(client: Any, run_id: str, key: str) -> list[Value]:
    """Every value ``run_id`` logged for ``key``, as the workspace holds them."""
    history = client.get_metric_history(run_id, key)
    return [Value(int(m.step or 0), int(m.timestamp or 0), float(m.value)) for m in history]


def histories(client: Any, wanted: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[Value]]:
    """``{(run_id, key): values}`` for each ``(run_id, key)``, read concurrently."""
    from mlflow.exceptions import MlflowException

    if not wanted:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(PARALLEL, len(wanted))) as pool:
        futures = {pair: pool.submit(metric_values, client, *pair) for pair in wanted}
        try:
            return {pair: future.result() for pair, future in futures.items()}
        except MlflowException as exc:
            for future in futures.values():
                future.cancel()
            from ..tracking import translate_mlflow_error

            raise translate_mlflow_error(exc, "MLflow API: get metric history") from exc


def chart_of_runs(
    client: Any,
    runs: Sequence[Any],
    metrics: Sequence[str],
    *,
    title: str,
    renders: Renders,
    notes: Sequence[str] = (),
) -> Chart:
    """A chart with a panel per metric and a line per run that logged it (``runs``: mlflow ``Run``s)."""
    labels = run_labels([(r.info.run_id, r.info.run_name) for r in runs])
    wanted = [(r.info.run_id, key) for key in metrics for r in runs if key in r.data.metrics]
    values = histories(client, wanted)
    panels = []
    for key in metrics:
        lines = [
            RunValues(r.info.run_id, labels[r.info.run_id], values[(r.info.run_id, key)])
            for r in runs
            if (r.info.run_id, key) in values
        ]
        panels.append(make_panel(key, lines))
    return Chart(title, tuple(panels), tuple(notes), renders)
