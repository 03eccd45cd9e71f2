"""Network work under a deadline, in a daemon thread, that the caller may give up on.

A notebook must stay responsive while connect signs in or waits for Azure: the work runs in a
daemon thread (a stalled call never keeps the kernel from exiting), and the calling thread waits
for it in short slices, so Ctrl-C and the step's deadline both end the wait at once. Giving up
cancels the worker's ``Watch``: its next ``begin`` (and the sign-in gate, which watches the same
event) raises ``Cancelled``, so an abandoned worker stops before it can change anything shared.

``Cancelled`` is the one exception for "the caller gave up on this work", whoever notices it.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .errors import ConnectTimeout

if TYPE_CHECKING:
    from .auth import DeviceCodePrompt, DeviceCodeRenderer

T = TypeVar("T")

__all__ = ["Cancelled", "RendererWithDeadline", "Watch", "call", "in_daemon_thread", "wait"]


class Cancelled(Exception):
    """The caller gave up on this work: raised inside it so it stops before touching shared state."""


class Watch:
    """Shared by a worker and the thread waiting for it: the current step, its deadline, cancellation.

    Args:
        timeout: Seconds each step may take unless ``begin`` says otherwise.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        #: Held while the worker changes shared state: ``cancel`` waits for such a change to end.
        self.lock = threading.Lock()
        self.step = "starting"
        self.deadline = time.monotonic() + timeout
        self.cancelled = False
        #: Set on cancel: tells a sign-in in progress to stop polling.
        self.event = threading.Event()

    def begin(self, step: str, seconds: float | None = None) -> None:
        """Start a step with its own deadline (``timeout`` unless given).

        Raises:
            Cancelled: The caller gave up.
        """
        with self.lock:
            if self.cancelled:
                raise Cancelled
            self.step = step
            self.deadline = time.monotonic() + (self.timeout if seconds is None else seconds)

    def check(self) -> None:
        """Raise ``Cancelled`` if the caller gave up (call with ``lock`` held before a shared change)."""
        if self.cancelled:
            raise Cancelled

    def expired(self) -> bool:
        """Whether the current step is past its deadline."""
        with self.lock:
            return time.monotonic() > self.deadline

    def cancel(self) -> str:
        """Cancel and return the step that was running. Waits for a shared-state change in flight."""
        with self.lock:
            self.cancelled = True
            self.event.set()
            return self.step


def in_daemon_thread(fn: Callable[[], T], name: str) -> concurrent.futures.Future[T]:
    """Run ``fn`` in a daemon thread: a stalled call must never keep the kernel from exiting."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def wait(future: concurrent.futures.Future[T], watch: Watch) -> T:
    """Wait for the worker; enforce the step deadline; stay responsive to Ctrl-C.

    Raises:
        ConnectTimeout: The current step passed its deadline (the worker is cancelled first).
    """
    while True:
        try:
            return future.result(timeout=0.05)
        except concurrent.futures.TimeoutError:
            if watch.expired():
                step = watch.cancel()
                raise ConnectTimeout(
                    f"{step} did not answer within {watch.timeout:g} s",
                    "the service is slow or unreachable from this kernel; nothing was changed",
                    "Try again, or allow more time: %amlflow connect ... --timeout 120 "
                    "(%config AmlflowMagics.timeout = 120)",
                    endpoint=step,
                ) from None


def call(step: str, fn: Callable[[Watch], T], timeout: float) -> T:
    """Run ``fn(watch)`` as one step under ``timeout``; on any way out the worker is cancelled."""
    watch = Watch(timeout)
    watch.begin(step)
    future = in_daemon_thread(lambda: fn(watch), "amlflow-call")
    try:
        return wait(future, watch)
    except BaseException:
        watch.cancel()
        raise


class RendererWithDeadline:
    """Passes the device-code prompt on and gives the person until the code expires.

    Args:
        inner: Shows the prompt (None: nobody does).
        watch: The connect's watch: the wait for the person becomes its current step.
        limit: Most seconds to wait for the person (``device_code_timeout``).
    """

    def __init__(self, inner: DeviceCodeRenderer | None, watch: Watch, limit: float) -> None:
        self.inner = inner
        self.watch = watch
        self.limit = limit

    def show(self, prompt: DeviceCodePrompt) -> None:
        remaining = prompt.expires_at.timestamp() - time.time()
        self.watch.begin("Waiting for you to sign in with the device code", min(self.limit, max(remaining, 1.0)) + 5)
        if self.inner is not None:
            self.inner.show(prompt)

    def finish(self, outcome: str, detail: str = "") -> None:
        if self.inner is not None:
            self.inner.finish(outcome, detail)
