"""Azure Resource Manager: tenants, subscriptions, workspaces, and cloud metadata documents.

This is the only module that speaks HTTP to Resource Manager. Every call goes through an azure-core
pipeline (request id, user agent, ``RetryPolicy``, ``BearerTokenCredentialPolicy``) whose retries
live inside one time budget per request: ``timeout`` seconds from the first attempt to the last
byte, whatever fails in between. Failures are translated once, here, into ``jupyter_amlflow.errors``
types that say what failed, why, and what to type next; no message carries a token.

Workspace discovery asks Resource Graph first (one POST per tenant, ``$skipToken`` paging). When
Resource Graph is denied or fails it lists each subscription's workspaces concurrently. Pages are
handed to ``on_found`` as they arrive, so a slow or denied subscription holds up nobody.

azure-core is imported when a client first sends, never at module import.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

from .errors import (
    AmlflowError,
    CloudError,
    ConnectTimeout,
    NotFound,
    PermissionDenied,
    ServiceError,
    SignInError,
)
from .pasteable import magic_option

if TYPE_CHECKING:
    from azure.core import PipelineClient
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.policies import HTTPPolicy, RetryPolicy, SansIOHTTPPolicy
    from azure.core.rest import HttpResponse

    from .clouds import Cloud

log = logging.getLogger(__name__)

WORKSPACE_API = "2024-10-01"
SUBSCRIPTIONS_API = "2022-12-01"
TENANTS_API = "2022-12-01"
RESOURCE_GRAPH_API = "2022-10-01"
WORKSPACE_TYPE = "Microsoft.MachineLearningServices/workspaces"

# Resource Graph (KQL). ``properties`` is kept whole so rows parse exactly like ARM's own answers.
WORKSPACE_QUERY = (
    "resources | where type =~ 'microsoft.machinelearningservices/workspaces' "
    "| project id, name, type, location, resourceGroup, subscriptionId, tenantId, kind, properties"
)
#: Most workers one discovery uses; also the connection pool size, so no connection is thrown away.
MAX_WORKERS = 32
#: Longest wait for a TCP/TLS connection, within the request's budget.
CONNECT_TIMEOUT = 10.0
# Idempotent methods azure-core retries after a dropped connection, plus POST: a Resource Graph
# query reads and never changes anything, so it is safe to send again.
_RETRY_METHODS = frozenset(["HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST"])
_ID_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)/?$",
    re.IGNORECASE,
)
_ACTION_RE = re.compile(r"perform action '(?P<action>[^']+)'(?: over scope '(?P<scope>[^']*)')?")
_AUTHORIZATION_URI_RE = re.compile(r'authorization_uri="(?P<uri>[^"]+)"', re.IGNORECASE)
_MUST_MATCH_RE = re.compile(r"must match the tenant '(?P<issuer>[^']+)'", re.IGNORECASE)
_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_DEADLINE = "jupyter_amlflow.deadline"
_MESSAGE_LIMIT = 300


# -- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TenantInfo:
    """A tenant the signed-in identity belongs to."""

    tenant_id: str
    display_name: str
    default_domain: str


@dataclass(frozen=True)
class SubscriptionInfo:
    """A subscription visible to the signed-in identity."""

    subscription_id: str
    display_name: str
    tenant_id: str
    state: str


@dataclass(frozen=True)
class WorkspaceInfo:
    """An Azure Machine Learning workspace as Resource Manager (or Resource Graph) reports it."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    tracking_uri: str | None  # properties.mlFlowTrackingUri, verbatim (private-link hosts kept)
    workspace_id: str | None
    tenant_id: str | None
    arm_id: str
    friendly_name: str | None

    @property
    def label(self) -> str:
        """``name — resource group — region``, for pickers."""
        return f"{self.name} — {self.resource_group} — {self.location}"


@dataclass
class Discovery:
    """What ``discover_workspaces`` found.

    Attributes:
        workspaces: Every workspace found, sorted by name, resource group and subscription.
        method: ``"Resource Graph"``, ``"per-subscription listing"`` or both joined by ``" and "``.
        errors: Failures keyed by subscription id (or tenant id, or ``"tenants"``); the rest was
            still listed.
    """

    workspaces: list[WorkspaceInfo]
    method: str
    errors: dict[str, AmlflowError] = field(default_factory=dict)


class WrongTenant(SignInError):
    """Resource Manager refused a token from another tenant; ``tenant_id`` is the one it wants."""

    def __init__(self, what: str, why: str = "", fix: str = "", *, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id
        super().__init__(what, why, fix)


class WorkspaceReference(Protocol):
    """What ``ArmClient.workspace`` needs of a reference (``references.WorkspaceRef`` has it)."""

    @property
    def subscription_id(self) -> str: ...
    @property
    def resource_group(self) -> str: ...
    @property
    def workspace(self) -> str: ...


# -- the client --------------------------------------------------------------------------------
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

    # -- public calls --------------------------------------------------------------------------
    def tenants(self) -> list[TenantInfo]:
        """The tenants the signed-in identity belongs to (paging followed)."""
        op = _Op("Resource Manager: GET tenants", "Could not list your tenants", "%amlflow list tenants")
        rows = self._paged(op, self._url("tenants"), {"api-version": TENANTS_API}, None)
        return [
            TenantInfo(
                tenant_id=str(r["tenantId"]),
                display_name=str(r.get("displayName") or r.get("defaultDomain") or r["tenantId"]),
                default_domain=str(r.get("defaultDomain") or ""),
            )
            for r in rows
            if isinstance(r, dict) and r.get("tenantId")
        ]

    def subscriptions(self, *, tenant_id: str | None = None) -> list[SubscriptionInfo]:
        """The subscriptions visible in the signed-in tenant, or in ``tenant_id`` (paging followed)."""
        where = f" in tenant {tenant_id}" if tenant_id else ""
        command = "%amlflow list subscriptions" + (" " + magic_option("--tenant", tenant_id) if tenant_id else "")
        op = _Op("Resource Manager: GET subscriptions", f"Could not list your subscriptions{where}", command)
        rows = self._paged(op, self._url("subscriptions"), {"api-version": SUBSCRIPTIONS_API}, tenant_id)
        return [
            SubscriptionInfo(
                subscription_id=str(r["subscriptionId"]),
                display_name=str(r.get("displayName") or r["subscriptionId"]),
                tenant_id=str(r.get("tenantId") or tenant_id or ""),
                state=str(r.get("state") or ""),
            )
            for r in rows
            if isinstance(r, dict) and r.get("subscriptionId")
        ]

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
        op = _Op(
            f"Resource Manager: GET workspace {name}",
            f"Could not read workspace '{name}' (resource group '{rg}', subscription {sub})",
            "%amlflow connect",
            subscription_id=sub,
            resource_group=rg,
            workspace=name,
        )
        body = self._call(op, "GET", self._url(_workspace_path(sub, rg, name)), None, {"api-version": WORKSPACE_API})
        info = _workspace_from_json(body)
        if info is None:
            raise ServiceError(
                op.what, "Resource Manager's answer did not describe a workspace", _RETRY_FIX, endpoint=op.endpoint
            )
        return info

    def workspaces(
        self, subscription_id: str, resource_group: str | None = None, *, tenant_id: str | None = None
    ) -> list[WorkspaceInfo]:
        """The workspaces of one subscription, or of one resource group in it (paging followed)."""
        return self._list_workspaces(subscription_id, resource_group, tenant_id, None)

    def discover_workspaces(
        self,
        subscriptions: Sequence[str] | None = None,
        *,
        on_found: Callable[[list[WorkspaceInfo]], None] | None = None,
        max_workers: int = 16,
        all_tenants: bool = False,
        tenant_ids: Sequence[str] | None = None,
    ) -> Discovery:
        """Every workspace the identity can read, in as few round trips as possible.

        Resource Graph is asked first (one POST per tenant and page). When it is denied or fails,
        each subscription's workspaces are listed concurrently; a failing subscription lands in
        ``errors`` and the others are listed all the same. (Resource Graph simply has no rows for
        a subscription the identity cannot read, so that path reports no per-subscription errors.)

        Args:
            subscriptions: Only these subscription ids (default: every visible one), looked for in
                the signed-in tenant, or in every tenant with ``all_tenants``.
            on_found: Called with each batch of newly found workspaces as it arrives (one call per
                page), from the calling thread, one call at a time, before this method returns.
            max_workers: Requests in flight at once (at most ``MAX_WORKERS``).
            all_tenants: Cover every tenant the identity belongs to (needs ``credential_for_tenant``).
            tenant_ids: Cover these tenants (needs ``credential_for_tenant``); saves listing the
                tenants again when the caller has them already.

        Raises:
            SignInError: The signed-in tenant gave no token, or refused it.
            AmlflowError: Listing the signed-in tenant's subscriptions failed.
        """
        if (all_tenants or tenant_ids) and self.credential_for_tenant is None:
            raise ValueError("discovery in other tenants needs ArmClient(credential_for_tenant=...)")
        workers = max(1, min(int(max_workers), MAX_WORKERS))
        return _Discoverer(self, subscriptions, on_found, workers).run(all_tenants, tenant_ids)

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

    # -- the pieces discovery is made of -------------------------------------------------------
    def _list_workspaces(
        self,
        subscription_id: str,
        resource_group: str | None,
        tenant_id: str | None,
        emit: Callable[[list[WorkspaceInfo]], None] | None,
    ) -> list[WorkspaceInfo]:
        if resource_group:
            endpoint = f"Resource Manager: GET workspaces of resource group {resource_group}"
            what = (
                f"Could not list the workspaces of resource group '{resource_group}' in subscription {subscription_id}"
            )
        else:
            endpoint = f"Resource Manager: GET workspaces of subscription {subscription_id}"
            what = f"Could not list the workspaces of subscription {subscription_id}"
        op = _Op(
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
            infos = [w for w in (_workspace_from_json(r, tenant_id) for r in rows) if w is not None]
            found.extend(infos)
            if emit is not None and infos:
                emit(infos)

        self._paged(op, self._url(path), {"api-version": WORKSPACE_API}, tenant_id, page)
        return found

    def _resource_graph(
        self,
        tenant_id: str | None,
        subscriptions: Sequence[str] | None,
        emit: Callable[[list[WorkspaceInfo]], None],
    ) -> int:
        """Ask Resource Graph for the tenant's workspaces; each page goes to ``emit``. Returns the count."""
        op = _Op(
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
                raise ServiceError(op.what, "Resource Graph's answer had no rows", _RETRY_FIX, endpoint=op.endpoint)
            infos = [w for w in (_workspace_from_json(r, tenant_id) for r in rows) if w is not None]
            count += len(infos)
            if infos:
                emit(infos)
            token = answer.get("$skipToken")
            if not token:
                return count
            options["$skipToken"] = token

    # -- HTTP ----------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return self._base + path.lstrip("/")

    def _paged(
        self,
        op: _Op,
        url: str,
        params: dict[str, str],
        tenant_id: str | None,
        on_page: Callable[[list[Any]], None] | None = None,
    ) -> list[Any]:
        """GET a list and follow ``nextLink`` to the end; returns every ``value`` item."""
        items: list[Any] = []
        next_url: str | None = url
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

    def _next_link(self, op: _Op, link: object) -> str:
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
        op: _Op,
        method: str,
        url: str,
        tenant_id: str | None,
        params: dict[str, str] | None,
        body: Any = None,
    ) -> Any:
        """One request (retries included) to Resource Manager; its JSON answer, or a translated error."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError
        from azure.core.rest import HttpRequest

        pipeline = self._pipeline(tenant_id)
        request = HttpRequest(method, url, params=params, json=body)
        started = time.monotonic()
        try:
            response = pipeline.send_request(request, retry_on_methods=_RETRY_METHODS)
        except _OutOfTime as exc:
            raise _timeout_error(op, self.timeout, self._base) from exc
        except ClientAuthenticationError as exc:
            raise _token_error(op, exc) from exc
        except AzureError as exc:
            raise _transport_error(op, exc, self.timeout, self._base) from exc
        log.debug(
            "%s %s -> %s in %.3f s (x-ms-request-id %s)",
            method,
            urlsplit(url).path,
            response.status_code,
            time.monotonic() - started,
            response.headers.get("x-ms-request-id", "-"),
        )
        if response.status_code != 200:
            raise _status_error(op, response)
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceError(
                op.what, "Resource Manager's answer was not JSON", _RETRY_FIX, endpoint=op.endpoint
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
                self._session = _new_session()
            pipeline = self._pipelines.get(tenant_id)
            if pipeline is None:
                pipeline = _pipeline_client(
                    self._base, self.timeout, self.retries, self._session, credential, self.cloud.arm_scope
                )
                self._pipelines[tenant_id] = pipeline
            return pipeline


def check_metadata_url(url: str) -> None:
    """Refuse a cloud metadata URL that is not https (no request is sent).

    Raises:
        CloudError: It is not an https:// URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.netloc:
        # The document decides where sign-ins (a service principal's secret included) and tokens go:
        # over plain http anyone on the path could rewrite it.
        raise CloudError(
            f"Cannot fetch cloud metadata from {_short(url, 80)!r}",
            "It is not an https:// URL, and the document decides where sign-ins and tokens go",
            "Give the ARM metadata URL over https, e.g. "
            "%amlflow clouds add https://HOST/metadata/endpoints?api-version=2019-05-01",
        )


def fetch_cloud_metadata(url: str, *, timeout: float = 30.0) -> object:
    """GET an ARM ``/metadata/endpoints`` document (unauthenticated) and return its JSON.

    Raises:
        CloudError: The URL answered with an error or with something other than JSON.
        ConnectTimeout: No answer within ``timeout``.
        ServiceError: The host could not be reached.
    """
    from azure.core.exceptions import AzureError
    from azure.core.rest import HttpRequest

    check_metadata_url(url)
    parts = urlsplit(url)
    endpoint = f"Cloud metadata: GET {parts.scheme}://{parts.netloc}{parts.path}"
    op = _Op(
        endpoint, f"Could not fetch the cloud metadata document {parts.netloc}{parts.path}", "%amlflow clouds add URL"
    )
    session = _new_session()
    try:
        client = _pipeline_client(f"{parts.scheme}://{parts.netloc}/", timeout, 3, session, None, None)
        try:
            response = client.send_request(HttpRequest("GET", url))
        except _OutOfTime as exc:
            raise _timeout_error(op, timeout, url) from exc
        except AzureError as exc:
            raise _transport_error(op, exc, timeout, url) from exc
        if response.status_code != 200:
            raise CloudError(
                op.what,
                f"It answered {response.status_code} {response.reason or ''}".strip(),
                "Check the URL (it usually ends /metadata/endpoints?api-version=2019-05-01)",
            )
        try:
            return response.json()
        except ValueError as exc:
            raise CloudError(
                op.what, "The answer was not JSON", "Check that the URL points at the metadata document"
            ) from exc
    finally:
        session.close()


# -- discovery ---------------------------------------------------------------------------------
class _Discoverer:
    """One ``discover_workspaces`` call.

    Requests run on a thread pool; this object's ``run`` loop, on the calling thread, reacts to
    their results (starting the next requests) and hands pages to ``on_found``. No request ever
    waits for another, so a slow one occupies one worker and nothing else.
    """

    def __init__(
        self,
        client: ArmClient,
        subscriptions: Sequence[str] | None,
        on_found: Callable[[list[WorkspaceInfo]], None] | None,
        workers: int,
    ) -> None:
        self.client = client
        self.wanted = [s.strip() for s in subscriptions] if subscriptions else None
        self.wanted_keys = {s.lower() for s in self.wanted} if self.wanted else None
        self.on_found = on_found
        self.workers = workers
        self.events: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()
        self.pending = 0
        self.found: dict[str, WorkspaceInfo] = {}
        self.errors: dict[str, AmlflowError] = {}
        self.methods: set[str] = set()
        self.all_tenants = False
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None

    def run(self, all_tenants: bool, tenant_ids: Sequence[str] | None) -> Discovery:
        self.all_tenants = all_tenants or bool(tenant_ids)
        self.pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="amlflow-arm")
        try:
            if tenant_ids:
                for tenant_id in dict.fromkeys(tenant_ids):
                    self._start_tenant(tenant_id)
            elif all_tenants:
                self._spawn(self.client.tenants, self._tenants_done)
            else:
                self._start_tenant(None)
            while self.pending:
                kind, payload, then = self.events.get()
                if kind == "page":
                    self._deliver(payload)
                else:
                    self._finish(payload, then)
        finally:
            # Left early (an error, Ctrl-C, on_found raising): queued requests are dropped; the
            # ones in flight end within their own timeout.
            self.pool.shutdown(wait=False, cancel_futures=True)
        workspaces = sorted(
            self.found.values(), key=lambda w: (w.name.lower(), w.resource_group.lower(), w.subscription_id)
        )
        order = ["Resource Graph", "per-subscription listing"]
        method = " and ".join(m for m in order if m in self.methods) or "none"
        return Discovery(workspaces, method, self.errors)

    # -- plumbing ------------------------------------------------------------------------------
    def _spawn(self, work: Callable[[], Any], then: Callable[[Any, AmlflowError | None], None]) -> None:
        assert self.pool is not None
        self.pending += 1
        future = self.pool.submit(work)
        future.add_done_callback(lambda f: self.events.put(("done", f, then)))

    def _emit(self, infos: list[WorkspaceInfo]) -> None:
        """Called on worker threads: pass a page to the calling thread."""
        self.events.put(("page", infos, None))

    def _finish(self, future: concurrent.futures.Future[Any], then: Callable[[Any, AmlflowError | None], None]) -> None:
        self.pending -= 1
        error = future.exception()
        if error is not None and not isinstance(error, AmlflowError):
            raise error  # a bug, not a service failure: do not hide it in ``errors``
        then(None if error is not None else future.result(), error)

    def _deliver(self, infos: list[WorkspaceInfo]) -> None:
        new = []
        for w in infos:
            if self.wanted_keys is not None and w.subscription_id.lower() not in self.wanted_keys:
                continue
            key = w.arm_id.lower()
            if key not in self.found:
                self.found[key] = w
                new.append(w)
        if new and self.on_found is not None:
            self.on_found(new)

    # -- steps ---------------------------------------------------------------------------------
    def _tenants_done(self, tenants: list[TenantInfo] | None, error: AmlflowError | None) -> None:
        if error is not None or not tenants:
            if error is not None:
                self.errors["tenants"] = error
            self._start_tenant(None)
            return
        for tenant in tenants:
            self._start_tenant(tenant.tenant_id)

    def _start_tenant(self, tenant_id: str | None) -> None:
        # Across tenants, a subscription filter would name other tenants' subscriptions to each
        # query; filter the rows here instead.
        only = self.wanted if not self.all_tenants else None
        self._spawn(
            lambda: self.client._resource_graph(tenant_id, only, self._emit),
            lambda _count, error: self._graph_done(tenant_id, error),
        )

    def _graph_done(self, tenant_id: str | None, error: AmlflowError | None) -> None:
        if error is None:
            self.methods.add("Resource Graph")
            return
        if isinstance(error, SignInError):
            self._tenant_failed(tenant_id, error)  # listing would fail the same way
            return
        log.info("Resource Graph unavailable (%s); listing each subscription instead", error)
        self.methods.add("per-subscription listing")
        if self.wanted and tenant_id is None:
            for sub in self.wanted:  # known already: no need to list subscriptions first
                self._list(sub, None)
            return
        self._spawn(
            lambda: self.client.subscriptions(tenant_id=tenant_id),
            lambda subs, err: self._subscriptions_done(tenant_id, subs, err),
        )

    def _subscriptions_done(
        self, tenant_id: str | None, subs: list[SubscriptionInfo] | None, error: AmlflowError | None
    ) -> None:
        if error is not None:
            self._tenant_failed(tenant_id, error)
            return
        for sub in subs or []:
            if self.wanted_keys is None or sub.subscription_id.lower() in self.wanted_keys:
                self._list(sub.subscription_id, tenant_id)

    def _list(self, subscription_id: str, tenant_id: str | None) -> None:
        self._spawn(
            lambda: self.client._list_workspaces(subscription_id, None, tenant_id, self._emit),
            lambda _ws, error: self._listed(subscription_id, error),
        )

    def _listed(self, subscription_id: str, error: AmlflowError | None) -> None:
        if error is not None:
            self.errors[subscription_id] = error

    def _tenant_failed(self, tenant_id: str | None, error: AmlflowError) -> None:
        if tenant_id is None:
            raise error  # the signed-in tenant itself failed: there is nothing to show
        self.errors[tenant_id] = error


# -- parsing -----------------------------------------------------------------------------------
def _workspace_from_json(row: object, tenant_hint: str | None = None) -> WorkspaceInfo | None:
    """A workspace from an ARM resource or a Resource Graph row (``None`` if it is not one)."""
    if not isinstance(row, dict):
        return None
    arm_id = str(row.get("id") or "")
    match = _ID_RE.match(arm_id)
    if match is None:
        log.debug("skipping a row that is not a workspace id: %.120s", arm_id)
        return None
    props = row.get("properties") if isinstance(row.get("properties"), dict) else {}
    identity = row.get("identity") if isinstance(row.get("identity"), dict) else {}
    uri = props.get("mlFlowTrackingUri")
    return WorkspaceInfo(
        subscription_id=match["sub"],
        # From the id, not Resource Graph's resourceGroup column, which is lowercased.
        resource_group=match["rg"],
        name=str(row.get("name") or match["ws"]),
        location=str(row.get("location") or ""),
        tracking_uri=uri if isinstance(uri, str) and uri else None,
        workspace_id=_str_or_none(props.get("workspaceId")),
        tenant_id=_str_or_none(props.get("tenantId") or row.get("tenantId") or identity.get("tenantId") or tenant_hint),
        arm_id=arm_id.rstrip("/"),
        friendly_name=_str_or_none(props.get("friendlyName")),
    )


def _str_or_none(value: object) -> str | None:
    return str(value) if value else None


def _workspace_path(subscription_id: str, resource_group: str, name: str) -> str:
    return (
        f"subscriptions/{_seg(subscription_id)}/resourceGroups/{_seg(resource_group)}"
        f"/providers/{WORKSPACE_TYPE}/{_seg(name)}"
    )


def _seg(value: str) -> str:
    """One URL path segment (resource group names may hold parentheses and dots)."""
    return quote(value, safe="()._-")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _short(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """One line, at most ``limit`` characters: service messages go into one-line errors."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- error translation -------------------------------------------------------------------------
_RETRY_FIX = "Try again in a minute; if it keeps failing, check the Azure status page"


@dataclass(frozen=True)
class _Op:
    """What a request was for, in the words its errors use."""

    endpoint: str  # "Resource Manager: GET workspace w1"
    what: str  # "Could not read workspace 'w1' (...)"
    command: str  # the command that does this again: "%amlflow connect"
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None

    def again_in_tenant(self, tenant_id: str) -> str:
        """The command to type to do this again, signed in to ``tenant_id``.

        The tenant comes from the server's answer: written inert (``pasteable``), as are the names.
        """
        if self.workspace and self.command == "%amlflow connect":
            return " ".join(
                (
                    "%amlflow connect",
                    magic_option("--tenant", tenant_id),
                    magic_option("--subscription", self.subscription_id or ""),
                    magic_option("--resource-group", self.resource_group or ""),
                    magic_option("--workspace", self.workspace),
                )
            )
        return f"{self.command} {magic_option('--tenant', tenant_id)}"


def _arm_error(response: HttpResponse) -> tuple[str, str]:
    """ARM's ``error.code`` and ``error.message`` (either may be empty; the message is whole)."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text() or ""
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        return str(inner.get("code") or ""), str(inner.get("message") or "")
    return "", ""


def _status_error(op: _Op, response: HttpResponse) -> AmlflowError:
    """Translate a non-200 answer."""
    status = response.status_code
    code, message = _arm_error(response)
    short = _short(message).rstrip(".")
    said = f"{status} {code}".strip() + (f": {short}" if short else "")
    if status == 401:
        return _unauthorized(op, response, code, said)
    if status == 403:
        return _forbidden(op, code, message, said)
    if status == 404:
        return NotFound(
            op.what,
            _not_found_why(op, code, said),
            "See the workspaces you can use: %amlflow list workspaces",
            endpoint=op.endpoint,
        )
    if status == 429:
        wait = response.headers.get("Retry-After")
        asked = f"; it asked to wait {wait} s, longer than the time left" if wait else ""
        return ServiceError(
            op.what,
            f"Resource Manager is throttling requests ({said}){asked}",
            f"Wait a minute, then run {op.command} again",
            endpoint=op.endpoint,
        )
    if status >= 500:
        return ServiceError(
            op.what, f"Resource Manager kept failing ({said}), retries included", _RETRY_FIX, endpoint=op.endpoint
        )
    return ServiceError(op.what, f"Resource Manager answered {said}", _RETRY_FIX, endpoint=op.endpoint)


def _unauthorized(op: _Op, response: HttpResponse, code: str, said: str) -> AmlflowError:
    if code == "InvalidAuthenticationTokenTenant":
        tenant = _tenant_from_challenge(response)
        where = f"Subscription {op.subscription_id}" if op.subscription_id else "The resource"
        if tenant:
            return WrongTenant(
                op.what,
                f"{where} belongs to tenant {tenant}, and this sign-in is for another tenant",
                f"Sign in to that tenant: {op.again_in_tenant(tenant)}",
                tenant_id=tenant,
            )
        return WrongTenant(
            op.what,
            f"{where} belongs to another tenant than this sign-in",
            f"Sign in to the subscription's tenant: {op.command} --tenant <tenant id or domain>",
        )
    return SignInError(
        op.what,
        f"Resource Manager refused the sign-in ({said})",
        f"Sign in again: %amlflow logout, then {op.command}",
    )


def _tenant_from_challenge(response: HttpResponse) -> str | None:
    """The tenant ARM wants, from ``WWW-Authenticate`` (or, failing that, its message)."""
    challenge = response.headers.get("WWW-Authenticate") or ""
    match = _AUTHORIZATION_URI_RE.search(challenge)
    if match:
        segments = [s for s in urlsplit(match["uri"]).path.split("/") if s]
        if segments and segments[-1].isprintable():  # it goes into a command to type
            return segments[-1]
    _code, message = _arm_error(response)
    must = _MUST_MATCH_RE.search(message)
    guid = _GUID_RE.search(must["issuer"]) if must else None
    return guid.group(0) if guid else None


def _forbidden(op: _Op, code: str, message: str, said: str) -> PermissionDenied:
    match = _ACTION_RE.search(message)
    if match is None:
        return PermissionDenied(
            op.what,
            f"Resource Manager refused ({said})",
            "Ask an owner of the subscription or workspace for access, then try again",
            endpoint=op.endpoint,
        )
    action, scope = _short(match["action"], 200), _short(match["scope"] or "this scope", 400)
    if op.workspace:
        fix = (
            f"Ask an owner for a role that allows it, such as AzureML Data Scientist on workspace "
            f"'{op.workspace}'; then run {op.command} again"
        )
    else:
        fix = (
            "Ask an owner for a role that allows it, such as Reader or AzureML Data Scientist on the "
            f"subscription; then run {op.command} again"
        )
    return PermissionDenied(
        op.what,
        f"The signed-in identity is not allowed '{action}' on {scope} ({code or 'AuthorizationFailed'})",
        fix,
        action=action,
        endpoint=op.endpoint,
    )


def _not_found_why(op: _Op, code: str, said: str) -> str:
    if code == "SubscriptionNotFound" and op.subscription_id:
        return f"Subscription {op.subscription_id} does not exist or is not visible to this sign-in"
    if code == "ResourceGroupNotFound" and op.resource_group:
        return f"Resource group '{op.resource_group}' does not exist in subscription {op.subscription_id}"
    if code == "ResourceNotFound" and op.workspace:
        return f"There is no workspace '{op.workspace}' in resource group '{op.resource_group}'"
    return f"Resource Manager answered {said}"


def _token_error(op: _Op, exc: Exception) -> SignInError:
    reason = _short(getattr(exc, "message", None) or str(exc) or type(exc).__name__, 200)
    return SignInError(
        op.what,
        f"No Resource Manager token could be had: {reason}",
        f"Sign in again: %amlflow logout, then {op.command}",
    )


def _timeout_error(op: _Op, timeout: float, url: str) -> ConnectTimeout:
    host = urlsplit(url).netloc
    more = max(60, int(timeout * 2))
    return ConnectTimeout(
        f"{op.endpoint} did not answer within {timeout:g} s",
        f"{host} is slow or unreachable from this kernel",
        f"Try again; if it persists, check the network and proxy (HTTPS_PROXY) to {host}, or allow more time: "
        f"--timeout {more} (%config AmlflowMagics.timeout = {more})",
        endpoint=op.endpoint,
    )


def _transport_error(op: _Op, exc: Exception, timeout: float, url: str) -> AmlflowError:
    from azure.core.exceptions import (
        ServiceRequestError,
        ServiceRequestTimeoutError,
        ServiceResponseError,
        ServiceResponseTimeoutError,
    )

    if isinstance(exc, (ServiceRequestTimeoutError, ServiceResponseTimeoutError)):
        return _timeout_error(op, timeout, url)
    host = urlsplit(url).netloc
    if isinstance(exc, ServiceRequestError):
        why = f"{host} could not be reached ({_cause(exc)})"
    elif isinstance(exc, ServiceResponseError):
        why = f"{host} dropped the connection, retries included ({_cause(exc)})"
    else:
        why = f"The request to {host} failed ({_cause(exc)})"
    return ServiceError(
        op.what,
        why,
        f"Check the network and proxy settings (HTTPS_PROXY), then run {op.command} again",
        endpoint=op.endpoint,
    )


def _cause(exc: BaseException) -> str:
    """The innermost cause's class name: enough to tell DNS from TLS from a reset, and never a URL."""
    inner: BaseException = exc
    seen = 0
    while seen < 10:
        nested = getattr(inner, "inner_exception", None) or inner.__cause__ or inner.__context__
        if nested is None or nested is inner:
            break
        inner = nested
        seen += 1
    return type(inner).__name__


# -- the pipeline --------------------------------------------------------------------------------
class _OutOfTime(Exception):
    """The request's time budget ran out before another attempt could start.

    Not an azure-core error on purpose: ``RetryPolicy`` retries those, and this must end the request.
    """


def _new_session() -> Any:
    """A ``requests`` session whose pool keeps a connection per discovery worker."""
    import requests

    session = requests.Session()
    adapter = _adapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _adapter() -> Any:
    """An ``HTTPAdapter`` that reads the CA bundle once, not once per new connection.

    requests hands urllib3 the bundle's path, and urllib3 parses the file for every connection it
    opens: 50-100 ms of CPU each for a large bundle (``REQUESTS_CA_BUNDLE`` with a corporate or
    sandbox CA added), which a discovery opening a connection per worker pays many times over.
    Here each bundle is loaded into one ``SSLContext`` that the pool's connections share; which
    bundle applies (environment, ``verify=``) is still decided by requests, per request.
    """
    import ssl

    from requests.adapters import HTTPAdapter
    from requests.utils import DEFAULT_CA_BUNDLE_PATH
    from urllib3.util.retry import Retry
    from urllib3.util.ssl_ import create_urllib3_context

    class SharedContextAdapter(HTTPAdapter):
        def __init__(self) -> None:
            self._contexts: dict[str, ssl.SSLContext] = {}
            self._contexts_lock = threading.Lock()
            # azure-core's RetryPolicy does the retrying (as RequestsTransport's own sessions do).
            no_retries = Retry(total=False, redirect=False, raise_on_status=False)
            super().__init__(pool_connections=4, pool_maxsize=MAX_WORKERS, max_retries=no_retries)

        def _context(self, verify: object) -> ssl.SSLContext | None:
            path = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
            if not isinstance(path, str) or not os.path.isfile(path):
                return None  # no verification, or a CA directory: leave it to urllib3
            with self._contexts_lock:
                context = self._contexts.get(path)
                if context is None:
                    context = create_urllib3_context()
                    context.load_verify_locations(cafile=path)
                    self._contexts[path] = context
                return context

        def build_connection_pool_key_attributes(
            self, request: Any, verify: Any, cert: Any = None
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
            context = self._context(verify) if host_params.get("scheme") == "https" else None
            if context is not None:
                pool_kwargs.pop("ca_certs", None)
                pool_kwargs["ssl_context"] = context
            return host_params, pool_kwargs

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn, url, verify, cert)
            # The pool's connections get our context (conn_kw): the bundle is in it already.
            if getattr(conn, "conn_kw", {}).get("ssl_context") in self._contexts.values():
                conn.ca_certs = None

    return SharedContextAdapter()


def _pipeline_client(
    base_url: str,
    timeout: float,
    retries: int,
    session: Any,
    credential: TokenCredential | None,
    scope: str | None,
) -> PipelineClient:
    """An azure-core pipeline: ids, user agent, deadline-bound retries, bearer token, per-attempt timeouts."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import (
        BearerTokenCredentialPolicy,
        HeadersPolicy,
        RedirectPolicy,
        RequestIdPolicy,
        UserAgentPolicy,
    )
    from azure.core.pipeline.transport import RequestsTransport

    from . import __version__

    connect = min(CONNECT_TIMEOUT, timeout)
    policies: list[Any] = [
        RequestIdPolicy(),
        HeadersPolicy({"Accept": "application/json"}),
        UserAgentPolicy(user_agent=f"jupyter_amlflow/{__version__}"),
    ]
    if credential is None:
        policies.append(RedirectPolicy())  # unauthenticated documents only: a token never follows a redirect
    policies.append(_deadline_retry_policy(timeout, retries))
    if credential is not None:
        assert scope is not None
        policies.append(BearerTokenCredentialPolicy(credential, scope))
    policies.append(_attempt_timeout_policy(connect, timeout))
    transport = RequestsTransport(
        session=session, session_owner=False, connection_timeout=connect, read_timeout=timeout
    )
    return PipelineClient(base_url=base_url, policies=policies, transport=transport)


def _deadline_retry_policy(budget: float, retries: int) -> RetryPolicy:
    """azure-core's ``RetryPolicy``, bounded by one deadline per request.

    The deadline is set when the request enters the policy. A retry whose wait (``Retry-After``
    or backoff) would not end before the deadline is not made: the last answer or error is
    returned as it is, so the caller reports what actually went wrong (throttling, a 503, a
    dropped connection) instead of sleeping past the deadline and reporting a timeout.
    """
    from azure.core.pipeline.policies import RetryPolicy

    class DeadlineRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
        def send(self, request: Any) -> Any:
            deadline = time.monotonic() + budget
            request.context[_DEADLINE] = deadline
            # configure_retries() reads its per-request settings from these options, and pops
            # this one, so it never reaches the transport.
            request.context.options[_DEADLINE] = deadline
            return super().send(request)

        def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
            deadline = options.pop(_DEADLINE, None)
            settings = super().configure_retries(options)
            settings[_DEADLINE] = deadline if deadline is not None else time.monotonic() + budget
            return settings

        def increment(self, settings: dict[str, Any], response: Any = None, error: Exception | None = None) -> bool:
            if not super().increment(settings, response=response, error=error):
                return False
            wait = None
            if error is None and hasattr(response, "http_response"):
                wait = self.get_retry_after(response)
            if wait is None:
                wait = self.get_backoff_time(settings)
            left = settings[_DEADLINE] - time.monotonic()
            if wait >= left:
                log.debug("not retrying: the next attempt would wait %.1f s, %.1f s are left", wait, left)
                return False
            return True

    return DeadlineRetryPolicy(
        retry_total=retries,
        retry_connect=retries,
        retry_read=retries,
        retry_status=retries,
        retry_backoff_factor=0.4,
        retry_backoff_max=8,
        timeout=budget,
    )


def _attempt_timeout_policy(connect: float, read: float) -> SansIOHTTPPolicy[Any, Any] | HTTPPolicy[Any, Any]:
    """Per attempt: no starting after the deadline, and no waiting on the socket past it."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class AttemptTimeoutPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            deadline = request.context.get(_DEADLINE)
            if deadline is None:
                return
            left = deadline - time.monotonic()
            if left <= 0.01:
                raise _OutOfTime
            request.context.options["connection_timeout"] = min(connect, left)
            request.context.options["read_timeout"] = min(read, left)

    return AttemptTimeoutPolicy()


__all__ = [
    "MAX_WORKERS",
    "ArmClient",
    "Discovery",
    "SubscriptionInfo",
    "TenantInfo",
    "WorkspaceInfo",
    "WorkspaceReference",
    "WrongTenant",
    "check_metadata_url",
    "fetch_cloud_metadata",
]
