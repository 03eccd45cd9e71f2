"""Managed identity: the identity endpoints azure-identity and MSAL call on Azure compute.

Three forms, as the client libraries detect them from the environment: App Service
(``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``), Azure ML compute (``MSI_ENDPOINT`` + ``MSI_SECRET``)
and Cloud Shell (``MSI_ENDPOINT`` alone, refused here without the secret: see
``msi_cloud_shell``). Each answers with an access token for the sandbox's managed identity.
"""

from __future__ import annotations

import hmac
import time

from ._aad import issue_access_token
from ._host import Host
from ._http import HttpError, Request, Response, Route, route
from ._model import Identity

__all__ = ["ManagedIdentity"]


class ManagedIdentity:
    """The identity endpoints (endpoint ``msi``) of one sandbox."""

    def __init__(self, sandbox: Host) -> None:
        self.sb = sandbox
        self.directory = sandbox.directory

    def routes(self) -> list[Route]:
        """The routes this part serves."""
        return [
            route("GET", r"/msi/appservice", "msi", self.msi_app_service),
            route("GET", r"/msi/token", "msi", self.msi_azure_ml),
            route("POST", r"/msi/token", "msi", self.msi_cloud_shell),
        ]

    def _managed_identity(self, req: Request, client_id: str | None, resource: str) -> Identity:
        with self.directory.lock:
            identities = [i for i in self.directory.identities.values() if i.kind == "managed_identity"]
        if client_id:
            identities = [i for i in identities if (i.client_id or "").lower() == client_id.lower()]
        if not identities:
            raise HttpError(400, {"error": "invalid_request", "error_description": "Identity not found"})
        if not resource:
            raise HttpError(
                400, {"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"}
            )
        return identities[0]

    def _msi_response(self, req: Request, identity: Identity, resource: str) -> Response:
        audience = resource if resource.endswith("/") else resource + "/"
        token, lifetime = issue_access_token(
            self.sb, req, identity, identity.home_tenant, audience, {"appid": identity.client_id, "idtyp": "app"}
        )
        return Response.json(
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + lifetime),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            }
        )

    def msi_app_service(self, req: Request) -> Response:
        """App Service style (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``, api-version 2019-08-01)."""
        if not hmac.compare_digest((req.header("x-identity-header") or "").encode(), self.sb.identity_header.encode()):
            raise HttpError(
                401, {"error": "unauthorized", "error_description": "X-IDENTITY-HEADER is missing or wrong"}
            )
        resource = req.query.get("resource", "")
        identity = self._managed_identity(req, req.query.get("client_id"), resource)
        return self._msi_response(req, identity, resource)

    def _check_msi_secret(self, req: Request) -> None:
        if not hmac.compare_digest((req.header("secret") or "").encode(), self.sb.identity_header.encode()):
            raise HttpError(
                401,
                {"error": "unauthorized", "error_description": "The secret header (MSI_SECRET) is missing or wrong"},
            )

    def msi_azure_ml(self, req: Request) -> Response:
        """Azure ML compute style (``MSI_ENDPOINT`` + ``MSI_SECRET``): GET, api-version 2017-09-01.

        As azure-identity (``_credentials/azure_ml.py``) and MSAL (``managed_identity.py``,
        ``_obtain_token_on_machine_learning``) call it: the secret in a ``secret`` header, the
        user-assigned identity as ``clientid``.
        """
        self._check_msi_secret(req)
        resource = req.query.get("resource", "")
        identity = self._managed_identity(req, req.query.get("clientid") or req.query.get("client_id"), resource)
        return self._msi_response(req, identity, resource)

    def msi_cloud_shell(self, req: Request) -> Response:
        """Cloud Shell / legacy style (``MSI_ENDPOINT`` alone): POST a form with ``Metadata: true``.

        Real Cloud Shell's endpoint needs nothing more because only its own container reaches it.
        Every local process reaches the sandbox's loopback port, so it refuses this form unless
        the ``secret`` header carries its identity secret (which azure-identity's Cloud Shell
        credential never sends); ``Sandbox.msi_endpoint_env`` gives the Azure ML form instead.
        """
        self._check_msi_secret(req)
        if (req.header("metadata") or "").lower() != "true":
            raise HttpError(
                400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}
            )
        form = req.form()
        resource = form.get("resource", "")
        identity = self._managed_identity(req, form.get("client_id"), resource)
        return self._msi_response(req, identity, resource)
