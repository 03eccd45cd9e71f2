"""``%amlflow``: the line and cell magic, a thin layer over ``jupyter_amlflow.connection``.

Each subcommand parses its arguments (errors become a one-line ``UsageError``, never a
traceback, never a network call), delegates to the ``Session`` and returns something that
displays (text and HTML forms).
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Float, List, Unicode, observe

from .connection import Session
from .display import KeyValues, Link, Message, Table
from .errors import AmlflowError

HELP_HINT = "%amlflow help"


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as ``UsageError`` instead of exiting the kernel."""

    def error(self, message: str) -> Any:
        # argparse quotes what was typed as it was typed; a newline or escape sequence in it would
        # break the one-line error, and a pasted page would bury it.
        shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
        shown = shown if len(shown) <= 300 else shown[:299] + "…"
        raise UsageError(f"{self.prog}: {shown}. See: {HELP_HINT} {self.prog.split()[-1]}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise UsageError(message or f"{self.prog}: see {HELP_HINT}")


@dataclass(frozen=True)
class Command:
    """One ``%amlflow`` subcommand: its arguments, help and an example."""

    name: str
    summary: str
    example: str
    arguments: Callable[[argparse.ArgumentParser], None]
    cell: bool = False

    def parser(self) -> _Parser:
        parser = _Parser(prog=f"%amlflow {self.name}", add_help=False, description=self.summary)
        self.arguments(parser)
        return parser

    def help(self) -> str:
        usage = self.parser().format_usage().replace("usage: ", "").strip()
        body = self.parser().format_help().split("\n\n", 2)
        options = body[2].strip() if len(body) > 2 else ""
        prefix = "%%" if self.cell else "%"
        example = self.example.replace("%amlflow", f"{prefix}amlflow", 1)
        return f"{usage}\n\n{self.summary}\n\nExample:\n  {example}" + (f"\n\n{options}" if options else "")


def _connect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", nargs="?", help="ARM resource id, azureml:// tracking URI or config.json path")
    p.add_argument("--subscription", "-s", help="subscription id")
    p.add_argument("--resource-group", "-g", help="resource group name")
    p.add_argument("--workspace", "-w", help="workspace name")
    p.add_argument("--cloud", help="AzureCloud, AzureChinaCloud, AzureUSGovernment or a custom cloud")
    p.add_argument("--cloud-metadata-url", metavar="URL", help="ARM metadata document describing a custom cloud")
    p.add_argument("--tenant", "-t", help="tenant id or domain to sign in to")
    p.add_argument("--auth", metavar="METHOD[,METHOD...]", help="sign-in methods to try, in order")
    p.add_argument("--experiment", "-e", help="experiment to use (created if missing)")
    p.add_argument("--timeout", type=float, help="seconds each step may take (default: %%config AmlflowMagics.timeout)")
    p.add_argument("--force", action="store_true", help="replace a tracking URI the platform set")
    p.add_argument(
        "--async-logging",
        action="store_true",
        help="every mlflow.log_* call asynchronous while connected (sets %%config AmlflowMagics.async_logging)",
    )
    _platform_args(p)


def _platform_args(p: argparse.ArgumentParser) -> None:
    """Sign-in options of the notebook platforms (Databricks, Synapse): names only, never values."""
    p.add_argument(
        "--secret-scope",
        metavar="SCOPE",
        help="Databricks: secret scope holding a service principal (keys tenant-id, client-id, client-secret)",
    )
    p.add_argument(
        "--secret-keys",
        metavar="NAME=KEY[,...]",
        help="other key (Key Vault: secret) names, e.g. client-id=app-id,client-secret=app-secret",
    )
    p.add_argument(
        "--key-vault",
        metavar="VAULT",
        help="Synapse: Key Vault holding a service principal (secrets tenant-id, client-id, client-secret)",
    )
    p.add_argument(
        "--linked-service",
        metavar="NAME",
        help="Synapse: linked service whose identity signs in; with --key-vault, the vault's linked service",
    )


def _platform_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "secret_scope": args.secret_scope,
        "secret_keys": args.secret_keys,
        "key_vault": args.key_vault,
        "linked_service": args.linked_service,
    }


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="experiment name (created if missing)")


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["tenants", "subscriptions", "workspaces", "experiments"])
    p.add_argument("--cloud", help="cloud to list in (default: the current one)")
    p.add_argument("--tenant", "-t", help="tenant to list in")
    p.add_argument("--subscription", "-s", action="append", help="only this subscription (repeatable)")
    _platform_args(p)


def _clouds_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["list", "add"], default="list")
    p.add_argument("url", nargs="?", help="with add: the ARM /metadata/endpoints URL of a custom cloud")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", "-n", help="run name")
    p.add_argument("--experiment", "-e", help="experiment for this run (default: the current one)")
    p.add_argument("--tag", "-t", action="append", default=[], metavar="KEY=VALUE", help="run tag (repeatable)")


def _help_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("subcommand", nargs="?", help="a subcommand to explain")


def _no_args(p: argparse.ArgumentParser) -> None:
    return None


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command(
            "connect",
            "Sign in and point MLflow at a workspace. With no workspace, uses config.json from this folder.",
            "%amlflow connect --subscription 0000-... --resource-group rg --workspace ws --experiment demo",
            _connect_args,
        ),
        Command(
            "panel",
            "Pick cloud, tenant, subscription, workspace and experiment by clicking (needs ipywidgets).",
            "%amlflow panel",
            _no_args,
        ),
        Command(
            "experiment",
            "Show the current experiment, or switch to NAME (created if missing).",
            "%amlflow experiment churn-model",
            _experiment_args,
        ),
        Command(
            "status",
            "Workspace, region, cloud, tenant, identity, platform, tracking URI, experiment, Studio link.",
            "%amlflow status",
            _no_args,
        ),
        Command(
            "disconnect",
            "Put MLflow back as it was before connect (tracking URI, registry URI, experiment, environment).",
            "%amlflow disconnect",
            _no_args,
        ),
        Command(
            "logout",
            "Forget the sign-in: this session's credentials and any persisted token cache.",
            "%amlflow logout",
            _no_args,
        ),
        Command(
            "clouds",
            "List the known clouds, or add custom ones from an ARM metadata URL.",
            "%amlflow clouds",
            _clouds_args,
        ),
        Command(
            "list",
            "List tenants, subscriptions or workspaces you can see, or the workspace's experiments.",
            "%amlflow list workspaces",
            _list_args,
        ),
        Command(
            "run",
            "Cell magic: run the cell inside an MLflow run, logging the cell source as an artifact.",
            "%amlflow run --name baseline --tag model=ridge",
            _run_args,
            cell=True,
        ),
        Command(
            "version",
            "Versions of jupyter_amlflow, mlflow and azureml-mlflow, whether they work together (and how that "
            "is known), and the repair for a mixed mlflow install.",
            "%amlflow version",
            _no_args,
        ),
        Command("help", "Explain a subcommand, with an example.", "%amlflow help connect", _help_args),
    )
}


def overview() -> str:
    """The text ``%amlflow help`` and ``%amlflow?`` show."""
    width = max(len(n) for n in COMMANDS)
    lines = ["%amlflow SUBCOMMAND [options]   (%%amlflow run ... as a cell magic)", ""]
    for c in COMMANDS.values():
        lines.append(f"  {c.name.ljust(width)}  {c.summary}")
        lines.append(f"  {' ' * width}  e.g. {'%' if c.cell else ''}{c.example}")
    lines += ["", "%amlflow help SUBCOMMAND shows its options. Settings: %config AmlflowMagics"]
    return "\n".join(lines)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(
            f"%amlflow: {exc} in {line.strip()[:60]!r}. Quote values with spaces: --experiment 'my exp'"
        ) from None


def _command(words: Sequence[str], cell: bool) -> tuple[Command, list[str]]:
    if not words:
        raise UsageError(f"%amlflow needs a subcommand: {', '.join(COMMANDS)}. See: {HELP_HINT}")
    name = words[0].lower()
    command = COMMANDS.get(name)
    if command is None:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        shown = name if len(name) <= 30 else name[:30] + "..."
        raise UsageError(f"%amlflow: unknown subcommand {shown!r}.{guess} See: {HELP_HINT}")
    if command.cell != cell:
        if command.cell:
            raise UsageError("%amlflow run is a cell magic: put %%amlflow run ... on the first line of a cell")
        raise UsageError(f"%%amlflow {name} is a line magic: use %amlflow {name} ... on its own line")
    return command, list(words[1:])


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
        )
        self.experiment_names: list[str] = []
        self.workspace_names: list[str] = []

    @observe("timeout", "auth", "default_cloud", "persist_token_cache", "allow_unencrypted_token_cache")
    def _settings_changed(self, change: dict[str, Any]) -> None:
        s = getattr(self, "session", None)
        if s is None:  # configuration applied while the instance is being built
            return
        s.timeout, s.auth, s.default_cloud = self.timeout, tuple(self.auth) or None, self.default_cloud
        s.persist, s.allow_unencrypted_cache = self.persist_token_cache, self.allow_unencrypted_token_cache

    @observe("async_logging")
    def _async_logging_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "session", None) is not None:  # also applies to the connection in place
            self.session.set_async_logging(bool(change["new"]))

    @line_cell_magic
    def amlflow(self, line: str, cell: str | None = None) -> Any:
        """Connect MLflow to Azure Machine Learning. ``%amlflow help`` lists the subcommands."""
        command, rest = _command(_split(line), cell is not None)
        if command.name == "help":
            return self._help(rest)
        args = command.parser().parse_args(rest)
        handler = getattr(self, f"_do_{command.name}")
        try:
            return handler(args, cell) if command.cell else handler(args)
        except AmlflowError as exc:
            raise UsageError(str(exc)) from None
        except KeyboardInterrupt:
            raise UsageError(f"%amlflow {command.name}: interrupted; nothing was changed.") from None

    # -- subcommands ---------------------------------------------------------------------------
    def _help(self, rest: list[str]) -> Message:
        if not rest:
            return Message(overview())
        command, _ = _command(rest[:1], COMMANDS.get(rest[0].lower(), COMMANDS["help"]).cell)
        return Message(command.help())

    def _widgets_render(self) -> bool:
        """Whether this front end can show widgets (a kernel, not terminal IPython)."""
        return self.shell is not None and self.shell.__class__.__name__ == "ZMQInteractiveShell"

    def _renderer(self) -> Any:
        from . import devicecode

        if self.shell is not None and self.shell.__class__.__name__ != "TerminalInteractiveShell":
            from IPython.display import display

            return devicecode.NotebookDeviceCodeRenderer(display)
        return devicecode.TextDeviceCodeRenderer(sys.stdout)

    def _do_connect(self, args: argparse.Namespace) -> Any:
        from .connect_options import check_timeout, checked_options

        platform = _platform_kwargs(args)
        check_timeout(args.timeout)
        if (
            _nothing_to_go_on(args)
            and not any(platform.values())  # the panel would not use them: let connect say what is missing
            and references_find_config() is None
            and self._widgets_render()
        ):
            # Nothing names a workspace and no config.json: let the person pick one, starting from
            # the options given, each checked as connect would check it.
            start = checked_options(
                self.session,
                cloud=args.cloud,
                cloud_metadata_url=args.cloud_metadata_url,
                tenant=args.tenant,
                auth=args.auth,
                experiment=args.experiment,
                force=args.force,
                timeout=args.timeout,
            )
            return self._do_panel(args, start)
        if args.timeout is not None:
            self.session.timeout = args.timeout
        try:
            conn = self.session.connect(
                args.reference,
                subscription=args.subscription,
                resource_group=args.resource_group,
                workspace=args.workspace,
                cloud=args.cloud,
                cloud_metadata_url=args.cloud_metadata_url,
                tenant=args.tenant,
                auth=args.auth,
                experiment=args.experiment,
                force=args.force,
                renderer=self._renderer(),
                device_code_timeout=self.device_code_timeout,
                async_logging=True if args.async_logging else None,
                **platform,
            )
        finally:
            self.session.timeout = self.timeout
        if args.async_logging:
            self.async_logging = True  # the kernel's setting now: %config AmlflowMagics.async_logging = False undoes it
        self.experiment_names = sorted({*self.experiment_names, conn.experiment.name})
        return conn

    def _do_panel(self, args: argparse.Namespace, start: Any = None) -> Any:
        from .panel import WorkspacePanel

        return WorkspacePanel(self.session, start=start)

    def _do_experiment(self, args: argparse.Namespace) -> Any:
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
        if args.action == "add":
            if not args.url:
                raise UsageError(
                    "%amlflow clouds add URL: give the ARM metadata URL, e.g. https://HOST/metadata/endpoints?api-version=2019-05-01"
                )
            clouds = self.session.add_clouds_from_metadata(args.url)
            # A cloud the catalog knew already (a built-in one, say) stays as it was.
            added = [c.name for c in clouds if c.metadata_url == args.url]
            known = [c.name for c in clouds if c.metadata_url != args.url]
            note = "; ".join(
                part
                for part in (
                    f"Added {', '.join(added)}" if added else "",
                    f"already known, unchanged: {', '.join(known)}" if known else "",
                )
                if part
            )
            note = note[0].upper() + note[1:] + "."
        else:
            note = "Add a custom cloud: %amlflow clouds add URL (an ARM /metadata/endpoints document)."
        rows = [
            [c.name, c.origin, c.authority, c.resource_manager, Link(c.studio, c.studio) if c.studio else None]
            for c in self.session.catalog
        ]
        return Table("Clouds", ["Name", "Source", "Sign-in", "Resource Manager", "Studio"], rows, note)

    def _do_list(self, args: argparse.Namespace) -> Table:
        from . import listing

        table, names = listing.list_things(
            self.session,
            args.what,
            cloud=args.cloud,
            tenant=args.tenant,
            subscriptions=args.subscription,
            renderer=self._renderer(),
            **_platform_kwargs(args),
        )
        if args.what == "workspaces":
            self.workspace_names = names
        elif args.what == "experiments":
            self.experiment_names = names
        return table

    def _do_version(self, args: argparse.Namespace) -> KeyValues:
        from . import compat

        return compat.report()

    def _do_run(self, args: argparse.Namespace, cell: str) -> Any:
        from . import cellrun

        tags = {}
        for item in args.tag:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UsageError(f"%%amlflow run: --tag wants KEY=VALUE, got {item[:40]!r}")
            tags[key] = value
        from IPython.display import display

        return cellrun.run_cell(
            self.shell, self.session, cell, name=args.name, experiment=args.experiment, tags=tags, show=display
        )

    # -- completion ----------------------------------------------------------------------------
    def complete(self, event: Any) -> list[str]:
        """Tab completion: subcommands, options, cloud names, and names already fetched (no network).

        Names come from servers; each completion is written so that the line gives it back
        exactly and IPython's expansion evaluates nothing in it (``pasteable.magic_arg``).
        """
        words = event.text_until_cursor.split()
        typing_new = event.text_until_cursor.endswith(" ")
        words = words[1:]  # drop "%amlflow" / "%%amlflow"
        if not words or (len(words) == 1 and not typing_new):
            return list(COMMANDS)
        command = COMMANDS.get(words[0].lower())
        if command is None:
            return []
        previous = words[-1] if typing_new else (words[-2] if len(words) > 1 else "")
        values = {
            "--cloud": self.session.catalog.names(),
            "--auth": _auth_methods(),
            "--workspace": self.workspace_names,
            "-w": self.workspace_names,
            "--experiment": self.experiment_names,
            "-e": self.experiment_names,
        }
        if previous in values:
            return _inert(values[previous])
        if command.name == "experiment":
            return _inert(self.experiment_names)
        if command.name == "list":
            return ["tenants", "subscriptions", "workspaces", "experiments"]
        if command.name == "help":
            return list(COMMANDS)
        if command.name == "clouds":
            return ["list", "add"]
        return [opt for action in command.parser()._actions for opt in action.option_strings if opt.startswith("--")]


def _inert(names: Sequence[str]) -> list[str]:
    """Names as completions a line gives back unchanged (names no magic line can carry are left out)."""
    from .pasteable import magic_arg

    out = []
    for name in names:
        try:
            out.append(magic_arg(name, quotes=False))
        except ValueError:
            continue
    return out


def _nothing_to_go_on(args: argparse.Namespace) -> bool:
    return not (args.reference or args.subscription or args.resource_group or args.workspace)


def references_find_config() -> Any:
    from .references import find_config

    return find_config()


def _auth_methods() -> list[str]:
    from .auth import METHODS

    return list(METHODS)


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
