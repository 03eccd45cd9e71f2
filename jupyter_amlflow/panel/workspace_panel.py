"""``WorkspacePanel``: puts the panel's parts together, shows it, and takes it apart on ``close``.

The widgets are its public interface (``panel.cloud`` is ``panel.ui.cloud``; the package
docstring lists them). The steps react to them: ``SignInStep`` → ``WorkspaceList`` →
``ConnectStep``, each a class given the same ``Context``; this class only wires them.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from ..connect_request import ConnectRequest
from . import commands
from .choices import Choices, ChoiceStore, preselect
from .connecting import ConnectStep
from .context import Context, PanelState
from .jobs import Jobs
from .runs_view import RunsView, RunsWidgets
from .runs_view import build as build_runs
from .signin import SignInStep
from .status import StatusLine
from .widgets import Hooks, PanelWidgets, build
from .workspaces import WorkspaceList

if TYPE_CHECKING:
    from ..connection import Session


class _Shown:
    """``panel.NAME`` reads ``panel.ui.NAME``: the widgets are the panel's interface, and fixed."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, panel: WorkspacePanel | None, owner: type | None = None) -> Any:
        return self if panel is None else getattr(panel.ui, self._name)

    def __set__(self, panel: WorkspacePanel, value: object) -> None:
        raise AttributeError(f"the panel's widgets are fixed: set {self._name}.value instead")


class WorkspacePanel:
    """Sign in, pick a workspace and an experiment, connect: see the package docstring.

    Args:
        session: The kernel's ``Session`` (the magics' one): sign-ins and the connection live there.
        store: Where choices are remembered (default ``~/.jupyter_amlflow/panel.json``).
        start: Options ``%amlflow connect`` was given (checked already): they win over the
            remembered choice.
    """

    # The widgets (see the package docstring); each is ``self.ui``'s.
    cloud = _Shown()
    cloud_url = _Shown()
    add_cloud_button = _Shown()
    tenant_input = _Shown()
    method = _Shown()
    sign_in_button = _Shown()
    device_code = _Shown()
    signed_in = _Shown()
    tenant = _Shown()
    subscription = _Shown()
    filter = _Shown()
    workspace = _Shown()
    progress = _Shown()
    experiment = _Shown()
    experiment_note = _Shown()
    connect_button = _Shown()
    status = _Shown()
    picker = _Shown()
    widget = _Shown()

    def __init__(
        self, session: Session, *, store: ChoiceStore | None = None, start: ConnectRequest | None = None
    ) -> None:
        self.session = session
        self.start = start if start is not None else ConnectRequest()
        self.store = store if store is not None else ChoiceStore()
        remembered = self.store.load()
        first = preselect(session, remembered, self.start)
        self.ui: PanelWidgets = build(first)
        status = StatusLine(self.ui.status)
        jobs = Jobs(status.error)
        self._ctx = ctx = Context(
            session=session,
            start=self.start,
            store=self.store,
            ui=self.ui,
            jobs=jobs,
            hooks=Hooks(jobs),
            status=status,
            state=PanelState(cloud_urls=dict(first.cloud_urls), remembered=remembered),
        )
        self.runs_ui: RunsWidgets = build_runs()
        self.ui.widget.children = (*self.ui.widget.children, self.runs_ui.box)
        self._runs = RunsView(ctx, self.runs_ui)
        self._connect = ConnectStep(ctx, self._runs.connected)
        self._workspaces = WorkspaceList(ctx, self._connect.workspace_changed)
        self._sign_in = SignInStep(ctx, self._workspaces)
        self._wire()
        status.show("info", self._start_note())
        if session.connection is not None:
            self._connect.show_connected(session.connection)

    @property
    def runs_button(self) -> Any:
        """Button: reads the connected experiment's latest runs into ``runs`` (shown once connected)."""
        return self.runs_ui.runs_button

    @property
    def runs(self) -> Any:
        """HTML: the Runs view, the table ``%amlflow runs`` shows (``data-state`` busy, shown or error)."""
        return self.runs_ui.runs

    @property
    def remembered(self) -> Choices:
        """The remembered choice (the one just made, once the panel has connected)."""
        return self._ctx.state.remembered

    def _wire(self) -> None:
        hooks, ui = self._ctx.hooks, self.ui
        hooks.observe(ui.cloud, self._sign_in.cloud_changed)
        hooks.observe(ui.tenant, self._workspaces.narrowed)
        hooks.observe(ui.subscription, self._workspaces.narrowed)
        hooks.observe(ui.filter, self._workspaces.narrowed)
        hooks.observe(ui.workspace, self._workspaces.picked)
        hooks.observe(ui.experiment, self._connect.experiment_typed)
        hooks.on_click(ui.add_cloud_button, self._sign_in.add_cloud)
        hooks.on_click(ui.sign_in_button, self._sign_in.sign_in)
        hooks.on_click(ui.connect_button, self._connect.connect)
        hooks.on_click(self.runs_ui.runs_button, self._runs.show_runs)

    def _start_note(self) -> str:
        given = self.start
        note = "Choose the cloud and how to sign in, then press Sign in."
        if given.cloud_metadata_url and not given.cloud:
            note = "Press Add cloud to read the clouds of the metadata URL given, then Sign in."
        if given.timeout is not None:
            note += (
                f" (--timeout {given.timeout:g} applies to commands; the panel's steps take up to "
                f"{self.session.timeout:g} s each: %config AmlflowMagics.timeout = {given.timeout:g} changes that.)"
            )
        return note

    # -- display ---------------------------------------------------------------------------------
    def commands(self) -> list[str]:
        """The ``%amlflow`` commands that do what the panel does, for the current (or remembered) choice.

        Every value is written with ``pasteable.magic_option``: names come from servers (a
        workspace, an experiment another user created), and a pasted command must neither change
        them nor evaluate anything in them.
        """
        with self._ctx.jobs.lock:
            return commands.commands(self._ctx)

    def text(self) -> str:
        """The text form: what a front end without widget support shows."""
        return commands.text(self._ctx, self.commands())

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return f'<pre class="amlflow-panel-text">{html.escape(self.text())}</pre>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        """The widget view, with the text form for front ends that cannot show widgets."""
        bundle = dict(self.ui.widget._repr_mimebundle_(include=include, exclude=exclude, **kwargs) or {})
        bundle["text/plain"] = self.text()
        bundle["text/html"] = self._repr_html_()
        return bundle

    # -- closing ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every widget, remove every callback, and ignore background results still to come.

        A device-code sign-in still waiting is cancelled (it stops polling).
        """
        jobs = self._ctx.jobs
        with jobs.lock:
            if not jobs.close():
                return
            self._sign_in.cancel()
            self._ctx.hooks.remove()
            for child in self.ui.every_widget():
                child.close()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._ctx.jobs.closed
