"""Workspace discovery: every workspace one sign-in can use, in as few round trips as possible.

``discover`` is the one discovery the panel and ``%amlflow list workspaces`` share (they used to
disagree for an identity in several tenants, when the list looked in the signed-in tenant only):
the tenants, their subscriptions (the panel's lists), then the workspaces of every tenant at once.
``only_tenant`` narrows it to the signed-in tenant, for ``%amlflow list workspaces --tenant T``.

The workspaces come from ``discover_workspaces``: Resource Graph first (one POST per tenant and
page); when Resource Graph is denied or fails, each subscription's workspaces are listed
concurrently. Pages are handed to ``on_found`` as they arrive, so a slow or denied subscription
holds up nobody. Every request goes through the ``ArmClient`` given: this module decides which
requests to make and in what order, never how they are sent.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AmlflowError, SignInError
from .resources import SubscriptionInfo, TenantInfo, WorkspaceInfo
from .transport import MAX_WORKERS

if TYPE_CHECKING:
    from .client import ArmClient

log = logging.getLogger(__name__)


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


@dataclass
class Found:
    """What ``discover`` found.

    Attributes:
        tenants: The identity's tenants (empty when they could not be listed).
        subscriptions: The subscriptions of those tenants, by display name.
        discovery: The workspaces, and how they were found.
        notes: What could not be listed, one short line each; the rest was listed all the same.
    """

    tenants: list[TenantInfo]
    subscriptions: list[SubscriptionInfo]
    discovery: Discovery
    notes: list[str] = field(default_factory=list)

    @property
    def workspaces(self) -> list[WorkspaceInfo]:
        """Every workspace found, sorted by name, resource group and subscription."""
        return self.discovery.workspaces


def discover(
    client: ArmClient,
    signed_in_tenant: str,
    *,
    subscriptions: Sequence[str] | None = None,
    only_tenant: bool = False,
    on_lists: Callable[[list[TenantInfo], list[SubscriptionInfo]], object] | None = None,
    on_found: Callable[[list[WorkspaceInfo]], object] | None = None,
) -> Found:
    """Tenants, subscriptions and workspaces visible to the client's sign-in.

    Args:
        client: The sign-in's Resource Manager client (``Session.arm``: it reaches other tenants).
        signed_in_tenant: The tenant the sign-in is for.
        subscriptions: Only these subscription ids.
        only_tenant: Stay in ``signed_in_tenant`` instead of covering every tenant.
        on_lists: Called with the tenants and subscriptions once they are known (before the
            workspaces), from the calling thread.
        on_found: Called with each batch of workspaces as it arrives (``discover_workspaces``).

    Raises:
        SignInError: The signed-in tenant gave no token, or refused it.
        AmlflowError: Listing the signed-in tenant's subscriptions failed.
    """
    notes: list[str] = []
    tenants: list[TenantInfo] = []
    if not only_tenant:
        try:
            tenants = client.tenants()
        except AmlflowError as exc:  # the signed-in tenant's lists still work without the tenant list
            notes.append(exc.what)
    found = {s.subscription_id: s for s in client.subscriptions()}
    others = [t.tenant_id for t in tenants if t.tenant_id != signed_in_tenant]
    for tenant_id in others:
        try:
            found.update({s.subscription_id: s for s in client.subscriptions(tenant_id=tenant_id)})
        except AmlflowError as exc:  # another tenant may demand its own sign-in; the rest still lists
            notes.append(exc.what)
    listed = sorted(found.values(), key=lambda s: s.display_name.lower())
    if on_lists is not None:
        on_lists(tenants, listed)
    tenant_ids = [signed_in_tenant, *others] if others else None
    discovery = discover_workspaces(client, subscriptions, on_found=on_found, tenant_ids=tenant_ids)
    notes.extend(f"{where}: {error.what}" for where, error in discovery.errors.items())
    return Found(tenants, listed, discovery, notes)


def discover_workspaces(
    client: ArmClient,
    subscriptions: Sequence[str] | None = None,
    *,
    on_found: Callable[[list[WorkspaceInfo]], object] | None = None,
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
        client: The sign-in's Resource Manager client.
        subscriptions: Only these subscription ids (default: every visible one), looked for in
            the signed-in tenant, or in every tenant with ``all_tenants``.
        on_found: Called with each batch of newly found workspaces as it arrives (one call per
            page), from the calling thread, one call at a time, before this function returns.
        max_workers: Requests in flight at once (at most ``MAX_WORKERS``).
        all_tenants: Cover every tenant the identity belongs to (needs ``credential_for_tenant``).
        tenant_ids: Cover these tenants (needs ``credential_for_tenant``); saves listing the
            tenants again when the caller has them already.

    Raises:
        SignInError: The signed-in tenant gave no token, or refused it.
        AmlflowError: Listing the signed-in tenant's subscriptions failed.
    """
    if (all_tenants or tenant_ids) and client.credential_for_tenant is None:
        raise ValueError("discovery in other tenants needs ArmClient(credential_for_tenant=...)")
    workers = max(1, min(int(max_workers), MAX_WORKERS))
    return _Discoverer(client, subscriptions, on_found, workers).run(all_tenants, tenant_ids)


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
        on_found: Callable[[list[WorkspaceInfo]], object] | None,
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
            lambda: self.client.resource_graph_workspaces(tenant_id, only, self._emit),
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
            lambda: self.client.workspaces(subscription_id, tenant_id=tenant_id, on_page=self._emit),
            lambda _ws, error: self._listed(subscription_id, error),
        )

    def _listed(self, subscription_id: str, error: AmlflowError | None) -> None:
        if error is not None:
            self.errors[subscription_id] = error

    def _tenant_failed(self, tenant_id: str | None, error: AmlflowError) -> None:
        if tenant_id is None:
            raise error  # the signed-in tenant itself failed: there is nothing to show
        self.errors[tenant_id] = error
