"""The run views against the sandbox: the run table, comparisons, metric charts and their data.

A module fixture connects an in-process IPython shell with ``%amlflow connect`` and logs a small
experiment with plain ``mlflow`` (params, final metrics, a loss history per run, a hostile run
name, two runs sharing a name). Every test reads what a view shows (its rows, columns, links,
chart documents, point counts, text and HTML forms) and checks it against what the workspace's
backing mlflow server holds, read with a plain ``MlflowClient``. Order, filters and the number of
requests are read from the sandbox's request log.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import backend_client, isolated_mlflow
from IPython.core.interactiveshell import InteractiveShell

from jupyter_amlflow import runs as views
from jupyter_amlflow.errors import NotFound
from jupyter_amlflow.runs import charts, query
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
    with pytest.MonkeyPatch.context() as mp, isolated_mlflow():
        for k, val in {**sandbox.env, **sandbox.service_principal}.items():
            mp.setenv(k, val)
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "jupyter_amlflow")
        magics = ip.magics_manager.registry["AmlflowMagics"]
        magics.auth = ["env"]
        ws = sandbox.workspaces[0]
        experiment = f"views-{uuid.uuid4().hex[:8]}"
        try:
            ip.run_line_magic("amlflow", f"connect {ws.arm_id} --experiment {experiment}")
            ids = [_log_run(*run) for run in RUNS]
            yield Views(ip, magics.session.connection, sandbox, ws, experiment, ids)
        finally:
            if magics.session.connection is not None:
                magics.session.disconnect()
            ip.run_line_magic("unload_ext", "jupyter_amlflow")


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


def searches(sb: Any) -> list[Any]:
    """The ``runs/search`` requests the sandbox received since it was cleared (its log holds no body)."""
    return [r for r in sb.requests if r.path.startswith("/mlflow/v2.0/") and r.path.endswith("/runs/search")]


# -- the run table -------------------------------------------------------------------------------
def test_the_table_shows_the_latest_runs_newest_first_with_what_differs(v: Views) -> None:
    v.sb.clear_requests()
    table = views.run_table(v.conn, last=4)
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
    table = views.run_table(v.conn, sort=["metrics.r2 DESC"], last=20)
    # The plain mlflow server behind the sandbox can order by metrics: the same order.
    plain = backend_client(v.sb, v.ws).search_runs([v.conn.experiment.experiment_id], order_by=["metrics.r2 DESC"])
    assert [r.run_id for r in table.rows] == [r.info.run_id for r in plain]
    assert table.metric_columns[0] == "r2"  # the sort column first
    assert "Sorted by metrics.r2 DESC in this notebook" in table.note and "among all 6 matching runs" in table.note
    assert [(r.status, r.fidelity) for r in searches(v.sb)] == [(200, "served")]  # one search, no metric order sent
    ascending = views.run_table(v.conn, sort=["metrics.rmse"], last=3)
    assert [r.metrics["rmse"] for r in ascending.rows] == [0.30, 0.35, 0.40]


def test_a_sort_sees_the_latest_window_of_runs_and_says_more_exist(v: Views, monkeypatch: pytest.MonkeyPatch) -> None:
    # The window is 1,000 runs; five stand for it here (logging 1,001 runs would take minutes).
    monkeypatch.setattr(query, "WINDOW", 5)
    table = views.run_table(v.conn, sort=["metrics.rmse"], last=3)
    # The oldest run (ridge-a) is outside the latest five, so the best rmse among them is ridge-b's.
    assert [r.name for r in table.rows] == ["ridge-b", "ridge-c", "twin"]
    assert "among the latest 5 matching runs; more runs match: narrow --filter to include them" in table.note


def test_a_filter_is_sent_and_what_azure_refuses_is_refused_here_with_the_way_round(v: Views) -> None:
    table = views.run_table(v.conn, filter_string="metrics.rmse < 0.38")
    assert sorted(r.name for r in table.rows) == ["ridge-b", "ridge-c"]
    v.sb.clear_requests()
    with pytest.raises(views.QueryError) as refused:
        views.run_table(v.conn, filter_string="metrics.rmse < 0.3 OR metrics.r2 > 0.7")
    assert "Azure ML does not support OR in run filters" in str(refused.value)
    assert searches(v.sb) == []  # refused before sending
    with pytest.raises(views.QueryError) as bad:
        views.run_table(v.conn, filter_string="metrics.rmse <<< 1")
    assert str(bad.value).startswith("The workspace refused the run filter 'metrics.rmse <<< 1'.")
    with pytest.raises(views.QueryError, match="--last 0 is out of range"):
        views.run_table(v.conn, last=0)
    with pytest.raises(views.QueryError, match="is not a sort mlflow understands"):
        views.run_table(v.conn, sort=["metrics.rmse SIDEWAYS"])


def test_another_experiment_by_name_and_one_that_does_not_exist(v: Views) -> None:
    import mlflow

    other = f"{v.experiment}-other"
    with mlflow.start_run(experiment_id=mlflow.MlflowClient().create_experiment(other), run_name="elsewhere") as run:
        mlflow.log_metric("rmse", 0.1)
    table = views.run_table(v.conn, experiment=other)
    assert table.experiment == other and [r.run_id for r in table.rows] == [run.info.run_id]
    assert table.metric_columns == ["rmse"]  # one run: everything it logged
    with pytest.raises(NotFound, match="There is no experiment 'no-such-experiment'"):
        views.run_table(v.conn, experiment="no-such-experiment")


# -- comparisons ---------------------------------------------------------------------------------
def test_compare_by_name_and_id_side_by_side_with_differences_and_one_chart(v: Views) -> None:
    cmp = views.compare_runs(v.conn, ["ridge-a", v.ids[1]], renders="vega-lite")
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
    with pytest.raises(views.QueryError) as err:
        views.compare_runs(v.conn, ["twin", "ridge-a"])
    message = str(err.value)
    assert message.startswith(f"2 runs of experiment '{v.experiment}' are named 'twin'.")
    assert v.ids[3] in message and v.ids[4] in message
    assert f"Name them by id instead, e.g. %amlflow compare {v.ids[4]} {v.ids[3]}." in message
    with pytest.raises(views.QueryError, match="No run 'nothing-like-this' in experiment"):
        views.compare_runs(v.conn, ["nothing-like-this", "ridge-a"])
    with pytest.raises(views.QueryError, match="are the same run"):
        views.compare_runs(v.conn, ["ridge-a", v.ids[0]])
    with pytest.raises(views.QueryError, match="takes 2 to 10 runs, not 1"):
        views.compare_runs(v.conn, ["ridge-a"])


# -- charts --------------------------------------------------------------------------------------
def test_a_metric_chart_is_a_vega_lite_document_drawn_as_svg(v: Views) -> None:
    chart = views.metric_chart(v.conn, "loss", runs=["ridge-a", "ridge-b", v.ids[5]], renders="vega-lite")
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
    html_bundle, html_meta = views.metric_chart(v.conn, "loss", runs=["ridge-a", "ridge-b"], renders="html")._repr_mimebundle_()
    assert set(html_bundle) == {"text/html", "text/plain"} and html_meta == {}


def test_without_runs_named_a_chart_draws_the_latest_that_logged_the_metric(v: Views) -> None:
    chart = views.metric_chart(v.conn, "r2")
    assert chart.points() == {"r2": {"ridge-c": 1, "ridge-b": 1, "ridge-a": 1}}
    assert "The 3 latest runs of experiment" in chart.text()
    with pytest.raises(views.QueryError, match=r"No run of experiment .* logged 'accuracy'"):
        views.metric_chart(v.conn, "accuracy")


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
    chart = views.metric_chart(v.conn, "curve", runs=["long", "exact"], renders="vega-lite")
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
    chart = views.metric_chart(v.conn, "loss", runs=["ridge-a", "ridge-b"], renders="vega-lite")
    cmp = views.compare_runs(v.conn, ["ridge-a", "ridge-b"])
    for text in (json.dumps(chart.spec()), chart.text(), chart.html(), cmp.text(), cmp.html(), repr(views.run_table(v.conn))):
        assert secret_check.find_in(text) == []
