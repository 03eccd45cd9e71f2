"""A cloud's Resource Manager ``/metadata/endpoints`` document, fetched over https.

The document decides where sign-ins (a service principal's secret included) and tokens go, so it
is only ever fetched over https, without a token, through the same deadline-bound pipeline as
every Resource Manager request. ``clouds.clouds_from_metadata`` turns it into ``Cloud`` objects.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import CloudError
from .failures import Op, short
from .transport import new_session, pipeline_client, send


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
            f"Cannot fetch cloud metadata from {short(url, 80)!r}",
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
    from azure.core.rest import HttpRequest

    check_metadata_url(url)
    parts = urlsplit(url)
    endpoint = f"Cloud metadata: GET {parts.scheme}://{parts.netloc}{parts.path}"
    op = Op(
        endpoint, f"Could not fetch the cloud metadata document {parts.netloc}{parts.path}", "%amlflow clouds add URL"
    )
    session = new_session()
    try:
        client = pipeline_client(f"{parts.scheme}://{parts.netloc}/", timeout, 3, session, None, None)
        response = send(client, HttpRequest("GET", url), op, timeout=timeout, where=url)
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
