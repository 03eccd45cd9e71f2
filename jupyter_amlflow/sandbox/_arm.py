"""Azure Resource Manager stand-in: cloud metadata, tenants, subscriptions, workspaces, Resource Graph."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from ._host import Host
from ._http import HttpError, Request, Response, Route, route
from ._model import ML_PROVIDER, WORKSPACE_TYPE, Subscription, Workspace

RG = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
SUB = r"/subscriptions/(?P<sub>[^/]+)"
WS_TYPE_RE = re.compile(r"microsoft\.machinelearningservices/workspaces", re.IGNORECASE)


def arm_error(status: int, code: str, message: str) -> HttpError:
    """An error body shaped as ARM sends it."""
    return HttpError(status, {"error": {"code": code, "message": message}}, {"x-ms-failure-cause": "gateway"})


def authorization_failed(req: Request, action: str, scope: str) -> HttpError:
    """ARM's 403, naming the action and scope as the real one does."""
    oid = req.identity or "unknown"
    return arm_error(
        403,
        "AuthorizationFailed",
        f"The client '{req.identity_name or oid}' with object id '{oid}' does not have authorization to "
        f"perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently "
        "granted, please refresh your credentials.",
    )


def cloud_metadata(base: str, cloud: str, studio_url: str, storage_suffix: str) -> list[dict[str, Any]]:
    """The ``/metadata/endpoints`` document of a sandbox at ``base``: one cloud, the sandbox.

    Shaped as Resource Manager's ``GET /metadata/endpoints?api-version=2019-05-01`` answers: a list
    of clouds, each with ``name``, ``resourceManager``, ``authentication``, ``suffixes``, ``portal``
    and the other endpoints of the public cloud's document.
    """
    return [
        {
            "portal": f"{base}/portal",
            # Not in Azure's document: custom clouds have no Studio. jupyter_amlflow reads this
            # extension field to link runs to the sandbox's Studio stand-in.
            "amlStudio": studio_url,
            "authentication": {
                "loginEndpoint": f"{base}/",
                "audiences": [f"{base}/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "media": f"{base}/media",
            "graphAudience": f"{base}/graph/",
            "graph": f"{base}/graph/",
            "name": cloud,
            "suffixes": {
                "azureDataLakeStoreFileSystem": "azuredatalakestore.sandbox.test",
                "acrLoginServer": "azurecr.sandbox.test",
                "sqlServerHostname": "database.sandbox.test",
                "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.sandbox.test",
                "keyVaultDns": "vault.sandbox.test",
                "storage": storage_suffix,
                "azureFrontDoorEndpointSuffix": "azurefd.sandbox.test",
                "storageSyncEndpointSuffix": "afs.sandbox.test",
                "mhsmDns": "managedhsm.sandbox.test",
                "mysqlServerEndpoint": "mysql.database.sandbox.test",
                "postgresqlServerEndpoint": "postgres.database.sandbox.test",
                "mariadbServerEndpoint": "mariadb.database.sandbox.test",
                "synapseAnalytics": "dev.azuresynapse.sandbox.test",
                "attestationEndpoint": "attest.sandbox.test",
            },
            "batch": f"{base}/batch/",
            "resourceManager": f"{base}/",
            "vmImageAliasDoc": f"{base}/aliases.json",
            "activeDirectoryDataLake": f"{base}/datalake/",
            "sqlManagement": f"{base}/sql/",
            "microsoftGraphResourceId": f"{base}/msgraph/",
            "appInsightsResourceId": f"{base}/appinsights",
            "appInsightsTelemetryChannelResourceId": f"{base}/appinsights/v2/track",
            "attestationResourceId": f"{base}/attest",
            "synapseAnalyticsResourceId": f"{base}/synapse",
            "logAnalyticsResourceId": f"{base}/loganalytics",
            "ossrDbmsResourceId": f"{base}/ossrdbms",
            "gallery": f"{base}/gallery/",
        }
    ]


class ResourceManager:
    """The Resource Manager endpoints of one sandbox."""

    def __init__(self, sandbox: Host) -> None:
        self.sb = sandbox
        self.directory = sandbox.directory

    def routes(self) -> list[Route]:
        """The routes this part serves."""
        ws = r"/providers/Microsoft\.MachineLearningServices/workspaces"
        return [
            route("GET", r"/metadata/endpoints", "metadata", self.metadata),
            route("GET", r"/tenants", "tenants", self.tenants, auth=True),
            route("GET", r"/subscriptions", "subscriptions", self.subscriptions, auth=True),
            route("GET", SUB, "subscription", self.subscription, auth=True),
            route("GET", SUB + r"/resourcegroups", "resource_groups", self.resource_groups, auth=True),
            route("GET", SUB + ws, "workspaces", self.workspaces, auth=True),
            route("GET", RG + ws, "workspaces", self.workspaces, auth=True),
            route("GET", RG + ws + r"/(?P<ws>[^/]+)", "workspace", self.workspace, auth=True),
            route(
                "POST",
                r"/providers/Microsoft\.ResourceGraph/resources",
                "resource_graph",
                self.resource_graph,
                auth=True,
            ),
        ]

    # -- helpers -------------------------------------------------------------------------------
    def _page(self, req: Request, items: Sequence[Any], render: Callable[[Any], dict[str, Any]]) -> Response:
        """One page of a list, with ``nextLink`` when more remain."""
        size = self.sb.page_size
        try:
            start = int(req.query.get("$skiptoken", "0"))
        except ValueError as exc:
            raise arm_error(400, "InvalidSkipToken", "The skip token is not valid.") from exc
        body: dict[str, Any] = {"value": [render(i) for i in items[start : start + size]]}
        if start + size < len(items):
            query = {k: v for k, v in req.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(start + size)
            body["nextLink"] = f"{req.base_url}{req.path}?{urlencode(query)}"
        return Response.json(body)

    def _subscription(self, req: Request, subscription_id: str) -> Subscription:
        """The subscription, after checking the caller's token was issued by its tenant."""
        assert req.claims is not None
        sub = self.directory.subscriptions.get(subscription_id.lower())
        if sub is None:
            raise arm_error(404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found.")
        if sub.tenant_id != req.claims.tenant_id:
            raise HttpError(
                401,
                {
                    "error": {
                        "code": "InvalidAuthenticationTokenTenant",
                        "message": f"The access token is from the wrong issuer "
                        f"'{self.sb.authority.issuer(req.claims.tenant_id)}'. It must match the tenant "
                        f"'{self.sb.authority.issuer(sub.tenant_id)}' associated with this subscription. "
                        f"Please use the authority (URL) '{self.sb.authority_url}/{sub.tenant_id}' to get "
                        "the token. Note, if the subscription is transferred to another tenant there is no "
                        "impact to the services, but information about new tenant could take time to "
                        "propagate (up to an hour). If you just transferred your subscription and see this "
                        "error message, please try back later.",
                    }
                },
                {
                    "WWW-Authenticate": f'Bearer authorization_uri="{self.sb.authority_url}/{sub.tenant_id}", '
                    'error="invalid_token", error_description="The access token is from the wrong issuer."'
                },
            )
        return sub

    def workspace_json(self, w: Workspace) -> dict[str, Any]:
        """A workspace resource shaped like the REST spec's Workspaces_Get example."""
        rg_scope = f"/subscriptions/{w.subscription_id}/resourceGroups/{w.resource_group}/providers"
        storage = w.storage_account
        return {
            "id": w.arm_id,
            "name": w.name,
            "type": WORKSPACE_TYPE,
            "location": w.location,
            "kind": "Default",
            "tags": {},
            "identity": {"type": "SystemAssigned", "principalId": w.workspace_id, "tenantId": w.tenant_id},
            "sku": {"name": "Basic", "tier": "Basic"},
            "systemData": {
                "createdAt": "2026-01-05T10:00:00.0000000Z",
                "createdBy": "sandbox",
                "createdByType": "Application",
                "lastModifiedAt": "2026-01-05T10:00:00.0000000Z",
                "lastModifiedBy": "sandbox",
                "lastModifiedByType": "Application",
            },
            "properties": {
                "friendlyName": w.name,
                "description": "A jupyter_amlflow sandbox workspace.",
                "workspaceId": w.workspace_id,
                "tenantId": w.tenant_id,
                "storageAccount": f"{rg_scope}/Microsoft.Storage/storageAccounts/{storage}",
                "keyVault": f"{rg_scope}/Microsoft.KeyVault/vaults/kv{storage[2:]}",
                "applicationInsights": f"{rg_scope}/Microsoft.Insights/components/ai{storage[2:]}",
                "containerRegistry": None,
                "discoveryUrl": f"https://{w.tracking_host}/discovery",
                "mlFlowTrackingUri": w.tracking_uri,
                "provisioningState": "Succeeded",
                "hbiWorkspace": False,
                "publicNetworkAccess": "Disabled" if w.private_link else "Enabled",
                "privateLinkCount": 1 if w.private_link else 0,
                "privateEndpointConnections": [],
                "allowPublicAccessWhenBehindVnet": False,
                "storageHnsEnabled": False,
                "v1LegacyMode": False,
                "enableDataIsolation": False,
                "managedNetwork": {"isolationMode": "Disabled"},
                "notebookInfo": None,
                "serviceProvisionedResourceGroup": None,
            },
        }

    # -- metadata ------------------------------------------------------------------------------
    def metadata(self, req: Request) -> Response:
        return Response.json(self.sb.cloud_metadata())

    # -- tenants and subscriptions -------------------------------------------------------------
    def tenants(self, req: Request) -> Response:
        assert req.claims is not None
        identity = self.directory.identities.get(req.claims.object_id)
        tenant_ids = identity.tenants if identity else [req.claims.tenant_id]
        tenants = [self.directory.tenants[t] for t in tenant_ids if t in self.directory.tenants]
        return self._page(
            req,
            tenants,
            lambda t: {
                "id": f"/tenants/{t.tenant_id}",
                "tenantId": t.tenant_id,
                "countryCode": "US",
                "displayName": t.display_name,
                "domains": [t.default_domain],
                "defaultDomain": t.default_domain,
                "tenantCategory": "Home" if identity is None or t.tenant_id == identity.home_tenant else "ProjectedBy",
                "tenantType": "AAD",
            },
        )

    def _subscription_json(self, s: Subscription) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{s.subscription_id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": s.subscription_id,
            "tenantId": s.tenant_id,
            "displayName": s.display_name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        }

    def subscriptions(self, req: Request) -> Response:
        assert req.claims is not None
        subs = self.directory.visible_subscriptions(req.claims.object_id, req.claims.tenant_id)
        return self._page(req, subs, self._subscription_json)

    def subscription(self, req: Request) -> Response:
        assert req.claims is not None
        sub = self._subscription(req, req.params["sub"])
        if not self.directory.has_any_role_under(req.claims.object_id, f"/subscriptions/{sub.subscription_id}"):
            raise authorization_failed(
                req, "Microsoft.Resources/subscriptions/read", f"/subscriptions/{sub.subscription_id}"
            )
        return Response.json(self._subscription_json(sub))

    def resource_groups(self, req: Request) -> Response:
        assert req.claims is not None
        sub = self._subscription(req, req.params["sub"])
        with self.directory.lock:
            groups = sorted(
                {w.resource_group for w in self.directory.workspaces if w.subscription_id == sub.subscription_id}
            )
        visible = [
            g
            for g in groups
            if self.directory.has_any_role_under(
                req.claims.object_id, f"/subscriptions/{sub.subscription_id}/resourceGroups/{g}"
            )
        ]
        return self._page(
            req,
            visible,
            lambda g: {
                "id": f"/subscriptions/{sub.subscription_id}/resourceGroups/{g}",
                "name": g,
                "type": "Microsoft.Resources/resourceGroups",
                "location": "eastus",
                "properties": {"provisioningState": "Succeeded"},
            },
        )

    # -- workspaces ----------------------------------------------------------------------------
    def workspaces(self, req: Request) -> Response:
        assert req.claims is not None
        sub = self._subscription(req, req.params["sub"])
        rg = req.params.get("rg")
        scope = f"/subscriptions/{sub.subscription_id}" + (f"/resourceGroups/{rg}" if rg else "")
        if rg and not self.directory.resource_group_exists(sub.subscription_id, rg):
            raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        if not self.directory.has_any_role_under(req.claims.object_id, scope):
            raise authorization_failed(req, f"{WORKSPACE_TYPE}/read", scope)
        with self.directory.lock:
            candidates = [
                w
                for w in self.directory.workspaces
                if w.subscription_id == sub.subscription_id and (rg is None or w.resource_group.lower() == rg.lower())
            ]
        readable = self.directory.readable_workspaces(req.claims.object_id, candidates)
        return self._page(req, readable, self.workspace_json)

    def workspace(self, req: Request) -> Response:
        assert req.claims is not None
        sub = self._subscription(req, req.params["sub"])
        rg, name = req.params["rg"], req.params["ws"]
        scope = f"/subscriptions/{sub.subscription_id}/resourceGroups/{rg}/providers/{WORKSPACE_TYPE}/{name}"
        if not self.directory.allowed(req.claims.object_id, f"{WORKSPACE_TYPE}/read", scope):
            raise authorization_failed(req, f"{WORKSPACE_TYPE}/read", scope)
        if not self.directory.resource_group_exists(sub.subscription_id, rg):
            raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        w = self.directory.find_workspace(sub.subscription_id, rg, name)
        if w is None:
            raise arm_error(
                404,
                "ResourceNotFound",
                f"The Resource '{WORKSPACE_TYPE}/{name}' under resource group '{rg}' was not found. "
                "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )
        return Response.json(self.workspace_json(w))

    # -- Resource Graph ------------------------------------------------------------------------
    def resource_graph(self, req: Request) -> Response:
        """Answers queries over ML workspaces; the rest of KQL is not interpreted."""
        assert req.claims is not None
        identity = self.directory.identities.get(req.claims.object_id)
        if identity is not None and not identity.resource_graph_allowed:
            raise authorization_failed(
                req, "Microsoft.ResourceGraph/resources/read", "/providers/Microsoft.ResourceGraph"
            )
        body = req.json()
        query = str(body.get("query", ""))
        if not WS_TYPE_RE.search(query):
            raise arm_error(
                400,
                "BadRequest",
                "The sandbox's Resource Graph answers only queries over microsoft.machinelearningservices/workspaces.",
            )
        wanted = {s.lower() for s in body.get("subscriptions") or []}
        with self.directory.lock:
            candidates = [
                w
                for w in self.directory.workspaces
                if w.tenant_id == req.claims.tenant_id and (not wanted or w.subscription_id.lower() in wanted)
            ]
        rows = self.directory.readable_workspaces(req.claims.object_id, candidates)
        options = body.get("options") or {}
        top = min(int(options.get("$top") or 1000), 1000, self.sb.resource_graph_page_size)
        try:
            start = int(options.get("$skipToken") or options.get("$skip") or 0)
        except ValueError as exc:
            raise arm_error(400, "InvalidSkipToken", "The skip token is not valid.") from exc
        page = rows[start : start + top]
        result: dict[str, Any] = {
            "totalRecords": len(rows),
            "count": len(page),
            "resultTruncated": "false",
            "facets": [],
            "data": [self._graph_row(w) for w in page],
        }
        if start + top < len(rows):
            result["$skipToken"] = str(start + top)
        return Response.json(result)

    def _graph_row(self, w: Workspace) -> dict[str, Any]:
        full = self.workspace_json(w)
        return {
            "id": w.arm_id,
            "name": w.name,
            "type": WORKSPACE_TYPE.lower(),
            "tenantId": w.tenant_id,
            "kind": full["kind"],
            "location": w.location,
            "resourceGroup": w.resource_group.lower(),
            "subscriptionId": w.subscription_id,
            "managedBy": "",
            "sku": full["sku"],
            "plan": None,
            "properties": full["properties"],
            "tags": {},
            "identity": full["identity"],
            "zones": None,
            "extendedLocation": None,
        }


__all__ = ["ML_PROVIDER", "ResourceManager", "arm_error", "authorization_failed"]
