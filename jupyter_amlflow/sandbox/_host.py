"""What the sandbox's parts read of the sandbox they serve in (``Sandbox`` is the one implementation).

Entra ID (``_entra``), Resource Manager (``_arm``) and the MLflow front (``_mlflow``) each take
their sandbox as a ``Host``: the settings a test may change while the sandbox runs (token
lifetime, page sizes, the batch delay) are read on each request, and the parts never import the
module that builds them, so the package has no import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ._access import Access
from ._http import Route, SandboxHTTPServer
from ._model import Directory, Workspace
from ._tokens import FederationIssuer, TokenAuthority


class Host(Protocol):
    """The sandbox as its parts see it (see ``Sandbox`` for what each member means)."""

    directory: Directory
    access: Access
    authority: TokenAuthority
    federation: FederationIssuer
    authority_url: str
    identity_header: str
    cloud: str
    mlflow_api: str
    root: Path
    token_lifetime: float
    async_batch_delay: float
    device_code_interval: int
    device_code_lifetime: float
    page_size: int
    resource_graph_page_size: int

    @property
    def tenant_id(self) -> str: ...

    @property
    def workspaces(self) -> list[Workspace]: ...

    @property
    def arm_audiences(self) -> tuple[str, ...]: ...

    @property
    def access_key(self) -> str: ...

    @property
    def storage_suffix(self) -> str: ...

    def cloud_metadata(self) -> list[dict[str, Any]]: ...

    def add_listener(self, routes: list[Route], *, tls: bool = False) -> SandboxHTTPServer: ...
