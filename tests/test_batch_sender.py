"""The sender's pure parts: cutting batches to mlflow's limits, halving, Retry-After, the ledger.

What a workspace answers is tested through the user's path in ``test_async_logging.py``; these
are the rules that path cannot reach on its own (mlflow's queue never merges past the limits).
"""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from jupyter_amlflow.batch_sender import Batch, Ledger, _retry_after, describe, within_limits


def batch(metrics: int, params: int, tags: int) -> Batch:
    return Batch(
        [Metric("loss", float(i), 0, i) for i in range(metrics)],
        [Param(f"p{i}", str(i)) for i in range(params)],
        [RunTag(f"t{i}", str(i)) for i in range(tags)],
    )


def test_a_batch_over_the_limits_is_cut_into_requests_mlflow_accepts_in_order() -> None:
    whole = batch(2500, 150, 120)

    parts = list(within_limits(whole))

    for part in parts:
        assert len(part.metrics) <= 1000 and len(part.params) <= 100 and len(part.tags) <= 100 and len(part) <= 1000
    assert [m for p in parts for m in p.metrics] == whole.metrics
    assert [x for p in parts for x in p.params] == whole.params
    assert [t for p in parts for t in p.tags] == whole.tags
    assert len(parts) == 3  # 100 params + 100 tags + 800 metrics, then 50 + 20 + 930, then the last 770


def test_halves_keep_the_order_the_server_writes_in() -> None:
    whole = batch(3, 2, 1)

    first, second = whole.halves()

    assert list(first.items()) + list(second.items()) == list(whole.items())
    assert (len(first), len(second)) == (3, 3)


def test_a_report_names_one_value_in_full_and_many_by_key() -> None:
    assert describe(Batch([Metric("bad@key", 1.0, 0, 57)])) == "metric 'bad@key' = 1.0 at step 57"
    assert describe(Batch(params=[Param("lr", "0.2")])) == "param 'lr' = '0.2'"
    assert describe(batch(200, 1, 0)) == "201 values: param 'p0', metric 'loss' (200, steps 0-199)"


def response_with(retry_after: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = 503
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    assert _retry_after(response_with("2")) == 2.0
    assert _retry_after(response_with(None)) is None
    assert _retry_after(response_with("soon")) is None
    later = _retry_after(response_with(email.utils.formatdate(time.time() + 30, usegmt=True)))
    assert later is not None and 25 <= later <= 31


def test_the_ledger_counts_what_waits_and_fails_only_the_call_whose_value_was_refused() -> None:
    ledger = Ledger()
    good, bad = batch(3, 0, 0), Batch([Metric("bad@key", 1.0, 0, 0)])
    good_future, bad_future = ledger.register("run", good), ledger.register("run", bad)
    assert ledger.waiting == 4

    ledger.settle(good)
    ledger.settle(bad, "refused: HTTP 400")

    assert ledger.waiting == 0 and good_future.result() is None
    with pytest.raises(MlflowException, match="refused: HTTP 400"):
        bad_future.result()


def test_values_never_handed_on_are_found_by_a_later_drain() -> None:
    ledger = Ledger()
    early = batch(2, 0, 0)
    ledger.register("run", early)
    mark = ledger.next_seq()
    ledger.register("run", batch(1, 0, 0))

    waiting = ledger.waiting_since(mark)

    assert list(waiting) == ["run"] and waiting["run"].metrics == early.metrics
