"""What every workspace call of the MLflow front passes through: the caller's right, the error shapes, the backend.

The MLflow, run-history and artifact endpoints (``_mlflow``, ``_artifacts``, ``_batches``) answer
for one workspace, named in the path by ``WSP``. Every call needs a bearer token of the
workspace's tenant whose principal holds the action (``Microsoft.MachineLearningServices/
workspaces/{experiments,jobs,models/versions}/{read,write,delete}``, see ``_model.mlflow_action``)
over the workspace: 404 for an unknown workspace, 401 for another tenant's token, 403
``PERMISSION_DENIED`` naming the action otherwise. Errors come in MLflow's shape
(``{"error_code", "message"}``) on the MLflow API and in Azure's (``{"error": {"code",
"message"}}``) on the others; a backend that cannot be started or reached answers 503 in the same
shape as the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from ._backends import Backend, BackendPool, BackendReply, BackendUnavailable
from ._host import Host
from ._http import HttpError, Request, Response
from ._model import Workspace
from .fidelity import Entry

__all__ = ["WSP", "ErrorStyle", "Gateway", "error", "refuse", "relay"]

WSP = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)
ErrorStyle = Literal["mlflow", "azure"]


def error(style: ErrorStyle, status: int, code: str, message: str) -> HttpError:
    """An error body in MLflow's or Azure's shape."""
    if style == "mlflow":
        return HttpError(status, {"error_code": code, "message": message})
    return HttpError(status, {"error": {"code": code, "message": message}})


def refuse(req: Request, entry: Entry) -> Response:
    """Answer a call the fidelity lists refuse, as they say Azure answers it."""
    assert entry.refusal is not None
    req.fidelity = "refused"
    refusal = entry.refusal
    headers = {"Content-Type": refusal.content_type} if refusal.content_type else {}
    return Response(refusal.status, refusal.body, headers)


def relay(reply: BackendReply) -> Response:
    """A backend's answer, passed on as it is."""
    return Response(reply.status, reply.body, {"Content-Type": reply.content_type})


def _unavailable(style: ErrorStyle, exc: BackendUnavailable) -> HttpError:
    return error(style, 503, "TEMPORARILY_UNAVAILABLE" if style == "mlflow" else "ServiceUnavailable", str(exc))


class Gateway:
    """The checks and the backend calls of one sandbox's workspace endpoints.

    Args:
        host: The sandbox (its directory and token authority).
        pool: The backends the workspaces are placed on.
    """

    def __init__(self, host: Host, pool: BackendPool) -> None:
        self.host = host
        self.pool = pool

    def authorize(self, req: Request, action: str, style: ErrorStyle) -> Workspace:
        """The workspace in the path, once the caller's token and role allow ``action`` on it."""
        assert req.claims is not None
        sub, rg, name = req.params["sub"], req.params["rg"], req.params["ws"]
        workspace = self.host.directory.find_workspace(sub, rg, name)
        if workspace is None:
            raise error(
                style,
                404,
                "RESOURCE_DOES_NOT_EXIST" if style == "mlflow" else "ResourceNotFound",
                f"Workspace '{name}' was not found in resource group '{rg}' of subscription '{sub}'.",
            )
        if req.claims.tenant_id != workspace.tenant_id:
            raise self._wrong_tenant(req, workspace)
        if not self.host.directory.allowed(req.claims.object_id, action, workspace.arm_id):
            raise error(
                style,
                403,
                "PERMISSION_DENIED" if style == "mlflow" else "AuthorizationFailed",
                f"The client '{req.identity_name or req.claims.object_id}' with object id '{req.claims.object_id}' "
                f"does not have authorization to perform action '{action}' over scope '{workspace.arm_id}' or "
                "the scope is invalid. If access was recently granted, please refresh your credentials.",
            )
        return workspace

    def _wrong_tenant(self, req: Request, workspace: Workspace) -> HttpError:
        assert req.claims is not None
        authority, authority_url = self.host.authority, self.host.authority_url
        issuer, expected = authority.issuer(req.claims.tenant_id), authority.issuer(workspace.tenant_id)
        return HttpError(
            401,
            {
                "error": {
                    "code": "InvalidAuthenticationTokenTenant",
                    "message": f"The access token is from the wrong issuer '{issuer}'. It must match the tenant "
                    f"'{expected}' associated with this subscription. Please use the authority (URL) "
                    f"'{authority_url}/{workspace.tenant_id}' to get the token.",
                }
            },
            {
                "WWW-Authenticate": f'Bearer authorization_uri="{authority_url}/{workspace.tenant_id}", '
                'error="invalid_token", error_description="The access token is from the wrong issuer."'
            },
        )

    def backend(self, workspace: Workspace, style: ErrorStyle) -> Backend:
        """The workspace's backend, running, with the workspace in it (503 when it cannot be)."""
        try:
            return self.pool.backend_for(workspace)
        except BackendUnavailable as exc:
            raise _unavailable(style, exc) from exc

    def call(
        self,
        backend: Backend,
        workspace: Workspace,
        method: str,
        path: str,
        style: ErrorStyle,
        *,
        query: str = "",
        body: bytes = b"",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> BackendReply:
        """One request to the backend, in the workspace's mlflow workspace (503 when it fails)."""
        try:
            return backend.request(
                method,
                path,
                workspace=workspace.backend_workspace,
                query=query,
                body=body,
                content_type=content_type,
                headers=headers,
            )
        except BackendUnavailable as exc:
            raise _unavailable(style, exc) from exc
