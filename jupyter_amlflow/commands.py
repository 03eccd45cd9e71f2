"""The ``%amlflow`` command line: its subcommands, their arguments and help, and tab completion.

``COMMANDS`` is the one table of subcommands: ``magics.py`` dispatches on it, ``%amlflow help``
and the README's reference are written from it. Arguments are parsed with argparse whose errors
become a one-line ``UsageError`` (never a traceback, never an exit, never a network call).
Completion reads only what the kernel already has (no network), and offers server-given names
only in a form a magic line gives back unchanged (``pasteable.magic_arg``).
"""

from __future__ import annotations

import argparse
import difflib
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from .pasteable import magic_arg

HELP_HINT = "%amlflow help"
LIST_WHAT = ["tenants", "subscriptions", "workspaces", "experiments"]


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

    def options(self) -> list[str]:
        """Its ``--long`` options, for completion."""
        return [opt for action in self.parser()._actions for opt in action.option_strings if opt.startswith("--")]


# -- the arguments of each subcommand --------------------------------------------------------------
def _connect_args(p: argparse.ArgumentParser) -> None:
    # Every destination is a field (or an init argument) of ConnectRequest: the magic builds one from them.
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
        default=None,  # not given: the session's setting
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


def platform_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The platform sign-in options of parsed arguments, as keywords."""
    return {
        "secret_scope": args.secret_scope,
        "secret_keys": args.secret_keys,
        "key_vault": args.key_vault,
        "linked_service": args.linked_service,
    }


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="experiment name (created if missing)")


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=LIST_WHAT)
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
    p.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,  # not given: %config AmlflowMagics.live_charts
        help="chart the run's metrics under the cell while it runs (default: %%config AmlflowMagics.live_charts)",
    )


def _runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", "-e", help="experiment (default: the current one)")
    p.add_argument("--last", "-n", type=int, default=20, metavar="N", help="how many runs, newest first (1 to 1000)")
    p.add_argument("--filter", "-f", metavar="FILTER", help='mlflow run filter, e.g. "metrics.rmse < 0.3"')
    p.add_argument(
        "--sort",
        "-s",
        action="append",
        default=[],
        metavar="COLUMN",
        help="sort by a column, e.g. metrics.rmse or 'metrics.rmse DESC' (repeatable)",
    )


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids or names (2 to 10)")
    p.add_argument("--experiment", "-e", help="where run names are looked up (default: the current one)")


def _chart_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("metric", help="the metric to draw")
    p.add_argument("--runs", nargs="+", default=[], metavar="RUN", help="run ids or names (default: the latest 5)")
    p.add_argument("--experiment", "-e", help="experiment (default: the current one)")


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
            "Cell magic: run the cell inside an MLflow run, logging the cell source as an artifact; --live charts "
            "its metrics while it runs.",
            "%amlflow run --name baseline --tag model=ridge --live",
            _run_args,
            cell=True,
        ),
        Command(
            "runs",
            "A table of the experiment's runs: status, start, duration, the metrics and params that differ, "
            "Studio links.",
            "%amlflow runs --last 10 --sort metrics.rmse",
            _runs_args,
        ),
        Command(
            "compare",
            "Runs side by side (ids or names): params and last metric values, differences highlighted, and a "
            "chart of each metric they all logged.",
            "%amlflow compare baseline ridge",
            _compare_args,
        ),
        Command(
            "chart",
            "Chart a metric's history, a line per run (the latest 5 that logged it, or those named).",
            "%amlflow chart rmse --runs baseline ridge",
            _chart_args,
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


# -- reading a line --------------------------------------------------------------------------------
def split(line: str) -> list[str]:
    """The words of a magic line, as a shell would split them."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(
            f"%amlflow: {exc} in {line.strip()[:60]!r}. Quote values with spaces: --experiment 'my exp'"
        ) from None


def command(words: Sequence[str], cell: bool) -> tuple[Command, list[str]]:
    """The subcommand the words name (as a line or a cell magic), and the words after it."""
    if not words:
        raise UsageError(f"%amlflow needs a subcommand: {', '.join(COMMANDS)}. See: {HELP_HINT}")
    name = words[0].lower()
    found = COMMANDS.get(name)
    if found is None:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        shown = name if len(name) <= 30 else name[:30] + "..."
        raise UsageError(f"%amlflow: unknown subcommand {shown!r}.{guess} See: {HELP_HINT}")
    if found.cell != cell:
        if found.cell:
            raise UsageError("%amlflow run is a cell magic: put %%amlflow run ... on the first line of a cell")
        raise UsageError(f"%%amlflow {name} is a line magic: use %amlflow {name} ... on its own line")
    return found, list(words[1:])


def help_text(rest: Sequence[str]) -> str:
    """What ``%amlflow help [SUBCOMMAND]`` shows."""
    if not rest:
        return overview()
    found, _ = command(rest[:1], COMMANDS.get(rest[0].lower(), COMMANDS["help"]).cell)
    return found.help()


def tags(items: Sequence[str]) -> dict[str, str]:
    """``--tag KEY=VALUE`` items as a mapping."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"%%amlflow run: --tag wants KEY=VALUE, got {item[:40]!r}")
        out[key] = value
    return out


# -- completion ------------------------------------------------------------------------------------
def completions(
    text: str, *, clouds: Sequence[str], methods: Sequence[str], workspaces: Sequence[str], experiments: Sequence[str]
) -> list[str]:
    """Tab completions for ``text`` (the line up to the cursor), from names the kernel already has."""
    words = text.split()
    typing_new = text.endswith(" ")
    words = words[1:]  # drop "%amlflow" / "%%amlflow"
    if not words or (len(words) == 1 and not typing_new):
        return list(COMMANDS)
    found = COMMANDS.get(words[0].lower())
    if found is None:
        return []
    previous = words[-1] if typing_new else (words[-2] if len(words) > 1 else "")
    values = {
        "--cloud": clouds,
        "--auth": methods,
        "--workspace": workspaces,
        "-w": workspaces,
        "--experiment": experiments,
        "-e": experiments,
    }
    if previous in values:
        return _inert(values[previous])
    by_command = {"experiment": _inert(experiments), "list": LIST_WHAT, "help": list(COMMANDS)}
    by_command["clouds"] = ["list", "add"]
    return list(by_command[found.name]) if found.name in by_command else found.options()


def _inert(names: Sequence[str]) -> list[str]:
    """Names as completions a line gives back unchanged (names no magic line can carry are left out)."""
    out = []
    for name in names:
        try:
            out.append(magic_arg(name, quotes=False))
        except ValueError:
            continue
    return out
