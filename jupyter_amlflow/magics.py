"""``%amlflow``: the line and cell magic, a thin layer over ``jupyter_amlflow.connection``.

Each subcommand is parsed by its ``commands.Command`` (errors become a one-line ``UsageError``,
never a traceback, never a network call); its ``_do_NAME`` method here delegates to the
``Session`` (or the module that does the work) and returns something that displays (text and
HTML forms). The ``Session`` is this instance's, and its settings are the traitlets below.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display
from traitlets import Bool, Enum, Float, List, Unicode, observe

from . import cellrun, commands, compat, devicecode, listing
from .clouds import Cloud, CloudCatalog
from .commands import COMMANDS, overview
from .connection import Session
from .display import KeyValues, Link, Message, Table
from .errors import AmlflowError
from .references import find_config

if TYPE_CHECKING:
    from .runs.charts import Renders

__all__ = ["COMMANDS", "AmlflowMagics", "load", "unload"]


@magics_class
class AmlflowMagics(Magics):
    """Connect MLflow to Azure Machine Learning from a notebook."""

    default_cloud = Unicode(
        None,
        allow_none=True,
        help="Cloud used when neither --cloud nor AZUREML_CURRENT_CLOUD names one (default AzureCloud).",
    ).tag(config=True)
    auth = List(
        Unicode(),
        default_value=[],
        help="Sign-in methods to try, in order (databricks-secrets, synapse-keyvault, env, workload-identity, "
        "managed-identity, synapse-token, cli, powershell, browser, device-code). Empty: chosen by where the "
        "kernel runs.",
    ).tag(config=True)
    timeout = Float(30.0, help="Seconds each network step of connect may take.").tag(config=True)
    device_code_timeout = Float(900.0, help="Seconds to wait for you to finish a device-code sign-in.").tag(config=True)
    persist_token_cache = Bool(
        False, help="Keep the sign-in across kernels (encrypted token cache + saved account)."
    ).tag(config=True)
    allow_unencrypted_token_cache = Bool(
        False,
        help="With persist_token_cache, allow a plain 0600 cache file where no secret store exists.",
    ).tag(config=True)
    async_logging = Bool(
        False,
        help="While connected, make every mlflow.log_* call asynchronous: values are batched and sent in the "
        "background, flushed at end_run and disconnect. Off by default: synchronous is what mlflow promises "
        "(log_metric(..., synchronous=False) is asynchronous either way).",
    ).tag(config=True)

    live_charts = Bool(
        False,
        help="%%amlflow run charts the run's metrics under the cell while it runs, as with --live "
        "(--no-live turns it off for one cell).",
    ).tag(config=True)
    charts = Enum(
        ("auto", "vega-lite", "html"),
        "auto",
        help="What charts show besides text: vega-lite (drawn by JupyterLab, Notebook 7, VS Code), html (a table of "
        "each line's values, for front ends that cannot draw Vega-Lite), or auto (vega-lite in a Jupyter kernel, "
        "html on Databricks and Synapse).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.session = Session(
            user_ns=shell.user_ns if shell is not None else None,
            timeout=self.timeout,
            auth=self.auth or None,
            default_cloud=self.default_cloud,
            persist=self.persist_token_cache,
            allow_unencrypted_cache=self.allow_unencrypted_token_cache,
            async_logging=self.async_logging,
            device_code_timeout=self.device_code_timeout,
        )
        self.experiment_names: list[str] = []
        self.workspace_names: list[str] = []

    @observe(
        "timeout",
        "auth",
        "default_cloud",
        "persist_token_cache",
        "allow_unencrypted_token_cache",
        "device_code_timeout",
    )
    def _settings_changed(self, change: dict[str, Any]) -> None:
        s = getattr(self, "session", None)
        if s is None:  # configuration applied while the instance is being built
            return
        s.timeout, s.auth, s.default_cloud = self.timeout, tuple(self.auth) or None, self.default_cloud
        s.persist, s.allow_unencrypted_cache = self.persist_token_cache, self.allow_unencrypted_token_cache
        s.device_code_timeout = self.device_code_timeout

    @observe("async_logging")
    def _async_logging_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "session", None) is not None:  # also applies to the connection in place
            self.session.set_async_logging(bool(change["new"]))

    @line_cell_magic
    def amlflow(self, line: str, cell: str | None = None) -> Any:
        """Connect MLflow to Azure Machine Learning. ``%amlflow help`` lists the subcommands."""
        command, rest = commands.command(commands.split(line), cell is not None)
        if command.name == "help":
            return Message(commands.help_text(rest))
        args = command.parser().parse_args(rest)
        handler = getattr(self, f"_do_{command.name}")
        try:
            return handler(args, cell) if command.cell else handler(args)
        except AmlflowError as exc:
            raise UsageError(str(exc)) from None
        except KeyboardInterrupt:
            raise UsageError(f"%amlflow {command.name}: interrupted; nothing was changed.") from None

    # -- subcommands: parse, delegate, return something that displays --------------------------
    def _widgets_render(self) -> bool:
        """Whether this front end can show widgets (a kernel, not terminal IPython)."""
        return self.shell is not None and self.shell.__class__.__name__ == "ZMQInteractiveShell"

    def _renderer(self) -> Any:
        if self.shell is not None and self.shell.__class__.__name__ != "TerminalInteractiveShell":
            return devicecode.NotebookDeviceCodeRenderer(display)
        return devicecode.TextDeviceCodeRenderer(sys.stdout)

    def _do_connect(self, args: argparse.Namespace) -> Any:
        from .connect_request import ConnectRequest  # with auth: on first use, not at %load_ext

        request = ConnectRequest(**vars(args))  # the parser's destinations are the request's fields
        if (
            not request.finds_workspace
            and request.platform_options is None  # the panel would not use them: let connect say what is missing
            and find_config() is None
            and self._widgets_render()
        ):
            # Nothing names a workspace and no config.json: let the person pick one, starting from
            # the options given, each checked as connect would check it.
            self.session.check_cloud_options(request)
            return self._do_panel(args, request)
        conn = self.session.connect(request, renderer=self._renderer())
        if args.async_logging:
            self.async_logging = True  # the kernel's setting now: %config AmlflowMagics.async_logging = False undoes it
        self.experiment_names = sorted({*self.experiment_names, conn.experiment.name})
        return conn

    def _do_panel(self, args: argparse.Namespace, start: Any = None) -> Any:
        from .panel import WorkspacePanel  # ipywidgets: only when a panel is asked for

        return WorkspacePanel(self.session, start=start)

    def _do_experiment(self, args: argparse.Namespace) -> Message:
        if args.name is None:
            conn = self.session.require_connection()
            return Message(f"Experiment: {conn.experiment.name} (id {conn.experiment.experiment_id})")
        experiment = self.session.set_experiment(args.name)
        self.experiment_names = sorted({*self.experiment_names, experiment.name})
        verb = "Created and switched to" if experiment.created else "Switched to"
        return Message(f"{verb} experiment {experiment.name} (id {experiment.experiment_id})")

    def _do_status(self, args: argparse.Namespace) -> KeyValues:
        return self.session.status()

    def _do_disconnect(self, args: argparse.Namespace) -> Message:
        if self.session.connection is None:  # nothing to undo is not an error
            return Message("Not connected to a workspace; nothing to disconnect.")
        name = self.session.connection.workspace.name
        self.session.disconnect()
        return Message(f"Disconnected from {name}; MLflow is set back to what it was before connect.")

    def _do_logout(self, args: argparse.Namespace) -> Message:
        from . import auth

        notes = []
        if self.session.connection is not None:
            self.session.disconnect()
            notes.append("disconnected")
        removed = auth.logout()
        self.session.forget_sign_ins()
        notes.append(f"removed {', '.join(removed)}" if removed else "no saved sign-in to remove")
        return Message("Signed out: " + "; ".join(notes) + ".")

    def _do_clouds(self, args: argparse.Namespace) -> Table:
        if args.action != "add":
            return clouds_table(self.session.catalog)
        if not args.url:
            raise UsageError(
                "%amlflow clouds add URL: give the ARM metadata URL, e.g. https://HOST/metadata/endpoints?api-version=2019-05-01"
            )
        return clouds_table(self.session.catalog, args.url, self.session.add_clouds_from_metadata(args.url))

    def _do_list(self, args: argparse.Namespace) -> Table:
        table, names = listing.list_things(
            self.session,
            args.what,
            cloud=args.cloud,
            tenant=args.tenant,
            subscriptions=args.subscription,
            renderer=self._renderer(),
            **commands.platform_kwargs(args),
        )
        if args.what == "workspaces":
            self.workspace_names = names
        elif args.what == "experiments":
            self.experiment_names = names
        return table

    def _do_version(self, args: argparse.Namespace) -> KeyValues:
        return compat.report()

    def _do_run(self, args: argparse.Namespace, cell: str) -> Any:
        tags = commands.tags(args.tag)
        live = self._live_chart if (self.live_charts if args.live is None else args.live) else None
        return cellrun.run_cell(
            self.shell,
            self.session,
            cell,
            name=args.name,
            experiment=args.experiment,
            tags=tags,
            show=display,
            live=live,
        )

    def _live_chart(self, tracking_uri: str, run_id: str, label: str) -> Any:
        """Start the live chart of ``%%amlflow run --live`` (redrawn only where outputs can be replaced)."""
        from .runs.live import LiveChart, Watching

        chart = LiveChart(run_id, label, display=display, renders=self._renders(), updates=self._widgets_render())
        return Watching(tracking_uri, chart).start()

    # -- the run views ---------------------------------------------------------------------------
    def _renders(self) -> Renders:
        """What a chart's output carries besides text (``%config AmlflowMagics.charts``)."""
        from .runs import renders_for

        if self.charts == "vega-lite":
            return "vega-lite"
        if self.charts == "html":
            return "html"
        return renders_for(kernel=self._widgets_render(), platform=self.session.platform.name)

    def _do_runs(self, args: argparse.Namespace) -> Any:
        from . import runs

        conn = self.session.require_connection()
        return runs.run_table(
            conn, experiment=args.experiment, last=args.last, filter_string=args.filter, sort=args.sort
        )

    def _do_compare(self, args: argparse.Namespace) -> Any:
        from . import runs

        conn = self.session.require_connection()
        return runs.compare_runs(conn, args.runs, experiment=args.experiment, renders=self._renders())

    def _do_chart(self, args: argparse.Namespace) -> Any:
        from . import runs

        conn = self.session.require_connection()
        return runs.metric_chart(conn, args.metric, runs=args.runs, experiment=args.experiment, renders=self._renders())

    def complete(self, event: Any) -> list[str]:
        """Tab completion: subcommands, options, cloud names, and names already fetched (no network)."""
        from .auth import METHODS

        return commands.completions(
            event.text_until_cursor,
            clouds=self.session.catalog.names(),
            methods=list(METHODS),
            workspaces=self.workspace_names,
            experiments=self.experiment_names,
        )


def clouds_table(catalog: CloudCatalog, url: str | None = None, added: list[Cloud] | None = None) -> Table:
    """What ``%amlflow clouds`` shows: the known clouds, and which of ``added`` (from ``url``) are new."""
    if added is None:
        note = "Add a custom cloud: %amlflow clouds add URL (an ARM /metadata/endpoints document)."
    else:
        # A cloud the catalog knew already (a built-in one, say) stays as it was.
        new = [c.name for c in added if c.metadata_url == url]
        known = [c.name for c in added if c.metadata_url != url]
        said = [f"Added {', '.join(new)}"] if new else []
        if known:
            said.append(f"already known, unchanged: {', '.join(known)}")
        note = "; ".join(said)
        note = note[0].upper() + note[1:] + "."
    rows = [
        [c.name, c.origin, c.authority, c.resource_manager, Link(c.studio, c.studio) if c.studio else None]
        for c in catalog
    ]
    return Table("Clouds", ["Name", "Source", "Sign-in", "Resource Manager", "Studio"], rows, note)


def _completer(shell: Any, event: Any) -> list[str]:
    magics = shell.magics_manager.registry.get("AmlflowMagics")
    return magics.complete(event) if magics is not None else []


def load(shell: Any) -> None:
    """Register the magics and the completer (idempotent: a second load changes nothing)."""
    if "AmlflowMagics" in shell.magics_manager.registry:
        return
    shell.register_magics(AmlflowMagics(shell=shell))
    for key in ("%amlflow", "%%amlflow"):
        shell.set_hook("complete_command", _completer, str_key=key)


def unload(shell: Any) -> None:
    """Remove the magics and the completer; refuses while a run is active, as disconnect does."""
    magics = shell.magics_manager.registry.get("AmlflowMagics")
    if magics is not None and magics.session.connection is not None:
        try:
            magics.session.disconnect()
        except AmlflowError as exc:
            raise UsageError(f"%unload_ext jupyter_amlflow: {exc}") from None
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("amlflow", None)
    shell.magics_manager.registry.pop("AmlflowMagics", None)
    if magics is not None:
        # Magics.__init__ put the instance into shell.configurables (for %config); leaving it there
        # would keep its Session, with credentials and open clients, alive after unloading.
        if hasattr(shell, "configurables"):
            shell.configurables[:] = [c for c in shell.configurables if c is not magics]
        magics.session.forget_sign_ins()
    dispatch = shell.strdispatchers.get("complete_command")
    if dispatch is not None:
        for key in ("%amlflow", "%%amlflow"):
            chain = dispatch.strs.get(key)
            if chain is None:
                continue
            chain.chain = [(p, f) for p, f in chain.chain if getattr(f, "__func__", None) is not _completer]
            if not chain.chain:
                del dispatch.strs[key]


AmlflowMagics.amlflow.__doc__ = overview()
