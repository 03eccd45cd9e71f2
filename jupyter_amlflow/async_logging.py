"""Asynchronous MLflow logging that never makes the notebook wait, while a kernel is connected.

mlflow 3 batches values logged with ``synchronous=False`` in an ``AsyncLoggingQueue`` that every
tracking store owns; the azureml-mlflow plugin's store overrides ``log_batch_async`` with one
blocking ``log-batch-async`` request (and a status poll) per call, slower than a synchronous call
(Azure/azure-sdk-for-python#45403). While connected, ``AsyncLogging`` gives the workspace's store
mlflow's queue back and adds what the queue lacks:

* batching: ``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS`` (whole seconds) makes the queue gather a
  second of values into one ``runs/log-batch`` request; one worker thread
  (``MLFLOW_ASYNC_LOGGING_THREADPOOL_SIZE=1``) keeps the batches in the order they were logged.
  Either is left alone when the user set it. Both are put back on disconnect;
* delivery (``batch_sender.BatchSender``): retries honouring ``Retry-After``, a fresh token per
  attempt, 400s split so only the bad value is refused, every value accounted for;
* flushes that Ctrl-C cannot break: ``end_run`` (mlflow calls the store's
  ``shut_down_async_logging``) and ``mlflow.flush_async_logging()`` drain the queue in a thread of
  their own, so an interrupt stops the wait, never the sending; disconnect (and so logout and
  ``%unload_ext``) drains it before the credential is put back;
* a bounded flush at interpreter exit (``EXIT_FLUSH_SECONDS``: Jupyter terminates a kernel 2.5 s
  after asking it to stop): whatever could not be sent is reported with its run on stderr and saved to
  ``~/.jupyter_amlflow/unsent/``, from where ``resend(path)`` logs it later;
* an opt-in (``MLFLOW_ENABLE_ASYNC_LOGGING=true`` while connected) that makes every
  ``mlflow.log_*`` call asynchronous.

The private attributes of mlflow and CPython this needs (the cached store of a tracking URI, its
``AsyncLoggingQueue`` and the queue's logging function, the exit hook that runs before worker
threads are joined) are reached through ``compat.internals`` and checked when a store is adopted:
a version without them keeps the plugin's way. The instance attributes ``log_batch_async``,
``shut_down_async_logging`` and ``flush_async_logging`` set on the adopted store shadow the
plugin's class, for that store only, and are removed on release.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batch_sender import Batch, BatchSender, Ledger, Problem, describe
from .compat import internals
from .errors import AmlflowError
from .userfiles import create_private

log = logging.getLogger("jupyter_amlflow.async_logging")

BUFFERING_ENV = "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"
POOL_ENV = "MLFLOW_ASYNC_LOGGING_THREADPOOL_SIZE"
DEFAULT_ENV = "MLFLOW_ENABLE_ASYNC_LOGGING"
#: Seconds the queue gathers values before sending them (mlflow reads whole seconds).
BUFFERING_SECONDS = 1
#: Seconds the exit flush may take. A kernel restart or shutdown from Jupyter sends SIGTERM half of
#: ``shutdown_wait_time`` (5 s) after asking the kernel to stop, SIGKILL at 5 s (jupyter_client 8,
#: ``KernelManager.finish_shutdown``); the kernel needs a few tenths of a second to get here, and the
#: report must be written before the SIGTERM.
EXIT_FLUSH_SECONDS = 1.5
#: Problems kept for ``%amlflow status`` (each was reported, and values not sent saved, when it happened).
KEEP_PROBLEMS = 100


@dataclass(frozen=True)
class _Note:
    """A problem as ``%amlflow status`` recalls it (the values themselves are not kept)."""

    text: str
    count: int


@dataclass
class _Adopted:
    """A store logging through mlflow's queue and our sender; what to put back."""

    store: Any
    queue: Any
    sender: BatchSender
    ledger: Ledger
    previous: Callable[..., None]


class AsyncLogging:
    """The asynchronous logging of one session's connections.

    Args:
        default_async: Make every ``mlflow.log_*`` call asynchronous while connected.
        exit_seconds: How long the flush at interpreter exit may take.
    """

    def __init__(self, *, default_async: bool = False, exit_seconds: float = EXIT_FLUSH_SECONDS) -> None:
        self.default_async = default_async
        self.exit_seconds = exit_seconds
        self.problems: list[_Note] = []
        self.not_logged = 0
        self.unsent_file: Path | None = None
        self._exiting = False
        self._exit_unsent: list[Problem] = []
        self._adopted: dict[int, _Adopted] = {}
        self._env_set: dict[str, str] = {}  # what we set, to put back only what nobody changed since
        self._env_before: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._exit_hook = False

    # -- connect and disconnect ----------------------------------------------------------------------
    def attach(self, tracking_uri: str) -> bool:
        """Adopt the store of ``tracking_uri`` and set the environment (connect's commit: no network).

        Returns whether the store logs through the queue now; False (and nothing changed) when this
        mlflow or plugin lacks what that needs, in which case logging keeps the plugin's way.
        """
        known = set(self._adopted)
        try:
            adopted = self._adopt(tracking_uri)
            if adopted:
                self._set_env()
                self._register_exit_hook()
        except Exception:  # an optional speed-up must never fail a connect; the plugin's way still logs
            log.warning("jupyter_amlflow: asynchronous logging stays as the plugin does it", exc_info=True)
            self._undo_attach(known)
            return False
        except BaseException:  # Ctrl-C: connect restores everything else, this undoes its own part
            self._undo_attach(known)
            raise
        return adopted

    def _undo_attach(self, known: set[int]) -> None:
        for key in set(self._adopted) - known:
            self._unadopt(key)  # just adopted: nothing can be queued through it yet
        if not self._adopted:
            self._restore_env()

    def set_default(self, on: bool) -> None:
        """Make every ``mlflow.log_*`` call asynchronous (or not) from now on."""
        self.default_async = on
        if self._adopted:
            self._set_default_env()

    def release(self) -> None:
        """Send everything waiting, then give each store back its own way and restore the environment.

        Waits until each batch is sent, refused or given up on (``batch_sender.RETRY_BUDGET``).
        Ctrl-C stops the wait and leaves everything as it was, still sending.
        """
        for adopted in list(self._adopted.values()):
            self._drain(adopted, reactivate=False)
        for key in list(self._adopted):
            self._unadopt(key)
        self._restore_env()

    def _unadopt(self, key: int) -> None:
        adopted = self._adopted.pop(key)
        for name in ("log_batch_async", "shut_down_async_logging", "flush_async_logging"):
            adopted.store.__dict__.pop(name, None)
        if internals.logging_func(adopted.queue) is adopted.sender:
            internals.set_logging_func(adopted.queue, adopted.previous)

    # -- what %amlflow status shows ------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Values logged asynchronously and not yet sent."""
        return sum(a.ledger.waiting for a in list(self._adopted.values()))

    def status_rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` rows for ``%amlflow status``."""
        if not self._adopted:
            return [("Asynchronous logging", "as the plugin does it (this mlflow lacks the queue it needs)")]
        from mlflow.environment_variables import MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS, MLFLOW_ENABLE_ASYNC_LOGGING

        every = MLFLOW_ENABLE_ASYNC_LOGGING.get()
        mode = (
            "on for every mlflow.log_* call"
            if every
            else "only when asked (synchronous=False, or %config AmlflowMagics.async_logging = True)"
        )
        buffering = MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS.get()
        sent = f"sent in batches every {buffering} s" if buffering else "sent as they come"
        rows = [("Asynchronous logging", f"{mode}; {sent}"), ("Values waiting", str(self.waiting))]
        with self._lock:
            last, count = (self.problems[-1] if self.problems else None), self.not_logged
        if last is not None:
            rows.append(("Values not logged", f"{count}; the last: {last.text}"))
        return rows

    # -- the store -----------------------------------------------------------------------------------
    def _adopt(self, tracking_uri: str) -> bool:
        if not internals.available(internals.CACHED_STORE):
            return False
        store = internals.cached_store(tracking_uri)
        if id(store) in self._adopted:
            return True
        queue = internals.async_queue(store)
        if queue is None or not callable(getattr(store, "get_host_creds", None)):
            log.debug("store %s has no AsyncLoggingQueue this module knows", type(store).__name__)
            return False
        ledger = Ledger()
        sender = BatchSender(store, ledger, self._report)
        adopted = _Adopted(store, queue, sender, ledger, internals.logging_func(queue))
        internals.set_logging_func(queue, sender)
        # Instance attributes shadow the plugin's class: this store only, removed on release.
        store.log_batch_async = functools.partial(self._log_batch_async, adopted)
        store.shut_down_async_logging = functools.partial(self._drain, adopted, False)
        store.flush_async_logging = functools.partial(self._drain, adopted, True)
        self._adopted[id(store)] = adopted
        return True

    @staticmethod
    def _log_batch_async(adopted: _Adopted, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> Any:
        """``AbstractStore.log_batch_async`` (mlflow's queue), with the values noted in the ledger."""
        from mlflow.utils.async_logging.run_operations import RunOperations

        # Noted first: a Ctrl-C before the queue has them leaves them in the ledger, where the
        # next drain finds and sends them (see _drain), instead of losing them.
        future = adopted.ledger.register(run_id, Batch(list(metrics), list(params), list(tags)))
        if not adopted.queue.is_active():
            adopted.queue.activate()
        adopted.queue.log_batch_async(run_id=run_id, params=params, tags=tags, metrics=metrics)
        return RunOperations(operation_futures=[future])

    def _drain(self, adopted: _Adopted, reactivate: bool) -> None:
        """The store's ``shut_down_async_logging`` (``flush_async_logging`` with ``reactivate``).

        Drains in a thread of its own: Ctrl-C ends the wait here, the sending goes on.
        """
        _aside(functools.partial(self._drain_now, adopted, reactivate), "amlflow-flush")

    @staticmethod
    def _drain_now(adopted: _Adopted, reactivate: bool) -> None:
        before = adopted.ledger.next_seq()
        queue = adopted.queue
        if not queue.is_idle():
            if reactivate:
                queue.flush()
            else:
                queue.shut_down_async_logging()
        # Values noted before this drain and still waiting never reached the queue (a Ctrl-C
        # between the ledger and the queue): everything queued before it has been handled.
        for run_id, batch in adopted.ledger.waiting_since(before).items():
            adopted.sender.deliver(run_id, batch)

    # -- reports -------------------------------------------------------------------------------------
    def _report(self, problem: Problem) -> None:
        """Report values that did not reach the workspace, once; save those that were not sent.

        Values not sent are written to a file at once, not kept: a long outage would otherwise
        hold them all in memory, and a killed kernel would lose them.
        """
        text, saved = problem.text(), ""
        with self._lock:
            self.problems.append(_Note(text, len(problem.batch)))
            del self.problems[:-KEEP_PROBLEMS]
            self.not_logged += len(problem.batch)
            exiting = self._exiting
            if exiting and problem.kind == "not sent":
                self._exit_unsent.append(problem)  # saved with the rest by flush_at_exit
        if problem.kind == "not sent" and not exiting:
            saved = "; " + _saved_note(lambda: save_unsent({problem.run_id: problem.batch}))
        log.warning("jupyter_amlflow: MLflow values not logged to %s%s", text, saved)

    # -- the environment -----------------------------------------------------------------------------
    def _set_env(self) -> None:
        if not self._env_set:
            for name, value in ((BUFFERING_ENV, str(BUFFERING_SECONDS)), (POOL_ENV, "1")):
                if os.environ.get(name) is None:  # the user's own setting wins
                    self._put_env(name, value)
        self._set_default_env()

    def _set_default_env(self) -> None:
        if self.default_async:
            self._put_env(DEFAULT_ENV, "true")
        else:
            self._restore_env(DEFAULT_ENV)

    def _put_env(self, name: str, value: str) -> None:
        self._env_before.setdefault(name, os.environ.get(name))
        os.environ[name] = value
        self._env_set[name] = value

    def _restore_env(self, *names: str) -> None:
        for name in names or list(self._env_set):
            if name not in self._env_set:
                continue
            ours, before = self._env_set.pop(name), self._env_before.pop(name, None)
            if os.environ.get(name) == ours:  # changed since? then it is the user's, and stays
                if before is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = before

    # -- interpreter exit ----------------------------------------------------------------------------
    def _register_exit_hook(self) -> None:
        if self._exit_hook:
            return
        me = weakref.ref(self)

        def at_exit() -> None:
            alive = me()
            if alive is not None:
                alive.flush_at_exit()

        internals.register_before_thread_join(at_exit)
        self._exit_hook = True

    def flush_at_exit(self) -> None:
        """Send what is waiting within ``exit_seconds``; report (and save) what could not be sent."""
        adopted_stores = list(self._adopted.values())
        if not adopted_stores:
            return
        deadline = time.monotonic() + self.exit_seconds
        with self._lock:
            self._exiting = True
        threads = []
        for adopted in adopted_stores:
            adopted.sender.stop_by(deadline)
            thread = threading.Thread(
                target=self._drain_now, args=(adopted, False), name="amlflow-exit-flush", daemon=True
            )
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(max(0.0, deadline + 0.2 - time.monotonic()))
        unsent: dict[str, Batch] = {}
        with self._lock:
            lost = list(self._exit_unsent)
        for problem in lost:
            _extend(unsent, problem.run_id, problem.batch)
        for adopted in adopted_stores:
            for run_id, batch in adopted.ledger.waiting_since().items():
                _extend(unsent, run_id, batch)
        if unsent:
            self._report_unsent(unsent)

    def _report_unsent(self, unsent: dict[str, Batch]) -> None:
        count = sum(len(b) for b in unsent.values())
        runs = "; ".join(f"run {run_id}: {describe(batch)}" for run_id, batch in list(unsent.items())[:5])

        def save() -> Path:
            self.unsent_file = save_unsent(unsent)
            return self.unsent_file

        where = _saved_note(save)
        message = (
            f"jupyter_amlflow: {count} MLflow values were not sent before the process exited ({runs}). "
            f"{where[0].upper()}{where[1:]}."
        )
        stream = sys.__stderr__ or sys.stderr
        try:
            print(message, file=stream, flush=True)
        except (OSError, ValueError):  # stderr already closed: the file and the log remain
            pass
        log.warning("%s", message)


def _saved_note(save: Callable[[], Path]) -> str:
    """Save values (``save`` returns the file) and say where, and how to log them later."""
    try:
        path = save()
    except OSError as exc:
        return f"they could not be saved either ({exc.strerror or exc})"
    return (
        f"they are saved in {path}; after %amlflow connect, "
        f"jupyter_amlflow.async_logging.resend({str(path)!r}) logs them"
    )


def _extend(runs: dict[str, Batch], run_id: str, batch: Batch) -> None:
    into = runs.setdefault(run_id, Batch())
    into.metrics += batch.metrics
    into.params += batch.params
    into.tags += batch.tags


def _aside(fn: Callable[[], None], name: str) -> None:
    """Run ``fn`` in a thread of its own and wait for it; Ctrl-C stops the wait, not ``fn``."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except Exception:  # the thread's boundary: nothing above it could report this
            log.warning("jupyter_amlflow: flushing MLflow's queue failed", exc_info=True)
        finally:
            done.set()

    try:
        threading.Thread(target=run, name=name, daemon=True).start()
    except RuntimeError:  # no new threads at interpreter shutdown: do it here
        run()
        return
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        log.warning(
            "jupyter_amlflow: stopped waiting; the MLflow values still queued are being sent in the background "
            "(%%amlflow status counts them)"
        )
        raise


# -- values saved at exit --------------------------------------------------------------------------
def unsent_directory() -> Path:
    """Where values that could not be sent before exit are saved."""
    return Path.home() / ".jupyter_amlflow" / "unsent"


def save_unsent(runs: dict[str, Batch]) -> Path:
    """Write the values to a new owner-only file (``userfiles.create_private``); returns its path."""
    data = {
        "format": "jupyter_amlflow unsent values 1",
        "tracking_uri": _current_tracking_uri(),
        "runs": {
            run_id: {
                "metrics": [
                    {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step} for m in b.metrics
                ],
                "params": [{"key": p.key, "value": p.value} for p in b.params],
                "tags": [{"key": t.key, "value": t.value} for t in b.tags],
            }
            for run_id, b in runs.items()
        },
    }
    stem = f"unsent-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    return create_private(unsent_directory(), stem, json.dumps(data))


def _current_tracking_uri() -> str | None:
    try:
        import mlflow

        return mlflow.get_tracking_uri()
    except Exception:  # at exit anything may be half torn down; the values matter more
        return None


def resend(path: str | os.PathLike[str]) -> int:
    """Log values saved at exit (``~/.jupyter_amlflow/unsent/...``) to their runs; returns how many.

    Connect to the same workspace first (``%amlflow connect``): they go to the current tracking URI.
    """
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    recorded, current = data.get("tracking_uri"), mlflow.get_tracking_uri()
    if recorded and recorded != current:
        raise AmlflowError(
            f"The values in {path} belong to another workspace",
            f"they were logged to {recorded}, MLflow now logs to {current}",
            "Connect to that workspace first (%amlflow connect ...), then resend",
        )
    client = mlflow.MlflowClient()
    count = 0
    for run_id, values in data["runs"].items():
        batch = Batch(
            [Metric(m["key"], m["value"], m["timestamp"], m["step"]) for m in values.get("metrics", [])],
            [Param(p["key"], p["value"]) for p in values.get("params", [])],
            [RunTag(t["key"], t["value"]) for t in values.get("tags", [])],
        )
        client.log_batch(run_id, metrics=batch.metrics, params=batch.params, tags=batch.tags, synchronous=True)
        count += len(batch)
    return count
