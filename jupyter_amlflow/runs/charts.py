"""Metric charts: Vega-Lite documents, with a text and an HTML summary where they cannot be drawn.

A chart is one or more *panels* (one per metric), each with one line per run. JupyterLab,
Notebook 7 and VS Code draw ``application/vnd.vegalite.v5+json`` themselves (no new dependency);
the output metadata asks for the SVG renderer. Lines of more than ``MAX_POINTS`` points are
thinned in this process (``downsample.lttb``) and the chart says so, in its subtitle and in its
summary.

Which forms go into the output: JupyterLab's renderers rank ``text/html`` (50) above Vega-Lite
(57), so a bundle holding both shows the HTML table, never the chart. A chart therefore carries
either the Vega-Lite document or the HTML table, beside its text form (``renders``); the caller
picks by front end (``renders_for``). The text form is always there for terminals
and logs. Names from the server (runs, metrics) are data in the Vega-Lite document, drawn as SVG
text, and escaped in the HTML form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..display import Table
from .downsample import lttb
from .table import printable

VEGALITE = "application/vnd.vegalite.v5+json"
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
#: Points per line drawn as logged; longer lines are downsampled to this many.
MAX_POINTS = 5000
#: Runs per chart: the colour scheme (category10) tells ten apart.
MAX_RUNS = 10
WIDTH = 560
HEIGHT = 240
STEP = "step"
SECONDS = "seconds since the first value"

Renders = Literal["vega-lite", "html"]


@dataclass(frozen=True)
class Value:
    """One logged value of a metric."""

    step: int
    timestamp: int  # milliseconds since the epoch, as mlflow records it
    value: float


@dataclass(frozen=True)
class RunValues:
    """The values one run logged for one metric, as read or as seen on their way to the server."""

    run_id: str
    label: str
    values: Sequence[Value]


@dataclass(frozen=True)
class Line:
    """One run's line in a panel: the points drawn and what was logged."""

    run_id: str
    label: str
    points: tuple[tuple[float, float], ...]
    logged: int  # finite values logged (drawn, or thinned to ``points``)
    not_finite: int  # NaN and infinite values, which a line cannot show
    #: first, last, min and max of every finite value logged (not only those drawn); None if none
    summary: tuple[float, float, float, float] | None = None

    @property
    def downsampled(self) -> bool:
        return len(self.points) < self.logged


@dataclass(frozen=True)
class Panel:
    """One metric, one line per run."""

    metric: str
    x_title: str
    lines: tuple[Line, ...]

    def notes(self) -> list[str]:
        """What the panel does not show as logged (downsampling, values a line cannot draw)."""
        notes = []
        thinned = [line for line in self.lines if line.downsampled]
        if thinned:
            each = ", ".join(f"{line.label} ({line.logged:,} logged)" for line in thinned)
            notes.append(f"Downsampled in this notebook to {MAX_POINTS:,} points per line: {each}")
        odd = [line for line in self.lines if line.not_finite]
        if odd:
            each = ", ".join(f"{line.label} ({line.not_finite:,})" for line in odd)
            notes.append(f"NaN or infinite values not drawn: {each}")
        return notes


def make_panel(metric: str, runs: Sequence[RunValues], limit: int = MAX_POINTS) -> Panel:
    """A panel of ``metric``: each run's values in step order, long lines downsampled.

    The x axis is the step; where every value of every run was logged at one step (``log_metric``
    without ``step=`` logs step 0) and some run logged several, it is the time since each run's
    first value instead, so the line does not collapse onto one x.
    """
    by_step = any(len({v.step for v in r.values}) > 1 for r in runs) or all(len(r.values) <= 1 for r in runs)
    lines = []
    for r in runs:
        ordered = sorted(r.values, key=lambda v: (v.step, v.timestamp))
        finite = [v for v in ordered if math.isfinite(v.value)]
        if by_step:
            points = [(float(v.step), v.value) for v in finite]
        else:
            ordered_in_time = sorted(finite, key=lambda v: v.timestamp)
            first = ordered_in_time[0].timestamp if ordered_in_time else 0
            points = [((v.timestamp - first) / 1000.0, v.value) for v in ordered_in_time]
        ys = [y for _, y in points]
        summary = (ys[0], ys[-1], min(ys), max(ys)) if ys else None
        drawn = tuple(lttb(points, limit))
        lines.append(Line(r.run_id, r.label, drawn, len(points), len(ordered) - len(finite), summary))
    return Panel(metric, STEP if by_step else SECONDS, tuple(lines))


def run_labels(runs: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """A label per run id: its name, with the start of its id where names repeat (or it has none).

    Labels are printable (``table.printable``): they go into text summaries as well as the chart.
    """
    names = [printable(name or "") for _, name in runs]
    labels = {}
    for (run_id, _), name in zip(runs, names, strict=True):
        labels[run_id] = name if name and names.count(name) == 1 else f"{name or 'run'} ({printable(run_id[:8])})"
    return labels


@dataclass(frozen=True)
class Chart:
    """A chart of one or more metrics; displays as Vega-Lite (or an HTML table) plus text.

    Args:
        title: Shown above the chart and its summary.
        panels: One per metric.
        notes: Lines shown under the title (after each panel's own notes).
        renders: ``"vega-lite"``: the output carries the Vega-Lite document; ``"html"``: the HTML
            summary instead (front ends that cannot draw Vega-Lite).
    """

    title: str
    panels: tuple[Panel, ...]
    notes: tuple[str, ...] = ()
    renders: Renders = "vega-lite"
    embed: Mapping[str, Any] = field(default_factory=lambda: {"embed_options": {"renderer": "svg"}})

    # -- what a test or a caller reads ---------------------------------------------------------------
    def points(self) -> dict[str, dict[str, int]]:
        """Points drawn per metric and run label."""
        return {p.metric: {line.label: len(line.points) for line in p.lines} for p in self.panels}

    @property
    def downsampled(self) -> bool:
        return any(line.downsampled for p in self.panels for line in p.lines)

    def all_notes(self) -> list[str]:
        notes = list(self.notes)
        for p in self.panels:
            prefix = f"{printable(p.metric)}: " if len(self.panels) > 1 else ""
            notes += [prefix + n for n in p.notes()]
        return notes

    # -- the three forms -----------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """The Vega-Lite v5 document."""
        labels: list[str] = []
        values: list[dict[str, Any]] = []
        for p in self.panels:
            for line in p.lines:
                if line.label not in labels:
                    labels.append(line.label)
                values += [{"metric": p.metric, "run": line.label, "x": x, "value": y} for x, y in line.points]
        colour = {"field": "run", "type": "nominal", "title": "run", "scale": {"domain": labels}}
        layers = [self._panel_spec(p, colour, filtered=len(self.panels) > 1) for p in self.panels]
        spec: dict[str, Any] = {"$schema": SCHEMA, "data": {"values": values}}
        subtitle = list(self.notes) if len(self.panels) > 1 else self.all_notes()
        title: dict[str, Any] = {"text": self.title, "anchor": "start"}
        if subtitle:
            title["subtitle"] = subtitle
        if len(layers) == 1:
            spec.update(layers[0])
            spec["title"] = title
        else:
            spec.update({"title": title, "vconcat": layers, "resolve": {"scale": {"color": "shared"}}})
        return spec

    @staticmethod
    def _panel_spec(p: Panel, colour: dict[str, Any], *, filtered: bool) -> dict[str, Any]:
        panel: dict[str, Any] = {
            "width": WIDTH,
            "height": HEIGHT,
            "mark": {"type": "line", "clip": True},
            "encoding": {
                "x": {"field": "x", "type": "quantitative", "title": p.x_title},
                "y": {"field": "value", "type": "quantitative", "title": p.metric, "scale": {"zero": False}},
                "color": colour,
            },
        }
        if filtered:  # a data value compared as data: no expression is built from a server's name
            panel["transform"] = [{"filter": {"field": "metric", "equal": p.metric}}]
            notes = p.notes()
            panel["title"] = {"text": p.metric, "subtitle": notes} if notes else p.metric
        return panel

    def tables(self) -> list[Table]:
        """One summary table per panel (the text and HTML forms)."""
        return [
            Table(
                f"{printable(p.metric)} (x: {p.x_title})",
                ["Run", "Run id", "Points", "First", "Last", "Min", "Max"],
                [_summary_row(line) for line in p.lines],
            )
            for p in self.panels
        ]

    def text(self) -> str:
        parts = [f"{printable(self.title)} (a chart; its values in brief)"]
        parts += [repr(t) for t in self.tables()]
        parts += self.all_notes()
        return "\n".join(parts)

    def html(self) -> str:
        import html

        tables = "".join(t._repr_html_() for t in self.tables())
        notes = "".join(f"<div>{html.escape(n)}</div>" for n in self.all_notes())
        return f'<div class="amlflow-chart"><b>{html.escape(self.title)}</b>{tables}{notes}</div>'

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        data: dict[str, Any] = {"text/plain": self.text()}
        if self.renders == "html":
            data["text/html"] = self.html()
            return data, {}
        data[VEGALITE] = self.spec()
        return data, {VEGALITE: dict(self.embed)}


def _summary_row(line: Line) -> list[str | None]:
    if line.summary is None:
        return [line.label, line.run_id, "0", None, None, None, None]
    return [line.label, line.run_id, f"{line.logged:,}", *(_num(v) for v in line.summary)]


def _num(value: float) -> str:
    return f"{value:.6g}"


def renders_for(*, kernel: bool, platform: str) -> Renders:
    """What a chart's output carries besides text, for where the kernel runs.

    Vega-Lite in a Jupyter kernel (JupyterLab, Notebook 7, VS Code), except on Databricks and
    Synapse, whose notebooks show HTML outputs but have no Vega-Lite renderer; HTML elsewhere
    (terminal IPython shows the text form either way).
    """
    return "vega-lite" if kernel and platform not in ("databricks", "synapse") else "html"
