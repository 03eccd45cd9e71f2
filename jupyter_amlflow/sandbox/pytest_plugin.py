"""pytest plugin (entry point ``amlflow_sandbox``): the sandbox as fixtures for your own tests.

    def test_my_notebook(amlflow_sandbox, amlflow_sandbox_env):
        # os.environ now points azure-identity, MLflow and jupyter_amlflow at the sandbox,
        # signed in as the sandbox's service principal.
        ...

Options (``pytest --help``): ``--amlflow-sandbox-subscriptions``, ``--amlflow-sandbox-workspaces``,
``--amlflow-sandbox-mlflow-api`` (``azure``, the default, or ``open-source``).
This module imports nothing heavy until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from . import Sandbox


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("amlflow-sandbox", "jupyter_amlflow sandbox")
    group.addoption(
        "--amlflow-sandbox-subscriptions",
        type=int,
        default=2,
        help="Subscriptions in the session sandbox (default 2).",
    )
    group.addoption(
        "--amlflow-sandbox-workspaces",
        type=int,
        default=2,
        help="Workspaces per subscription in the session sandbox (default 2).",
    )
    group.addoption(
        "--amlflow-sandbox-mlflow-api",
        choices=("azure", "open-source"),
        default="azure",
        help="azure (default): the MLflow API refuses what Azure ML refuses; open-source: forwards every call.",
    )


@pytest.fixture(scope="session")
def amlflow_sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A running sandbox for the whole test session (stopped, children and all, at the end)."""
    from . import Sandbox

    sb = Sandbox(
        subscriptions=request.config.getoption("--amlflow-sandbox-subscriptions"),
        workspaces_per_subscription=request.config.getoption("--amlflow-sandbox-workspaces"),
        mlflow_api=request.config.getoption("--amlflow-sandbox-mlflow-api"),
    )
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def amlflow_sandbox_env(amlflow_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point this test's environment at the sandbox, as its service principal; undone after."""
    env = {**amlflow_sandbox.env, **amlflow_sandbox.service_principal}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
