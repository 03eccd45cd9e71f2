"""The panel's background runner on its own, without widgets: the newest job of each kind wins.

``Jobs`` is driven only through its public calls (``start``, ``apply``, ``call``, ``drop``,
``close``). Jobs block on events the test controls, never on sleeps; the generous waits are only
reached when something is broken.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from jupyter_amlflow.errors import AmlflowError
from jupyter_amlflow.panel.jobs import Jobs, Ticket

WAIT = 30.0


class Reports:
    """What ``Jobs`` reported, and an event set on each report."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.arrived = threading.Event()

    def __call__(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.arrived.set()


class Blocked:
    """A job's work that waits for ``release()``; ``join()`` waits until its thread has ended."""

    def __init__(self, result: Any = "result") -> None:
        self.result = result
        self._gate = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = threading.Event()

    def __call__(self, ticket: Ticket) -> Any:
        self._thread = threading.current_thread()
        self.started.set()
        assert self._gate.wait(WAIT), "never released"
        return self.result

    def release(self) -> None:
        self._gate.set()

    def join(self) -> None:
        assert self.started.wait(WAIT), "the job never started"
        assert self._thread is not None
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


def collect() -> tuple[list[Any], threading.Event, Callable[[Any], None]]:
    """A ``done`` callback that records results, and an event set when one arrives."""
    results: list[Any] = []
    arrived = threading.Event()

    def done(result: Any) -> None:
        results.append(result)
        arrived.set()

    return results, arrived, done


def start_blocked(jobs: Jobs, kind: str) -> tuple[Ticket, Blocked, list[Any]]:
    """Start a job of ``kind`` whose work waits for ``release()``; its ticket, work and results."""
    work = Blocked()
    results, _, done = collect()
    ticket = jobs.start(kind, work, done)
    assert work.started.wait(WAIT)
    return ticket, work, results


def test_a_result_reaches_done_from_a_daemon_thread() -> None:
    reports = Reports()
    jobs = Jobs(reports, name="test-jobs")
    results, arrived, done = collect()
    ticket = jobs.start("listing", lambda t: (t, threading.current_thread()), done)
    assert arrived.wait(WAIT)
    [(seen, thread)] = results
    assert seen == ticket and ticket[0] == "listing"
    assert thread is not threading.current_thread() and thread.daemon and thread.name == "test-jobs-listing"
    assert not jobs.running("listing") and not jobs.current(ticket)  # finished: no longer current
    assert reports.errors == []


def test_start_returns_while_the_work_runs() -> None:
    jobs = Jobs(Reports())
    work = Blocked("signed in")
    results, arrived, done = collect()
    ticket = jobs.start("signin", work, done)
    assert work.started.wait(WAIT)
    assert jobs.running("signin") and jobs.current(ticket) and results == []
    work.release()
    assert arrived.wait(WAIT) and results == ["signed in"]


def test_only_the_newest_job_of_a_kind_lands() -> None:
    reports = Reports()
    jobs = Jobs(reports)
    older = Blocked("older")
    results, arrived, done = collect()
    first = jobs.start("listing", older, done)
    assert older.started.wait(WAIT)
    second = jobs.start("listing", lambda t: "newer", done)
    assert arrived.wait(WAIT) and results == ["newer"]
    assert not jobs.current(first)
    older.release()
    older.join()  # the older job has finished: its result was dropped
    assert results == ["newer"] and reports.errors == []
    assert first != second and first[0] == second[0]


def test_kinds_do_not_replace_each_other() -> None:
    jobs = Jobs(Reports())
    listing = Blocked("workspaces")
    listed, listing_done, on_listing = collect()
    names, names_done, on_names = collect()
    jobs.start("listing", listing, on_listing)
    jobs.start("experiments", lambda t: ["a", "b"], on_names)
    assert names_done.wait(WAIT) and names == [["a", "b"]]
    assert jobs.running("listing")
    listing.release()
    assert listing_done.wait(WAIT) and listed == ["workspaces"]


def test_partial_results_apply_only_while_the_ticket_is_current() -> None:
    jobs = Jobs(Reports())
    pages: list[int] = []
    applied: list[bool] = []
    gate, paged, tried_again = threading.Event(), threading.Event(), threading.Event()

    def work(ticket: Ticket) -> str:
        applied.append(jobs.apply(ticket, lambda: pages.append(1)))
        paged.set()
        assert gate.wait(WAIT)
        applied.append(jobs.apply(ticket, lambda: pages.append(2)))  # replaced by now
        tried_again.set()
        return "done"

    results, arrived, done = collect()
    jobs.start("listing", work, done)
    assert paged.wait(WAIT)
    jobs.start("listing", lambda t: "newer", done)
    assert arrived.wait(WAIT) and results == ["newer"]
    gate.set()
    assert tried_again.wait(WAIT)
    assert applied == [True, False] and pages == [1]


def test_an_error_is_reported_and_the_kind_stops_running() -> None:
    reports = Reports()
    jobs = Jobs(reports)
    error = AmlflowError("Could not connect", "the workspace is gone", "Pick another one")
    results, _, done = collect()

    def fail(ticket: Ticket) -> None:
        raise error

    jobs.start("connect", fail, done)
    assert reports.arrived.wait(WAIT)
    assert reports.errors == [error] and results == []
    assert not jobs.running("connect")


def test_failed_runs_first_and_may_keep_the_error_out_of_report() -> None:
    reports = Reports()
    jobs = Jobs(reports)
    order: list[str] = []
    quiet_seen = threading.Event()

    def fail(ticket: Ticket) -> None:
        raise ValueError(ticket[0])

    def quiet() -> bool:
        order.append("quiet")
        quiet_seen.set()
        return True  # handled: only logged

    def loud() -> None:
        order.append(f"loud, {len(reports.errors)} reported before")

    jobs.start("experiments", fail, lambda r: None, quiet)
    assert quiet_seen.wait(WAIT)
    jobs.start("cloud", fail, lambda r: None, loud)
    assert reports.arrived.wait(WAIT)
    assert order == ["quiet", "loud, 0 reported before"]
    assert [str(e) for e in reports.errors] == ["cloud"]


def test_what_done_raises_is_reported_not_lost() -> None:
    reports = Reports()
    jobs = Jobs(reports)

    def done(result: str) -> None:
        raise KeyError(result)

    jobs.start("listing", lambda t: "missing", done)
    assert reports.arrived.wait(WAIT)
    [error] = reports.errors
    assert isinstance(error, KeyError) and error.args == ("missing",)


def test_call_runs_now_under_the_lock_and_reports_what_it_raises() -> None:
    reports = Reports()
    jobs = Jobs(reports)
    others_could_lock: list[bool] = []

    def callback() -> None:
        probe = threading.Thread(target=lambda: others_could_lock.append(jobs.lock.acquire(blocking=False)))
        probe.start()
        probe.join(WAIT)

    def broken() -> None:
        raise KeyError("missing")

    jobs.call(callback)
    assert others_could_lock == [False]  # another thread (a job's result) waits while a callback runs
    jobs.call(broken)  # does not raise here: JupyterLab would swallow it
    [error] = reports.errors
    assert isinstance(error, KeyError)


def test_drop_makes_a_running_job_stale() -> None:
    reports = Reports()
    jobs = Jobs(reports)
    ticket, work, results = start_blocked(jobs, "listing")
    jobs.drop("listing")
    assert not jobs.running("listing") and not jobs.current(ticket)
    work.release()
    work.join()
    assert results == [] and reports.errors == []


def test_after_close_no_result_lands_and_no_callback_runs() -> None:
    reports = Reports()
    jobs = Jobs(reports)
    ticket, work, results = start_blocked(jobs, "signin")
    assert jobs.close() is True and jobs.closed
    assert jobs.close() is False  # twice is fine
    assert not jobs.running("signin") and not jobs.current(ticket)
    work.release()
    work.join()
    ran: list[str] = []
    jobs.call(lambda: ran.append("callback"))
    assert not jobs.apply(ticket, lambda: ran.append("page"))
    assert results == [] and ran == [] and reports.errors == []
