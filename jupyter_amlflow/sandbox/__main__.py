"""``amlflow-sandbox`` / ``python -m jupyter_amlflow.sandbox``: the sandbox on the command line.

``amlflow-sandbox`` serves in the foreground; ``amlflow-sandbox run NOTEBOOK`` executes a notebook
against a fresh sandbox (``runner.py``). The help text is ``DESCRIPTION`` below: plain text,
as a terminal shows it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ..pasteable import connect_command
from . import MLFLOW_API_MODES, Sandbox
from ._envfile import OwnFile, taken

SECRET_NAMES = ("AZURE_CLIENT_SECRET",)

USAGE = """%(prog)s [options]
       %(prog)s run NOTEBOOK [options]     (see: %(prog)s run --help)"""

DESCRIPTION = """\
A local stand-in for Entra ID, Azure Resource Manager and the Azure ML MLflow API, in front of real
mlflow servers, on 127.0.0.1 over HTTPS.

amlflow-sandbox [options]
  Serve until Ctrl-C or SIGTERM, then stop with every child process. Prints export lines a shell
  can eval (the client secret is read from a 0600 file, never printed), then a %amlflow connect
  line to paste into a notebook started from that shell:

    amlflow-sandbox --env-file sandbox.env &
    . ./sandbox.env      # once the file exists

amlflow-sandbox run NOTEBOOK [options]
  Execute a notebook headless against a fresh sandbox and print the runs it logged."""


def export_lines(sb: Sandbox) -> list[str]:
    """``export`` lines for the sandbox cloud and its service principal; secrets via a file."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sb.env.items()]
    for name, value in sb.service_principal.items():
        if name in SECRET_NAMES:
            path = Path(sb.root) / name.lower()
            if not taken(path):  # a second call reuses the file the first one made
                OwnFile.create(path, value)
            lines.append(f'export {name}="$(cat {shlex.quote(str(path))})"')
        else:
            lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def ready_lines(sb: Sandbox) -> list[str]:
    """What a person reads once the sandbox serves, ending with a line to paste into a notebook."""
    lines = [f"# sandbox ready at {sb.base_url} with {len(sb.workspaces)} workspaces; Ctrl-C stops it"]
    if sb.workspaces:
        lines += [
            "# In Jupyter started from a shell with the exports above, after %load_ext jupyter_amlflow:",
            connect_command(sb.workspaces[0].arm_id),
        ]
    return lines


def _program() -> list[str]:
    """How this program was started, for the commands it suggests."""
    if os.path.basename(sys.argv[0]) == "amlflow-sandbox":
        return [sys.argv[0]]
    return [sys.executable, "-m", "jupyter_amlflow.sandbox"]


def _add_sizes(p: argparse.ArgumentParser, default: int) -> None:
    """``--subscriptions`` and ``--workspaces-per-subscription``, both ``default`` unless given."""
    p.add_argument(
        "--subscriptions", type=int, default=default, metavar="N", help=f"subscriptions to create (default {default})"
    )
    p.add_argument(
        "--workspaces-per-subscription",
        type=int,
        default=default,
        metavar="N",
        help=f"workspaces in each subscription (default {default})",
    )


def parser() -> argparse.ArgumentParser:
    """The options of ``amlflow-sandbox`` (serving in the foreground)."""
    p = argparse.ArgumentParser(
        prog="amlflow-sandbox",
        usage=USAGE,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_sizes(p, 2)
    p.add_argument(
        "--tenants",
        type=int,
        default=1,
        metavar="N",
        help="tenants (default 1); subscriptions are spread over them, the service principal is in all",
    )
    p.add_argument("--token-lifetime", type=float, default=3600.0, help="seconds an access token lives")
    p.add_argument("--no-mlflow", action="store_true", help="serve identity and Resource Manager only")
    p.add_argument(
        "--mlflow-api",
        choices=MLFLOW_API_MODES,
        default="azure",
        help="azure (default): refuse the MLflow calls Azure ML refuses; open-source: forward them all",
    )
    p.add_argument(
        "--env-file",
        type=Path,
        help="also write the export lines to this new file (mode 0600; an existing path is refused), "
        "removed at exit",
    )
    return p


def run_parser() -> argparse.ArgumentParser:
    """The options of ``amlflow-sandbox run NOTEBOOK``."""
    p = argparse.ArgumentParser(
        prog="amlflow-sandbox run",
        description="Execute a notebook headless against a fresh sandbox; print the runs it logged. Their "
        "Studio links open while the sandbox runs: --keep-running keeps it serving until Ctrl-C.",
    )
    p.add_argument("notebook", help="the .ipynb to execute")
    _add_sizes(p, 1)
    p.add_argument("--timeout", type=int, default=600, metavar="SECONDS", help="seconds a cell may take")
    p.add_argument("--output", type=Path, help="write the executed notebook here")
    p.add_argument("--keep-running", action="store_true", help="keep serving afterwards so the Studio links open")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        from .runner import main as run_main

        args = run_parser().parse_args(argv[1:])
        args.command_line = [*_program(), *argv]  # to suggest the same command with --keep-running
        return run_main(args)
    args = parser().parse_args(argv)
    if args.env_file is not None and taken(args.env_file):
        # Checked before anything starts; created exclusively below all the same (a race).
        print(
            f"amlflow-sandbox: --env-file {args.env_file} exists; it is never overwritten. "
            "Give a path that does not exist yet, or remove that file first.",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sb = Sandbox(
        subscriptions=args.subscriptions,
        workspaces_per_subscription=args.workspaces_per_subscription,
        tenants=args.tenants,
        token_lifetime=args.token_lifetime,
        mlflow=not args.no_mlflow,
        mlflow_api=args.mlflow_api,
    )
    env_file: OwnFile | None = None
    try:
        sb.start()
        lines = export_lines(sb)
        if args.env_file:
            try:
                env_file = OwnFile.create(args.env_file, "\n".join(lines) + "\n")
            except OSError as exc:
                print(
                    f"amlflow-sandbox: cannot create --env-file {args.env_file}: {exc.strerror or exc}. "
                    "Give a new path in a folder you can write to.",
                    file=sys.stderr,
                )
                return 2
        print("\n".join(lines), flush=True)
        print("\n".join(ready_lines(sb)), file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
        if env_file is not None:
            env_file.remove()  # only the file made above, if it is still there unchanged
    print("# sandbox stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
