"""The live chart of ``%%amlflow run --live``: the run's metrics drawn under the cell while it runs.

Values are taken where they reach the tracking store (``tap.StoreTap``), so synchronous and
asynchronous calls, autolog and ``MlflowClient`` all show, and nothing polls the server. A
daemon thread redraws at most once per ``interval`` and only when something new was logged; the
logging call itself only appends to a list. When the run has ended (and its queued values are
sent), ``final`` redraws once from what the workspace holds.

Display updates go through IPython's display ids: the first ``display`` returns a handle, each
redraw replaces that output in place. From the redraw thread, ipykernel publishes under the
parent of the cell that is running, which is this one until it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..display import Message
from .charts import Chart, Renders, RunValues, Value, make_panel

log = logging.getLogger("jupyter_amlflow.runs")

#: Seconds between redraws at most (a Vega-Lite redraw of 5,000 points takes a browser ~0.1 s).
INTERVAL = 1.0


class LiveChart:
    """A chart of one run's metrics, redrawn while the run logs.

    Args:
        run_id: The run whose values are drawn (values of other runs are ignored).
        label: The run's name, for the title and legend.
        display: ``IPython.display.display`` (called once, with ``display_id=True``).
        renders: What the chart output carries besides text (``charts.renders_for``).
        interval: Seconds between redraws at most.
        updates: Redraw while the run logs (False: only the final chart, e.g. terminal IPython,
            where every update would print the chart again).
    """

    def __init__(
        self,
        run_id: str,
        label: str,
        *,
        display: Callable[..., Any],
        renders: Renders,
        interval: float = INTERVAL,
        updates: bool = True,
    ) -> None:
        self.run_id = run_id
        self.label = label
        self.renders = renders
        self.interval = interval
        self.updates = updates
        self.redraws = 0
        self._display = display
        self._handle: Any = None
        self._lock = threading.Lock()
        self._values: dict[str, list[Value]] = {}
        self._logged = 0  # values seen: the redraw thread draws when this moved
        self._drawn = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the tap's listener (any thread) -----------------------------------------------------------------
    def take(self, run_id: str, metrics: Any) -> None:
        """Note metrics logged to ``run_id`` (``tap.Listener``): quick, never blocks on drawing."""
        if run_id != self.run_id:
            return
        with self._lock:
            for m in metrics:
                self._values.setdefault(str(m.key), []).append(
                    Value(int(m.step or 0), int(m.timestamp or 0), float(m.value))
                )
                self._logged += 1

    # -- lifetime ----------------------------------------------------------------------------------------
    def start(self) -> LiveChart:
        """Show the placeholder and start redrawing (without updates: nothing until ``final``)."""
        if self.updates:
            waiting = Message(f"Live chart of run {self.label}: waiting for the first metric value.")
            self._handle = self._display(waiting, display_id=True)
            self._thread = threading.Thread(target=self._run, name="amlflow-live-chart", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop redrawing (the values logged since the last redraw are drawn once more)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval * 3))
            self._thread = None
        if self.updates:
            self._redraw_if_new()

    def final(self, client: Any) -> Chart | Message:
        """Redraw from what the workspace holds for the run (after ``end_run``); returns that chart."""
        from .history import chart_of_runs

        shown: Any
        try:
            run = client.get_run(self.run_id)
            keys = sorted(run.data.metrics, key=str.lower)
            title = self._title("as the workspace holds them")
            shown = chart_of_runs(client, [run], keys, title=title, renders=self.renders)
            if not keys:
                shown = Message(f"Run {self.label} logged no metrics.")
        except Exception as exc:  # the boundary of a display: the run is logged, only the redraw failed
            log.warning("jupyter_amlflow: the final chart could not be read back from the workspace", exc_info=True)
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            shown = self.chart(note=f"Drawn from the values logged in this kernel; reading them back failed: {reason}")
        self._show(shown)
        return shown

    # -- drawing -----------------------------------------------------------------------------------------
    def chart(self, note: str = "") -> Chart:
        """The chart of the values seen so far."""
        with self._lock:
            snapshot = {key: list(values) for key, values in self._values.items()}
            count = self._logged
        panels = tuple(
            make_panel(key, [RunValues(self.run_id, self.label, values)])
            for key, values in sorted(snapshot.items(), key=lambda kv: kv[0].lower())
        )
        notes = (note,) if note else (f"{count:,} values so far; redrawn from the workspace when the run ends",)
        return Chart(self._title("live"), panels, notes, self.renders)

    def _title(self, what: str) -> str:
        return f"Run {self.label}: metrics, {what}"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._redraw_if_new()
            except Exception:  # a redraw thread has nobody to raise to; the final chart still comes
                log.warning("jupyter_amlflow: the live chart could not be redrawn", exc_info=True)

    def _redraw_if_new(self) -> None:
        with self._lock:
            logged = self._logged
        if logged == self._drawn or logged == 0:
            return
        self._drawn = logged
        self._show(self.chart())

    def _show(self, obj: Any) -> None:
        self.redraws += 1
        if self._handle is not None:
            self._handle.update(obj)
        else:
            self._handle = self._display(obj, display_id=True)


class Watching:
    """A live chart fed by a tap on the workspace's store: ``start``, then ``stop``, then ``final``.

    Without mlflow's store cache (``compat.internals.CACHED_STORE``, optional) there is nothing to
    tap: the chart is drawn once, from the workspace, when the run ends.
    """

    def __init__(self, tracking_uri: str, chart: LiveChart) -> None:
        from ..compat import internals
        from .tap import StoreTap

        self.chart = chart
        self.tap: StoreTap | None = None
        if internals.available(internals.CACHED_STORE):
            self.tap = StoreTap(internals.cached_store(tracking_uri), chart.take)
        else:
            chart.updates = False

    def start(self) -> Watching:
        if self.tap is not None:
            self.tap.install()
        try:
            self.chart.start()
        except BaseException:
            if self.tap is not None:
                self.tap.remove()
            raise
        return self

    def stop(self) -> None:
        """Stop watching and redrawing (before the run ends: nothing more is logged to it)."""
        if self.tap is not None:
            self.tap.remove()
        self.chart.stop()

    def final(self, client: Any) -> Chart | Message:
        """The last redraw, from the workspace (after ``end_run`` has sent what was queued)."""
        return self.chart.final(client)
