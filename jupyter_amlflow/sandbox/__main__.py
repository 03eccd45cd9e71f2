"""``amlflow-sandbox`` / ``python -m jupyter_amlflow.sandbox``: run the sandbox in the foreground.

Prints ``export`` lines a shell can eval (secrets are read from 0600 files, never printed),
then serves until Ctrl-C or SIGTERM, and stops with every child process gone::

    amlflow-sandbox --env-file sandbox.env &
    . ./sandbox.env      # once the file exists

``amlflow-sandbox run NOTEBOOK`` instead executes a notebook headless against a fresh sandbox
and prints the runs it logged (see ``runner.py``).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from . import MLFLOW_API_MODES, Sandbox

SECRET_NAMES = ("AZURE_CLIENT_SECRET",)


def export_lines(sb: Sandbox) -> list[str]:
    """``export`` lines for the sandbox cloud and its service principal; secrets via a file."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sb.env.items()]
    for name, value in sb.service_principal.items():
        if name in SECRET_NAMES:
            path = Path(sb.root) / name.lower()
            path.write_text(value)
            path.chmod(0o600)
            lines.append(f'export {name}="$(cat {shlex.quote(str(path))})"')
        else:
            lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amlflow-sandbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--subscriptions", type=int, default=2)
    p.add_argument("--workspaces-per-subscription", type=int, default=2)
    p.add_argument("--tenants", type=int, default=1)
    p.add_argument("--token-lifetime", type=float, default=3600.0, help="seconds an access token lives")
    p.add_argument("--no-mlflow", action="store_true", help="serve identity and Resource Manager only")
    p.add_argument(
        "--mlflow-api",
        choices=MLFLOW_API_MODES,
        default="azure",
        help="azure (default): refuse the MLflow calls Azure ML refuses; open-source: forward them all",
    )
    p.add_argument("--env-file", type=Path, help="also write the export lines to this file (mode 0600)")
    return p


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amlflow-sandbox run",
        description="Execute a notebook headless against a fresh sandbox; print the runs it logged.",
    )
    p.add_argument("notebook", help="the .ipynb to execute")
    p.add_argument("--subscriptions", type=int, default=1)
    p.add_argument("--workspaces-per-subscription", type=int, default=1)
    p.add_argument("--timeout", type=int, default=600, help="seconds a cell may take")
    p.add_argument("--output", type=Path, help="write the executed notebook here")
    p.add_argument("--keep-running", action="store_true", help="keep serving afterwards so the Studio links open")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        from .runner import main as run_main

        return run_main(_run_parser().parse_args(argv[1:]))
    args = _parser().parse_args(argv)
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
    try:
        sb.start()
        lines = export_lines(sb)
        if args.env_file:
            args.env_file.write_text("\n".join(lines) + "\n")
            args.env_file.chmod(0o600)
        print("\n".join(lines), flush=True)
        print(
            f"# sandbox ready at {sb.base_url} with {len(sb.workspaces)} workspaces; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
        if args.env_file and args.env_file.exists():
            args.env_file.unlink()
    print("# sandbox stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
