"""``%amlflow compare``: runs named by id or name, side by side, with each shared metric's history.

A reference is a run id (any experiment of the workspace) or a run name (in the experiment, among
its latest ``query.WINDOW`` runs). A name that several runs carry is refused with the candidates
and a command naming them by id. Params and final metrics are shown one row per key, a column per
run, rows whose values differ marked (text) and highlighted (HTML); below, one chart with a panel
per metric every run logged and a line per run.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..display import Link
from ..pasteable import magic_arg
from .charts import MAX_RUNS, Chart, Renders, run_labels
from .history import chart_of_runs
from .query import NEWEST_FIRST, RUN_ID, WINDOW, QueryError
from .table import RunRow, format_duration, format_number, format_time, printable

#: Metrics charted at most (every run logged them); the rest are named in a note.
MAX_PANELS = 12
NOT_A_RUN = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
_CANDIDATES = 10


def resolve_runs(client: Any, experiment: tuple[str, str], refs: Sequence[str]) -> list[Any]:
    """The runs ``refs`` name (ids first, then names in ``experiment``), in the order given."""
    from mlflow.exceptions import MlflowException

    found: dict[int, Any] = {}
    by_name: list[int] = []
    for i, ref in enumerate(refs):
        if not RUN_ID.fullmatch(ref):
            by_name.append(i)
            continue
        try:
            found[i] = client.get_run(ref)
        except MlflowException as exc:
            # Not a run id here (mlflow: 404 RESOURCE_DOES_NOT_EXIST, or 400 for a malformed id): try it as a name.
            status = exc.get_http_status_code()
            if status not in (400, 404) and exc.error_code not in NOT_A_RUN:
                from ..tracking import translate_mlflow_error

                raise translate_mlflow_error(exc, "MLflow API: get run") from exc
            by_name.append(i)
    if by_name:
        window = _latest(client, experiment[0])
        for i in by_name:
            found[i] = _by_name(window, refs[i], experiment[1])
    runs = [found[i] for i in range(len(refs))]
    seen: dict[str, str] = {}
    for ref, run in zip(refs, runs, strict=True):
        if run.info.run_id in seen:
            raise QueryError(
                f"{seen[run.info.run_id]!r} and {ref!r} are the same run ({run.info.run_id})",
                "",
                "Name each run once",
            )
        seen[run.info.run_id] = ref
    return runs


def _latest(client: Any, experiment_id: str) -> list[Any]:
    from mlflow.exceptions import MlflowException

    try:
        return list(client.search_runs([experiment_id], max_results=WINDOW, order_by=[NEWEST_FIRST]))
    except MlflowException as exc:
        from ..tracking import translate_mlflow_error

        raise translate_mlflow_error(exc, "MLflow API: search runs") from exc


def _by_name(window: Sequence[Any], name: str, experiment: str) -> Any:
    named = [r for r in window if r.info.run_name == name]
    if len(named) == 1:
        return named[0]
    shown = name if len(name) <= 80 else name[:79] + "…"
    if not named:
        more = f"among its latest {WINDOW:,} runs " if len(window) >= WINDOW else ""
        raise QueryError(
            f"No run {shown!r} in experiment {experiment!r}",
            f"no run id, and no run name {more}matches it",
            "See the runs with %amlflow runs (or --experiment NAME for another experiment)",
        )
    listed = "; ".join(_candidate(r) for r in named[:_CANDIDATES])
    if len(named) > _CANDIDATES:
        listed += f"; and {len(named) - _CANDIDATES} more"
    try:
        example = " ".join(magic_arg(r.info.run_id) for r in named[:2])
    except ValueError:  # an id no magic line can carry (a control character): no command to paste
        example = "RUN_ID RUN_ID"
    raise QueryError(
        f"{len(named)} runs of experiment {experiment!r} are named {shown!r}",
        f"which one is meant is not clear: {listed}",
        f"Name them by id instead, e.g. %amlflow compare {example}",
    )


def _candidate(run: Any) -> str:
    started = format_time(run.info.start_time) or "unknown"
    return f"{printable(run.info.run_id)} (started {started}, {printable(run.info.status)})"


@dataclass(frozen=True)
class DiffRow:
    """One param or metric: its value in each run (None: not logged there), and whether they differ."""

    key: str
    values: tuple[str | None, ...]

    @property
    def differs(self) -> bool:
        return len(set(self.values)) > 1


@dataclass(frozen=True)
class Comparison:
    """Runs side by side (text and HTML), then a chart of their shared metrics."""

    runs: Sequence[RunRow]
    labels: Sequence[str]
    params: Sequence[DiffRow]
    metrics: Sequence[DiffRow]
    chart: Chart | None
    note: str = ""

    @property
    def title(self) -> str:
        return f"Comparing {len(self.runs)} runs"

    def _header_rows(self) -> list[tuple[str, list[str | None]]]:
        return [
            ("run id", [r.run_id for r in self.runs]),
            ("status", [r.status for r in self.runs]),
            ("start", [format_time(r.start_ms) for r in self.runs]),
            ("duration", [format_duration(r.start_ms, r.end_ms, r.status) for r in self.runs]),
        ]

    def text(self) -> str:
        sections = [("", [DiffRow(k, tuple(v)) for k, v in self._header_rows()], False)]
        sections += [("params", list(self.params), True), ("metrics (last value)", list(self.metrics), True)]
        rows: list[list[str]] = [["", *self.labels]]
        for heading, items, mark in sections:
            if heading:
                rows.append([heading, *([""] * len(self.labels))])
            for d in items:
                flag = "* " if mark and d.differs else "  "
                rows.append([flag + printable(d.key), *(printable(v) if v is not None else "—" for v in d.values)])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [self.title]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.append("Rows marked * differ between the runs.")
        links = [f"{label}: {r.url}" for label, r in zip(self.labels, self.runs, strict=True) if r.url]
        if links:
            lines.append("Azure ML Studio: " + "; ".join(links))
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def html(self) -> str:
        def cell(v: str | None) -> str:
            return html.escape(v) if v is not None else "—"

        head = "".join(
            f"<th>{Link(label, r.url).html() if r.url else html.escape(label)}</th>"
            for label, r in zip(self.labels, self.runs, strict=True)
        )
        body = []
        for key, values in self._header_rows():
            body.append(f"<tr><th>{html.escape(key)}</th>{''.join(f'<td>{cell(v)}</td>' for v in values)}</tr>")
        for heading, items in (("params", self.params), ("metrics (last value)", self.metrics)):
            span = len(self.labels) + 1
            body.append(f'<tr><th colspan="{span}" style="text-align:left">{html.escape(heading)}</th></tr>')
            for d in items:
                style = ' class="amlflow-differs" style="background:#fff3bf;font-weight:bold"' if d.differs else ""
                cells = "".join(f"<td>{cell(v)}</td>" for v in d.values)
                body.append(f"<tr{style}><th style=\"text-align:left\">{html.escape(d.key)}</th>{cells}</tr>")
        note = f"<div>{html.escape(self.note)}</div>" if self.note else ""
        return (
            f'<div class="amlflow amlflow-compare"><b>{html.escape(self.title)}</b>'
            f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<div>Highlighted rows differ between the runs.</div>{note}</div>"
        )

    def __repr__(self) -> str:
        return self.text() + (f"\n\n{self.chart.text()}" if self.chart is not None else "")

    def _repr_html_(self) -> str:
        return self.html()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display({"text/plain": self.text(), "text/html": self.html()}, raw=True)
        if self.chart is not None:
            display(self.chart)


def compare(
    client: Any,
    experiment: tuple[str, str],
    refs: Sequence[str],
    run_url: Callable[[str], str | None],
    *,
    renders: Renders,
) -> Comparison:
    """Resolve ``refs`` and build the comparison (one request per run, plus the histories)."""
    if not 2 <= len(refs) <= MAX_RUNS:
        raise QueryError(
            f"%amlflow compare takes 2 to {MAX_RUNS} runs, not {len(refs)}",
            "",
            "For example: %amlflow compare baseline ridge",
        )
    runs = resolve_runs(client, experiment, refs)
    labels = run_labels([(r.info.run_id, r.info.run_name) for r in runs])
    rows = [RunRow.of(r, run_url) for r in runs]
    params = _diff([r.params for r in rows], str)
    metrics = _diff([r.metrics for r in rows], format_number)
    shared = sorted(set.intersection(*(set(r.metrics) for r in rows)), key=str.lower)
    notes = []
    if len(shared) > MAX_PANELS:
        rest = ", ".join(shared[MAX_PANELS:])
        notes.append(f"Not charted (every run logged them too): {rest}; %amlflow chart METRIC --runs ... draws one")
        shared = shared[:MAX_PANELS]
    chart = None
    if shared:
        chart = chart_of_runs(client, runs, shared, title="Metric history", renders=renders, notes=notes)
    note = "" if shared else "No metric was logged by every run: nothing to chart."
    return Comparison(rows, [labels[r.run_id] for r in rows], params, metrics, chart, note)


def _diff(values: Sequence[dict[str, Any]], show: Callable[[Any], str | None]) -> list[DiffRow]:
    keys = sorted({k for v in values for k in v}, key=str.lower)
    return [DiffRow(k, tuple(show(v[k]) if k in v else None for v in values)) for k in keys]

