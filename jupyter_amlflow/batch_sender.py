"""Sending queued MLflow values to Azure ML: batches through ``runs/log-batch``, nothing dropped.

mlflow's ``AsyncLoggingQueue`` gathers what ``log_metric(..., synchronous=False)`` and friends log,
merges it into batches and hands each one to a *logging function*. While a kernel is connected,
``async_logging`` makes a ``BatchSender`` that function for the workspace's store. Compared with
the store's own ``log_batch`` (one request, mlflow's HTTP retries with one token), it adds:

* batches cut to mlflow's limits (1,000 metrics, 100 params, 100 tags, 1,000 values per request),
  in the order the values were logged;
* 429, 5xx and transport errors retried within a budget per batch, honouring ``Retry-After``;
* a token fetched for every attempt, so one that expired while a batch waited (or while a
  ``Retry-After`` ran) is replaced, and a 401 is retried with a new one;
* a batch refused with 400 split in halves and resent, so only the bad value stays refused; it is
  reported once, with its run;
* a ``Ledger`` of every value handed to the queue until it is sent, refused or given up on, so the
  waiting count, the exit report and the caller's ``RunOperations`` all come from one place.

This module knows nothing of IPython and touches no private attribute of mlflow or the plugin:
the store it sends through is any object with ``get_host_creds()`` (mlflow's REST stores).
"""

from __future__ import annotations

import concurrent.futures
import email.utils
import functools
import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("jupyter_amlflow.async_logging")

# mlflow's own limits per log-batch request (mlflow.utils.validation: MAX_METRICS_PER_BATCH,
# MAX_PARAMS_TAGS_PER_BATCH, MAX_ENTITIES_PER_BATCH); Azure ML's are assumed to be the same.
MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_VALUES = 1000

LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
#: Seconds one batch may spend being retried before its values are reported as not sent.
RETRY_BUDGET = 60.0
#: Answers worth another attempt (the same codes mlflow's own HTTP retries cover).
RETRYABLE = frozenset({429, 500, 502, 503, 504})
#: Requests one refused batch may spend finding its bad values (a batch whose every value is
#: refused, e.g. one logged to a deleted run, must not cost two requests per value).
MAX_SPLITS = 64
#: 401s answered by fetching a new token and trying again, per batch.
MAX_REFRESHES = 3

Kind = Literal["metric", "param", "tag"]


# -- what was logged -------------------------------------------------------------------------------
@dataclass
class Batch:
    """Values of one run, in three lists as the REST API takes them."""

    metrics: list[Any] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    tags: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)

    def items(self) -> Iterator[tuple[Kind, Any]]:
        """Every value with its kind, in the order the server writes them (params, metrics, tags)."""
        yield from (("param", p) for p in self.params)
        yield from (("metric", m) for m in self.metrics)
        yield from (("tag", t) for t in self.tags)

    @classmethod
    def of(cls, items: Sequence[tuple[Kind, Any]]) -> Batch:
        batch = cls()
        for kind, item in items:
            {"metric": batch.metrics, "param": batch.params, "tag": batch.tags}[kind].append(item)
        return batch

    def halves(self) -> tuple[Batch, Batch]:
        """The first and second half, each in order."""
        items = list(self.items())
        middle = len(items) // 2
        return Batch.of(items[:middle]), Batch.of(items[middle:])


def within_limits(batch: Batch) -> Iterator[Batch]:
    """``batch`` cut into requests within mlflow's limits, as ``MlflowClient.log_batch`` cuts them."""
    params, tags, metrics = list(batch.params), list(batch.tags), list(batch.metrics)
    while params or tags or metrics:
        p, params = params[:MAX_PARAMS], params[MAX_PARAMS:]
        t, tags = tags[:MAX_TAGS], tags[MAX_TAGS:]
        room = max(0, min(MAX_METRICS, MAX_VALUES - len(p) - len(t)))
        m, metrics = metrics[:room], metrics[room:]
        yield Batch(m, p, t)


def describe(batch: Batch) -> str:
    """The values in words, for a report: one in full, more as counts per key (user data, repr'd)."""
    items = list(batch.items())
    if len(items) == 1:
        kind, item = items[0]
        if kind == "metric":
            return f"metric {_short(item.key)} = {item.value!r} at step {item.step}"
        return f"{kind} {_short(item.key)} = {_short(item.value)}"
    groups: dict[tuple[Kind, str], list[Any]] = {}
    for kind, item in items:
        groups.setdefault((kind, item.key), []).append(item)
    parts = []
    for (kind, key), members in list(groups.items())[:3]:
        if kind == "metric":
            steps = sorted(m.step for m in members)
            span = f"step {steps[0]}" if steps[0] == steps[-1] else f"steps {steps[0]}-{steps[-1]}"
            parts.append(f"metric {_short(key)} ({len(members)}, {span})")
        else:
            parts.append(f"{kind} {_short(key)}")
    more = f", and {len(groups) - 3} more keys" if len(groups) > 3 else ""
    return f"{len(items)} values: " + ", ".join(parts) + more


def _short(value: object, limit: int = 60) -> str:
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 2] + "…'"


# -- the ledger ------------------------------------------------------------------------------------
@dataclass
class Problem:
    """Values that did not reach the workspace, and why. Reported once, when it happens."""

    run_id: str
    kind: Literal["refused", "not sent"]
    reason: str
    batch: Batch

    def text(self) -> str:
        verb = "refused by the workspace" if self.kind == "refused" else "not sent"
        return f"run {self.run_id}: {describe(self.batch)} ({verb}: {self.reason})"


@dataclass
class _Entry:
    seq: int
    run_id: str
    kind: Kind
    item: Any
    call: _Call


class _Call:
    """One ``log_batch_async`` call: its future completes when each of its values is settled."""

    def __init__(self, size: int) -> None:
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.left = size  # changed under the ledger's lock
        self.errors: list[str] = []

    def complete(self) -> None:
        """Resolve the future (once ``left`` reached 0): the failures of its values, if any."""
        if self.errors:
            from mlflow.exceptions import MlflowException

            self.future.set_exception(MlflowException("; ".join(self.errors[:5])))
        else:
            self.future.set_result(None)


class Ledger:
    """Every value handed to mlflow's queue, until it is sent, refused or given up on.

    Values are found again by object identity: the queue passes the very ``Metric``/``Param``/
    ``RunTag`` objects it was given on to the logging function (merging batches only extends lists).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, deque[_Entry]] = {}
        self._seq = itertools.count()
        self._count = 0

    def register(self, run_id: str, batch: Batch) -> concurrent.futures.Future[None]:
        """Note a call's values as waiting; returns the future its ``RunOperations`` waits on."""
        call = _Call(len(batch))
        if not len(batch):
            call.future.set_result(None)
        with self._lock:
            for kind, item in batch.items():
                entry = _Entry(next(self._seq), run_id, kind, item, call)
                self._entries.setdefault(id(item), deque()).append(entry)
                self._count += 1
        return call.future

    def next_seq(self) -> int:
        """A mark in the sequence: every value registered before this call has a smaller number."""
        with self._lock:
            return next(self._seq)  # itertools.count has no peek: a gap in the numbers is harmless

    def settle(self, batch: Batch, error: str | None = None) -> None:
        """These values are done: sent (``error`` None) or failed with ``error``."""
        done = []
        with self._lock:
            for _, item in batch.items():
                queue = self._entries.get(id(item))
                if not queue:
                    continue  # logged before this ledger existed, or already settled
                entry = queue.popleft()
                if not queue:
                    del self._entries[id(item)]
                self._count -= 1
                call = entry.call
                if error is not None and (not call.errors or call.errors[-1] != error):
                    call.errors.append(error)
                call.left -= 1
                if call.left == 0:
                    done.append(call)
        for call in done:  # a future runs its callbacks: outside the lock
            call.complete()

    @property
    def waiting(self) -> int:
        """How many values are waiting to be sent."""
        with self._lock:
            return self._count

    def waiting_since(self, before: int | None = None) -> dict[str, Batch]:
        """The values still waiting (registered before sequence number ``before``), per run, in order."""
        with self._lock:
            entries = sorted(
                (e for q in self._entries.values() for e in q if before is None or e.seq < before),
                key=lambda e: e.seq,
            )
        runs: dict[str, list[tuple[Kind, Any]]] = {}
        for e in entries:
            runs.setdefault(e.run_id, []).append((e.kind, e.item))
        return {run_id: Batch.of(items) for run_id, items in runs.items()}


# -- the sender ------------------------------------------------------------------------------------
@dataclass
class _Refused:
    status: int
    reason: str


@dataclass
class _NotSent:
    reason: str


_Outcome = None | _Refused | _NotSent  # None: sent


class _Abandoned(Exception):
    """The process is exiting and the request in flight is left behind."""


class BatchSender:
    """The queue's logging function for one store: ``sender(run_id=, metrics=, params=, tags=)``.

    Args:
        store: An mlflow REST store (``get_host_creds()`` gives the URL and a fresh token).
        ledger: Where the values are accounted for.
        report: Called once per group of values that did not reach the workspace.
        budget: Seconds a batch may be retried before its values are reported as not sent.
    """

    def __init__(
        self,
        store: Any,
        ledger: Ledger,
        report: Callable[[Problem], None],
        *,
        budget: float = RETRY_BUDGET,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.report = report
        self.budget = budget
        self._stop_at: float | None = None  # time.monotonic(): give up by then (the process is exiting)
        self._wake = threading.Condition()

    def stop_by(self, deadline: float) -> None:
        """Give up on anything not sent by ``deadline`` (``time.monotonic()``); wakes waiting retries."""
        with self._wake:
            self._stop_at = deadline
            self._wake.notify_all()

    def __call__(self, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
        for batch in within_limits(Batch(list(metrics), list(params), list(tags))):
            self.deliver(run_id, batch)

    def deliver(self, run_id: str, batch: Batch) -> None:
        """Send one batch within the limits; split it while the workspace refuses part of it."""
        deadline = time.monotonic() + self.budget
        work: deque[Batch] = deque([batch])
        splits = 0
        while work:
            part = work.popleft()
            outcome = self._attempt(run_id, part, deadline)
            if outcome is None:
                self.ledger.settle(part)
            elif isinstance(outcome, _Refused) and outcome.status == 400 and len(part) > 1 and splits < MAX_SPLITS:
                # One bad value refuses the whole batch (mlflow validates a batch before writing
                # any of it, so nothing of it was stored): find it by halves, in order.
                splits += 2
                work.extendleft(reversed(part.halves()))
            else:
                kind: Literal["refused", "not sent"] = "refused" if isinstance(outcome, _Refused) else "not sent"
                problem = Problem(run_id, kind, outcome.reason, part)
                self.ledger.settle(part, problem.text())
                self.report(problem)

    # -- one batch, with retries -----------------------------------------------------------------
    def _limit(self, deadline: float) -> float:
        with self._wake:
            return deadline if self._stop_at is None else min(deadline, self._stop_at)

    def _attempt(self, run_id: str, batch: Batch, deadline: float) -> _Outcome:
        from azure.core.exceptions import ClientAuthenticationError
        from azure.identity import CredentialUnavailableError

        backoff, refreshes, last = 0.5, 0, "no attempt was made"
        while True:
            remaining = self._limit(deadline) - time.monotonic()
            if remaining <= 0:
                return _NotSent(self._gave_up(last))
            try:
                response = self._in_flight(functools.partial(self._post, run_id, batch, remaining))
            except _Abandoned:
                return _NotSent(self._gave_up("a request was still in flight, it may have arrived"))
            except CredentialUnavailableError as exc:  # signed out: retrying cannot help
                return _NotSent(f"no credential ({_printable(str(exc))})")
            except ClientAuthenticationError as exc:  # the token endpoint failed (it retried already)
                wait, last = backoff, f"sign-in failed ({_printable(str(exc))})"
                backoff = min(backoff * 2, 10.0)
            except Exception as exc:  # mlflow wraps connection errors and timeouts in MlflowException
                wait, last = backoff, _printable(str(exc))
                backoff = min(backoff * 2, 10.0)
            else:
                status = response.status_code
                if status == 200:
                    return None
                last = f"HTTP {status} {_error_text(response)}".strip()
                if status == 401 and refreshes < MAX_REFRESHES:
                    # A token that expired in flight (or during a Retry-After): the next attempt
                    # asks the credential again, which signs in anew for an expired token.
                    refreshes += 1
                    wait = 0.2 * refreshes
                elif status in RETRYABLE:
                    asked = _retry_after(response)
                    if asked is not None and asked > self._limit(deadline) - time.monotonic():
                        return _NotSent(f"{last}; the workspace asked to wait {asked:g} s, longer than the time left")
                    wait = asked if asked is not None else backoff * (1 + random.random() / 4)
                    backoff = min(backoff * 2, 10.0)
                else:
                    return _Refused(status, last)
            self._sleep(wait, deadline)

    def _in_flight(self, request: Callable[[], Any]) -> Any:
        """Run one request in a daemon thread; stop waiting for it when the process must exit.

        A request cannot be cut short, and the queue's worker thread is joined at exit: waiting
        here instead keeps the exit flush within its bound whatever the network does.
        """
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["response"] = request()
            except BaseException as exc:  # handed to the waiting thread, which re-raises it
                box["error"] = exc
            finally:
                done.set()
                with self._wake:
                    self._wake.notify_all()

        threading.Thread(target=run, name="amlflow-log-batch", daemon=True).start()
        with self._wake:
            while not done.is_set():
                if self._stop_at is not None and time.monotonic() >= self._stop_at:
                    raise _Abandoned
                self._wake.wait(None if self._stop_at is None else self._stop_at - time.monotonic())
        if "error" in box:
            raise box["error"]
        return box["response"]

    def _gave_up(self, last: str) -> str:
        with self._wake:
            exiting = self._stop_at is not None and time.monotonic() >= self._stop_at
        if exiting:
            return f"the process exited before it could be sent (last attempt: {last})"
        return f"gave up after {self.budget:g} s of retries (last attempt: {last})"

    def _sleep(self, seconds: float, deadline: float) -> None:
        until = time.monotonic() + seconds
        with self._wake:
            while True:
                now = time.monotonic()
                stop = until if self._stop_at is None else min(until, self._stop_at)
                if now >= min(stop, deadline):
                    return
                self._wake.wait(min(stop, deadline) - now)

    def _post(self, run_id: str, batch: Batch, remaining: float) -> Any:
        from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT
        from mlflow.protos.service_pb2 import LogBatch
        from mlflow.utils.proto_json_utils import message_to_json
        from mlflow.utils.rest_utils import http_request

        body = message_to_json(
            LogBatch(
                run_id=run_id,
                metrics=[m.to_proto() for m in batch.metrics],
                params=[p.to_proto() for p in batch.params],
                tags=[t.to_proto() for t in batch.tags],
            )
        )
        timeout = max(0.5, min(float(MLFLOW_HTTP_REQUEST_TIMEOUT.get()), remaining))
        return http_request(
            self.store.get_host_creds(),  # a token from the credential now, not when the batch was made
            LOG_BATCH,
            "POST",
            max_retries=0,  # retries are ours: each gets a new token and honours Retry-After
            backoff_factor=0,
            backoff_jitter=0,
            retry_codes=frozenset(),
            timeout=timeout,
            raise_on_status=False,
            json=json.loads(body),
        )


def _retry_after(response: Any) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), if the answer has one."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(response: Any) -> str:
    """The error code and message of an answer, MLflow's or Azure's shape (server text: untrusted)."""
    try:
        body = response.json()
    except ValueError:
        return _printable(response.text or "")
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if not isinstance(body, dict):
        return ""
    code = body.get("error_code") or body.get("code") or ""
    message = body.get("message") or ""
    return _printable(f"{code}: {message}" if code and message else f"{code}{message}")


def _printable(text: str, limit: int = 300) -> str:
    """One printable line, cut to ``limit`` characters."""
    line = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
