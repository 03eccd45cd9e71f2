"""The real ``mlflow server`` processes behind the sandbox's MLflow API, and which workspace uses which.

Each backend is one ``mlflow server --enable-workspaces`` process with its own SQLite store and
artifact directory under ``<sandbox root>/backends/<n>/``. A sandbox workspace is one mlflow
workspace (named by its lowercase workspace id) on one backend, so a few backends serve any number
of workspaces and mlflow keeps them apart. A backend starts when the first MLflow call needs it.

A backend listens on no TCP port: its uvicorn serves a Unix socket (``--uds``, passed through
``mlflow server --uvicorn-opts``) in a folder only this user can enter (mode 0700, ``_sockets``),
so on a shared machine no other user's process can reach the unauthenticated mlflow server; the
sandbox's own listeners, which check the caller, are the only way in.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import urllib3

from ._http import free_port
from ._model import Workspace
from ._sockets import BackendUnavailable, SocketFolder, UnixConnectionPool, UnixHealthConnection

log = logging.getLogger("jupyter_amlflow.sandbox")

WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"
READY_TIMEOUT = 120.0
STOP_GRACE = 10.0
_POLL = 0.05
# Client-side settings and credentials that must not reach a server process (they would change
# what it does, or put a secret into a process that needs none).
_SCRUBBED_PREFIXES = ("AZURE_", "AZUREML_", "MLFLOW_", "IDENTITY_", "MSI_", "ARM_CLOUD_")


class GroupWatcher(Protocol):
    """Kills the process groups it was told about if this process dies (``_watchdog.Watchdog``)."""

    def watch_group(self, pgid: int) -> None: ...
    def forget_group(self, pgid: int) -> None: ...


@dataclass(frozen=True)
class BackendReply:
    """A backend's answer to one forwarded request."""

    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body as JSON (``{}`` when empty)."""
        return json.loads(self.body) if self.body else {}


@dataclass(frozen=True)
class BackendStatus:
    """What a backend is doing, for tests and people debugging the sandbox."""

    index: int
    socket_path: Path
    pid: int | None
    running: bool
    workspaces: int
    startup_seconds: float | None
    log_path: Path


def _server_env(home: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_SCRUBBED_PREFIXES)}
    env.update(
        {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            # Whatever the server or its libraries cache or spill goes inside the sandbox root.
            "HOME": str(home),
            "TMPDIR": str(tmp),
        }
    )
    return env


class Backend:
    """One ``mlflow server`` process, started on demand, stopped with its whole process group."""

    def __init__(self, index: int, directory: Path, closing: threading.Event, sockets: SocketFolder) -> None:
        self.index = index
        self.directory = directory
        self.artifacts_dir = directory / "artifacts"
        self.log_path = directory / "server.log"
        self._sockets = sockets
        self.socket_path = sockets.path / f"{index}.sock"
        self._closing = closing
        self._start_lock = threading.Lock()
        self._workspaces_lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._ready = False
        self._spawned_at = 0.0
        self.startup_seconds: float | None = None
        self.workspaces: set[str] = set()  # mlflow workspaces known to exist on this server
        self.watcher: GroupWatcher | None = None

    # -- process -------------------------------------------------------------------------------
    def status(self, workspaces: int) -> BackendStatus:
        """A snapshot of this backend."""
        process = self._process
        return BackendStatus(
            index=self.index,
            socket_path=self.socket_path,
            pid=process.pid if process else None,
            running=process is not None and process.poll() is None,
            workspaces=workspaces,
            startup_seconds=self.startup_seconds,
            log_path=self.log_path,
        )

    def launch(self) -> None:
        """Spawn the server without waiting for it (no-op when it runs or is starting)."""
        with self._start_lock:
            if self._process is None or self._process.poll() is not None:
                self._spawn()

    def ensure_running(self) -> None:
        """Start the server if needed and wait until it answers ``/health``.

        Raises:
            BackendUnavailable: The server exited, did not become healthy in time, or the sandbox
                is stopping.
        """
        if self._healthy():
            return
        with self._start_lock:
            if self._healthy():
                return
            if self._process is not None and self._process.poll() is not None and self._ready:
                log.warning("mlflow backend %d exited (code %s); restarting it", self.index, self._process.returncode)
            if self._process is None or self._process.poll() is not None:
                self._spawn()
            self._wait_healthy()

    def _healthy(self) -> bool:
        process = self._process
        return self._ready and process is not None and process.poll() is None

    def _spawn(self) -> None:
        if self._closing.is_set():
            raise BackendUnavailable("the sandbox is stopping")
        home, tmp = self.directory / "home", self.directory / "tmp"
        for d in (home, tmp, self.artifacts_dir):
            d.mkdir(parents=True, exist_ok=True)
        # uvicorn binds the Unix socket instead of --host/--port when given --uds (uvicorn's
        # Server.startup); the loopback address stays as a second fence should it ever not.
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.directory / 'mlflow.db'}",
            "--artifacts-destination", str(self.artifacts_dir),
            "--enable-workspaces",
            "--host", "127.0.0.1",
            "--port", str(free_port()),
            "--workers", "1",
            # Relative to the server's working folder (this backend's): short whatever the root.
            "--uvicorn-opts", f"--uds {shlex.quote(os.path.relpath(self.socket_path, self.directory))}",
        ]  # fmt: skip
        with open(self.log_path, "ab") as out:
            # A session of its own: stop() signals the whole group, so the uvicorn worker the
            # mlflow CLI starts goes too.
            self._process = subprocess.Popen(
                command,
                cwd=self.directory,
                env=_server_env(home, tmp),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.watcher is not None:
            self.watcher.watch_group(self._process.pid)
        self._ready = False
        self._spawned_at = time.monotonic()
        self._pool = self._new_pool()
        log.debug("mlflow backend %d spawned (pid %d, socket %s)", self.index, self._process.pid, self.socket_path)

    def _new_pool(self) -> urllib3.HTTPConnectionPool:
        # "localhost" is only the Host header, which mlflow's host check accepts.
        return UnixConnectionPool(
            "localhost",
            maxsize=16,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=5.0, read=300.0),
            socket_path=self._sockets.connect_path(self.socket_path.name),
        )

    def _wait_healthy(self) -> None:
        assert self._process is not None and self._pool is not None
        deadline = self._spawned_at + READY_TIMEOUT
        while True:
            if self._closing.is_set():
                raise BackendUnavailable("the sandbox is stopping")
            code = self._process.poll()
            if code is not None:
                raise BackendUnavailable(
                    f"mlflow backend {self.index} exited with code {code} while starting. "
                    f"The end of its log ({self.log_path}):\n{self._log_tail()}"
                )
            if self._answers_health():
                break
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"mlflow backend {self.index} was not healthy after {READY_TIMEOUT:g} s. "
                    f"The end of its log ({self.log_path}):\n{self._log_tail()}"
                )
            time.sleep(_POLL)
        self._ready = True
        self.startup_seconds = time.monotonic() - self._spawned_at
        log.debug("mlflow backend %d healthy after %.2f s", self.index, self.startup_seconds)

    def _log_tail(self, lines: int = 15) -> str:
        # Quoted into the error because a sandbox that fails to start removes its root, log and all.
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(unreadable: {exc})"

    def _answers_health(self) -> bool:
        # Plain http.client: the pool would log a new connection at DEBUG for every refused poll.
        connection = UnixHealthConnection(self._sockets.connect_path(self.socket_path.name), timeout=5.0)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False  # not listening yet
        finally:
            connection.close()

    def terminate(self) -> None:
        """Send SIGTERM to the server's process group (returns once no start is under way)."""
        # Under the start lock, so no spawn can slip in between this and the pool's closing flag;
        # a waiting starter notices the flag within one poll and lets go of the lock.
        with self._start_lock:
            process = self._process
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def wait_stopped(self, grace: float = STOP_GRACE) -> None:
        """Wait for the process group to go; SIGKILL whatever is left after ``grace`` seconds."""
        process = self._process
        if process is None:
            return
        gone = self._wait_group_gone(process, grace)
        if not gone:
            log.warning("mlflow backend %d ignored SIGTERM for %g s; killing it", self.index, grace)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            gone = self._wait_group_gone(process, 5.0)
            if not gone:
                log.error("mlflow backend %d (process group %d) survived SIGKILL", self.index, process.pid)
        if gone and self.watcher is not None:
            self.watcher.forget_group(process.pid)  # its id may now go to any new process
        if self._pool is not None:
            self._pool.close()
        self._ready = False

    @staticmethod
    def _wait_group_gone(process: subprocess.Popen[bytes], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            process.poll()  # reap the leader, or it lingers as a zombie member of its group
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL)

    # -- requests ------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        workspace: str | None,
        query: str = "",
        body: bytes = b"",
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> BackendReply:
        """Forward one request to the server, in mlflow workspace ``workspace`` (None: no workspace).

        ``headers`` are extra request headers (the workspace header is always the sandbox's own).

        Raises:
            BackendUnavailable: The server is not running or the connection failed.
        """
        self.ensure_running()
        assert self._pool is not None
        headers = {**(headers or {}), **({WORKSPACE_HEADER: workspace} if workspace else {})}
        if content_type:
            headers["Content-Type"] = content_type
        url = path + (f"?{query}" if query else "")
        pool = self._pool
        try:
            try:
                reply = pool.request(method, url, body=body or None, headers=headers)
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ClosedPoolError) as exc:
                # uvicorn closes keep-alive connections that sat idle; a request sent on one as it
                # closes is reset before the server read it, so sending it again is safe. The
                # pool's other idle connections are as stale: start a new pool (a thread that
                # still held the old one gets ClosedPoolError and comes here too).
                if isinstance(exc, urllib3.exceptions.ProtocolError) and self._pool is pool:
                    self._pool = self._new_pool()
                    pool.close()
                reply = self._pool.request(method, url, body=body or None, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise BackendUnavailable(f"mlflow backend {self.index} did not answer: {exc}") from exc
        return BackendReply(
            status=reply.status,
            body=reply.data,
            content_type=reply.headers.get("Content-Type", "application/json"),
            headers=dict(reply.headers),
        )

    def ensure_workspace(self, name: str) -> None:
        """Create the mlflow workspace ``name`` on this server unless it exists already.

        Raises:
            BackendUnavailable: The server is down or refused to create it.
        """
        with self._workspaces_lock:
            if name in self.workspaces:
                return
        reply = self.request(
            "POST",
            "/api/3.0/mlflow/workspaces",
            workspace=None,
            body=json.dumps({"name": name}).encode(),
            content_type="application/json",
        )
        # No workspace header: mlflow would reject one naming a workspace that does not exist yet.
        # "Already exists" is fine: another thread won the race, or the server restarted.
        if reply.status not in (200, 201) and b"RESOURCE_ALREADY_EXISTS" not in reply.body:
            raise BackendUnavailable(
                f"mlflow backend {self.index} refused to create workspace {name}: "
                f"{reply.status} {reply.body[:300].decode('utf-8', 'replace')}"
            )
        with self._workspaces_lock:
            self.workspaces.add(name)


class BackendPool:
    """At most ``max_backends`` servers; each workspace is placed on one at its first MLflow call."""

    def __init__(self, root: Path, max_backends: int) -> None:
        if max_backends < 1:
            raise ValueError("max_backends must be >= 1")
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self.sockets = SocketFolder(root)
        self._backends = [Backend(i, root / str(i), self._closing, self.sockets) for i in range(max_backends)]
        self._placement: dict[str, Backend] = {}
        # The servers run in sessions of their own, so nothing ends them when this process exits:
        # a script that never calls stop() would leave them running.
        atexit.register(self.stop)

    def watch_with(self, watcher: GroupWatcher) -> None:
        """Report every server's process group to ``watcher``, which kills them if this process dies."""
        for backend in self._backends:
            backend.watcher = watcher

    @property
    def backends(self) -> list[Backend]:
        """Every backend slot, started or not."""
        return list(self._backends)

    def placed(self, workspace: Workspace) -> Backend | None:
        """The backend a workspace was placed on, or None before its first MLflow call."""
        with self._lock:
            return self._placement.get(workspace.backend_workspace)

    def place(self, workspace: Workspace) -> Backend:
        """The workspace's backend, placing it on the least-loaded one the first time (no start)."""
        key = workspace.backend_workspace
        with self._lock:
            backend = self._placement.get(key)
            if backend is None:
                counts = {b.index: 0 for b in self._backends}
                for b in self._placement.values():
                    counts[b.index] += 1
                backend = min(self._backends, key=lambda b: (counts[b.index], b.index))
                self._placement[key] = backend
            return backend

    def backend_for(self, workspace: Workspace) -> Backend:
        """The workspace's backend, running, with the workspace created in it.

        Raises:
            BackendUnavailable: The backend could not be started.
        """
        backend = self.place(workspace)
        backend.ensure_workspace(workspace.backend_workspace)
        return backend

    def status(self) -> list[BackendStatus]:
        """A snapshot of every backend slot."""
        with self._lock:
            counts = {b.index: 0 for b in self._backends}
            for b in self._placement.values():
                counts[b.index] += 1
        return [b.status(counts[b.index]) for b in self._backends]

    def stop(self) -> None:
        """Stop every server: SIGTERM them all, then wait (SIGKILL after a grace period)."""
        atexit.unregister(self.stop)
        self._closing.set()
        for backend in self._backends:
            backend.terminate()
        for backend in self._backends:
            backend.wait_stopped()
        self.sockets.close()
