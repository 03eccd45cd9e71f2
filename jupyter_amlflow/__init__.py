"""jupyter_amlflow: sign in to Azure from a notebook and log every mlflow call to Azure ML.

In a notebook::

    %load_ext jupyter_amlflow
    %amlflow connect            # config.json here, or give the workspace; %amlflow help

In Python::

    import jupyter_amlflow
    conn = jupyter_amlflow.connect(subscription="...", resource_group="...", workspace="...")

Importing this package is cheap: mlflow and the Azure libraries load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "ConnectRequest",
    "Connection",
    "Session",
    "__version__",
    "connect",
    "load_ipython_extension",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .connect_request import ConnectRequest, connect
    from .connection import Connection, Session


def __getattr__(name: str) -> Any:
    if name in ("Connection", "Session"):
        from . import connection

        return getattr(connection, name)
    if name in ("ConnectRequest", "connect"):
        from . import connect_request

        return getattr(connect_request, name)
    raise AttributeError(f"module 'jupyter_amlflow' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_amlflow``: register the ``%amlflow`` magics (no network, no heavy import)."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext jupyter_amlflow``: remove the magics and every hook they added."""
    from .magics import unload

    unload(ipython)
