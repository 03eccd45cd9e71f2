"""Every metric value on its way into the workspace's tracking store, seen as it is logged.

mlflow keeps one store per tracking URI (``compat.internals.cached_store``), and every way of logging
reaches that one object: ``mlflow.log_metric`` / ``log_metrics``, autolog (its queueing client
calls ``MlflowClient.log_batch``) and ``MlflowClient`` itself. The values enter it through three
methods:

* ``log_metric`` (a synchronous ``log_metric``: mlflow's ``RestStore`` sends it on its own);
* ``log_batch`` (a synchronous ``log_metrics`` / ``log_batch``, autolog);
* ``log_batch_async`` (``synchronous=False``, or every call with the opt-in: ``log_metric_async``
  calls it); while connected ``async_logging`` points it at mlflow's queue.

A ``StoreTap`` shadows those three on that one store instance (instance attributes, as
``async_logging`` does for the last) and tells its listener the run id and the metrics once the
store has taken them (a synchronous call returned, an asynchronous one was queued): no request is
added, nothing is polled. A store method that calls another of the three (``AbstractStore.log_metric``
calls ``log_batch``) reports its values once. ``remove`` puts back what was there.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("jupyter_amlflow.runs")

METHODS = ("log_metric", "log_batch", "log_batch_async")
Listener = Callable[[str, Sequence[Any]], None]
_ABSENT = object()


class StoreTap:
    """Calls ``listener(run_id, metrics)`` for the metrics every logging call hands ``store``.

    Args:
        store: mlflow's store for the connected tracking URI.
        listener: Called in the thread that logged; it must be quick and must not raise (an
            exception is logged and swallowed: a chart never breaks logging).
    """

    def __init__(self, store: Any, listener: Listener) -> None:
        self.store = store
        self.listener = listener
        self._inside = threading.local()
        self._previous: dict[str, Any] = {}
        self._wrappers: dict[str, Callable[..., Any]] = {}
        self._active = False

    def install(self) -> StoreTap:
        """Start watching (idempotent)."""
        if self._active:
            return self
        for name in METHODS:
            current = getattr(self.store, name)
            self._previous[name] = self.store.__dict__.get(name, _ABSENT)
            wrapper = self._wrap(name, current)
            self._wrappers[name] = wrapper
            setattr(self.store, name, wrapper)
        self._active = True
        return self

    def remove(self) -> None:
        """Stop watching; each method is what it was before ``install`` (unless replaced since)."""
        if not self._active:
            return
        self._active = False  # a wrapper someone else kept on top of ours only forwards from now on
        for name in METHODS:
            if self.store.__dict__.get(name) is self._wrappers[name]:
                previous = self._previous[name]
                if previous is _ABSENT:
                    del self.store.__dict__[name]
                else:
                    self.store.__dict__[name] = previous
        self._wrappers.clear()
        self._previous.clear()

    def __enter__(self) -> StoreTap:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def logging_call(*args: Any, **kwargs: Any) -> Any:
            if not self._active or getattr(self._inside, "busy", False):
                return original(*args, **kwargs)
            self._inside.busy = True
            try:
                result = original(*args, **kwargs)
            finally:
                self._inside.busy = False
            self._tell(name, args, kwargs)
            return result

        return logging_call

    def _tell(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            run_id = kwargs["run_id"] if "run_id" in kwargs else args[0]
            if name == "log_metric":
                metric = kwargs["metric"] if "metric" in kwargs else args[1]
                metrics: Sequence[Any] = [metric]
            else:
                metrics = kwargs["metrics"] if "metrics" in kwargs else (args[1] if len(args) > 1 else ())
            if metrics:
                self.listener(str(run_id), list(metrics))
        except Exception:  # the boundary between logging and a chart: logging must go on
            log.debug("jupyter_amlflow: the live chart could not take logged values", exc_info=True)
