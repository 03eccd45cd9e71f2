"""Chart documents built from values, without a server: downsampling, axes, labels, forms.

What a chart does with the values it is given (the sandbox tests check the values come from the
workspace): long lines thinned to a subset that keeps their ends and spikes, steps or time on the
x axis, values a line cannot draw left out and counted, names made unique, and which forms an
output carries where.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_amlflow.runs.charts import (
    MAX_POINTS,
    SECONDS,
    STEP,
    VEGALITE,
    Chart,
    RunValues,
    Value,
    make_panel,
    renders_for,
    run_labels,
)
from jupyter_amlflow.runs.downsample import lttb


@settings(max_examples=200, deadline=None)
@given(
    ys=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=0, max_size=400),
    limit=st.integers(min_value=3, max_value=120),
)
def test_downsampling_keeps_a_sorted_subset_with_both_ends(ys: list[float], limit: int) -> None:
    points = [(float(i), y) for i, y in enumerate(ys)]
    kept = lttb(points, limit)
    assert len(kept) == min(len(points), limit)
    assert set(kept) <= set(points) and kept == sorted(kept)
    if points:
        assert kept[0] == points[0] and kept[-1] == points[-1]


def test_a_spike_survives_downsampling_where_a_stride_would_drop_it() -> None:
    points = [(float(i), 0.0) for i in range(20_000)]
    points[12_345] = (12_345.0, 100.0)
    kept = lttb(points, 500)
    assert (12_345.0, 100.0) in kept and len(kept) == 500
    assert (12_345.0, 100.0) not in points[:: len(points) // 500]


def test_values_logged_without_steps_are_drawn_against_time() -> None:
    # log_metric without step= logs step 0 every time: the x axis becomes seconds since the first value.
    values = [Value(0, 1_000_000 + 1500 * i, 1.0 / (i + 1)) for i in range(4)]
    panel = make_panel("loss", [RunValues("r1", "r1", values)])
    assert panel.x_title == SECONDS
    assert panel.lines[0].points == ((0.0, 1.0), (1.5, 0.5), (3.0, 1 / 3), (4.5, 0.25))
    with_steps = make_panel("loss", [RunValues("r1", "r1", [Value(s, 0, 1.0) for s in (2, 0, 1)])])
    assert with_steps.x_title == STEP and with_steps.lines[0].points == ((0.0, 1.0), (1.0, 1.0), (2.0, 1.0))


def test_nan_and_infinity_are_left_out_and_counted() -> None:
    values = [Value(0, 0, 1.0), Value(1, 0, math.nan), Value(2, 0, math.inf), Value(3, 0, 0.5)]
    chart = Chart("loss", (make_panel("loss", [RunValues("r1", "run one", values)]),))
    line = chart.panels[0].lines[0]
    assert line.points == ((0.0, 1.0), (3.0, 0.5)) and line.not_finite == 2
    assert "NaN or infinite values not drawn: run one (2)" in chart.text()
    assert chart.spec()["title"]["subtitle"] == ["NaN or infinite values not drawn: run one (2)"]


def test_a_line_of_exactly_the_limit_is_drawn_as_logged() -> None:
    values = [Value(s, 0, float(s % 7)) for s in range(MAX_POINTS)]
    chart = Chart("m", (make_panel("m", [RunValues("r", "r", values)]),))
    assert not chart.downsampled and chart.points() == {"m": {"r": MAX_POINTS}}
    assert "subtitle" not in chart.spec()["title"]


def test_names_several_runs_share_are_told_apart_by_their_ids() -> None:
    labels = run_labels([("aaaaaaaa1111", "ridge"), ("bbbbbbbb2222", "ridge"), ("cccccccc3333", "lasso"), ("dddd", None)])
    assert labels == {
        "aaaaaaaa1111": "ridge (aaaaaaaa)",
        "bbbbbbbb2222": "ridge (bbbbbbbb)",
        "cccccccc3333": "lasso",
        "dddd": "run (dddd)",
    }


def test_several_metrics_are_panels_of_one_document_sharing_run_colours() -> None:
    runs = [RunValues(f"r{i}", f"run {i}", [Value(s, 0, float(s * i)) for s in range(3)]) for i in range(2)]
    chart = Chart("Metric history", (make_panel("a", runs), make_panel("b", runs[:1])))
    spec = chart.spec()
    assert [p["title"] for p in spec["vconcat"]] == ["a", "b"]
    assert [p["transform"] for p in spec["vconcat"]] == [
        [{"filter": {"field": "metric", "equal": "a"}}],
        [{"filter": {"field": "metric", "equal": "b"}}],
    ]
    assert spec["resolve"] == {"scale": {"color": "shared"}} and len(spec["data"]["values"]) == 9


def test_an_output_carries_the_chart_or_the_html_table_never_both() -> None:
    chart = Chart("loss", (make_panel("loss", [RunValues("r", "<b>r</b>", [Value(0, 0, 1.0)])]),))
    data, metadata = chart._repr_mimebundle_()
    assert set(data) == {VEGALITE, "text/plain"} and metadata == {VEGALITE: {"embed_options": {"renderer": "svg"}}}
    as_html = Chart("loss", chart.panels, renders="html")
    data, metadata = as_html._repr_mimebundle_()
    assert set(data) == {"text/html", "text/plain"} and metadata == {}
    assert "&lt;b&gt;r&lt;/b&gt;" in data["text/html"] and "<b>r</b>" not in data["text/html"]
    assert renders_for(kernel=True, platform="local") == "vega-lite"
    assert renders_for(kernel=True, platform="databricks") == "html"
    assert renders_for(kernel=True, platform="synapse") == "html"
    assert renders_for(kernel=False, platform="local") == "html"
