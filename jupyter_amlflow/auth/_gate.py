"""The cancel gate: once the caller gives up on a sign-in, it sends nothing more and saves nothing.

``sign_in`` may run in a worker thread that its caller abandons (a timeout, a second click in the
panel). The caller sets a ``threading.Event``; the gate turns that into ``Cancelled`` at every
point where the sign-in would otherwise go on: before each method, in the device-code prompt, and
as azure-core's ``raw_request_hook`` / ``raw_response_hook`` on every credential built here.
"""

from __future__ import annotations

import threading

from ..deadline import Cancelled  # the one "the caller gave up" exception, shared with connect's worker

__all__ = ["Cancelled", "Gate"]


class Gate:
    """Stops an abandoned sign-in from sending requests or saving anything.

    Its ``check`` runs as azure-core's ``raw_request_hook`` / ``raw_response_hook`` on every
    credential built here, so once ``cancel`` is set no request leaves and no token response
    reaches MSAL's cache. After ``complete`` the sign-in belongs to the caller and the gate is open
    for good (a later cancel of the caller's other work must not break the credential).

    Args:
        cancel: The caller's event; None: only a ``KeyboardInterrupt`` (``interrupt``) cancels.
    """

    def __init__(self, cancel: threading.Event | None) -> None:
        self._cancel = cancel
        self._lock = threading.Lock()
        self._interrupted = False
        self._done = False

    def cancelled(self) -> bool:
        """Whether the sign-in was given up (and not completed before that)."""
        with self._lock:
            return self._wanted() and not self._done

    def check(self, *_: object) -> None:
        """Raise ``Cancelled`` if the sign-in was given up (azure-core passes the request or response)."""
        if self.cancelled():
            raise Cancelled

    def interrupt(self) -> None:
        """A ``KeyboardInterrupt`` reached the sign-in: cancel it."""
        with self._lock:
            self._interrupted = True

    def complete(self) -> None:
        """Hand the sign-in to the caller, unless it was given up first (then raise ``Cancelled``)."""
        with self._lock:
            if self._wanted():
                raise Cancelled
            self._done = True

    def _wanted(self) -> bool:
        return self._interrupted or (self._cancel is not None and self._cancel.is_set())
