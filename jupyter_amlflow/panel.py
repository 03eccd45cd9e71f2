"""``%amlflow panel``: cloud, tenant, subscription, workspace and experiment by clicking.

``WorkspacePanel`` composes ipywidgets in a plain class (it is not a widget itself). Its public
widgets are the interface, for people and for tests alike:

====================  =========================================================================
``cloud``             Dropdown: built-in clouds, the environment's custom cloud, remembered ones
``cloud_url``         Text: an ARM metadata URL; ``add_cloud_button`` adds its clouds
``tenant_input``      Text: optional tenant (id or domain) to sign in to
``method``            Dropdown: sign-in method ("auto": the platform's default order)
``sign_in_button``    Button: signs in; a device code appears in ``device_code`` (an Output)
``signed_in``         HTML: who is signed in
``tenant``            Dropdown: narrows the lists to one tenant (all tenants by default)
``subscription``      Dropdown: narrows the workspaces to one subscription
``filter``            Text: narrows the workspaces to those whose label contains it
``workspace``         Select: ``name — resource group — region``, value the ARM id
``progress``          HTML: discovery in progress / how many were found, and how
``experiment``        Combobox: the workspace's experiments; a new name is created on connect
``experiment_note``   HTML: what connect will do with that name (existing or new)
``connect_button``    Button: connects the kernel (``Session.connect``)
``status``            HTML: what is happening, success with the Studio link, or the error and fix
``picker``            VBox: ``tenant`` to ``connect_button``, shown once signed in
``widget``            VBox: the whole panel (what is displayed)
====================  =========================================================================

The device code is shown by ``devicecode.NotebookDeviceCodeRenderer`` inside ``device_code``:
an Output widget renders its HTML as a trusted output, so the prompt's own script (countdown,
Copy button with ``navigator.clipboard.writeText``) runs in JupyterLab and Notebook 7 alike,
which a script in an HTML widget would not.

Threading: sign-in (which may wait minutes for a device code), workspace discovery, the
experiment list and connect run in daemon threads, so the kernel keeps answering cells. Each
background job has a ticket; only the newest ticket of its kind may change the panel, so a
discovery started for an earlier sign-in cannot overwrite a newer one, and after ``close()`` no
ticket is current. Every change to the panel's widgets and state happens under one lock, from
widget callbacks (the kernel's thread) and job results (worker threads) alike. ipykernel sends
comm messages from any thread.

The last successful choice is remembered per user in ``~/.jupyter_amlflow/panel.json`` (mode
0600; ids and names only, never a secret) and preselected next time; nothing goes into the notebook.
"""

from __future__ import annotations

import collections
import contextlib
import html
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets

from .errors import AmlflowError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from .arm import Discovery, SubscriptionInfo, TenantInfo, WorkspaceInfo
    from .auth import SignIn
    from .clouds import Cloud
    from .connect_request import ConnectRequest
    from .connection import Connection, Session

log = logging.getLogger(__name__)
T = TypeVar("T")

AUTO = "auto"
ALL = ""  # the "all tenants" / "all subscriptions" choice
METHOD_LABELS = {
    "databricks-secrets": "Service principal from a Databricks secret scope (needs --secret-scope)",
    "synapse-keyvault": "Service principal from Key Vault, in Synapse (needs --key-vault)",
    "synapse-token": "Synapse token library (the notebook's identity)",
    "env": "Service principal from the environment (env)",
    "workload-identity": "Workload identity (Kubernetes)",
    "managed-identity": "Managed identity",
    "cli": "Azure CLI (az login)",
    "powershell": "Azure PowerShell (Connect-AzAccount)",
    "browser": "Browser on this machine",
    "device-code": "Device code (any browser, any device)",
}
EXPERIMENT_HINT = "Default (or type a new name to create one)"
#: Seconds between list refreshes while discovery streams results in.
REFRESH_INTERVAL = 0.3
_STYLE = {"description_width": "110px"}
_WIDTH = "640px"
_SPINNER = (
    "<style>@keyframes amlflow-spin{to{transform:rotate(360deg)}}</style>"
    '<span class="amlflow-spinner" style="display:inline-block;width:0.8em;height:0.8em;margin-right:0.4em;'
    "border:2px solid #0078d4;border-right-color:transparent;border-radius:50%;"
    'animation:amlflow-spin 0.8s linear infinite;vertical-align:-0.1em"></span>'
)


# -- remembered choices ---------------------------------------------------------------------------
@dataclass
class Choices:
    """What the panel remembers between sessions: ids and names, never a secret."""

    cloud: str | None = None
    cloud_metadata_url: str | None = None
    method: str | None = None
    tenant: str | None = None
    subscription: str | None = None
    workspace: str | None = None  # ARM id
    experiment: str | None = None


def default_choices_path() -> Path:
    """``~/.jupyter_amlflow/panel.json``."""
    from .userfiles import state_dir

    return state_dir() / "panel.json"


class ChoiceStore:
    """Reads and writes ``Choices`` as a small JSON file readable only by its owner.

    Args:
        path: The file (default ``~/.jupyter_amlflow/panel.json``, resolved on each use).
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        """Where the choices live."""
        return self._path if self._path is not None else default_choices_path()

    def load(self) -> Choices:
        """The remembered choices; empty ones when there are none, or the file is unreadable or unsafe."""
        from .userfiles import read_private

        try:
            text = read_private(self.path)
            if text is None:
                return Choices()
            data = json.loads(text)
        except (OSError, ValueError) as exc:  # a broken file (or a folder others can write) only loses the preselection
            log.info("Ignoring remembered panel choices in %s: %s", self.path, exc)
            return Choices()
        if not isinstance(data, dict):
            return Choices()
        known = {f.name for f in fields(Choices)}
        return Choices(**{k: v for k, v in data.items() if k in known and (v is None or isinstance(v, str))})

    def save(self, choices: Choices) -> None:
        """Write ``choices`` atomically (``userfiles.write_private``: folder 0700, file 0600, no links).

        Raises:
            OSError: Not written (``userfiles.UnsafeLocation`` says why the folder is refused).
        """
        from .userfiles import write_private

        write_private(self.path, json.dumps(asdict(choices), indent=1))


# -- background jobs ------------------------------------------------------------------------------
class _Tickets:
    """One counter per kind of job; only a kind's newest ticket is current. ``close`` ends them all."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self._current: dict[str, int] = {}
        self.closed = False

    def new(self, kind: str) -> tuple[str, int]:
        ticket = (kind, next(self._numbers))
        self._current[kind] = ticket[1]
        return ticket

    def drop(self, kind: str) -> None:
        self._current.pop(kind, None)

    def current(self, ticket: tuple[str, int]) -> bool:
        return not self.closed and self._current.get(ticket[0]) == ticket[1]

    def running(self, kind: str) -> bool:
        return not self.closed and kind in self._current


Ticket = tuple[str, int]


class _PanelDisplay:
    """What ``NotebookDeviceCodeRenderer`` displays through: the panel's ``device_code`` Output.

    Bound to one sign-in's ticket, so a prompt from an abandoned sign-in never shows.
    """

    def __init__(self, panel: WorkspacePanel, ticket: Ticket) -> None:
        self._panel = panel
        self._ticket = ticket

    def __call__(self, obj: Any, display_id: Any = None) -> _PanelDisplay:
        self.update(obj)
        return self

    def update(self, obj: Any) -> None:
        self._panel._apply(self._ticket, lambda: self._panel._show_output(obj))


# -- the panel ------------------------------------------------------------------------------------
class WorkspacePanel:
    """Sign in, pick a workspace and an experiment, connect: see the module docstring.

    Args:
        session: The kernel's ``Session`` (the magics' one): sign-ins and the connection live there.
        store: Where choices are remembered (default ``~/.jupyter_amlflow/panel.json``).
        start: Options ``%amlflow connect`` was given (checked already): they win over the
            remembered choice.
    """

    def __init__(
        self, session: Session, *, store: ChoiceStore | None = None, start: ConnectRequest | None = None
    ) -> None:
        from .auth import METHODS
        from .clouds import cloud_name_from_env
        from .connect_request import ConnectRequest
        from .platform import default_methods

        self.session = session
        self.start = start if start is not None else ConnectRequest()
        self.store = store if store is not None else ChoiceStore()
        self.remembered = self.store.load()
        self._lock = threading.RLock()
        self._signin_cancel = threading.Event()  # set to abandon the sign-in in progress
        self._tickets = _Tickets()
        self._import_lock = threading.Lock()
        self._quiet = False
        self._handlers: list[tuple[widgets.Widget, Callable[[Any], None]]] = []
        self._clicks: list[tuple[widgets.Button, Callable[[Any], None]]] = []
        # State filled by the background jobs (read and written under the lock).
        self._cloud_urls: dict[str, str | None] = {}
        self._cloud: Cloud | None = None
        self._signin: SignIn | None = None
        self._sign_in_tenant: str | None = None
        self._sign_in_methods: tuple[str, ...] | None = None
        self._subscriptions: dict[str, SubscriptionInfo] = {}
        self._found: dict[str, WorkspaceInfo] = {}
        self._last_refresh = 0.0
        self._picked = False  # the person chose a workspace here: no preselection any more
        self._experiments_loaded = False  # experiment.options are the chosen workspace's experiments
        self._status_state = ""

        env_cloud = cloud_name_from_env(session.env)
        names = session.catalog.names()
        for name in names:
            self._cloud_urls[name] = None
        if env_cloud and env_cloud.lower() not in {n.lower() for n in names}:
            self._cloud_urls[env_cloud] = session.env.get("ARM_CLOUD_METADATA_URL")
        r, given = self.remembered, self.start
        if r.cloud and r.cloud.lower() not in {n.lower() for n in self._cloud_urls}:
            self._cloud_urls[r.cloud] = r.cloud_metadata_url
        if given.cloud and given.cloud.lower() not in {n.lower() for n in self._cloud_urls}:
            # Unknown yet: sign-in reads it from the metadata document (checked to exist and be https).
            self._cloud_urls[given.cloud] = given.cloud_metadata_url or session.env.get("ARM_CLOUD_METADATA_URL")
        default_cloud = env_cloud or session.default_cloud or "AzureCloud"
        connected = session.connection
        cloud_value = _pick(
            list(self._cloud_urls), given.cloud, connected.cloud.name if connected else None, r.cloud, default_cloud
        )
        auto = ", ".join(session.auth or default_methods(session.platform))
        method_options = [(f"Automatic ({auto})", AUTO), *((METHOD_LABELS.get(m, m), m) for m in METHODS)]
        if given.methods and len(given.methods) > 1:  # --auth a,b: that order, as one choice
            method_options.append((f"These, in order: {', '.join(given.methods)}", ",".join(given.methods)))
        method_value = ",".join(given.methods) if given.methods else r.method

        self.cloud = widgets.Dropdown(
            description="Cloud", options=[(n, n) for n in self._cloud_urls], value=cloud_value, style=_STYLE
        )
        self.cloud_url = widgets.Text(
            description="Custom cloud",
            placeholder="https://HOST/metadata/endpoints?api-version=2019-05-01",
            # --cloud-metadata-url alone: Add cloud reads it (which clouds it holds needs the network).
            value=given.cloud_metadata_url if given.cloud_metadata_url and not given.cloud else "",
            style=_STYLE,
            layout=widgets.Layout(width="540px"),
        )
        self.add_cloud_button = widgets.Button(description="Add cloud", tooltip="Add the clouds this URL describes")
        self.tenant_input = widgets.Text(
            description="Tenant",
            placeholder="optional: tenant id or domain",
            value=given.tenant or r.tenant or "",
            style=_STYLE,
            layout=widgets.Layout(width=_WIDTH),
        )
        self.method = widgets.Dropdown(
            description="Sign in with",
            options=method_options,
            value=method_value if method_value in {v for _, v in method_options} else AUTO,
            style=_STYLE,
            layout=widgets.Layout(width=_WIDTH),
        )
        self.sign_in_button = widgets.Button(description="Sign in", button_style="primary", icon="sign-in")
        self.device_code = widgets.Output(layout=widgets.Layout(width=_WIDTH))
        self.signed_in = widgets.HTML()
        self.tenant = widgets.Dropdown(
            description="Tenant", options=[("All tenants", ALL)], style=_STYLE, layout=widgets.Layout(width=_WIDTH)
        )
        self.subscription = widgets.Dropdown(
            description="Subscription",
            options=[("All subscriptions", ALL)],
            style=_STYLE,
            layout=widgets.Layout(width=_WIDTH),
        )
        self.filter = widgets.Text(
            description="Filter",
            placeholder="part of a name, resource group or region",
            continuous_update=True,
            style=_STYLE,
            layout=widgets.Layout(width=_WIDTH),
        )
        self.workspace = widgets.Select(
            description="Workspace", options=[], value=None, rows=10, style=_STYLE, layout=widgets.Layout(width=_WIDTH)
        )
        self.progress = widgets.HTML()
        self.experiment = widgets.Combobox(
            description="Experiment",
            value=given.experiment or "",
            placeholder=EXPERIMENT_HINT,
            options=[],
            ensure_option=False,
            style=_STYLE,
            layout=widgets.Layout(width=_WIDTH),
        )
        self.experiment_note = widgets.HTML()
        self.connect_button = widgets.Button(description="Connect", button_style="success", icon="plug", disabled=True)
        self.status = widgets.HTML()
        self.picker = widgets.VBox(
            [
                self.tenant,
                self.subscription,
                self.filter,
                self.workspace,
                self.progress,
                self.experiment,
                self.experiment_note,
                self.connect_button,
            ],
            layout=widgets.Layout(display="none"),
        )
        self.widget = widgets.VBox(
            [
                widgets.HTML("<b>Connect MLflow to an Azure Machine Learning workspace</b>"),
                self.cloud,
                widgets.HBox([self.cloud_url, self.add_cloud_button]),
                self.tenant_input,
                self.method,
                self.sign_in_button,
                self.device_code,
                self.signed_in,
                self.picker,
                self.status,
            ],
            layout=widgets.Layout(padding="4px 8px", border="1px solid #e0e0e0"),
        )

        self._observe(self.cloud, self._cloud_changed)
        self._observe(self.tenant, self._narrowed)
        self._observe(self.subscription, self._narrowed)
        self._observe(self.filter, self._narrowed)
        self._observe(self.workspace, self._workspace_picked)
        self._observe(self.experiment, self._show_experiment_note)
        self._on_click(self.add_cloud_button, self._add_cloud)
        self._on_click(self.sign_in_button, self._sign_in)
        self._on_click(self.connect_button, self._connect)
        self._set_status("info", self._start_note())
        if connected is not None:
            self._show_connected(connected)

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
        with self._lock:
            cloud = self.cloud.value or "AzureCloud"
            options = _option("--cloud", cloud)
            url = self._cloud_urls.get(cloud)
            if url and url != self.session.env.get("ARM_CLOUD_METADATA_URL"):
                options += " " + _option("--cloud-metadata-url", url)
            chosen = self._found.get(self.workspace.value or "")
            tenant = self.tenant_input.value.strip()
            if (
                chosen is not None
                and self._signin is not None
                and chosen.tenant_id not in (None, self._signin.tenant_id)
            ):
                tenant = chosen.tenant_id  # a workspace in another of the identity's tenants
            if tenant:
                options += " " + _option("--tenant", tenant)
            # %amlflow list signs in the default way; only connect takes --auth.
            auth = " " + _option("--auth", self.method.value) if self.method.value != AUTO else ""
            if chosen is not None:
                where = " ".join(
                    (
                        _option("--subscription", chosen.subscription_id),
                        _option("--resource-group", chosen.resource_group),
                        _option("--workspace", chosen.name),
                    )
                )
            elif self.remembered.workspace:
                where = _arg(self.remembered.workspace, "WORKSPACE_ID")
            else:
                where = "--subscription SUBSCRIPTION_ID --resource-group RESOURCE_GROUP --workspace WORKSPACE"
            experiment = self.experiment.value.strip() or self.remembered.experiment or "NAME"
            return [
                f"%amlflow list subscriptions {options}",
                f"%amlflow list workspaces {options}",
                f"%amlflow connect {where} {options}{auth} {_option('--experiment', experiment)}",
                "%amlflow list experiments",
                "%amlflow experiment NAME",
                "%amlflow status",
            ]

    def text(self) -> str:
        """The text form: what a front end without widget support shows."""
        lines = [
            "Workspace panel (needs a front end that shows ipywidgets: JupyterLab, Notebook 7, VS Code).",
            "Without widgets, type these instead:",
        ]
        notes = [
            "find subscription ids",
            "find workspaces: name, resource group, region, subscription",
            "connect (an ARM id, azureml:// URI or config.json path also works in place of the three options)",
            "the workspace's experiments, once connected",
            "switch experiment (created if missing)",
            "what MLflow logs to now",
        ]
        for command, note in zip(self.commands(), notes, strict=True):
            lines += [f"  {command}", f"      ({note})"]
        from .platform import sign_in_hint

        hint = sign_in_hint(self.session.platform)
        if hint:
            lines.append(hint)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return f'<pre class="amlflow-panel-text">{html.escape(self.text())}</pre>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, Any]:
        """The widget view, with the text form for front ends that cannot show widgets."""
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude, **kwargs) or {})
        bundle["text/plain"] = self.text()
        bundle["text/html"] = self._repr_html_()
        return bundle

    # -- closing ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every widget, remove every callback, and ignore background results still to come.

        A device-code sign-in still waiting is cancelled (it stops polling).
        """
        with self._lock:
            if self._tickets.closed:
                return
            self._tickets.closed = True
            self._signin_cancel.set()
            for widget, handler in self._handlers:
                widget.unobserve(handler, names="value")
            for button, handler in self._clicks:
                button.on_click(handler, remove=True)
            self._handlers.clear()
            self._clicks.clear()
            for child in self._all_widgets():
                child.close()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._tickets.closed

    def _all_widgets(self) -> Iterator[widgets.Widget]:
        seen: set[int] = set()
        stack: list[widgets.Widget] = [self.widget]
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

    # -- plumbing --------------------------------------------------------------------------------
    def _observe(self, widget: widgets.Widget, fn: Callable[[], None]) -> None:
        def handler(change: Any) -> None:
            with self._lock:  # a worker thread may be changing widgets quietly right now
                if self._quiet:
                    return
                self._guarded(fn)

        widget.observe(handler, names="value")
        self._handlers.append((widget, handler))

    def _on_click(self, button: widgets.Button, fn: Callable[[], None]) -> None:
        def handler(_: Any) -> None:
            self._guarded(fn)

        button.on_click(handler)
        self._clicks.append((button, handler))

    def _guarded(self, fn: Callable[[], None]) -> None:
        """Run a widget callback under the lock; any exception lands in the status area."""
        with self._lock:
            if self._tickets.closed:
                return
            try:
                fn()
            except Exception as exc:  # boundary: JupyterLab swallows callback exceptions
                self._report(exc)

    def _background(
        self,
        kind: str,
        work: Callable[[Ticket], T],
        done: Callable[[T], None],
        failed: Callable[[], bool | None] | None = None,
    ) -> Ticket:
        """Run ``work`` in a daemon thread; apply ``done`` (or report the error) if still current.

        ``failed`` runs first on an error; when it returns True the error is only logged.
        """
        ticket = self._tickets.new(kind)

        def run() -> None:
            try:
                result = work(ticket)
            except Exception as exc:  # boundary: a worker thread's failure goes to the status area
                error = exc
                self._apply(ticket, lambda: self._fail(ticket, error, failed))
                return
            self._apply(ticket, lambda: self._finish(ticket, result, done))

        threading.Thread(target=run, name=f"amlflow-panel-{kind}", daemon=True).start()
        return ticket

    def _finish(self, ticket: Ticket, result: T, done: Callable[[T], None]) -> None:
        self._tickets.drop(ticket[0])
        done(result)

    def _fail(self, ticket: Ticket, exc: Exception, failed: Callable[[], bool | None] | None) -> None:
        self._tickets.drop(ticket[0])
        if failed is not None and failed():
            log.info("Panel (%s): %s", ticket[0], exc)
            return
        self._report(exc)

    def _apply(self, ticket: Ticket, fn: Callable[[], None]) -> bool:
        """Change the panel from a worker thread, if ``ticket`` is still the newest of its kind."""
        with self._lock:
            if not self._tickets.current(ticket):
                return False
            try:
                fn()
            except Exception as exc:  # boundary: same as a callback
                self._report(exc)
            return True

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        """Change widget values without running the panel's own observers."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _report(self, exc: BaseException) -> None:
        self._status_state = "error"
        if isinstance(exc, AmlflowError):
            log.info("Panel: %s", exc)
            self.status.value = f'<div class="amlflow-status" data-state="error">{exc._repr_html_()}</div>'
            return
        log.warning("Panel: unexpected error", exc_info=exc)
        shown = AmlflowError(
            f"The panel hit an unexpected error: {type(exc).__name__}: {str(exc)[:300]}",
            "this is a bug in jupyter_amlflow",
            "Connect by command instead: %amlflow connect --subscription SUB --resource-group RG --workspace NAME "
            "(%amlflow list workspaces finds them), and please report the error",
        )
        self.status.value = f'<div class="amlflow-status" data-state="error">{shown._repr_html_()}</div>'

    def _set_status(self, state: str, text: str, *, spinner: bool = False) -> None:
        self._status_state = state
        self.status.value = (
            f'<div class="amlflow-status" data-state="{state}" style="padding:4px 0">'
            f"{_SPINNER if spinner else ''}{html.escape(text)}</div>"
        )

    def _show_output(self, obj: Any) -> None:
        """Put a display object (text and HTML forms) into the ``device_code`` Output."""
        data = {"text/plain": repr(obj)}
        if hasattr(obj, "_repr_html_"):
            data["text/html"] = obj._repr_html_()
        self.device_code.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)

    # -- clouds ----------------------------------------------------------------------------------
    def _cloud_changed(self) -> None:
        """Another cloud needs another sign-in: forget this one's (and any sign-in under way)."""
        if self._tickets.running("signin"):
            # The session cannot cancel it; it may finish in its thread, unseen.
            self._tickets.drop("signin")
            self.device_code.outputs = ()
            self._sign_in_finished(signed_in=False)
        elif self._cloud is None or self._cloud.name.lower() == (self.cloud.value or "").lower():
            return
        self._reset_sign_in()
        self._set_status("info", f"Sign in to {self.cloud.value} to list its workspaces.")

    def _add_cloud(self) -> None:
        url = self.cloud_url.value.strip()
        if not url:
            raise AmlflowError(
                "Give the custom cloud's metadata URL first",
                "the clouds are read from Resource Manager's /metadata/endpoints document",
                "Paste it into Custom cloud, e.g. https://HOST/metadata/endpoints?api-version=2019-05-01",
            )
        self.add_cloud_button.disabled = True
        self._set_status("busy", "Reading the cloud metadata document…", spinner=True)

        def work(_: Ticket) -> list[Cloud]:
            return self.session.add_clouds_from_metadata(url)

        def done(added: list[Cloud]) -> None:
            self.add_cloud_button.disabled = False
            for cloud in added:
                self._cloud_urls[cloud.name] = url
            self.cloud.options = [(n, n) for n in self._cloud_urls]
            if added:
                self.cloud.value = added[0].name
            self._set_status("info", f"Added {', '.join(c.name for c in added)}. Press Sign in.")

        def failed() -> None:
            self.add_cloud_button.disabled = False

        self._background("cloud", work, done, failed)

    # -- sign-in ---------------------------------------------------------------------------------
    def _reset_sign_in(self) -> None:
        for kind in ("listing", "experiments"):
            self._tickets.drop(kind)
        self._cloud = self._signin = None
        self._subscriptions, self._found = {}, {}
        self.signed_in.value = ""
        self.picker.layout.display = "none"
        with self._quietly():
            self.tenant.options = [("All tenants", ALL)]
            self.subscription.options = [("All subscriptions", ALL)]
            self.workspace.options = []
            self.workspace.value = None
            self.experiment.options = []
        self.progress.value = ""
        self.connect_button.disabled = True

    def _sign_in(self) -> None:
        if self._tickets.running("signin"):
            return  # a double click: that sign-in is under way
        name = self.cloud.value
        if not name:
            raise AmlflowError("Choose a cloud first", "", "Pick one in Cloud, or add a custom cloud by its URL")
        url = self._cloud_urls.get(name)
        tenant = self.tenant_input.value.strip() or self.session.env.get("AZURE_TENANT_ID") or None
        methods = None if self.method.value == AUTO else tuple(self.method.value.split(","))
        self._reset_sign_in()
        self.device_code.outputs = ()
        self.sign_in_button.disabled = True
        self.sign_in_button.description = "Signing in…"
        self._set_status("busy", f"Signing in to {name}…", spinner=True)

        # A sign-in this panel no longer waits for (closed, or a newer sign-in) stops polling.
        self._signin_cancel.set()
        cancel = self._signin_cancel = threading.Event()

        def work(ticket: Ticket) -> tuple[Cloud, SignIn]:
            from .devicecode import NotebookDeviceCodeRenderer

            cloud = self.session.resolve_cloud(name, url)
            renderer = NotebookDeviceCodeRenderer(_PanelDisplay(self, ticket))
            return cloud, self.session.sign_in(
                cloud, tenant_id=tenant, methods=methods, renderer=renderer, cancel=cancel
            )

        def done(result: tuple[Cloud, SignIn]) -> None:
            cloud, signin = result
            self._sign_in_finished()
            self.device_code.outputs = ()  # the line below says who signed in
            self._cloud, self._signin = cloud, signin
            self._sign_in_tenant, self._sign_in_methods = tenant, methods
            who = signin.identity
            self.signed_in.value = (
                f'<div class="amlflow-signed-in">Signed in to {html.escape(cloud.name)} as '
                f"<b>{html.escape(who.name)}</b> ({html.escape(who.kind)}, {html.escape(signin.method)}), "
                f"tenant <code>{html.escape(signin.tenant_id)}</code></div>"
            )
            self.picker.layout.display = "flex"
            self._start_listing(cloud, signin)

        self._background("signin", work, done, lambda: self._sign_in_finished(signed_in=False))

    def _sign_in_finished(self, *, signed_in: bool = True) -> None:
        self.sign_in_button.disabled = False
        self.sign_in_button.description = "Sign in again" if signed_in else "Sign in"

    # -- listing ---------------------------------------------------------------------------------
    def _start_listing(self, cloud: Cloud, signin: SignIn) -> None:
        client = self.session.arm(cloud, signin)  # the session's client for this sign-in (all its tenants)
        self.progress.value = f"{_SPINNER}Finding your tenants and subscriptions…"
        self._set_status("busy", "Finding your workspaces…", spinner=True)

        def work(ticket: Ticket) -> tuple[Discovery, list[str]]:
            from .discovery import discover  # the same discovery as %amlflow list workspaces

            found = discover(
                client,
                signin.tenant_id,
                on_lists=lambda tenants, subs: self._apply(ticket, lambda: self._show_lists(tenants, subs)),
                on_found=lambda batch: self._apply(ticket, lambda: self._add_found(batch)),
            )
            return found.discovery, found.notes

        self._background("listing", work, self._listing_done)

    def _show_lists(self, tenants: list[TenantInfo], subscriptions: list[SubscriptionInfo]) -> None:
        self._subscriptions = {s.subscription_id: s for s in subscriptions}
        r = self.remembered
        with self._quietly():
            tenant_options = [("All tenants", ALL)] + [
                (f"{t.display_name} ({t.default_domain or t.tenant_id})", t.tenant_id) for t in tenants
            ]
            self.tenant.options = tenant_options
            self.tenant.value = ALL
            self._show_subscriptions()
            if r.subscription and r.subscription in self._subscriptions:
                self.subscription.value = r.subscription
        self.progress.value = f"{_SPINNER}Finding workspaces in {len(subscriptions)} subscriptions…"

    def _show_subscriptions(self) -> None:
        tenant = self.tenant.value
        keep = self.subscription.value
        subs = [s for s in self._subscriptions.values() if tenant in (ALL, s.tenant_id)]
        options = [("All subscriptions", ALL)] + [
            (f"{s.display_name} ({s.subscription_id})", s.subscription_id) for s in subs
        ]
        with self._quietly():
            self.subscription.options = options
            self.subscription.value = keep if keep in {v for _, v in options} else ALL

    def _add_found(self, batch: list[WorkspaceInfo]) -> None:
        for w in batch:
            self._found[w.arm_id] = w
        now = time.monotonic()
        if now - self._last_refresh >= REFRESH_INTERVAL:
            self._last_refresh = now
            self._show_workspaces()
            self.progress.value = f"{_SPINNER}Finding workspaces… {len(self._found)} so far"

    def _listing_done(self, result: tuple[Discovery, list[str]]) -> None:
        discovery, notes = result
        for w in discovery.workspaces:
            self._found[w.arm_id] = w
        self._show_workspaces()
        subs = len({w.subscription_id for w in self._found.values()})
        text = (
            f"{len(self._found)} workspace{'s' if len(self._found) != 1 else ''} in {subs} "
            f"subscription{'s' if subs != 1 else ''} ({discovery.method})"
        )
        if notes:
            text += f"; not listed: {'; '.join(notes[:3])}" + (
                f" (and {len(notes) - 3} more)" if len(notes) > 3 else ""
            )
        self.progress.value = f'<span class="amlflow-found" data-count="{len(self._found)}">{html.escape(text)}</span>'
        if not self._found:
            self._set_status(
                "info",
                "No workspace is visible to this identity. Ask for the 'AzureML Data Scientist' role on a "
                "workspace, or sign in with another account or tenant.",
            )
        elif self.workspace.value is None:
            self._set_status("info", "Pick a workspace, then press Connect.")
        else:
            self._set_status("info", "Press Connect to use the selected workspace.")

    def _narrowed(self) -> None:
        self._show_subscriptions()
        self._show_workspaces()

    def _show_workspaces(self) -> None:
        """Refill the workspace list from what was found and the tenant/subscription/filter choice."""
        tenant, subscription = self.tenant.value, self.subscription.value
        words = self.filter.value.strip().lower().split()
        shown = []
        for w in self._found.values():
            if tenant not in (ALL, w.tenant_id) and not (w.tenant_id is None and tenant == self._home_tenant()):
                continue
            if subscription not in (ALL, w.subscription_id):
                continue
            sub = self._subscriptions.get(w.subscription_id)
            haystack = f"{w.label} {w.subscription_id} {sub.display_name if sub else ''}".lower()
            if all(word in haystack for word in words):
                shown.append(w)
        shown.sort(key=lambda w: (w.name.lower(), w.resource_group.lower(), w.subscription_id))
        counts = collections.Counter(w.label for w in shown)
        repeated = {label for label, n in counts.items() if n > 1}
        options = [
            (f"{w.label} — {self._subscription_name(w)}" if w.label in repeated else w.label, w.arm_id) for w in shown
        ]
        before = self.workspace.value
        values = {v for _, v in options}
        wanted = before if before in values else None
        if wanted is None and self.remembered.workspace in values and not self._picked:
            wanted = self.remembered.workspace
        with self._quietly():
            self.workspace.options = options
            self.workspace.value = wanted
        if wanted != before:
            self._workspace_changed()

    def _home_tenant(self) -> str | None:
        return self._signin.tenant_id if self._signin is not None else None

    def _subscription_name(self, w: WorkspaceInfo) -> str:
        sub = self._subscriptions.get(w.subscription_id)
        return sub.display_name if sub else w.subscription_id

    # -- workspace and experiments ---------------------------------------------------------------
    def _workspace_picked(self) -> None:
        self._picked = self._picked or self.workspace.value is not None
        self._workspace_changed()

    def _workspace_changed(self) -> None:
        chosen = self._found.get(self.workspace.value or "")
        self.connect_button.disabled = chosen is None or self._tickets.running("connect")
        self._tickets.drop("experiments")
        self._experiments_loaded = False
        self._show_experiment_note()
        if chosen is None:
            return
        remembered = self.remembered
        if remembered.workspace == chosen.arm_id and remembered.experiment and not self.experiment.value:
            self.experiment.value = remembered.experiment
        self.experiment.options = []
        self.experiment.placeholder = EXPERIMENT_HINT
        signin, cloud = self._signin, self._cloud
        if signin is None or cloud is None or not chosen.tracking_uri:
            return
        credential = self._credential_for(signin, chosen)
        self.experiment.placeholder = f"Loading the experiments of {chosen.name}…"

        def work(_: Ticket) -> list[str]:
            with self._import_lock:
                from . import tracking

                tracking.import_mlflow()
            return tracking.list_experiment_names(chosen, cloud, credential, self.session.timeout)

        def done(names: list[str]) -> None:
            self.experiment.options = names
            self.experiment.placeholder = EXPERIMENT_HINT
            self._experiments_loaded = True
            self._show_experiment_note()

        def failed() -> bool:
            self.experiment.placeholder = "Type a name (the experiments could not be listed)"
            # Whatever else the status shows (a connect under way or done, another error) says
            # more than a missing list of names.
            return self._status_state not in ("info", "")

        self._background("experiments", work, done, failed)

    def _show_experiment_note(self) -> None:
        """Say what connect will do with the experiment name (and show the kernel has the name)."""
        name = self.experiment.value.strip()
        chosen = self._found.get(self.workspace.value or "")
        if not name or chosen is None:
            self.experiment_note.value = ""
            return
        if not self._experiments_loaded:
            text = f"Connect uses experiment <b>{html.escape(name)}</b> (created if missing)."
        elif name in self.experiment.options:
            text = f"Experiment <b>{html.escape(name)}</b> exists in {html.escape(chosen.name)}."
        else:
            text = f"<b>{html.escape(name)}</b> is a new experiment: connect creates it in {html.escape(chosen.name)}."
        self.experiment_note.value = (
            f'<span class="amlflow-experiment-note" data-experiment="{html.escape(name, quote=True)}">{text}</span>'
        )

    def _credential_for(self, signin: SignIn, w: WorkspaceInfo) -> TokenCredential:
        if w.tenant_id and w.tenant_id != signin.tenant_id:
            from . import auth

            return auth.credential_for_tenant(signin, w.tenant_id)
        return signin.credential

    # -- connect ---------------------------------------------------------------------------------
    def _connect(self) -> None:
        if self._tickets.running("connect"):
            return  # a double click: that connect is under way
        chosen = self._found.get(self.workspace.value or "")
        signin, cloud = self._signin, self._cloud
        if chosen is None or signin is None or cloud is None:
            raise AmlflowError("Pick a workspace first", "", "Sign in, then choose one in the Workspace list")
        experiment = self.experiment.value.strip() or None
        # The session remembers sign-ins by (cloud, tenant, methods): ask with the same key as the
        # panel's sign-in, so connect reuses it; a workspace in another tenant needs that tenant.
        other_tenant = chosen.tenant_id and chosen.tenant_id != signin.tenant_id
        tenant = chosen.tenant_id if other_tenant else self._sign_in_tenant
        methods = self._sign_in_methods
        url = self._cloud_urls.get(cloud.name)
        choices = Choices(
            cloud=cloud.name,
            cloud_metadata_url=url,
            method=",".join(methods) if methods else AUTO,
            tenant=self.tenant_input.value.strip() or None,
            subscription=self.subscription.value or None,
            workspace=chosen.arm_id,
            experiment=experiment,
        )
        self.connect_button.disabled = True
        self.connect_button.description = "Connecting…"
        self._set_status("busy", f"Connecting to {chosen.name}…", spinner=True)

        def work(ticket: Ticket) -> Connection:
            from .connect_request import ConnectRequest
            from .devicecode import NotebookDeviceCodeRenderer

            with self._import_lock:  # one import of mlflow at a time (see _workspace_changed)
                from . import tracking

                tracking.import_mlflow()
            request = ConnectRequest(
                subscription=chosen.subscription_id,
                resource_group=chosen.resource_group,
                workspace=chosen.name,
                cloud=cloud.name,
                cloud_metadata_url=url,
                tenant=tenant,
                methods=methods,
                experiment=experiment,
                force=self.start.force,
            )
            return self.session.connect(request, renderer=NotebookDeviceCodeRenderer(_PanelDisplay(self, ticket)))

        def done(conn: Connection) -> None:
            self._connect_finished()
            self.device_code.outputs = ()  # a sign-in connect needed is over
            self._show_connected(conn)
            choices.experiment = conn.experiment.name
            self.remembered = choices
            try:
                self.store.save(choices)
            except OSError as exc:  # connected all the same; only the preselection is lost
                log.warning("Could not remember the panel's choices in %s: %s", self.store.path, exc)

        self._background("connect", work, done, self._connect_finished)

    def _connect_finished(self) -> None:
        self.connect_button.description = "Connect"
        self.connect_button.disabled = self.workspace.value is None

    def _show_connected(self, conn: Connection) -> None:
        w = conn.workspace
        created = " (created)" if conn.experiment.created else ""
        studio = conn.studio_url
        link = (
            f' <a href="{html.escape(studio, quote=True)}" target="_blank" rel="noopener noreferrer" '
            'style="color:#0078d4;text-decoration:underline">'
            "Open in Azure ML Studio</a>"
            if studio
            else ""
        )
        with self._quietly():
            self.experiment.value = conn.experiment.name
            if self._experiments_loaded and conn.experiment.name not in self.experiment.options:
                self.experiment.options = sorted([*self.experiment.options, conn.experiment.name], key=str.lower)
        self._show_experiment_note()
        self._status_state = "connected"
        self.status.value = (
            '<div class="amlflow-status" data-state="connected" '
            'style="border-left:4px solid #107c10;padding:4px 8px">'
            f"<b>Connected to {html.escape(w.name)}</b> ({html.escape(w.resource_group)}, "
            f"{html.escape(w.location)}), experiment <b>{html.escape(conn.experiment.name)}</b>{created}.{link}"
            "<div>Every mlflow.* call in this kernel now logs there. "
            "<code>%amlflow status</code> shows the details; <code>%amlflow disconnect</code> undoes it.</div></div>"
        )


def _pick(values: list[str], *preferred: str | None) -> str | None:
    """The first preferred value among ``values`` (any letter case), else the first value."""
    lowered = {v.lower(): v for v in values}
    for p in preferred:
        if p is not None and p.lower() in lowered:
            return lowered[p.lower()]
    return values[0] if values else None


def _arg(value: str, placeholder: str) -> str:
    """``value`` as an inert ``%amlflow`` argument (a placeholder if no magic line can carry it)."""
    from .pasteable import magic_arg

    try:
        return magic_arg(value)
    except ValueError:
        return placeholder


def _option(name: str, value: str) -> str:
    """``--name VALUE``, inert (see ``pasteable``); ``--name NAME`` if no magic line can carry it."""
    from .pasteable import magic_option

    try:
        return magic_option(name, value)
    except ValueError:
        return f"{name} {name.lstrip('-').replace('-', '_').upper()}"
