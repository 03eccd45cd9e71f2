"""The installed mlflow and azureml-mlflow: their versions, whether they fit, what to install.

One home for what we know about versions: the pairs tested here, the install commands we
suggest, and how a mixed mlflow install is recognised and repaired. Reading versions imports
neither mlflow nor the plugin (``%amlflow version`` stays cheap).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..display import KeyValues
from ..pasteable import is_inert
from .shims import active_shims

PLUGIN = "azureml-mlflow"
#: The distributions that install files into the one ``mlflow`` package folder (the full
#: ``mlflow`` wheel carries every file of ``mlflow-skinny`` too). Their versions must agree.
MLFLOW_DISTRIBUTIONS = ("mlflow", "mlflow-skinny", "mlflow-tracing")

#: The plugin versions ``pyproject.toml`` admits: pip picks the newest whose own cap admits the
#: mlflow it keeps (1.62.0.post6 up to mlflow 3.15.0, 1.60.0 above; those between cap lower).
PLUGIN_REQUIREMENT = "azureml-mlflow>=1.60.0,<=1.62.0.post6"

#: What ``pip install .`` gives on a machine without mlflow: the pair CI tests first.
TESTED_PAIR = ("1.62.0.post6", "3.15.0")
INSTALL_HINT = f"pip install 'azureml-mlflow=={TESTED_PAIR[0]}' 'mlflow-skinny=={TESTED_PAIR[1]}'"

_CALLS = "connect, params, metrics (sync and async), a text artifact round trip, log_model with registered_model_name"
#: Pairs (azureml-mlflow, mlflow) tested here, and how; the README's compatibility table lists the same
#: rows as "works" (tests/test_versions.py holds the two together).
TESTED: Mapping[tuple[str, str], str] = {
    TESTED_PAIR: "CI, the whole test suite; what pip install gives where no mlflow is installed",
    ("1.60.0", "3.17.2"): f"CI, the platform install beside mlflow 3.17.2, with the artifact shim: {_CALLS}",
    ("1.60.0", "3.15.0"): "CI, with the artifact shim: connect, a text artifact logged",
    ("1.62.0.post6", "3.17.2"): f"by hand, not in CI (the plugin installed with --no-deps): {_CALLS}",
}

_VERSION_LINE = re.compile(r'^VERSION\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)


# -- what is installed ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Installed:
    """Versions read from the installed metadata and from the files ``import mlflow`` would load."""

    plugin: str | None
    #: Each of ``MLFLOW_DISTRIBUTIONS`` that is installed, with its version.
    distributions: Mapping[str, str]
    #: ``VERSION`` in the ``mlflow/version.py`` that ``import mlflow`` loads; None when mlflow
    #: is not importable (not installed, or its files were removed under its metadata).
    module_version: str | None

    @property
    def mlflow(self) -> str | None:
        """The mlflow version that runs: the module's own, else what the metadata says."""
        if self.module_version is not None:
            return self.module_version
        for name in ("mlflow-skinny", "mlflow", "mlflow-tracing"):
            if name in self.distributions:
                return self.distributions[name]
        return None

    @property
    def platform_mlflow(self) -> bool:
        """Whether an mlflow is installed that an install of ours must keep as it is."""
        return bool(self.distributions)


def installed() -> Installed:
    """What is installed now (metadata and one small file; imports nothing)."""
    return Installed(
        plugin=_version(PLUGIN),
        distributions={name: v for name in MLFLOW_DISTRIBUTIONS if (v := _version(name)) is not None},
        module_version=_module_version(),
    )


def installed_versions() -> tuple[str | None, str | None]:
    """``(azureml-mlflow, mlflow)`` versions installed, either may be None."""
    found = installed()
    return found.plugin, found.mlflow


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _module_version() -> str | None:
    # find_spec locates the package without importing it (or returns the imported one's spec).
    try:
        spec = importlib.util.find_spec("mlflow")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = _VERSION_LINE.search(text)
    return found.group(1) if found else None


# -- a mixed install ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MixedInstall:
    """mlflow's files come from more than one version: what was found and what repairs it."""

    found: str
    repair: str


def find_mixed(found: Installed) -> MixedInstall | None:
    """The mix in ``found``, if its mlflow distributions or module files disagree.

    pip installs every one of ``MLFLOW_DISTRIBUTIONS`` into the same folder, so replacing one
    (``pip install azureml-mlflow`` downgrading the platform's mlflow-skinny) leaves files of two
    versions side by side, and uninstalling one removes files the others still list.
    """
    if not found.distributions:
        return None
    versions = set(found.distributions.values())
    if len(versions) == 1 and found.module_version in versions:
        return None
    listed = "installed: " + ", ".join(f"{name} {version}" for name, version in found.distributions.items())
    if found.module_version is None:
        what = f"{listed}, but mlflow's module files are missing"
    else:
        what = f"{listed}; import mlflow loads {found.module_version}"
    return MixedInstall(what, _repair_command(found))


def _repair_command(found: Installed) -> str:
    # The full mlflow is the platform's own when present: everything goes back to its version.
    target = found.distributions.get("mlflow") or found.distributions.get("mlflow-skinny")
    target = target or next(iter(found.distributions.values()))
    if not is_inert(target):
        return "pip list | grep -i mlflow, then reinstall every mlflow distribution listed at one version"
    pins = " ".join(f"'{name}=={target}'" for name in found.distributions)
    return f"pip install --force-reinstall --no-deps {pins}, then restart the kernel"


# -- advice ---------------------------------------------------------------------------------------
def install_advice(found: Installed) -> str:
    """The command that installs a working plugin here, keeping an installed mlflow as it is."""
    versions = found.distributions
    if not versions or not all(is_inert(v) for v in versions.values()):
        return INSTALL_HINT
    # Naming the installed versions keeps them: pip then picks the newest plugin that admits them.
    pins = " ".join(f"'{name}=={version}'" for name, version in versions.items())
    return f"pip install '{PLUGIN_REQUIREMENT}' {pins}"


def verdict(found: Installed) -> str:
    """One line for ``%amlflow version``: does this pair work, and how is that known."""
    mixed = find_mixed(found)
    if mixed is not None:
        return f"a mixed install ({mixed.found}); repair it: {mixed.repair}"
    if found.plugin is None:
        return f"azureml-mlflow is not installed; install it: {install_advice(found)}"
    if found.mlflow is None:
        return f"mlflow is not installed; install it: {INSTALL_HINT}"
    how = TESTED.get((found.plugin, found.mlflow))
    if how is not None:
        return f"tested here ({how})"
    if found.platform_mlflow and found.mlflow != TESTED_PAIR[1]:
        return (
            "not a pair tested here; it may work. Keep this mlflow (jupyter_amlflow does not need another), "
            f"or get the plugin pip chooses for it: {install_advice(found)}"
        )
    return f"not a pair tested here; the tested one: {INSTALL_HINT}"


def report() -> KeyValues:
    """What ``%amlflow version`` shows: the versions, and whether they work together (imports nothing)."""
    found = installed()
    dists = ", ".join(f"{name} {version}" for name, version in found.distributions.items())
    mlflow = f"{found.mlflow} ({dists})" if found.mlflow and dists else found.mlflow
    return KeyValues(
        "Versions",
        [
            ("jupyter_amlflow", __version__),
            ("mlflow", mlflow),
            ("azureml-mlflow", found.plugin),
            ("azure-identity", _version("azure-identity")),
            ("mlflow + plugin", verdict(found)),
            *([("shims in effect", ", ".join(active_shims()) or "none")] if _mlflow_imported() else []),
        ],
    )


def _mlflow_imported() -> bool:
    return "mlflow" in sys.modules and "azureml.mlflow" in sys.modules
