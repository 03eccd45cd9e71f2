"""A local stand-in for Microsoft Entra ID, Azure Resource Manager and the Azure ML MLflow API.

The unmodified azure-identity, MSAL, Azure management clients and the azureml-mlflow plugin talk
to it over HTTPS (a CA generated per run) on 127.0.0.1, as if it were Azure::

    from jupyter_amlflow.sandbox import Sandbox

    with Sandbox(subscriptions=2, workspaces_per_subscription=2) as sb:
        os.environ.update(sb.env)
        os.environ.update(sb.service_principal)
        ...

Every local process reaches 127.0.0.1: what is not public on Azure needs the sandbox's per-run
secrets (``_access``): the backend URI's access key, the identity secret, the users' passwords on
the device-login page, the Studio key in ``studio_url``; the ``mlflow server`` processes listen
only on Unix sockets in a 0700 folder.

See ``README.md`` (section "The sandbox") for every knob. The modules, by job:

* ``_sandbox``: ``Sandbox``, its life and its public API; ``_world``: who and what exists in it;
  ``_client_env``: the environment a client process gets (and ``FOREIGN_ENV``, what it must not);
* ``_http``: the threaded HTTPS server, routes, faults, the request log; ``_tls``: certificates;
  ``_gate``: the check before each route; ``_access``: the per-run secrets; ``_host``: what the
  parts below read of their sandbox;
* Entra ID: ``_entra`` (discovery, token grants), ``_devicecode``, ``_msi``, ``_aad`` (shared
  conventions), ``_tokens`` (signing and checking JWTs); Resource Manager: ``_arm``; ``_model``:
  tenants, identities, subscriptions, workspaces, roles;
* the MLflow front: ``_mlflow`` (the MLflow API), ``_gateway`` (authorisation, errors, backend
  calls), ``_artifacts`` and ``_blob`` (artifacts and SAS URLs), ``_batches`` and ``_limits``
  (batched logging), ``_studio``; ``fidelity``: what Azure serves, refuses or nobody has verified,
  with evidence; ``_backends`` and ``_sockets``: the ``mlflow server`` processes;
* ``_watchdog``: the clean-up process; ``runner``, ``pytest_plugin``, ``__main__``: running
  notebooks, pytest fixtures, ``amlflow-sandbox``.
"""

from __future__ import annotations

from ._client_env import FOREIGN_ENV
from ._devicecode import PendingSignIn
from ._http import Fault, HttpError, Request, RequestRecord, Response, Route, free_port, route
from ._model import ROLES, Identity, Subscription, Tenant, Workspace, mlflow_action
from ._sandbox import Sandbox
from .fidelity import MODES

__all__ = [
    "FOREIGN_ENV",
    "MLFLOW_API_MODES",
    "ROLES",
    "Fault",
    "HttpError",
    "Identity",
    "PendingSignIn",
    "Request",
    "RequestRecord",
    "Response",
    "Route",
    "Sandbox",
    "Subscription",
    "Tenant",
    "Workspace",
    "free_port",
    "mlflow_action",
    "route",
]

#: ``Sandbox(mlflow_api=...)``: answer as Azure ML does, or forward every MLflow call.
MLFLOW_API_MODES = MODES
