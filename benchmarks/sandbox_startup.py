"""Sandbox start-up: ``Sandbox().start()`` against one plain ``mlflow server`` start, same run.

Interleaved rounds, each on a fresh directory:

* mlflow server: ``python -m mlflow server`` on a fresh SQLite store (the command the sandbox's
  backends use), from spawn until ``/health`` answers;
* sandbox: ``Sandbox(subscriptions=2, workspaces_per_subscription=2).start()`` (CA, TLS listener,
  Entra ID, ARM, the MLflow front and its first backend), from the call until it returns.

The figure is median(sandbox) / median(mlflow server). Target: <= 1.2.

    python benchmarks/sandbox_startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import _common as c

from jupyter_amlflow.sandbox import free_port


def plain_server_start(env: dict[str, str]) -> float:
    """Seconds from spawning one ``mlflow server`` until ``/health`` answers."""
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as d:
        port = free_port()
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{Path(d) / 'mlflow.db'}",
            "--artifacts-destination", str(Path(d) / "artifacts"),
            "--enable-workspaces",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
        ]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.Popen(
            command, cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"mlflow server exited with code {proc.returncode}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                        if r.status == 200:
                            return time.monotonic() - started
                except OSError:
                    pass
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def sandbox_start() -> float:
    from jupyter_amlflow.sandbox import Sandbox

    sb = Sandbox(subscriptions=2, workspaces_per_subscription=2)
    started = time.monotonic()
    sb.start()
    seconds = time.monotonic() - started
    sb.stop()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"mlflow server": [], "sandbox": []}
    with c.bench(sandbox=False) as b:
        env = b.base_env()
        import jupyter_amlflow.sandbox  # noqa: F401  (its import is not part of start-up)

        plain_server_start(env)  # untimed: fills the OS file cache
        for i in range(args.rounds):
            order = ("mlflow server", "sandbox") if i % 2 == 0 else ("sandbox", "mlflow server")
            for name in order:
                times[name].append(plain_server_start(env) if name == "mlflow server" else sandbox_start())
    print("start-up, interleaved rounds:")
    for name, values in times.items():
        print(f"  {name:13} {c.spread(values)}")
    server, ours = c.median(times["mlflow server"]), c.median(times["sandbox"])
    ratio = ours / server
    print(f"  ratio: {ours:.2f} / {server:.2f} = {ratio:.3f}")
    c.report(
        "sandbox_startup_ratio",
        round(ratio, 3),
        "<= 1.2 x one mlflow server start",
        ratio <= 1.2,
        {"ours": f"{ours:.2f} s", "baseline": f"mlflow server {server:.2f} s"},
    )


if __name__ == "__main__":
    main()
