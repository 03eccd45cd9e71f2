"""``ArmClient``: Resource Manager's answers about tenants, subscriptions and workspaces, for one sign-in.

One client per signed-in identity and cloud. It knows the URLs, API versions and paging of each
call (``nextLink`` only ever followed on the Resource Manager host, where the token belongs), and
keeps one pipeline per tenant over one connection pool (``transport``). Every request has its own
deadline, retries included; every failure comes back translated (``failures``).
``discover_workspaces`` is the discovery of ``discovery``, for this client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

from ..errors import ServiceError
from ..pasteable import magic_option
from .discovery import Discovery, discover_workspaces
from .failures import RETRY_FIX, Op, status_error
from .resources import (
    WORKSPACE_TYPE,
    SubscriptionInfo,
    TenantInfo,
    WorkspaceInfo,
    subscription_from_json,
    tenant_from_json,
    workspace_from_json,
)
from .transport import new_session, pipeline_client, send

if TYPE_CHECKING:
    from azure.core import PipelineClient
    from azure.core.credentials import TokenCredential

    from ..clouds import Cloud

log = logging.getLogger(__name__)

WORKSPACE_API = "2024-10-01"
SUBSCRIPTIONS_API = "2022-12-01"
TENANTS_API = "2022-12-01"
RESOURCE_GRAPH_API = "2022-10-01"

# Resource Graph (KQL). ``properties`` is kept whole so rows parse exactly like ARM's own answers.
WORKSPACE_QUERY = (
    "resources | where type =~ 'microsoft.machinelearningservices/workspaces' "
    "| project id, name, type, location, resourceGroup, subscriptionId, tenantId, kind, properties"
)

#: Called with each page of workspaces as it arrives.
OnPage = Callable[[list[WorkspaceInfo]], object]


class WorkspaceReference(Protocol):
    """What ``ArmClient.workspace`` needs of a reference (``references.WorkspaceRef`` has it)."""

    @property
    def subscription_id(self) -> str: ...
    @property
    def resource_group(self) -> str: ...
    @property
    def workspace(self) -> str: ...


class ArmClient:
    """Resource Manager for one signed-in identity in one cloud.

    Args:
        credential: An azure-core ``TokenCredential`` (from ``auth``) for the home tenant.
        cloud: The cloud; ``resource_manager`` is the base URL and ``arm_scope`` the token scope.
        timeout: Seconds one request may take, retries and waits included.
        retries: How many times a request is retried after a throttle, a 5xx or a lost connection.
        credential_for_tenant: Gives a credential for another tenant (``auth.credential_for_tenant``);
            needed by ``discover_workspaces(all_tenants=True)`` and by the ``tenant_id=`` arguments.
    """

    def __init__(
        self,
        credential: TokenCredential,
        cloud: Cloud,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        credential_for_tenant: Callable[[str], TokenCredential] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        self.credential = credential
        self.cloud = cloud
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.credential_for_tenant = credential_for_tenant
        self._base = cloud.resource_manager.rstrip("/") + "/"
        self._lock = threading.Lock()
        self._session: Any = None
        self._pipelines: dict[str | None, PipelineClient] = {}

    # -- calls ---------------------------------------------------------------------------------
    def tenants(self) -> list[TenantInfo]:
        """The tenants the signed-in identity belongs to (paging followed)."""
        op = Op("Resource Manager: GET tenants", "Could not list your tenants", "%amlflow list tenants")
        rows = self._paged(op, "tenants", {"api-version": TENANTS_API}, None)
        return [t for t in map(tenant_from_json, rows) if t is not None]

    def subscriptions(self, *, tenant_id: str | None = None) -> list[SubscriptionInfo]:
        """The subscriptions visible in the signed-in tenant, or in ``tenant_id`` (paging followed)."""
        where = f" in tenant {tenant_id}" if tenant_id else ""
        command = "%amlflow list subscriptions" + (" " + magic_option("--tenant", tenant_id) if tenant_id else "")
        op = Op("Resource Manager: GET subscriptions", f"Could not list your subscriptions{where}", command)
        rows = self._paged(op, "subscriptions", {"api-version": SUBSCRIPTIONS_API}, tenant_id)
        return [s for s in (subscription_from_json(r, tenant_id) for r in rows) if s is not None]

    def workspace(self, ref: WorkspaceReference) -> WorkspaceInfo:
        """Read one workspace: exactly one GET when nothing fails.

        Raises:
            NotFound: The subscription, resource group or workspace does not exist (or is hidden).
            PermissionDenied: The identity may not read it; ``action`` names the permission.
            WrongTenant: The subscription belongs to another tenant (named in the message).
            SignInError: No token could be had, or Resource Manager refused it.
            ConnectTimeout: No answer within ``timeout``.
            ServiceError: Any other failure (throttling, 5xx, network).
        """
        sub, rg, name = ref.subscription_id, ref.resource_group, ref.workspace
        op = Op(
            f"Resource Manager: GET workspace {name}",
            f"Could not read workspace '{name}' (resource group '{rg}', subscription {sub})",
            "%amlflow connect",
            subscription_id=sub,
            resource_group=rg,
            workspace=name,
        )
        path = f"subscriptions/{_seg(sub)}/resourceGroups/{_seg(rg)}/providers/{WORKSPACE_TYPE}/{_seg(name)}"
        info = workspace_from_json(self._call(op, "GET", self._url(path), None, {"api-version": WORKSPACE_API}))
        if info is None:
            raise ServiceError(
                op.what, "Resource Manager's answer did not describe a workspace", RETRY_FIX, endpoint=op.endpoint
            )
        return info

    def workspaces(
        self,
        subscription_id: str,
        resource_group: str | None = None,
        *,
        tenant_id: str | None = None,
        on_page: OnPage | None = None,
    ) -> list[WorkspaceInfo]:
        """The workspaces of one subscription, or of one resource group in it (paging followed).

        ``on_page`` is called with each page's workspaces as it arrives (not with an empty page).
        """
        if resource_group:
            endpoint = f"Resource Manager: GET workspaces of resource group {resource_group}"
            what = (
                f"Could not list the workspaces of resource group '{resource_group}' in subscription {subscription_id}"
            )
        else:
            endpoint = f"Resource Manager: GET workspaces of subscription {subscription_id}"
            what = f"Could not list the workspaces of subscription {subscription_id}"
        op = Op(
            endpoint,
            what,
            "%amlflow list workspaces",
            subscription_id=subscription_id,
            resource_group=resource_group,
        )
        path = f"subscriptions/{_seg(subscription_id)}"
        if resource_group:
            path += f"/resourceGroups/{_seg(resource_group)}"
        path += f"/providers/{WORKSPACE_TYPE}"

        found: list[WorkspaceInfo] = []

        def page(rows: list[Any]) -> None:
            infos = [w for w in (workspace_from_json(r, tenant_id) for r in rows) if w is not None]
            found.extend(infos)
            if on_page is not None and infos:
                on_page(infos)

        self._paged(op, path, {"api-version": WORKSPACE_API}, tenant_id, page)
        return found

    def resource_graph_workspaces(
        self, tenant_id: str | None, subscriptions: Sequence[str] | None, on_page: OnPage
    ) -> int:
        """Ask Resource Graph for a tenant's workspaces (``$skipToken`` paging); returns the count.

        Each page's workspaces go to ``on_page`` as they arrive. Resource Graph simply has no rows
        for a subscription the identity cannot read; it fails as a whole when it is denied.
        """
        op = Op(
            "Resource Manager: POST Resource Graph query",
            "Could not query Resource Graph for workspaces" + (f" in tenant {tenant_id}" if tenant_id else ""),
            "%amlflow list workspaces",
        )
        url = self._url("providers/Microsoft.ResourceGraph/resources")
        params = {"api-version": RESOURCE_GRAPH_API}
        options: dict[str, Any] = {"resultFormat": "objectArray", "$top": 1000}
        body: dict[str, Any] = {"query": WORKSPACE_QUERY, "options": options}
        if subscriptions:
            body["subscriptions"] = list(subscriptions)
        count = 0
        while True:
            answer = self._call(op, "POST", url, tenant_id, params, body)
            rows = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(rows, list):
                raise ServiceError(op.what, "Resource Graph's answer had no rows", RETRY_FIX, endpoint=op.endpoint)
            infos = [w for w in (workspace_from_json(r, tenant_id) for r in rows) if w is not None]
            count += len(infos)
            if infos:
                on_page(infos)
            token = answer.get("$skipToken")
            if not token:
                return count
            options["$skipToken"] = token

    def discover_workspaces(
        self,
        subscriptions: Sequence[str] | None = None,
        *,
        on_found: OnPage | None = None,
        max_workers: int = 16,
        all_tenants: bool = False,
        tenant_ids: Sequence[str] | None = None,
    ) -> Discovery:
        """Every workspace the identity can read: ``discovery.discover_workspaces`` with this client."""
        return discover_workspaces(
            self,
            subscriptions,
            on_found=on_found,
            max_workers=max_workers,
            all_tenants=all_tenants,
            tenant_ids=tenant_ids,
        )

    def close(self) -> None:
        """Close pooled connections; the client opens new ones if used again."""
        with self._lock:
            session, self._session = self._session, None
            self._pipelines.clear()
        if session is not None:
            session.close()

    def __enter__(self) -> ArmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ----------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return self._base + path.lstrip("/")

    def _paged(
        self,
        op: Op,
        path: str,
        params: dict[str, str],
        tenant_id: str | None,
        on_page: Callable[[list[Any]], None] | None = None,
    ) -> list[Any]:
        """GET a list and follow ``nextLink`` to the end; returns every ``value`` item."""
        items: list[Any] = []
        next_url: str | None = self._url(path)
        query: dict[str, str] | None = params
        while next_url:
            body = self._call(op, "GET", next_url, tenant_id, query)
            values = body.get("value") if isinstance(body, dict) else None
            page = values if isinstance(values, list) else []
            items.extend(page)
            if on_page is not None:
                on_page(page)
            link = body.get("nextLink") if isinstance(body, dict) else None
            next_url = self._next_link(op, link) if link else None
            query = None  # a nextLink carries its own query, api-version included
        return items

    def _next_link(self, op: Op, link: object) -> str:
        """The next page's URL; only ever on the Resource Manager host, where the token belongs."""
        url = urljoin(self._base, str(link))
        if _origin(url) != _origin(self._base):
            raise ServiceError(
                op.what,
                f"Resource Manager pointed the next page at another host ({urlsplit(url).netloc}); "
                "the sign-in token is not sent there",
                "Check the cloud's Resource Manager URL (%amlflow clouds), then try again",
                endpoint=op.endpoint,
            )
        return url

    def _call(
        self,
        op: Op,
        method: str,
        url: str,
        tenant_id: str | None,
        params: dict[str, str] | None,
        body: Any = None,
    ) -> Any:
        """One request (retries included) to Resource Manager; its JSON answer, or a translated error."""
        from azure.core.rest import HttpRequest

        pipeline = self._pipeline(tenant_id)
        request = HttpRequest(method, url, params=params, json=body)
        started = time.monotonic()
        response = send(pipeline, request, op, timeout=self.timeout, where=self._base)
        log.debug(
            "%s %s -> %s in %.3f s (x-ms-request-id %s)",
            method,
            urlsplit(url).path,
            response.status_code,
            time.monotonic() - started,
            response.headers.get("x-ms-request-id", "-"),
        )
        if response.status_code != 200:
            raise status_error(op, response)
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceError(
                op.what, "Resource Manager's answer was not JSON", RETRY_FIX, endpoint=op.endpoint
            ) from exc

    def _pipeline(self, tenant_id: str | None) -> PipelineClient:
        """The pipeline for a tenant (``None``: the credential's own), built on first use."""
        with self._lock:
            pipeline = self._pipelines.get(tenant_id)
            if pipeline is not None:
                return pipeline
        if tenant_id is None:
            credential = self.credential
        elif self.credential_for_tenant is None:
            raise ValueError("a tenant_id needs ArmClient(credential_for_tenant=...)")
        else:
            credential = self.credential_for_tenant(tenant_id)
        with self._lock:
            if self._session is None:
                self._session = new_session()
            pipeline = self._pipelines.get(tenant_id)
            if pipeline is None:
                pipeline = pipeline_client(
                    self._base, self.timeout, self.retries, self._session, credential, self.cloud.arm_scope
                )
                self._pipelines[tenant_id] = pipeline
            return pipeline


def _seg(value: str) -> str:
    """One URL path segment (resource group names may hold parentheses and dots)."""
    return quote(value, safe="()._-")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
