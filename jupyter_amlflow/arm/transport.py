"""Sending to Resource Manager: the pipeline every request leaves through, and nothing else.

Every request goes through an azure-core pipeline (request id, user agent, ``RetryPolicy``, and
``BearerTokenCredentialPolicy`` when a credential is given) over a ``requests`` session whose pool
keeps a connection per discovery worker. Retries live inside one time budget per request:
``timeout`` seconds from the first attempt to the last byte, whatever fails in between. ``send``
is the one place a request is sent; what goes wrong on the way comes back as a
``jupyter_amlflow.errors`` type (``failures`` words it).

azure-core and requests are imported when a pipeline is first built or used, never at module
import: ``%load_ext jupyter_amlflow`` and ``import jupyter_amlflow.arm`` load no azure library.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import __version__
from .failures import Op, timeout_error, token_error, transport_error

if TYPE_CHECKING:
    from azure.core import PipelineClient
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.policies import HTTPPolicy, RetryPolicy, SansIOHTTPPolicy
    from azure.core.rest import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

#: Most workers one discovery uses; also the connection pool size, so no connection is thrown away.
MAX_WORKERS = 32
#: Longest wait for a TCP/TLS connection, within the request's budget.
CONNECT_TIMEOUT = 10.0
# Idempotent methods azure-core retries after a dropped connection, plus POST: a Resource Graph
# query reads and never changes anything, so it is safe to send again.
_RETRY_METHODS = frozenset(["HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST"])
_DEADLINE = "jupyter_amlflow.deadline"


def send(pipeline: PipelineClient, request: HttpRequest, op: Op, *, timeout: float, where: str) -> HttpResponse:
    """Send ``request`` through ``pipeline``, retries included; any answer is returned as it is.

    Args:
        op: What the request is for, in the words its errors use.
        timeout: The pipeline's budget per request (named in a timeout's message).
        where: The URL whose host the errors name.

    Raises:
        ConnectTimeout: The budget ran out before an answer came.
        SignInError: No token could be had for the request.
        ServiceError: The host could not be reached, or kept dropping the connection.
    """
    from azure.core.exceptions import AzureError, ClientAuthenticationError

    try:
        return pipeline.send_request(request, retry_on_methods=_RETRY_METHODS)
    except _OutOfTime as exc:
        raise timeout_error(op, timeout, where) from exc
    except ClientAuthenticationError as exc:
        raise token_error(op, exc) from exc
    except AzureError as exc:
        raise transport_error(op, exc, timeout, where) from exc


class _OutOfTime(Exception):
    """The request's time budget ran out before another attempt could start.

    Not an azure-core error on purpose: ``RetryPolicy`` retries those, and this must end the request.
    """


def new_session() -> Any:
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


def pipeline_client(
    base_url: str,
    timeout: float,
    retries: int,
    session: Any,
    credential: TokenCredential | None,
    scope: str | None,
) -> PipelineClient:
    """An azure-core pipeline: ids, user agent, deadline-bound retries, bearer token, per-attempt timeouts.

    Without ``credential`` (an unauthenticated document) redirects are followed; with one they
    never are, so a token never follows a redirect.
    """
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import (
        BearerTokenCredentialPolicy,
        HeadersPolicy,
        RedirectPolicy,
        RequestIdPolicy,
        UserAgentPolicy,
    )
    from azure.core.pipeline.transport import RequestsTransport

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

    class DeadlineRetryPolicy(RetryPolicy):
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

    class AttemptTimeoutPolicy(SansIOHTTPPolicy):
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
