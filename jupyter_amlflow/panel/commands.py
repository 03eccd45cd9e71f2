"""The panel's text form: the ``%amlflow`` commands that do what it does, for the choice shown.

A front end without widgets shows this text instead (terminal IPython, some notebook platforms).
Every value is written with ``pasteable``: names come from servers (a workspace, an experiment
another user created, a tenant), and a pasted command must neither change them nor evaluate
anything in them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pasteable import magic_arg, magic_option
from ..platform import sign_in_hint
from .choices import AUTO

if TYPE_CHECKING:
    from .context import Context

_NOTES = (
    "find subscription ids",
    "find workspaces: name, resource group, region, subscription",
    "connect (an ARM id, azureml:// URI or config.json path also works in place of the three options)",
    "the workspace's experiments, once connected",
    "switch experiment (created if missing)",
    "what MLflow logs to now",
)


def commands(ctx: Context) -> list[str]:
    """The commands for the current (or remembered) choice; call under ``ctx.jobs.lock``."""
    ui, state, env = ctx.ui, ctx.state, ctx.session.env
    cloud = ui.cloud.value or "AzureCloud"
    options = _option("--cloud", cloud)
    url = state.cloud_urls.get(cloud)
    if url and url != env.get("ARM_CLOUD_METADATA_URL"):
        options += " " + _option("--cloud-metadata-url", url)
    chosen = state.chosen(ui.workspace.value)
    tenant = ui.tenant_input.value.strip()
    if chosen is not None and state.signin is not None and chosen.tenant_id not in (None, state.signin.tenant_id):
        tenant = chosen.tenant_id  # a workspace in another of the identity's tenants
    if tenant:
        options += " " + _option("--tenant", tenant)
    # %amlflow list signs in the default way; only connect takes --auth.
    auth = " " + _option("--auth", ui.method.value) if ui.method.value != AUTO else ""
    remembered = state.remembered
    if chosen is not None:
        where = " ".join(
            (
                _option("--subscription", chosen.subscription_id),
                _option("--resource-group", chosen.resource_group),
                _option("--workspace", chosen.name),
            )
        )
    elif remembered.workspace:
        where = _arg(remembered.workspace, "WORKSPACE_ID")
    else:
        where = "--subscription SUBSCRIPTION_ID --resource-group RESOURCE_GROUP --workspace WORKSPACE"
    experiment = ui.experiment.value.strip() or remembered.experiment or "NAME"
    return [
        f"%amlflow list subscriptions {options}",
        f"%amlflow list workspaces {options}",
        f"%amlflow connect {where} {options}{auth} {_option('--experiment', experiment)}",
        "%amlflow list experiments",
        "%amlflow experiment NAME",
        "%amlflow status",
    ]


def text(ctx: Context, shown: list[str]) -> str:
    """The whole text form, around the commands ``shown``."""
    lines = [
        "Workspace panel (needs a front end that shows ipywidgets: JupyterLab, Notebook 7, VS Code).",
        "Without widgets, type these instead:",
    ]
    for command, note in zip(shown, _NOTES, strict=True):
        lines += [f"  {command}", f"      ({note})"]
    hint = sign_in_hint(ctx.session.platform)
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def _arg(value: str, placeholder: str) -> str:
    """``value`` as an inert ``%amlflow`` argument (a placeholder if no magic line can carry it)."""
    try:
        return magic_arg(value)
    except ValueError:
        return placeholder


def _option(name: str, value: str) -> str:
    """``--name VALUE``, inert (see ``pasteable``); ``--name NAME`` if no magic line can carry it."""
    try:
        return magic_option(name, value)
    except ValueError:
        return f"{name} {name.lstrip('-').replace('-', '_').upper()}"
