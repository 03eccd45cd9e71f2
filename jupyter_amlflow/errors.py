"""Errors a person can act on: what failed, why, and what to type next.

Every failure jupyter_amlflow reports to a user is an ``AmlflowError``. Its text is short, names
the step that failed, and ends with the next thing to try; it never contains a token or secret.
The magics show it as a one-line ``UsageError`` (no traceback); Python callers can catch the
subclasses.
"""

from __future__ import annotations

import html
from collections.abc import Sequence


class AmlflowError(Exception):
    """A failure with a cause and a next step.

    Args:
        what: What failed, e.g. ``"Could not read workspace 'w1'"``.
        why: Why, in the user's terms (``""`` when unknown).
        fix: What to do next, ideally a command to type.
        endpoint: The service endpoint involved, when the failure was a call to one.
    """

    def __init__(self, what: str, why: str = "", fix: str = "", *, endpoint: str | None = None) -> None:
        self.what = what
        self.why = why
        self.fix = fix
        self.endpoint = endpoint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The whole message, one sentence per part."""
        parts = [_sentence(self.what)]
        if self.why:
            parts.append(_sentence(self.why))
        if self.fix:
            parts.append(_sentence(self.fix))
        return " ".join(parts)

    def __str__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        fix = f"<div><b>Next:</b> {html.escape(self.fix)}</div>" if self.fix else ""
        why = f"<div>{html.escape(self.why)}</div>" if self.why else ""
        return (
            '<div class="amlflow-error" style="border-left:4px solid #c0392b;padding:4px 8px">'
            f"<b>{html.escape(self.what)}</b>{why}{fix}</div>"
        )


def _sentence(text: str) -> str:
    text = text.strip()
    first = text.split(" ", 1)[0]
    if first.isalpha() and first.islower():  # leave names like azureml-mlflow or %amlflow as written
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!", ":")) else text + "."


class WorkspaceReferenceError(AmlflowError):
    """A workspace reference (ARM id, tracking URI, config.json, names) is malformed or missing."""


class CloudError(AmlflowError):
    """An unknown cloud name or an unusable cloud metadata document."""


class SignInError(AmlflowError):
    """Signing in failed; ``attempts`` lists each method tried and what happened."""

    def __init__(self, what: str, why: str = "", fix: str = "", *, attempts: Sequence[object] | None = None) -> None:
        self.attempts = list(attempts or [])
        super().__init__(what, why, fix)


class PermissionDenied(AmlflowError):
    """Azure answered 403; ``action`` is the permission it named, when it named one."""

    def __init__(
        self, what: str, why: str = "", fix: str = "", *, action: str | None = None, endpoint: str | None = None
    ) -> None:
        self.action = action
        super().__init__(what, why, fix, endpoint=endpoint)


class NotFound(AmlflowError):
    """The workspace, resource group or subscription does not exist (or is not visible)."""


class ServiceError(AmlflowError):
    """A call to Azure failed for a reason other than the above (network, 5xx, timeout)."""


class ConnectTimeout(ServiceError):
    """A step did not finish within the configured timeout."""


class AlreadyConfigured(AmlflowError):
    """The platform (Azure ML compute, a job) already set the tracking URI; not replaced silently."""


class ActiveRunError(AmlflowError):
    """An MLflow run is active; connecting or disconnecting now would orphan it."""


class NotConnected(AmlflowError):
    """A command needs a connection and there is none."""


class IncompatibleVersions(AmlflowError):
    """The installed mlflow and azureml-mlflow are a pair known not to work together."""
