"""What the Azure ML MLflow API serves, what it refuses, and what nobody here has checked.

The Azure ML MLflow endpoint is not an open-source ``mlflow server``: it refuses calls a plain
server accepts (logged models, traces, some queries). The sandbox forwards MLflow calls to real
``mlflow server`` processes, so without these lists it would say "yes" where Azure says "no", and
tests would pass for code that fails for every user on Azure.

Every MLflow call the sandbox receives is classified by ``classify`` into one of three verdicts,
and the request log (``RequestRecord.fidelity``) records which:

* ``served``: Azure ML is known to serve it (the azureml-mlflow plugin sends it, or Microsoft's
  support matrices list it). Forwarded to the backend.
* ``refused``: Azure ML is known to refuse it. Answered the way Azure answers; where the exact body
  is not public, the shape is assumed (an MLflow ``{"error_code", "message"}`` body) and the
  entry says so.
* ``unverified``: no evidence either way. Forwarded, and marked so, so nobody mistakes a green
  test for proof that Azure serves it.

``MODES``: ``"azure"`` (the default) answers as above; ``"open-source"`` forwards refused calls too
(recorded as ``unverified``), for code that wants a future Azure that serves more. The mlflow
workspaces API is refused in every mode: it is the sandbox's own plumbing, and reaching it would
cross from one sandbox workspace into the others.

Each entry cites its evidence; the README's sandbox table is generated from ``ENTRIES`` (see
``table_rows``). Paths are matched after ``decode_path``: decoded and normalised, exactly as the
backend will see them. ``classify(method, decode_path(raw), parameters(...))`` is how the MLflow
front (``_mlflow``) decides a call; tests and people may ask it the same question.

Why one module of over 500 lines: most of it is the table ``ENTRIES``, each entry citing its
evidence, with the few predicates that decide its query-dependent rows. Kept with the rule that
reads it (``classify``) and the path form that rule is defined on (``decode_path``), the table
can be checked against its use in one reading; split, every row would point to another file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote

from ._limits import LIMITS_MESSAGE, over_limits

__all__ = [
    "ENTRIES",
    "LOGGED_MODEL_ARTIFACTS",
    "MODES",
    "OTHER_ROUTES",
    "OTLP_TRACES",
    "UNVERIFIED",
    "Entry",
    "Refusal",
    "Verdict",
    "classify",
    "decode_path",
    "encode_path",
    "parameters",
    "table_rows",
]

Verdict = Literal["served", "refused", "unverified"]
_NOT_SUPPORTED = "INVALID_PARAMETER_VALUE"
Mode = Literal["azure", "open-source"]
MODES: tuple[Mode, ...] = ("azure", "open-source")

# Evidence, cited by the entries below.
PLUGIN = (
    "azureml-mlflow 1.62.0.post6 (`AzureMLRestStore` is mlflow's `RestStore`: the plugin sends these "
    "calls on every tracking session)"
)
LEARN_QUERY = (
    'Microsoft Learn, "Query & compare experiments and runs with MLflow", support matrix'
)
PLUGIN_REGISTRY = "azureml-mlflow 1.62.0.post6 (its model registry store is mlflow's `RestStore` too)"
LEARN_REGISTRY = 'Microsoft Learn, "Manage models registries in Azure Machine Learning with MLflow", support matrix'
LOGGED_MODELS = (
    "Azure/azure-sdk-for-python#44896 (2026-01: `API request to endpoint /api/2.0/mlflow/logged-models failed "
    "with error code 404 != 200. Response body: ''`, azureml-mlflow 1.60-1.61, mlflow 3.5-3.8); "
    "Azure/azureml-examples #3846, #3868, #3885, #3891, #3902 pin mlflow < 2.19 or replace `log_model` by "
    "`save_model` + `log_artifacts` + `register_model` from `runs:/`"
)
TRACES = (
    "Azure/azure-sdk-for-python#40261 (2025-03, open: `/api/2.0/mlflow/traces failed with error code 403`; "
    'maintainer: "mlflow tracing is not supported in AML yet"); body shape assumed'
)
ASSUMED = "message assumed"
REGISTRY_SEARCH = (
    "Azure/azure-sdk-for-python#42155 (2025-07, azureml-mlflow 1.60: 400 `INVALID_PARAMETER_VALUE`, "
    "`Currently unsupported filter string format (we currently do not support OR). Provided filter string: "
    "tag.`mlflow.prompt.is_prompt` != 'true'`: the filter mlflow 3 adds to every registered-model search)"
)
BATCH_LIMITS = (
    "mlflow 3.15 `mlflow.utils.validation._validate_batch_log_limits` and MLflow's REST reference (\"Log Batch\", "
    "request limits); Azure ML's own limits are not public: assumed the same (a third-party tracker, gist "
    "nbroad1881 2022: \"Azure ML cannot log more than 100 params\")"
)
ASYNC_BATCHES = (
    "azureml-mlflow 1.62.0.post6 `AzureMLRestStore.log_batch_async` (\"params and tags are persisted in sync "
    "fashion always\"; metrics polled with `get-run-data-status` until complete); Azure/azure-sdk-for-python#45403"
)
SANDBOX_ONLY = (
    "not an Azure API: mlflow's own multi-workspace admin API, which the sandbox uses to keep its "
    "workspaces apart; reaching it would cross from one workspace into the others"
)


@dataclass(frozen=True)
class Refusal:
    """How the sandbox answers a refused call."""

    status: int
    body: bytes = b""
    content_type: str | None = None

    @classmethod
    def mlflow(cls, status: int, code: str, message: str) -> Refusal:
        """An MLflow-shaped error body."""
        return cls(status, json.dumps({"error_code": code, "message": message}).encode(), "application/json")

    @classmethod
    def user_error(cls, message: str) -> Refusal:
        """Azure ML's MLflow 400 for a query it does not support (shape of Azure/azure-sdk-for-python#42155)."""
        body = {
            "Error": {"Code": "UserError", "Severity": None, "Message": message, "Details": []},
            "statusCode": 400,
            "error_code": _NOT_SUPPORTED,
        }
        return cls(400, json.dumps(body).encode(), "application/json")

    @classmethod
    def azure(cls, status: int, code: str, message: str) -> Refusal:
        """An Azure-shaped error body."""
        return cls(status, json.dumps({"error": {"code": code, "message": message}}).encode(), "application/json")


Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Entry:
    """One row of the lists: which calls, what Azure answers, how that is known.

    Args:
        methods: HTTP methods (``"*"`` for any).
        pattern: Regex matched against the whole decoded path after ``/api/`` (e.g.
            ``2.0/mlflow/runs/search``), case-sensitive like mlflow's routes.
        call: The call as a person reads it, for the README table.
        verdict: ``served``, ``refused`` or ``unverified``.
        answer: What Azure answers, in words.
        evidence: Where that is known from.
        refusal: The answer the sandbox gives when it refuses the call.
        when: For a call refused only for some queries: whether these parameters are refused.
        always: Refused in every mode (``open-source`` included).
    """

    methods: tuple[str, ...]
    pattern: str
    call: str
    verdict: Verdict
    answer: str
    evidence: str
    refusal: Refusal | None = None
    when: Predicate | None = None
    always: bool = False

    def matches(self, method: str, api: str, params: Mapping[str, Any]) -> bool:
        """Whether this entry covers a call."""
        if "*" not in self.methods and method not in self.methods:
            return False
        if not re.fullmatch(self.pattern, api):
            return False
        return self.when is None or self.when(params)


# -- query predicates (mlflow's own parsers, imported only when a query needs checking) -------------
def _order_by_data(params: Mapping[str, Any]) -> bool:
    """``order_by`` names a metric, param or tag (Azure orders by attributes only)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    for clause in _list(params.get("order_by")):
        try:
            kind, _, _ = SearchUtils.parse_order_by_for_search_runs(str(clause))
        except MlflowException:
            continue  # malformed: mlflow's own answer (400) is the right one
        if kind in ("metric", "parameter", "tag"):
            return True
    return False


def _has_or(text: str) -> bool:
    import sqlparse
    from sqlparse.exceptions import SQLParseError
    from sqlparse.tokens import Keyword

    try:
        tokens = sqlparse.parse(text)[0].flatten()
        return any(t.ttype is Keyword and t.value.upper() == "OR" for t in tokens)
    except SQLParseError:
        return False  # too deep for sqlparse: malformed, and mlflow's own answer (400) is the right one


def _filter_refused(params: Mapping[str, Any]) -> bool:
    """``OR``, ``!=`` on a tag, or a backquoted (escaped) metric name in a runs filter."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    text = str(params.get("filter") or "")
    if not text.strip():
        return False
    if _has_or(text):
        return True
    if re.search(r"\bmetrics?\s*\.\s*[`\"]", text, re.IGNORECASE):
        return True
    try:
        clauses = SearchUtils.parse_search_filter(text)
    except MlflowException:
        return False
    return any(c.get("type") == "tag" and c.get("comparator") == "!=" for c in clauses)


def _runs_query_refused(params: Mapping[str, Any]) -> bool:
    return _order_by_data(params) or _filter_refused(params)


def _registered_models_query_refused(params: Mapping[str, Any]) -> bool:
    """``LIKE``/``ILIKE`` or a tag in a registered-models filter."""
    text = str(params.get("filter") or "")
    return bool(re.search(r"\bI?LIKE\b", text, re.IGNORECASE) or re.search(r"\btags?\s*\.", text, re.IGNORECASE))


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


# -- the lists ---------------------------------------------------------------------------------------
_V = r"[23]\.0"
ENTRIES: tuple[Entry, ...] = (
    # Refused in every mode.
    Entry(
        ("*",),
        # Any case: mlflow's routes are case-sensitive today, but this one must never be reached.
        rf"(?i){_V}/mlflow/workspaces(?:/.*)?",
        "`/api/{2.0,3.0}/mlflow/workspaces...`",
        "refused",
        "not an Azure ML API (the sandbox answers 404 `ENDPOINT_NOT_FOUND`, in every mode)",
        SANDBOX_ONLY,
        Refusal.mlflow(404, "ENDPOINT_NOT_FOUND", "The workspace API is not served here."),
        always=True,
    ),
    # Refused on Azure.
    Entry(
        ("*",),
        rf"{_V}/mlflow/logged-models(?:/.*)?",
        "`/api/{2.0,3.0}/mlflow/logged-models...` (MLflow >= 2.19 `log_model`, autolog models, `models:/m-...`)",
        "refused",
        "404 with an empty body",
        LOGGED_MODELS,
        Refusal(404),
    ),
    Entry(
        ("*",),
        rf"{_V}/mlflow/traces(?:/.*)?",
        "`/api/{2.0,3.0}/mlflow/traces...` (MLflow tracing, GenAI autolog)",
        "refused",
        "403",
        TRACES,
        Refusal.azure(403, "Forbidden", "MLflow tracing is not supported in Azure Machine Learning."),
    ),
    Entry(
        ("POST",),
        r"2\.0/mlflow/runs/search",
        "`POST /api/2.0/mlflow/runs/search` ordered by a metric, param or tag; filtered with `OR`, `!=` on a tag, "
        "or an escaped metric name",
        "refused",
        f"not supported (400 `{_NOT_SUPPORTED}` `UserError`, as #42155; {ASSUMED})",
        LEARN_QUERY,
        Refusal.user_error(
            "Currently unsupported: Azure Machine Learning does not support ordering runs by metrics, params or "
            "tags, OR in filters, != on tags, or escaped metric names."
        ),
        when=_runs_query_refused,
    ),
    Entry(
        ("POST",),
        r"2\.0/(?:preview/)?mlflow/runs/log-batch(?:-async)?",
        "`POST /api/2.0/mlflow/runs/log-batch` (and Azure's `log-batch-async`) with more than 1,000 metrics, "
        "100 params, 100 tags or 1,000 values",
        "refused",
        f"400 `{_NOT_SUPPORTED}` (mlflow's limits and wording; assumed for Azure)",
        BATCH_LIMITS,
        Refusal.mlflow(400, _NOT_SUPPORTED, LIMITS_MESSAGE),
        when=over_limits,
    ),
    Entry(
        ("POST",),
        r"2\.0/mlflow/experiments/update",
        "`POST /api/2.0/mlflow/experiments/update` (renaming an experiment)",
        "refused",
        f"not supported (400 `{_NOT_SUPPORTED}` `UserError`; {ASSUMED})",
        LEARN_QUERY,
        Refusal.user_error("Currently unsupported: Azure Machine Learning does not support renaming experiments."),
    ),
    Entry(
        ("POST",),
        r"2\.0/mlflow/registered-models/rename",
        "`POST /api/2.0/mlflow/registered-models/rename`",
        "refused",
        f"not supported: registered models are immutable (400 `{_NOT_SUPPORTED}` `UserError`; {ASSUMED})",
        LEARN_REGISTRY,
        Refusal.user_error(
            "Currently unsupported: Azure Machine Learning does not support renaming registered models."
        ),
    ),
    Entry(
        ("DELETE",),
        r"2\.0/mlflow/registered-models/delete",
        "`DELETE /api/2.0/mlflow/registered-models/delete` (the model container; versions can be deleted)",
        "refused",
        f"not supported (400 `{_NOT_SUPPORTED}` `UserError`; {ASSUMED})",
        LEARN_REGISTRY,
        Refusal.user_error(
            "Currently unsupported: Azure Machine Learning does not support deleting a registered model container."
        ),
    ),
    Entry(
        ("GET", "POST"),
        r"2\.0/mlflow/registered-models/search",
        "`/api/2.0/mlflow/registered-models/search` with `LIKE`/`ILIKE` or a tag in the filter (mlflow 3 adds "
        "a tag to every search: `mlflow.search_registered_models` fails on Azure)",
        "refused",
        f"400 `{_NOT_SUPPORTED}` `UserError` \"Currently unsupported filter string format\"",
        f"{REGISTRY_SEARCH}; {LEARN_REGISTRY}",
        Refusal.user_error(
            "Currently unsupported filter string format (we currently do not support OR, LIKE, ILIKE or tags)."
        ),
        when=_registered_models_query_refused,
    ),
    # Served by Azure.
    Entry(
        ("GET", "POST"),
        r"2\.0/mlflow/experiments/(?:create|get|get-by-name|search|delete|restore|set-experiment-tag)",
        "experiments: create, get, get-by-name, search, delete, restore, set tag",
        "served",
        "as mlflow",
        f"{PLUGIN}; {LEARN_QUERY}",
    ),
    Entry(
        ("GET", "POST"),
        r"2\.0/mlflow/runs/(?:create|get|update|delete|restore|search|log-metric|log-parameter|set-tag|delete-tag)",
        "runs: create, get, update, delete, restore, search (attribute order, `AND` filters), log metric, "
        "log param, set and delete tag",
        "served",
        "as mlflow",
        f"{PLUGIN}; {LEARN_QUERY}",
    ),
    Entry(
        ("POST",),
        r"2\.0/mlflow/runs/log-batch",
        "`POST /api/2.0/mlflow/runs/log-batch`",
        "served",
        "as mlflow",
        PLUGIN,
    ),
    Entry(
        ("GET",),
        r"2\.0/mlflow/metrics/get-history",
        "`GET /api/2.0/mlflow/metrics/get-history`",
        "served",
        "as mlflow",
        PLUGIN,
    ),
    Entry(
        ("POST",),
        r"2\.0/preview/mlflow/runs/log-batch-async",
        "`POST /api/2.0/preview/mlflow/runs/log-batch-async` (Azure only: `log_metric(..., synchronous=False)`)",
        "served",
        "a `batch_tracking_id` at once (none without metrics); params and tags written then, metrics later "
        "(the sandbox: `async_batch_delay`, 0.5 s; Azure's delay assumed)",
        ASYNC_BATCHES,
    ),
    Entry(
        ("GET",),
        r"2\.0/preview/mlflow/runs/get-run-data-status",
        "`GET /api/2.0/preview/mlflow/runs/get-run-data-status` (Azure only)",
        "served",
        "`is_complete`: false until the batch's metrics are written (an id the run never got: 404, assumed)",
        "azureml-mlflow 1.62.0.post6 `AzureMLRestStore._await_run_data_impl`",
    ),
    Entry(
        ("GET", "POST", "PATCH"),
        r"2\.0/mlflow/registered-models/(?:create|get|update|search|set-tag|delete-tag|get-latest-versions)",
        "registered models: create, get, update (description), search (by name), set and delete tag, "
        "latest versions",
        "served",
        "as mlflow",
        f"{PLUGIN_REGISTRY}; {LEARN_REGISTRY}",
    ),
    Entry(
        ("GET", "POST", "PATCH", "DELETE"),
        r"2\.0/mlflow/model-versions/(?:create|get|update|delete|search|get-download-uri|transition-stage|"
        r"set-tag|delete-tag)",
        "model versions: create (from `runs:/<run-id>/<path>` or an upload), get, update, delete, search, "
        "download URI, stages, tags",
        "served",
        "as mlflow (registering a model that is not in MLflow format, or from another workspace's run, is "
        "refused on Azure; the sandbox does not check either)",
        f"{PLUGIN_REGISTRY}; {LEARN_REGISTRY}",
    ),
)

# Calls outside ``/api/`` that the sandbox's other routes answer; listed here for their evidence.
OTLP_TRACES = Entry(
    ("POST",),
    r"v1/traces",
    "`POST <workspace path>/v1/traces` (mlflow's OTLP span export)",
    "refused",
    "403, as traces",
    TRACES,
    Refusal.azure(403, "Forbidden", "MLflow tracing is not supported in Azure Machine Learning."),
)
LOGGED_MODEL_ARTIFACTS = Entry(
    ("*",),
    r"LoggedModel/.*",
    "artifact v2 `/artifact/v2.0/<workspace path>/artifacts/LoggedModel/...` (a logged model's files)",
    "refused",
    "no such container: logged models cannot be created (404 `ContainerNotFound` here; body shape assumed)",
    f"follows from the logged-models row: {LOGGED_MODELS.split(' (', 1)[0]}",
    Refusal.azure(404, "ContainerNotFound", "No artifact container for a logged model."),
)
RUN_ARTIFACTS = Entry(
    ("GET", "POST"),
    r"",
    "run history `/history/v1.0/<workspace path>/experiments/<e>/runs/<r>/artifacts[/batch/metadata|/contentinfo]`, "
    "artifact v2 `LocalUpload/...`, blob SAS URLs",
    "served",
    "artifact metadata and SAS `contentUri`s",
    "azureml-mlflow 1.62.0.post6 artifact repository (`azureml://` run and upload locations)",
)
OTHER_ROUTES: tuple[Entry, ...] = (OTLP_TRACES, LOGGED_MODEL_ARTIFACTS, RUN_ARTIFACTS)

UNVERIFIED = Entry(
    ("*",),
    r".*",
    "anything else (aliases, datasets, `runs/log-model`, `runs/log-inputs`, `runs/outputs`, prompts, ...)",
    "unverified",
    "unknown: forwarded to the backend",
    "no public evidence either way",
)


def classify(method: str, api: str, params: Mapping[str, Any]) -> Entry:
    """The entry covering a call (``UNVERIFIED`` when none does).

    ``api`` is the decoded path after ``/api/`` (see ``decode_path``); ``params`` what
    ``parameters`` made of the query string and body.
    """
    for entry in ENTRIES:
        if entry.matches(method, api, params):
            return entry
    return UNVERIFIED


def parameters(method: str, query_string: str, body: bytes) -> dict[str, Any]:
    """A call's parameters: the JSON body of a POST/PATCH, the query string otherwise."""
    if method in ("POST", "PATCH", "PUT") and body:
        try:
            payload = json.loads(body)
        except ValueError:
            return {}
        return payload if isinstance(payload, dict) else {}
    parsed = parse_qs(query_string, keep_blank_values=True)
    return {k: v if len(v) > 1 or k == "order_by" else v[-1] for k, v in parsed.items()}


# -- paths -----------------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def decode_path(raw: str) -> str | None:
    """The decoded, normalised form of a relative path, or None when it cannot be served.

    Percent-escapes are decoded (as mlflow's server decodes them: ``%77orkspaces`` is
    ``workspaces``), empty and ``.`` segments dropped, ``..`` resolved; a path that climbs above
    its root, or holds control characters or backslashes, is refused. Routing decisions are made
    on this form, and it is what gets forwarded (through ``encode_path``), so the backend sees
    exactly the path that was checked.
    """
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if _UNSAFE.search(decoded):
        return None
    parts: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(segment)
    return "/".join(parts)


def encode_path(path: str) -> str:
    """Percent-encode a decoded path for the request line, so the backend decodes it back to ``path``."""
    return quote(path, safe="/-._~!$&'()*+,;=:@")


def table_rows(
    entries: tuple[Entry, ...] = (*ENTRIES, *OTHER_ROUTES, UNVERIFIED),
) -> list[tuple[str, str, str, str]]:
    """``(call, Azure's answer, evidence, sandbox default)`` rows for the README's table."""
    rows = []
    for entry in entries:
        if entry.always:
            default = "refused in every mode"
        elif entry.verdict == "refused":
            default = "refused (`azure`); forwarded as unverified (`open-source`)"
        elif entry.verdict == "served":
            default = "forwarded"
        else:
            default = "forwarded, marked unverified"
        rows.append((entry.call, entry.answer, entry.evidence, default))
    return rows
