"""The run table of ``%amlflow runs`` and the panel's Runs view: what differs between runs, at a glance.

Columns: name, status, start, duration, the metrics and params whose values differ between the
runs shown (all of them for a single run), the run id and its Studio link. A sort column is
always shown. At most ``MAX_VALUE_COLUMNS`` metric and param columns; the note says how many
more differ (``%amlflow compare`` shows every one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..display import Cell, Link, Table

MAX_VALUE_COLUMNS = 16


def printable(text: str) -> str:
    """Text from a server as one clean line: control and formatting characters written as escapes.

    A run name or an error message may hold a newline, an ANSI escape sequence or a bidi override;
    in a text table, a terminal or an error line those would break the layout or hide what follows.
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


@dataclass(frozen=True)
class RunRow:
    """One run as the table shows it (values as logged; formatting happens in ``table``)."""

    run_id: str
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    metrics: dict[str, float]
    params: dict[str, str]
    url: str | None

    @classmethod
    def of(cls, run: Any, run_url: Callable[[str], str | None]) -> RunRow:
        info, data = run.info, run.data
        return cls(
            run_id=info.run_id,
            name=info.run_name or "",
            status=info.status,
            start_ms=info.start_time,
            end_ms=info.end_time,
            metrics=dict(data.metrics),
            params=dict(data.params),
            url=run_url(info.run_id),
        )


@dataclass(frozen=True)
class RunsTable:
    """Runs of one experiment, with the columns that tell them apart; text and HTML forms."""

    experiment: str
    rows: Sequence[RunRow]
    metric_columns: Sequence[str]
    param_columns: Sequence[str]
    note: str = ""

    @classmethod
    def of(
        cls,
        experiment: str,
        runs: Sequence[Any],
        run_url: Callable[[str], str | None],
        *,
        always: Sequence[str] = (),
        note: str = "",
    ) -> RunsTable:
        """Build the table; ``always`` names columns shown even when equal (``metrics.x``, ``params.y``)."""
        rows = [RunRow.of(run, run_url) for run in runs]
        metrics = _varying([r.metrics for r in rows], {c[8:] for c in always if c.startswith("metrics.")})
        params = _varying([r.params for r in rows], {c[7:] for c in always if c.startswith("params.")})
        hidden = max(0, len(metrics) + len(params) - MAX_VALUE_COLUMNS)
        if hidden:
            keep_metrics = min(len(metrics), max(MAX_VALUE_COLUMNS // 2, MAX_VALUE_COLUMNS - len(params)))
            metrics, params = metrics[:keep_metrics], params[: MAX_VALUE_COLUMNS - keep_metrics]
            extra = f"{hidden} more metric and param columns differ; %amlflow compare RUN RUN shows them all."
            note = f"{note} {extra}".strip()
        return cls(experiment, rows, metrics, params, note)

    @property
    def columns(self) -> list[str]:
        return [
            "Run",
            "Status",
            "Start",
            "Duration",
            *(f"metrics.{m}" for m in self.metric_columns),
            *(f"params.{p}" for p in self.param_columns),
            "Run id",
            "Studio",
        ]

    def cells(self) -> list[list[Cell]]:
        """The table's cells, as shown (metrics to 6 significant digits)."""
        out: list[list[Cell]] = []
        for r in self.rows:
            out.append(
                [
                    printable(r.name) or None,
                    printable(r.status),
                    format_time(r.start_ms),
                    format_duration(r.start_ms, r.end_ms, r.status),
                    *(format_number(r.metrics.get(m)) for m in self.metric_columns),
                    *(_maybe(r.params.get(p)) for p in self.param_columns),
                    printable(r.run_id),
                    Link("open", r.url) if r.url else None,
                ]
            )
        return out

    def table(self) -> Table:
        count = len(self.rows)
        title = f"{count} run{'s' if count != 1 else ''} of experiment {printable(self.experiment)}"
        columns = [printable(c) for c in self.columns]
        return Table(title, columns, self.cells(), self.note)

    def __repr__(self) -> str:
        return repr(self.table())

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def _maybe(value: str | None) -> str | None:
    return None if value is None else printable(value)


def _varying(values: Sequence[dict[str, Any]], always: set[str]) -> list[str]:
    """``always``, then the keys whose value is not the same in every run (missing counts as a value)."""
    rest = sorted({k for v in values for k in v} - always, key=str.lower)
    if len(values) > 1:
        rest = [k for k in rest if len({repr(v.get(k)) for v in values}) > 1]
    return sorted(always, key=str.lower) + rest  # a sort column first: never cut, and next to the names


def format_time(ms: int | None) -> str | None:
    """Local time, to the second."""
    if not ms:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def format_duration(start_ms: int | None, end_ms: int | None, status: str) -> str | None:
    """``1h 02m``, ``3m 05s``, ``4.2s``; ``running`` for a run without an end."""
    if not start_ms:
        return None
    if not end_ms:
        return "running" if status == "RUNNING" else None
    seconds = max(0.0, (end_ms - start_ms) / 1000)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_number(value: float | None) -> str | None:
    return None if value is None else f"{value:.6g}"
