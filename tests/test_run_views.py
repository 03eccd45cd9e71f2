"""``%amlflow runs``, ``compare`` and ``chart`` against the sandbox: the runs, values, order and links.

A module fixture connects an in-process IPython shell with ``%amlflow connect`` and logs a small
experiment with plain ``mlflow`` (params, final metrics, a loss history per run, a hostile run
name, two runs sharing a name). Every test runs the magics as a person types them and reads what
they return (rows, columns, links, chart documents, point counts, text and HTML forms), checked
against what the workspace's backing mlflow server holds, read with a plain ``MlflowClient``.
Requests are read from the sandbox's request log.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import backend_client, sp_shell
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from test_bad_input import one_clean_line, wild

from jupyter_amlflow.pasteable import magic_arg
from jupyter_amlflow.runs import Chart, Comparison, RunsTable, charts, query
from jupyter_amlflow.runs.charts import VEGALITE

HOSTILE = "<img src=x onerror=alert(1)>{x}$y"
#: name, params, final metrics (and a loss history of 20 steps per run)
RUNS = [
    ("ridge-a", {"alpha": "0.1", "model": "ridge"}, {"rmse": 0.40, "r2": 0.70, "epochs": 10.0}),
    ("ridge-b", {"alpha": "0.5", "model": "ridge"}, {"rmse": 0.30, "r2": 0.80, "epochs": 10.0}),
    ("ridge-c", {"alpha": "1.0", "model": "ridge"}, {"rmse": 0.35, "r2": 0.75, "epochs": 10.0}),
    ("twin", {"alpha": "2.0", "model": "ridge"}, {"rmse": 0.50, "epochs": 10.0}),
    ("twin", {"alpha": "3.0", "model": "ridge"}, {"rmse": 0.55, "epochs": 10.0}),
    (HOSTILE, {"alpha": "9.0", "model": "ridge"}, {"rmse": 0.90, "epochs": 10.0}),
]


@dataclass
class Views:
    shell: Any
    conn: Any
    sb: Any
    ws: Any
    experiment: str
    ids: list[str]  # in RUNS order (oldest first)


@pytest.fixture(scope="module")
def v(sandbox: Any) -> Iterator[Views]:
    with pytest.MonkeyPatch.context() as mp, sp_shell(sandbox, mp.setenv) as ip:
        ip.magics_manager.registry["AmlflowMagics"].charts = "vega-lite"  # what a kernel (JupyterLab) gets
        ws = sandbox.workspaces[0]
        experiment = f"views-{uuid.uuid4().hex[:8]}"
        conn = ip.run_line_magic("amlflow", f"connect {ws.arm_id} --experiment {experiment}")
        ids = [_log_run(*run) for run in RUNS]
        yield Views(ip, conn, sandbox, ws, experiment, ids)


def _log_run(name: str, params: dict[str, str], metrics: dict[str, float]) -> str:
    import mlflow
    from mlflow.entities import Metric

    with mlflow.start_run(run_name=name) as run:
        mlflow.log_params(params)
        final = metrics["rmse"]
        history = [Metric("loss", 1.0 - (1.0 - final) * step / 19, 1_700_000_000_000 + step, step) for step in range(20)]
        mlflow.MlflowClient().log_batch(run.info.run_id, metrics=history)
        mlflow.log_metrics(metrics)
    return str(run.info.run_id)


def magic(v: Views, line: str) -> Any:
    return v.shell.run_line_magic("amlflow", line)


def searches(sb: Any) -> list[Any]:
    """The ``runs/search`` requests the sandbox received since it was cleared (its log holds no body)."""
    return [r for r in sb.requests if r.path.startswith("/mlflow/v2.0/") and r.path.endswith("/runs/search")]


# -- the run table -------------------------------------------------------------------------------
def test_the_table_shows_the_latest_runs_newest_first_with_what_differs(v: Views) -> None:
    v.sb.clear_requests()
    table = magic(v, "runs --last 4")
    backend = {r.info.run_id: r for r in backend_client(v.sb, v.ws).search_runs([v.conn.experiment.experiment_id])}
    assert [r.run_id for r in table.rows] == list(reversed(v.ids))[:4]
    # What differs among these four: loss and rmse, r2 (absent in three), alpha; never model or epochs.
    assert table.metric_columns == ["loss", "r2", "rmse"] and table.param_columns == ["alpha"]
    for row in table.rows:
        held = backend[row.run_id]
        assert (row.name, row.status, row.metrics, row.params) == (
            held.info.run_name,
            "FINISHED",
            held.data.metrics,
            held.data.params,
        )
        assert row.url == v.conn.run_url(row.run_id) and row.url.startswith(v.sb.studio_url)
    text, page = repr(table), table._repr_html_()
    assert text.splitlines()[0] == f"4 runs of experiment {v.experiment}"
    assert "metrics.rmse" in text and "params.alpha" in text and "params.model" not in text and "epochs" not in text
    assert f'href="{html.escape(v.conn.run_url(v.ids[-1]), quote=True)}"' in page
    # The hostile name is text in both forms: escaped in HTML, as written in text.
    assert HOSTILE in text and html.escape(HOSTILE) in page and HOSTILE not in page
    assert "More runs match than the 4 shown" in table.note
    # One search (newest first, four runs: the rows above), served as Azure serves it.
    assert [(r.status, r.fidelity) for r in searches(v.sb)] == [(200, "served")]


def test_sorting_by_a_metric_happens_here_as_an_mlflow_server_would_sort(v: Views) -> None:
    v.sb.clear_requests()
    table = magic(v, "runs --sort 'metrics.r2 DESC'")
    # The plain mlflow server behind the sandbox can order by metrics: the same order.
    plain = backend_client(v.sb, v.ws).search_runs([v.conn.experiment.experiment_id], order_by=["metrics.r2 DESC"])
    assert [r.run_id for r in table.rows] == [r.info.run_id for r in plain]
    assert table.metric_columns[0] == "r2"  # the sort column first
    assert "Sorted by metrics.r2 DESC in this notebook" in table.note and "among all 6 matching runs" in table.note
    assert [(r.status, r.fidelity) for r in searches(v.sb)] == [(200, "served")]  # one search, no metric order sent
    ascending = magic(v, "runs --sort metrics.rmse --last 3")
    assert [r.metrics["rmse"] for r in ascending.rows] == [0.30, 0.35, 0.40]


def test_a_sort_sees_the_latest_window_of_runs_and_says_more_exist(v: Views, monkeypatch: pytest.MonkeyPatch) -> None:
    # The window is 1,000 runs; five stand for it here (logging 1,001 runs would take minutes).
    monkeypatch.setattr(query, "WINDOW", 5)
    table = magic(v, "runs --sort metrics.rmse --last 3")
    # The oldest run (ridge-a) is outside the latest five, so the best rmse among them is ridge-b's.
    assert [r.name for r in table.rows] == ["ridge-b", "ridge-c", "twin"]
    assert "among the latest 5 matching runs; more runs match: narrow --filter to include them" in table.note


def test_a_filter_is_sent_and_what_azure_refuses_is_refused_here_with_the_way_round(v: Views) -> None:
    table = magic(v, 'runs --filter "metrics.rmse < 0.38"')
    assert sorted(r.name for r in table.rows) == ["ridge-b", "ridge-c"]
    v.sb.clear_requests()
    with pytest.raises(UsageError) as refused:
        magic(v, 'runs --filter "metrics.rmse < 0.3 OR metrics.r2 > 0.7"')
    assert str(refused.value).startswith("Azure ML cannot run this query. Azure ML does not support OR in run filters")
    assert searches(v.sb) == []  # refused before sending
    with pytest.raises(UsageError) as bad:
        magic(v, 'runs --filter "metrics.rmse <<< 1"')
    assert str(bad.value).startswith("The workspace refused the run filter 'metrics.rmse <<< 1'.")
    assert str(bad.value).endswith("e.g. --filter \"metrics.rmse < 0.3 and params.model = 'ridge'\".")


BAD_LINES = {
    "runs --last 0": "--last 0 is out of range. A query shows 1 to 1,000 runs. For example: %amlflow runs --last 20.",
    "runs --last many": "%amlflow runs: argument --last/-n: invalid int value: 'many'. See: %amlflow help runs",
    "runs --sort 'metrics.rmse SIDEWAYS'": "--sort 'metrics.rmse SIDEWAYS' is not a sort mlflow understands.",
    "compare ridge-a": "%amlflow compare takes 2 to 10 runs, not 1. For example: %amlflow compare baseline ridge.",
    "compare": "%amlflow compare: the following arguments are required: RUN. See: %amlflow help compare",
    "chart": "%amlflow chart: the following arguments are required: metric. See: %amlflow help chart",
    "chart loss --runs a b c d e f g h i j k": "A chart draws at most 10 runs, not 11. Name fewer runs with --runs.",
}


@pytest.mark.parametrize("line", list(BAD_LINES))
def test_bad_input_is_one_line_and_sends_nothing(v: Views, line: str) -> None:
    v.sb.clear_requests()
    with pytest.raises(UsageError) as err:
        magic(v, line)
    assert str(err.value).startswith(BAD_LINES[line]) and "\n" not in str(err.value)
    assert v.sb.requests == []


def test_the_views_need_a_connection(v: Views) -> None:
    magic(v, "disconnect")
    try:
        for line in ("runs", "compare a b", "chart loss"):
            with pytest.raises(UsageError, match=r"^Not connected to a workspace\. Run %amlflow connect first"):
                magic(v, line)
    finally:
        v.conn = magic(v, f"connect {v.ws.arm_id} --experiment {v.experiment}")


# -- comparisons ---------------------------------------------------------------------------------
def test_compare_by_name_and_id_side_by_side_with_differences_and_one_chart(v: Views) -> None:
    cmp = magic(v, f"compare ridge-a {v.ids[1]}")
    assert [r.run_id for r in cmp.runs] == v.ids[:2] and list(cmp.labels) == ["ridge-a", "ridge-b"]
    params = {d.key: (d.values, d.differs) for d in cmp.params}
    assert params == {"alpha": (("0.1", "0.5"), True), "model": (("ridge", "ridge"), False)}
    metrics = {d.key: (d.values, d.differs) for d in cmp.metrics}
    assert metrics["rmse"] == (("0.4", "0.3"), True) and metrics["epochs"] == (("10", "10"), False)
    text = cmp.text()
    assert "* alpha" in text and "  model" in text and "* rmse" in text and "  epochs" in text
    page = cmp.html()
    assert page.count('class="amlflow-differs"') == sum(d.differs for d in [*cmp.params, *cmp.metrics])
    assert html.escape(v.conn.run_url(v.ids[0]), quote=True) in page
    # One chart: a panel per metric both logged, a line per run, every point drawn.
    chart = cmp.chart
    assert chart is not None
    assert chart.points() == {
        "epochs": {"ridge-a": 1, "ridge-b": 1},
        "loss": {"ridge-a": 20, "ridge-b": 20},
        "r2": {"ridge-a": 1, "ridge-b": 1},
        "rmse": {"ridge-a": 1, "ridge-b": 1},
    }
    spec = chart.spec()
    assert [panel["title"] for panel in spec["vconcat"]] == ["epochs", "loss", "r2", "rmse"]
    loss = [(d["run"], d["x"], d["value"]) for d in spec["data"]["values"] if d["metric"] == "loss"]
    held = backend_client(v.sb, v.ws).get_metric_history(v.ids[0], "loss")
    assert sorted((x, y) for run, x, y in loss if run == "ridge-a") == sorted((float(m.step), m.value) for m in held)


def test_a_name_several_runs_share_is_refused_with_the_candidates(v: Views) -> None:
    with pytest.raises(UsageError) as err:
        magic(v, "compare twin ridge-a")
    message = str(err.value)
    assert message.startswith(f"2 runs of experiment '{v.experiment}' are named 'twin'.")
    assert v.ids[3] in message and v.ids[4] in message
    assert f"Name them by id instead, e.g. %amlflow compare {v.ids[4]} {v.ids[3]}." in message
    with pytest.raises(UsageError, match="No run 'nothing-like-this' in experiment"):
        magic(v, "compare nothing-like-this ridge-a")
    with pytest.raises(UsageError, match="are the same run"):
        magic(v, f"compare ridge-a {v.ids[0]}")


# -- charts --------------------------------------------------------------------------------------
def test_a_metric_chart_is_a_vega_lite_document_drawn_as_svg(v: Views) -> None:
    chart = magic(v, f"chart loss --runs ridge-a ridge-b {v.ids[5]}")
    data, metadata = chart._repr_mimebundle_()
    assert set(data) == {VEGALITE, "text/plain"} and metadata == {VEGALITE: {"embed_options": {"renderer": "svg"}}}
    spec = data[VEGALITE]
    assert spec["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json"
    assert spec["mark"]["type"] == "line" and spec["encoding"]["x"]["title"] == "step"
    assert spec["encoding"]["y"]["title"] == "loss" and spec["encoding"]["color"]["scale"]["domain"] == [
        "ridge-a",
        "ridge-b",
        HOSTILE,
    ]
    counts: dict[str, int] = {}
    for d in spec["data"]["values"]:
        counts[d["run"]] = counts.get(d["run"], 0) + 1
    assert counts == {"ridge-a": 20, "ridge-b": 20, HOSTILE: 20}
    # The fallbacks: text names the run as it is; HTML escapes it.
    assert HOSTILE in data["text/plain"] and "20" in data["text/plain"]
    assert html.escape(HOSTILE) in chart.html() and HOSTILE not in chart.html()
    v.shell.run_line_magic("config", "AmlflowMagics.charts = 'html'")  # a front end without Vega-Lite
    try:
        html_bundle, html_meta = magic(v, "chart loss --runs ridge-a ridge-b")._repr_mimebundle_()
    finally:
        v.shell.run_line_magic("config", "AmlflowMagics.charts = 'vega-lite'")
    assert set(html_bundle) == {"text/html", "text/plain"} and html_meta == {}


def test_without_runs_named_a_chart_draws_the_latest_that_logged_the_metric(v: Views) -> None:
    chart = magic(v, "chart r2")
    assert chart.points() == {"r2": {"ridge-c": 1, "ridge-b": 1, "ridge-a": 1}}
    assert "The 3 latest runs of experiment" in chart.text()
    with pytest.raises(UsageError, match=r"No run of experiment .* logged 'accuracy'"):
        magic(v, "chart accuracy")


def test_lines_longer_than_5000_points_are_downsampled_and_the_chart_says_so(v: Views) -> None:
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    with mlflow.start_run(run_name="long") as long_run:
        values = [Metric("curve", (step % 97) / 97 + (step == 4321) * 10, 1_700_000_000_000 + step, step) for step in range(12_000)]
        for i in range(0, len(values), 1000):
            client.log_batch(long_run.info.run_id, metrics=values[i : i + 1000])
    with mlflow.start_run(run_name="exact") as exact_run:
        client.log_batch(exact_run.info.run_id, metrics=[Metric("curve", 1.0 / (s + 1), 1, s) for s in range(1000)])
        client.log_batch(exact_run.info.run_id, metrics=[Metric("curve", 1.0 / (s + 1), 1, s) for s in range(1000, 5000)])
    chart = magic(v, "chart curve --runs long exact")
    assert chart.points() == {"curve": {"long": charts.MAX_POINTS, "exact": 5000}}
    spec = chart.spec()
    long_points = [(d["x"], d["value"]) for d in spec["data"]["values"] if d["run"] == "long"]
    assert long_points[0] == (0.0, 0.0) and long_points[-1][0] == 11_999.0
    assert (4321.0, values[4321].value) in long_points  # the spike survives downsampling
    note = "Downsampled in this notebook to 5,000 points per line: long (12,000 logged)"
    assert spec["title"]["subtitle"] == [note]
    assert note in chart.text() and html.escape(note) in chart.html()
    # The summary describes every value logged, not only those drawn.
    long_line = chart.panels[0].lines[0]
    assert long_line.logged == 12_000 and long_line.summary == (0.0, values[-1].value, 0.0, values[4321].value)


def test_charts_put_no_secret_in_any_form(v: Views, secret_check: Any) -> None:
    chart = magic(v, "chart loss --runs ridge-a ridge-b")
    cmp = magic(v, "compare ridge-a ridge-b")
    for text in (json.dumps(chart.spec()), chart.text(), chart.html(), cmp.text(), cmp.html(), repr(magic(v, "runs"))):
        assert secret_check.find_in(text) == []


WILD = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def view_or_one_clean_line(v: Views, line: str, shown: type) -> None:
    """The line gives its view, or fails with one clean line (never a traceback or another exception)."""
    try:
        result = magic(v, line)
    except UsageError as err:
        assert type(err) is UsageError  # a subclass would make IPython print a traceback
        one_clean_line(str(err))
        return
    assert isinstance(result, shown)
    for text in (repr(result), result._repr_html_() if hasattr(result, "_repr_html_") else ""):
        assert "Traceback" not in text


# What a magic line can carry: the wild values without control characters (no line holds them).
typeable = wild.map(lambda text: "".join(ch for ch in text if ch.isprintable() or ch == " "))


def inert(value: str) -> str:
    """``value`` written so that the magic line gives it back exactly (``pasteable.magic_arg``)."""
    return magic_arg(value)


@WILD
@given(option=st.sampled_from(["--filter", "--sort", "--experiment", "--last"]), value=typeable)
@example(option="--filter", value="A|" * 101)  # too deep for sqlparse: CI's run found it
def test_any_value_of_a_runs_option_gives_the_table_or_one_clean_line(v: Views, option: str, value: str) -> None:
    view_or_one_clean_line(v, f"runs {option} {inert(value)}", RunsTable)


@WILD
@given(first=st.one_of(st.just("ridge-a"), typeable), second=typeable)
def test_any_run_reference_gives_a_comparison_or_one_clean_line(v: Views, first: str, second: str) -> None:
    view_or_one_clean_line(v, f"compare {inert(first)} {inert(second)}", Comparison)


@WILD
@given(metric=typeable, run=st.one_of(st.just("ridge-a"), typeable))
def test_any_metric_or_run_gives_a_chart_or_one_clean_line(v: Views, metric: str, run: str) -> None:
    view_or_one_clean_line(v, f"chart {inert(metric)} --runs {inert(run)} ridge-b", Chart)
