"""The mlflow and azureml-mlflow installed beside jupyter_amlflow: what we know of them, all in one place.

* ``versions``: which versions are installed (read without importing them), the pairs tested
  here, the install and repair commands we suggest, what ``%amlflow version`` shows;
* ``internals``: every private attribute of mlflow, the plugin and CPython the package touches,
  each with its use, and the functions that read and write them (no other module names one);
* ``shims``: what makes a plugin older than its mlflow work while connected;
* ``guard``: the check at connect, which refuses a pair that cannot work with what to install.

Importing this package imports neither mlflow nor the plugin.
"""

from __future__ import annotations

from .guard import check_at_connect
from .shims import ARTIFACT_SHIM, AppliedShims, active_shims, apply_shims
from .versions import (
    INSTALL_HINT,
    MLFLOW_DISTRIBUTIONS,
    PLUGIN,
    PLUGIN_REQUIREMENT,
    TESTED,
    TESTED_PAIR,
    Installed,
    MixedInstall,
    find_mixed,
    install_advice,
    installed,
    installed_versions,
    report,
    verdict,
)

__all__ = [
    "ARTIFACT_SHIM",
    "INSTALL_HINT",
    "MLFLOW_DISTRIBUTIONS",
    "PLUGIN",
    "PLUGIN_REQUIREMENT",
    "TESTED",
    "TESTED_PAIR",
    "AppliedShims",
    "Installed",
    "MixedInstall",
    "active_shims",
    "apply_shims",
    "check_at_connect",
    "find_mixed",
    "install_advice",
    "installed",
    "installed_versions",
    "report",
    "verdict",
]
