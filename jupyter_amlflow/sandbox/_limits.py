"""The limits of one batch of logged values, as Azure ML is assumed to apply them.

``runs/log-batch`` (MLflow's own API, which Azure ML serves synchronously) and ``log-batch-async``
are refused with 400 when a batch holds more than 1,000 metrics, 100 params, 100 tags or 1,000
values in all. These are mlflow's limits (``mlflow.utils.validation._validate_batch_log_limits``,
also applied by ``MlflowClient.log_batch`` before it sends, and listed in MLflow's REST reference);
**that Azure ML applies the same ones is assumed**, and so is the shape of its refusal, mlflow's
``{"error_code": "INVALID_PARAMETER_VALUE", "message": ...}``. ``over_limits`` decides it for the
fidelity lists (``fidelity``), which refuse such a batch with ``LIMITS_MESSAGE``, mlflow's wording
without the counts; in ``open-source`` mode it is forwarded, and ``check_limits`` answers an
over-limit ``log-batch-async`` (``_batches``) with mlflow's own message, counts included, as the
backend answers an over-limit ``log-batch``.
"""

from __future__ import annotations

import json
from typing import Any

from ._http import HttpError

__all__ = ["LIMITS", "LIMITS_MESSAGE", "MAX_VALUES", "check_limits", "over_limits"]

#: mlflow's limits per batch (mlflow.utils.validation): metrics, params, tags, all values.
LIMITS = (("metrics", 1000), ("params", 100), ("tags", 100))
MAX_VALUES = 1000

LIMITS_MESSAGE = (
    "A batch logging request can contain at most 1000 metrics, 100 params and 100 tags, 1000 in all. "
    "Please split up metrics across multiple requests and try again."
)


def over_limits(params: Any) -> bool:
    """Whether a log-batch body (parsed) holds more than mlflow's limits allow."""
    try:
        check_limits(params)
    except HttpError:
        return True
    return False


def check_limits(payload: Any) -> None:
    """Refuse a log-batch body over mlflow's limits, as mlflow words it (raises ``HttpError`` 400).

    ``payload`` is the parsed body or the raw one; a body that is not a JSON object is left to the
    backend, which answers it as mlflow does.
    """
    if isinstance(payload, bytes | str):
        try:
            payload = json.loads(payload or b"{}")
        except ValueError:
            return
    if not isinstance(payload, dict):
        return
    counts = {name: len(payload.get(name) or []) for name, _ in LIMITS}
    for name, limit in LIMITS:
        if counts[name] > limit:
            raise _too_many(name, limit, counts[name])
    total = sum(counts.values())
    if total > MAX_VALUES:
        raise _too_many("metrics, params, and tags", MAX_VALUES, total)


def _too_many(what: str, limit: int, got: int) -> HttpError:
    return HttpError(
        400,
        {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": f"A batch logging request can contain at most {limit} {what}. Got {got} {what}. "
            "Please split up metrics across multiple requests and try again.",
        },
    )
