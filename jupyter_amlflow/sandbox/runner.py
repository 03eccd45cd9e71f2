"""``amlflow-sandbox run NOTEBOOK``: execute a notebook headless against a fresh sandbox.

The notebook runs in a real kernel whose environment points at the sandbox cloud, signed in as
the sandbox's service principal, in a working folder holding the portal-style ``config.json`` of
the first workspace (so ``%amlflow connect`` with no arguments finds it). Afterwards the runs the
notebook logged are read back from the sandbox's backing mlflow servers and printed, each with
its Studio-style link. Exit status 1 if a cell failed or no run was logged.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from . import Sandbox, Workspace


@dataclass
class LoggedRun:
    """A run read back from a workspace's backing server."""

    workspace: Workspace
    experiment: str
    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    metric_steps: dict[str, int]
    artifacts: list[str]
    studio_url: str | None


@dataclass
class Report:
    """What ``run_notebook`` found."""

    notebook: Path
    cells: int
    failed_cells: list[tuple[int, str]]
    seconds: float
    runs: list[LoggedRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No cell failed and at least one run landed."""
        return not self.failed_cells and bool(self.runs)


def write_config(directory: Path, workspace: Workspace) -> Path:
    """The ``config.json`` the Azure portal offers for a workspace."""
    path = directory / "config.json"
    path.write_text(
        json.dumps(
            {
                "subscription_id": workspace.subscription_id,
                "resource_group": workspace.resource_group,
                "workspace_name": workspace.name,
            },
            indent=2,
        )
    )
    return path


# The kernel's socket folder: "<folder>/kernel-<n>" must fit a Unix socket path (107 bytes).
_MAX_SOCKET_DIR = 90


def _short_temp_dir() -> str | None:
    """Where to make the kernel's socket folder: the temp dir, or ``/tmp`` when TMPDIR is too long.

    A test's or CI job's TMPDIR is often a deep path; ``/tmp`` is short and, like any folder made
    by ``mkdtemp``, the folder inside it is private (0700).
    """
    default = tempfile.gettempdir()
    if len(default) + len("/amlflow-kernel-XXXXXXXX") < _MAX_SOCKET_DIR or not os.path.isdir("/tmp"):
        return None
    return "/tmp"


def run_notebook(
    sb: Sandbox, notebook: Path, *, workdir: Path, timeout: int = 600, output: Path | None = None
) -> Report:
    """Execute ``notebook`` in ``workdir`` against ``sb``; read back what it logged."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from traitlets.config import Config

    nb = nbformat.read(str(notebook), as_version=4)
    write_config(workdir, sb.workspaces[0])
    env = {**os.environ, **sb.env, **sb.service_principal}
    started = time.time()
    # IPC: the kernel's sockets are files in a folder of our own (mode 0700), so no port is open to
    # other local users, and ipykernel has no "running over TCP without encryption" warning to print
    # over the summary. An absolute path: the default ("kernel-ipc") is relative, and the kernel
    # runs in another folder than this process.
    sockets = Path(tempfile.mkdtemp(prefix="amlflow-kernel-", dir=_short_temp_dir()))
    # A Unix socket path holds at most 107 bytes; where even the fallback is too long, TCP it is.
    ipc = {"transport": "ipc", "ip": str(sockets / "kernel")} if len(str(sockets)) < _MAX_SOCKET_DIR else {}
    transport = Config({"KernelManager": ipc})
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True, config=transport)
    try:
        client.execute(env=env, cwd=str(workdir))
    except CellExecutionError:  # allow_errors=True records errors in the outputs instead
        pass
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    failed = [
        (i, f"{out.get('ename')}: {out.get('evalue')}")
        for i, cell in enumerate(nb.cells)
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    if output is not None:
        nbformat.write(nb, str(output))
    report = Report(notebook, len(nb.cells), failed, time.time() - started)
    report.runs = logged_runs(sb, since=started)
    return report


def logged_runs(sb: Sandbox, *, since: float) -> list[LoggedRun]:
    """Runs started after ``since`` in any workspace whose backend is running."""
    from mlflow.tracking import MlflowClient

    from ..clouds import clouds_from_metadata

    cloud = clouds_from_metadata(sb.cloud_metadata(), sb.metadata_url)[0]
    found: list[LoggedRun] = []
    for ws in sb.workspaces:
        if sb.mlflow is None or not sb.mlflow.used(ws):  # no MLflow call reached it
            continue
        client = MlflowClient(tracking_uri=sb.backend_tracking_uri(ws))
        experiments = {e.experiment_id: e.name for e in client.search_experiments()}
        if not experiments:
            continue
        for run in client.search_runs(list(experiments), order_by=["attributes.start_time ASC"]):
            if run.info.start_time < since * 1000:
                continue
            steps = {key: len(client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics}
            found.append(
                LoggedRun(
                    workspace=ws,
                    experiment=experiments[run.info.experiment_id],
                    run_id=run.info.run_id,
                    name=run.info.run_name or run.info.run_id,
                    status=run.info.status,
                    params=dict(run.data.params),
                    metrics=dict(run.data.metrics),
                    metric_steps=steps,
                    artifacts=_artifact_paths(client, run.info.run_id),
                    studio_url=cloud.studio_run_url(
                        run.info.run_id, ws.subscription_id, ws.resource_group, ws.name, ws.tenant_id
                    ),
                )
            )
    return found


def _artifact_paths(client: Any, run_id: str, path: str | None = None) -> list[str]:
    """Every file a run holds (the plugin's uploads land in the backing server's artifact store)."""
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        found.extend(_artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return found


def print_report(report: Report, out: TextIO = sys.stdout) -> None:
    """The human summary the demo command ends with."""
    errors = f", {len(report.failed_cells)} failed" if report.failed_cells else ", all succeeded"
    print(
        f"Executed {report.notebook} against the sandbox: {report.cells} cells{errors} ({report.seconds:.1f} s).",
        file=out,
    )
    for index, error in report.failed_cells:
        print(f"  cell {index}: {error}", file=out)
    if not report.runs:
        print("No MLflow run was logged to the sandbox.", file=out)
        return
    print(f"Runs read back from the sandbox ({len(report.runs)}):", file=out)
    for run in report.runs:
        print(f"  {run.name}  [{run.status}]  workspace {run.workspace.name}, experiment {run.experiment}", file=out)
        if run.params:
            print("    params:    " + ", ".join(f"{k}={v}" for k, v in sorted(run.params.items())), file=out)
        if run.metrics:
            shown = ", ".join(
                f"{k}={v:g}" + (f" ({run.metric_steps[k]} steps)" if run.metric_steps.get(k, 1) > 1 else "")
                for k, v in sorted(run.metrics.items())
            )
            print(f"    metrics:   {shown}", file=out)
        if run.artifacts:
            print("    artifacts: " + ", ".join(run.artifacts), file=out)
        if run.studio_url:
            print(f"    Studio:    {run.studio_url}", file=out)


def print_links_note(again: str, out: TextIO = sys.stdout) -> None:
    """Say that the Studio links die with the sandbox, and how to keep it serving."""
    print(
        "The Studio links above open only while the sandbox runs, and it stops now. To click them, run:\n"
        f"  {again}",
        file=out,
    )


def _serve_until_stopped() -> None:
    """Block until Ctrl-C or SIGTERM (kill PID), whatever SIGINT disposition this process inherited."""
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in signals}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(args: Any) -> int:
    """The ``run`` subcommand (``args.command_line``: how it was started, to suggest it again)."""
    from . import Sandbox

    notebook = Path(args.notebook).resolve()
    if not notebook.is_file():
        print(f"amlflow-sandbox run: no notebook at {notebook}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="amlflow-run-"))
    try:
        with Sandbox(
            subscriptions=args.subscriptions, workspaces_per_subscription=args.workspaces_per_subscription
        ) as sb:
            print(f"# sandbox ready at {sb.base_url}; running {notebook.name} headless...", file=sys.stderr, flush=True)
            report = run_notebook(sb, notebook, workdir=workdir, timeout=args.timeout, output=args.output)
            print_report(report)
            linked = any(run.studio_url for run in report.runs)
            if linked and not args.keep_running:
                print_links_note(shlex.join([*args.command_line, "--keep-running"]))
            if linked and args.keep_running:
                sys.stdout.flush()  # the links, before waiting: stdout may be a pipe (| tee)
                print(
                    f"# the sandbox keeps running so the Studio links open; Ctrl-C (or kill {os.getpid()}) stops it",
                    file=sys.stderr,
                    flush=True,
                )
                _serve_until_stopped()
        return 0 if report.ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
