"""A stand-in for Azure ML Studio's run page, so run links the product shows lead somewhere real.

Studio links look like
``<studio>/runs/<run id>?wsid=/subscriptions/<s>/resourcegroups/<rg>/workspaces/<w>&tid=<tenant>``;
for the sandbox cloud ``<studio>`` is ``Sandbox.studio_url``, whose last path segment is the
sandbox's read-only Studio key (``_access``): without it every Studio path answers 401, so another
local process cannot read the workspaces or a run's parameters. With it, no sign-in is asked (real
Studio signs the person in; the key stands for that here). The page is read from the backing mlflow
server. It never starts a backend: a workspace that no MLflow call has reached has no runs.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlencode

from ._artifacts import Artifacts
from ._backends import BackendPool, BackendUnavailable
from ._host import Host
from ._http import HttpError, Request, Response, Route, route
from ._model import Workspace

_WSID = re.compile(r"/subscriptions/([^/]+)/resourcegroups/([^/]+)/(?:providers/[^/]+/)?workspaces/([^/]+)/?", re.I)
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}"
    "dt{font-weight:600}dd{margin:0 0 .5rem 0}"
)


def _page(title: str, body: str, status: int = 200) -> Response:
    return Response.html(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>",
        status,
    )


def _table(headings: tuple[str, ...], rows: list[tuple[Any, ...]], empty: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class Studio:
    """The ``studio`` endpoints.

    Args:
        host: The sandbox (its Studio key and workspaces).
        pool: The backends the pages are read from.
        artifacts: Where each run's files are.
    """

    def __init__(self, host: Host, pool: BackendPool, artifacts: Artifacts) -> None:
        self.host = host
        self.pool = pool
        self.artifacts = artifacts

    def routes(self) -> list[Route]:
        """``GET /studio/<key>`` and ``GET /studio/<key>/runs/<run id>``; 401 for any other Studio path."""
        return [
            route("GET", r"/studio/(?P<key>[^/]+)/?", "studio", self.index),
            route("GET", r"/studio/(?P<key>[^/]+)/runs/(?P<run>[^/]+)", "studio", self.run_page),
            route("*", r"/studio(?:/.*)?", "studio", self._refuse),
        ]

    def _check_key(self, req: Request) -> None:
        if not self.host.access.studio_key_ok(req.params.get("key", "")):
            self._refuse(req)

    @staticmethod
    def _refuse(req: Request) -> Response:
        raise HttpError(
            401,
            {
                "error": {
                    "code": "Unauthorized",
                    "message": "Open Studio through a link the sandbox gave (Sandbox.studio_url): it carries the "
                    "sandbox's Studio key.",
                }
            },
        )

    def index(self, req: Request) -> Response:
        self._check_key(req)
        rows = [(w.name, w.resource_group, w.subscription_id, w.workspace_id) for w in self.host.workspaces]
        return _page(
            "Sandbox Studio",
            "<h1>Sandbox Studio</h1><p>A stand-in for Azure Machine Learning Studio. Run pages are at "
            "<code>runs/&lt;run id&gt;?wsid=&lt;workspace ARM id&gt;</code> below this page.</p>"
            + _table(("Workspace", "Resource group", "Subscription", "Workspace id"), rows, "No workspaces."),
        )

    def _workspace(self, wsid: str) -> Workspace | None:
        match = _WSID.fullmatch(wsid)
        return self.host.directory.find_workspace(*match.groups()) if match else None

    def _get(self, workspace: Workspace, path: str, **query: str) -> dict[str, Any] | None:
        backend = self.pool.placed(workspace)
        if backend is None:
            return None
        try:
            reply = backend.request("GET", path, workspace=workspace.backend_workspace, query=urlencode(query))
        except BackendUnavailable:
            return None
        if reply.status != 200:
            return None
        value: dict[str, Any] = json.loads(reply.body)
        return value

    def run_page(self, req: Request) -> Response:
        self._check_key(req)
        run_id = req.params["run"]
        workspace = self._workspace(req.query.get("wsid", ""))
        found = self._get(workspace, "/api/2.0/mlflow/runs/get", run_id=run_id) if workspace else None
        if workspace is None or found is None:
            return _page(
                "Run not found · Sandbox Studio",
                f"<h1>Run not found</h1><p>No run <code>{html.escape(run_id)}</code> in the workspace "
                f"<code>{html.escape(req.query.get('wsid', '(none given)'))}</code>.</p>",
                404,
            )
        info, data = found["run"]["info"], found["run"].get("data", {})
        experiment = self._get(workspace, "/api/2.0/mlflow/experiments/get", experiment_id=info["experiment_id"])
        exp_name = experiment["experiment"]["name"] if experiment else info["experiment_id"]
        name = info.get("run_name") or run_id
        params = sorted((p["key"], p["value"]) for p in data.get("params", []))
        metrics = sorted((m["key"], m["value"], m.get("step", 0)) for m in data.get("metrics", []))
        artifacts = list(self.artifacts.iter_run_artifacts(workspace, run_id))
        details = (
            ("Run id", run_id),
            ("Status", info.get("status", "")),
            ("Experiment", f"{exp_name} ({info['experiment_id']})"),
            ("Workspace", f"{workspace.name} ({workspace.resource_group})"),
        )
        listing = "".join(f"<li>{html.escape(a)}</li>" for a in artifacts)
        body = (
            f"<h1>Run {html.escape(name)}</h1><dl>"
            + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in details)
            + "</dl><h2>Parameters</h2>"
            + _table(("Name", "Value"), params, "No parameters.")
            + "<h2>Metrics</h2>"
            + _table(("Name", "Latest value", "Step"), metrics, "No metrics.")
            + "<h2>Artifacts</h2>"
            + (f"<ul>{listing}</ul>" if artifacts else "<p>No artifacts.</p>")
        )
        return _page(f"Run {name} · Sandbox Studio", body)
