"""``ConnectRequest``: what one connect is asked to do, checked as it is built (no network).

``%amlflow connect``, ``jupyter_amlflow.connect(...)`` and the panel each build one and hand it
to ``Session.connect``. Everything that can be refused without the network is refused here, so
every front end refuses the same input with the same message before anything is sent: a timeout
that is not a positive number, an unknown sign-in method, a malformed tenant or platform secret
name, a blank experiment name, a workspace given twice. What needs the session (the cloud
catalog, ``config.json``, the platform, an active run) is ``Session``'s to check.

The notebook platforms' sign-in options (``--secret-scope``, ``--secret-keys``, ``--key-vault``,
``--linked-service``) are turned into one ``PlatformOptions`` here, and only here.

``connect()`` (``jupyter_amlflow.connect``) is the one-call form for scripts: a request from its
keywords, a ``Session`` from its settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass
from typing import TYPE_CHECKING

from .auth import PlatformOptions, check_tenant, parse_methods, platform_options
from .connection import Session
from .devicecode import TextDeviceCodeRenderer
from .errors import AmlflowError, WorkspaceReferenceError
from .tracking import check_experiment_name

if TYPE_CHECKING:
    from .auth import DeviceCodeRenderer
    from .connection import Connection

__all__ = ["ConnectRequest", "check_timeout", "connect", "platform_options_given"]

_AUTH_EXAMPLE = "%amlflow connect ... --auth env,device-code"


@dataclass(frozen=True)
class ConnectRequest:
    """One connect: the workspace, the cloud, how to sign in, the experiment; all optional.

    The workspace is ``reference`` (an ARM resource id, an ``azureml://`` tracking URI or a
    ``config.json`` path) or ``subscription`` + ``resource_group`` + ``workspace``; with neither,
    connect looks for ``config.json``. ``auth`` ("env,device-code" or a list) becomes ``methods``;
    the four platform names become ``platform_options``. ``timeout`` (None: the session's) and
    ``async_logging`` (None: the session's) apply to this connect only.

    Raises:
        AmlflowError: (a subclass) for input connect would refuse; nothing was sent.
    """

    reference: str | None = None
    subscription: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    cloud: str | None = None
    cloud_metadata_url: str | None = None
    tenant: str | None = None
    methods: tuple[str, ...] | None = None
    experiment: str | None = None
    force: bool = False
    timeout: float | None = None
    async_logging: bool | None = None
    platform_options: PlatformOptions | None = None
    # As a person gives them; checked into ``methods`` and ``platform_options`` above.
    auth: InitVar[str | Sequence[str] | None] = None
    secret_scope: InitVar[str | None] = None
    secret_keys: InitVar[str | Mapping[str, str] | None] = None
    key_vault: InitVar[str | None] = None
    linked_service: InitVar[str | None] = None

    def __post_init__(
        self,
        auth: str | Sequence[str] | None,
        secret_scope: str | None,
        secret_keys: str | Mapping[str, str] | None,
        key_vault: str | None,
        linked_service: str | None,
    ) -> None:
        check_timeout(self.timeout)
        options = platform_options_given(secret_scope, secret_keys, key_vault, linked_service)
        if options is not None:
            object.__setattr__(self, "platform_options", options)
        if self.experiment is not None:
            check_experiment_name(self.experiment)
        if self.reference and self.names_workspace:
            raise WorkspaceReferenceError(
                "Give the workspace either as one reference or as --subscription/--resource-group/--workspace",
                "both were given",
                "Drop one of them",
            )
        methods = parse_methods(auth if auth is not None else self.methods, example=_AUTH_EXAMPLE)
        object.__setattr__(self, "methods", tuple(methods) if methods else None)
        if self.tenant is not None:
            check_tenant(self.tenant)

    @property
    def names_workspace(self) -> bool:
        """Whether any of ``subscription``, ``resource_group``, ``workspace`` is given."""
        return bool(self.subscription or self.resource_group or self.workspace)

    @property
    def finds_workspace(self) -> bool:
        """Whether the workspace is given at all (else connect looks for ``config.json``)."""
        return bool(self.reference) or self.names_workspace


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


def platform_options_given(
    secret_scope: str | None = None,
    secret_keys: str | Mapping[str, str] | None = None,
    key_vault: str | None = None,
    linked_service: str | None = None,
) -> PlatformOptions | None:
    """The notebook platform's sign-in options, checked; None when none is given.

    Raises:
        SignInError: A name is malformed (``auth.platform_options``).
    """
    if not (secret_scope or secret_keys or key_vault or linked_service):
        return None
    return platform_options(
        secret_scope=secret_scope, secret_keys=secret_keys, key_vault=key_vault, linked_service=linked_service
    )


def connect(
    reference: str | None = None,
    *,
    subscription: str | None = None,
    resource_group: str | None = None,
    workspace: str | None = None,
    cloud: str | None = None,
    cloud_metadata_url: str | None = None,
    tenant: str | None = None,
    auth: Sequence[str] | str | None = None,
    experiment: str | None = None,
    force: bool = False,
    renderer: DeviceCodeRenderer | None = None,
    async_logging: bool | None = None,
    secret_scope: str | None = None,
    secret_keys: str | Mapping[str, str] | None = None,
    key_vault: str | None = None,
    linked_service: str | None = None,
    timeout: float = 30.0,
    device_code_timeout: float = 900.0,
    persist: bool = False,
    allow_unencrypted_cache: bool = False,
    default_cloud: str | None = None,
    env: Mapping[str, str] | None = None,
    user_ns: Mapping[str, object] | None = None,
) -> Connection:
    """Connect MLflow in this process to an Azure ML workspace.

    ``reference`` is an ARM resource id, an ``azureml://`` tracking URI or a path to the portal's
    ``config.json``; or pass ``subscription=``, ``resource_group=``, ``workspace=``; with neither,
    a ``config.json`` in this folder (or ``.azureml/``, or a parent) is used. ``auth`` lists the
    sign-in methods in order; ``secret_scope`` (Databricks), ``key_vault`` and ``linked_service``
    (Synapse) and ``secret_keys`` say where the notebook platform keeps the identity to sign in
    with; ``async_logging`` makes every ``mlflow.log_*`` call asynchronous while connected;
    ``renderer`` shows a device code (text on the terminal by default). The rest are the
    ``Session``'s settings.

    Returns a ``Connection``; ``conn.disconnect()`` restores what was there before.
    """
    request = ConnectRequest(
        reference,
        subscription=subscription,
        resource_group=resource_group,
        workspace=workspace,
        cloud=cloud,
        cloud_metadata_url=cloud_metadata_url,
        tenant=tenant,
        experiment=experiment,
        force=force,
        async_logging=async_logging,
        auth=auth,
        secret_scope=secret_scope,
        secret_keys=secret_keys,
        key_vault=key_vault,
        linked_service=linked_service,
    )
    session = Session(
        env=env,
        user_ns=user_ns,
        timeout=timeout,
        default_cloud=default_cloud,
        persist=persist,
        allow_unencrypted_cache=allow_unencrypted_cache,
        device_code_timeout=device_code_timeout,
    )
    return session.connect(request, renderer=renderer if renderer is not None else TextDeviceCodeRenderer())
