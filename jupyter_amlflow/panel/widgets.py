"""The panel's widgets, as a plain dataclass, and the one way callbacks attach to them.

``build`` makes every widget with its first options and values (``choices.preselect``) and lays
them out; nothing here reacts to anything. ``Hooks`` attaches the callbacks: each runs under the
panel's lock (``Jobs.call``), none runs while a callback changes values ``quietly``, and
``remove`` undoes every one of them (``WorkspacePanel.close``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

if TYPE_CHECKING:
    from .choices import Preselection
    from .jobs import Jobs

#: The "all tenants" / "all subscriptions" choice.
ALL = ""
EXPERIMENT_HINT = "Default (or type a new name to create one)"
_STYLE = {"description_width": "110px"}
_WIDTH = "640px"


@dataclass
class PanelWidgets:
    """Every widget of the panel (the table in the package docstring says what each one is for)."""

    cloud: widgets.Dropdown
    cloud_url: widgets.Text
    add_cloud_button: widgets.Button
    tenant_input: widgets.Text
    method: widgets.Dropdown
    sign_in_button: widgets.Button
    device_code: widgets.Output
    signed_in: widgets.HTML
    tenant: widgets.Dropdown
    subscription: widgets.Dropdown
    filter: widgets.Text
    workspace: widgets.Select
    progress: widgets.HTML
    experiment: widgets.Combobox
    experiment_note: widgets.HTML
    connect_button: widgets.Button
    status: widgets.HTML
    picker: widgets.VBox
    widget: widgets.VBox

    def every_widget(self) -> Iterator[widgets.Widget]:
        """Each widget once, with the layout and style widgets they hold (for ``close``)."""
        seen: set[int] = set()
        stack: list[widgets.Widget] = [getattr(self, f.name) for f in fields(self)]
        while stack:
            w = stack.pop()
            if id(w) in seen:
                continue
            seen.add(id(w))
            yield w
            stack.extend(getattr(w, "children", ()))
            layout = getattr(w, "layout", None)
            style = getattr(w, "style", None)
            stack.extend(x for x in (layout, style) if isinstance(x, widgets.Widget))


def build(first: Preselection) -> PanelWidgets:
    """The panel's widgets with their first options and values, laid out in ``widget``."""

    def wide() -> widgets.Layout:
        return widgets.Layout(width=_WIDTH)

    cloud = widgets.Dropdown(
        description="Cloud", options=[(n, n) for n in first.cloud_urls], value=first.cloud, style=_STYLE
    )
    cloud_url = widgets.Text(
        description="Custom cloud",
        placeholder="https://HOST/metadata/endpoints?api-version=2019-05-01",
        value=first.cloud_url,
        style=_STYLE,
        layout=widgets.Layout(width="540px"),
    )
    add_cloud_button = widgets.Button(description="Add cloud", tooltip="Add the clouds this URL describes")
    tenant_input = widgets.Text(
        description="Tenant",
        placeholder="optional: tenant id or domain",
        value=first.tenant,
        style=_STYLE,
        layout=wide(),
    )
    method = widgets.Dropdown(
        description="Sign in with", options=first.method_options, value=first.method, style=_STYLE, layout=wide()
    )
    sign_in_button = widgets.Button(description="Sign in", button_style="primary", icon="sign-in")
    device_code = widgets.Output(layout=wide())
    signed_in = widgets.HTML()
    tenant = widgets.Dropdown(description="Tenant", options=[("All tenants", ALL)], style=_STYLE, layout=wide())
    subscription = widgets.Dropdown(
        description="Subscription", options=[("All subscriptions", ALL)], style=_STYLE, layout=wide()
    )
    filter_ = widgets.Text(
        description="Filter",
        placeholder="part of a name, resource group or region",
        continuous_update=True,
        style=_STYLE,
        layout=wide(),
    )
    workspace = widgets.Select(description="Workspace", options=[], value=None, rows=10, style=_STYLE, layout=wide())
    progress = widgets.HTML()
    experiment = widgets.Combobox(
        description="Experiment",
        value=first.experiment,
        placeholder=EXPERIMENT_HINT,
        options=[],
        ensure_option=False,
        style=_STYLE,
        layout=wide(),
    )
    experiment_note = widgets.HTML()
    connect_button = widgets.Button(description="Connect", button_style="success", icon="plug", disabled=True)
    status = widgets.HTML()
    # Shown once signed in.
    picker = widgets.VBox(
        [tenant, subscription, filter_, workspace, progress, experiment, experiment_note, connect_button],
        layout=widgets.Layout(display="none"),
    )
    whole = widgets.VBox(
        [
            widgets.HTML("<b>Connect MLflow to an Azure Machine Learning workspace</b>"),
            cloud,
            widgets.HBox([cloud_url, add_cloud_button]),
            tenant_input,
            method,
            sign_in_button,
            device_code,
            signed_in,
            picker,
            status,
        ],
        layout=widgets.Layout(padding="4px 8px", border="1px solid #e0e0e0"),
    )
    return PanelWidgets(
        cloud=cloud,
        cloud_url=cloud_url,
        add_cloud_button=add_cloud_button,
        tenant_input=tenant_input,
        method=method,
        sign_in_button=sign_in_button,
        device_code=device_code,
        signed_in=signed_in,
        tenant=tenant,
        subscription=subscription,
        filter=filter_,
        workspace=workspace,
        progress=progress,
        experiment=experiment,
        experiment_note=experiment_note,
        connect_button=connect_button,
        status=status,
        picker=picker,
        widget=whole,
    )


class Hooks:
    """The callbacks attached to widgets: run under the panel's lock, silent while values change quietly.

    Args:
        jobs: The panel's jobs (their lock, and ``call``, which reports what a callback raises).
    """

    def __init__(self, jobs: Jobs) -> None:
        self._jobs = jobs
        self._quiet = False
        self._observers: list[tuple[widgets.Widget, Callable[[Any], None]]] = []
        self._clicks: list[tuple[widgets.Button, Callable[[Any], None]]] = []

    def observe(self, widget: widgets.Widget, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the person changes ``widget``'s value."""

        def handler(change: Any) -> None:
            with self._jobs.lock:  # a worker thread may be changing widgets quietly right now
                if self._quiet:
                    return
                self._jobs.call(fn)

        widget.observe(handler, names="value")
        self._observers.append((widget, handler))

    def on_click(self, button: widgets.Button, fn: Callable[[], None]) -> None:
        """Call ``fn`` when ``button`` is clicked."""

        def handler(_: Any) -> None:
            self._jobs.call(fn)

        button.on_click(handler)
        self._clicks.append((button, handler))

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Change widget values without running the panel's own observers (hold the lock)."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def remove(self) -> None:
        """Detach every callback."""
        for widget, handler in self._observers:
            widget.unobserve(handler, names="value")
        for button, handler in self._clicks:
            button.on_click(handler, remove=True)
        self._observers.clear()
        self._clicks.clear()
