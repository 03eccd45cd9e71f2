"""The backends' Unix sockets: a folder only this user can enter, and HTTP over a socket in it.

A backend's ``mlflow server`` (``_backends``) binds a Unix socket instead of a TCP port, so no
other user's process on a shared machine can reach it. Its folder is ``<sandbox root>/sockets``,
mode 0700, checked not to be a link or another user's; ``SocketFolder`` gives a path short
enough to connect to whatever the root's depth; ``UnixConnectionPool`` (urllib3, for forwarded
requests) and ``UnixHealthConnection`` (``http.client``, for the start-up poll) speak HTTP over it.
"""

from __future__ import annotations

import http.client
import os
import socket
import stat
from pathlib import Path
from typing import Any

import urllib3
import urllib3.connection

__all__ = ["BackendUnavailable", "SocketFolder", "UnixConnectionPool", "UnixHealthConnection", "private_socket_dir"]

# sockaddr_un holds 108 bytes on Linux (104 on macOS), the terminating NUL included.
_MAX_SOCKET_PATH = 100


class BackendUnavailable(Exception):
    """A backend could not be started or reached."""


def private_socket_dir(root: Path) -> Path:
    """``root/sockets``, mode 0700, for the backends' Unix sockets (inside the sandbox's folder, so
    whatever removes that folder, the watchdog included, removes them too)."""
    directory = root / "sockets"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(directory)  # not through a symlink someone planted
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise BackendUnavailable(f"{directory} is not a folder of this user's; the backends' sockets cannot go there")
    os.chmod(directory, 0o700)  # whatever the umask, or an earlier run, left
    return directory


class SocketFolder:
    """Where the backends' sockets are, and a path short enough to connect to each.

    ``sockaddr_un`` holds about 100 bytes, and a sandbox root given by the caller (a pytest
    ``tmp_path``) can be deeper than that. The server binds a path relative to its own working
    folder (``../sockets/N.sock``); this side connects through ``/proc/self/fd/<folder fd>/N.sock``
    when the absolute path is too long (Linux), so the sockets never leave the sandbox's folder.
    """

    def __init__(self, root: Path) -> None:
        self.path = private_socket_dir(root)
        self._fd: int | None = None
        if len(os.fsencode(self.path / "00.sock")) > _MAX_SOCKET_PATH:
            if not os.path.isdir("/proc/self/fd"):
                raise BackendUnavailable(
                    f"the sandbox folder {root} is too deep for a Unix socket path here; give Sandbox(root=...) "
                    "a shorter one, or none"
                )
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))

    def connect_path(self, name: str) -> str:
        """The path to connect to the socket ``name``."""
        if self._fd is None:
            return str(self.path / name)
        return f"/proc/self/fd/{self._fd}/{name}"

    def close(self) -> None:
        """Close the folder's descriptor (if one was opened)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class UnixConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection to a Unix socket (urllib3 speaks TCP only)."""

    def __init__(self, *args: Any, socket_path: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if isinstance(self.timeout, (int, float)):
            sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise urllib3.exceptions.NewConnectionError(self, f"cannot connect to {self.socket_path}: {exc}") from exc
        return sock


class UnixConnectionPool(urllib3.HTTPConnectionPool):
    """A urllib3 pool of ``UnixConnection``s (its ``socket_path`` keyword reaches each)."""

    ConnectionCls = UnixConnection


class UnixHealthConnection(http.client.HTTPConnection):
    """A plain ``http.client`` connection to a Unix socket, for the health poll."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock
