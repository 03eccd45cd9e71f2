"""The panel's background jobs: the newest job of each kind wins, and nothing lands after ``close``.

Sign-in (which may wait minutes for a device code), workspace discovery, the experiment list and
connect run in daemon threads, so the kernel keeps answering cells. Each job gets a ticket; only
the newest ticket of its kind may change the panel, so a discovery started for an earlier sign-in
cannot overwrite a newer one, and after ``close()`` no ticket is current.

Every change to the panel happens under one lock (``Jobs.lock``): job results (worker threads)
and widget callbacks (the kernel's thread, through ``Jobs.call``) alike, and an exception in
either goes to ``report`` instead of being lost (JupyterLab swallows callback exceptions).
ipykernel sends comm messages from any thread. Nothing here knows about widgets.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A job's kind and number: ``("listing", 7)``.
Ticket = tuple[str, int]


class Jobs:
    """Runs background jobs and applies their results if they are still the newest of their kind.

    Args:
        report: Shows an error (called under ``lock``); what a job, a result or a callback raised.
        name: The prefix of the worker threads' names.
    """

    def __init__(self, report: Callable[[BaseException], None], *, name: str = "amlflow-panel") -> None:
        self.lock = threading.RLock()
        self._report = report
        self._name = name
        self._numbers = itertools.count(1)
        self._current: dict[str, int] = {}
        self._closed = False

    def start(
        self,
        kind: str,
        work: Callable[[Ticket], T],
        done: Callable[[T], None],
        failed: Callable[[], bool | None] | None = None,
    ) -> Ticket:
        """Run ``work(ticket)`` in a daemon thread; then, if the ticket is still current, ``done(result)``.

        The ticket replaces any earlier one of ``kind`` (that job's result will be ignored). On an
        error ``failed`` runs first, if given; when it returns True the error is only logged,
        otherwise it goes to ``report``. Either way the kind is no longer ``running``.
        """
        with self.lock:
            ticket = (kind, next(self._numbers))
            self._current[kind] = ticket[1]

        def run() -> None:
            try:
                result = work(ticket)
            except Exception as exc:  # boundary: a worker thread's failure goes to the status area
                error = exc
                self.apply(ticket, lambda: self._fail(ticket, error, failed))
                return
            self.apply(ticket, lambda: self._finish(ticket, result, done))

        threading.Thread(target=run, name=f"{self._name}-{kind}", daemon=True).start()
        return ticket

    def apply(self, ticket: Ticket, fn: Callable[[], None]) -> bool:
        """Run ``fn`` under the lock if ``ticket`` is still the newest of its kind; whether it ran.

        For a job's partial results (a page of workspaces, a device code) from its own thread.
        """
        with self.lock:
            if not self.current(ticket):
                return False
            try:
                fn()
            except Exception as exc:  # boundary: same as a callback
                self._report(exc)
            return True

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now, under the lock, unless closed; what it raises goes to ``report``."""
        with self.lock:
            if self._closed:
                return
            try:
                fn()
            except Exception as exc:  # boundary: JupyterLab swallows callback exceptions
                self._report(exc)

    def current(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` is the newest of its kind (never after ``close``)."""
        return not self._closed and self._current.get(ticket[0]) == ticket[1]

    def running(self, kind: str) -> bool:
        """Whether a job of ``kind`` has a current ticket (started, not finished, not dropped)."""
        return not self._closed and kind in self._current

    def drop(self, kind: str) -> None:
        """Forget the job of ``kind`` in progress: its results will be ignored."""
        self._current.pop(kind, None)

    def close(self) -> bool:
        """Ignore every result still to come, and every later call; False if closed already."""
        with self.lock:
            if self._closed:
                return False
            self._closed = True
            return True

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def _finish(self, ticket: Ticket, result: T, done: Callable[[T], None]) -> None:
        self.drop(ticket[0])
        done(result)

    def _fail(self, ticket: Ticket, exc: Exception, failed: Callable[[], bool | None] | None) -> None:
        self.drop(ticket[0])
        if failed is not None and failed():
            log.info("Panel (%s): %s", ticket[0], exc)
            return
        self._report(exc)
