"""The version guard at connect: refuse, saying what to install, an mlflow and plugin that cannot work.

Runs once per connect, once mlflow and the plugin are imported and before connect changes
anything: the plugin is there, mlflow's files are of one version, the artifact shim can be
applied where it is needed, and every private attribute connect relies on exists (``internals``).
"""

from __future__ import annotations

from ..errors import IncompatibleVersions
from . import internals
from .shims import artifact_arguments_refused
from .versions import INSTALL_HINT, find_mixed, install_advice, installed


def check_at_connect() -> None:
    """Raise ``IncompatibleVersions`` when mlflow and the plugin cannot work here, even with our shims.

    Refused: no plugin, a mixed mlflow install (files of two versions: nothing is known about
    what works), a plugin whose artifact builder refuses what mlflow passes when the shim
    cannot reach mlflow's registry of builders, and versions without a private attribute
    connect needs (``internals.INTERNALS``: the tested pair is what to install then).
    """
    found = installed()
    if found.plugin is None:
        raise IncompatibleVersions(
            "The azureml-mlflow plugin is not installed",
            "MLflow needs it to talk to Azure Machine Learning",
            f"Run: {install_advice(found)}",
        )
    mixed = find_mixed(found)
    if mixed is not None:
        raise IncompatibleVersions(
            "This mlflow install is mixed: files of more than one version share its folder",
            f"{mixed.found[:1].upper()}{mixed.found[1:]}; no version's tests cover such a mix",
            f"Run: {mixed.repair}",
        )
    refused = artifact_arguments_refused()
    if refused and internals.artifact_builders() is None:
        raise IncompatibleVersions(
            f"The azureml-mlflow plugin {found.plugin} does not work with mlflow {found.mlflow}",
            f"This mlflow passes {', '.join(refused)} to the plugin's artifact repository, which does not "
            "accept them, so logging artifacts would fail",
            f"Run: {install_advice(found)}",
        )
    internals.check(f"mlflow {found.mlflow} and azureml-mlflow {found.plugin}", INSTALL_HINT)
