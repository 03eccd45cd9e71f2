"""The options of ``%amlflow connect`` that do not name a workspace, checked without the network.

When connect has nothing to name a workspace and shows the panel instead, the panel must start
from these options (cloud, tenant, sign-in methods, experiment, ``--force``), and an option that
connect would refuse must be refused here too, before any panel appears.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import AmlflowError

if TYPE_CHECKING:
    from .connection import Session


@dataclass(frozen=True)
class ConnectOptions:
    """Checked options: what the panel starts from."""

    cloud: str | None = None
    cloud_metadata_url: str | None = None
    tenant: str | None = None
    methods: tuple[str, ...] | None = None
    experiment: str | None = None
    force: bool = False
    timeout: float | None = None


def check_timeout(timeout: float | None) -> float | None:
    """``timeout`` if it is a positive, finite number of seconds (None stays None).

    Raises:
        AmlflowError: It is zero, negative, infinite or NaN (argparse's ``float`` takes "nan", "inf").
    """
    if timeout is not None and not (0 < timeout and math.isfinite(timeout)):
        raise AmlflowError(
            "%amlflow connect: --timeout must be a positive number of seconds", "", "For example: --timeout 120"
        )
    return timeout


def checked_options(
    session: Session,
    *,
    cloud: str | None = None,
    cloud_metadata_url: str | None = None,
    tenant: str | None = None,
    auth: Sequence[str] | str | None = None,
    experiment: str | None = None,
    force: bool = False,
    timeout: float | None = None,
) -> ConnectOptions:
    """The checks connect makes before sending anything, for options that do not name a workspace.

    Raises:
        AmlflowError: The same error connect would give (an unknown sign-in method, a malformed
            tenant, an unknown cloud with no metadata document to find it in, a metadata URL that
            is not https, a timeout that is not a positive number).
    """
    from .arm import check_metadata_url
    from .auth import check_tenant
    from .connection import _CLOUD_NAME, _methods

    check_timeout(timeout)
    methods = _methods(auth)
    if tenant is not None:
        check_tenant(tenant)
    if cloud_metadata_url is not None:
        check_metadata_url(cloud_metadata_url)
    if cloud is not None and cloud not in session.catalog:
        url = cloud_metadata_url or session.env.get("ARM_CLOUD_METADATA_URL")
        if not url or not _CLOUD_NAME.fullmatch(cloud):
            session.catalog.get(cloud)  # raises: no document could define it
        else:
            check_metadata_url(url)
    return ConnectOptions(cloud, cloud_metadata_url, tenant, methods, experiment, force, timeout)
