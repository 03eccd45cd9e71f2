"""One watchdog per sandbox: when the process that started the sandbox goes away, however it ends
(SIGTERM, SIGKILL, a crash, a CI timeout), the backends' process groups are killed and the
sandbox folder, private keys and all, is removed.

The sandbox's process holds the write end of a pipe; the watchdog, a small process in a session
of its own (so a signal to the owner's process group or terminal does not reach it), reads the
other end. End of file means the owner is gone: no signal handler, atexit hook or parent-death
signal is needed, and none of those covers SIGKILL anyway. The backends run in sessions of their
own and start uvicorn workers, so the owner names each process group it starts; the watchdog
SIGTERMs every group, SIGKILLs what is left after a grace period, then removes the folder.

Messages, one per line: ``group <pgid>`` (kill this group if the owner goes), ``forget <pgid>``
(it was stopped; its id may be reused by anyone), ``release`` (the owner cleaned up: leave
without touching anything).

This file runs as a script (``python -I -S _watchdog.py``), importing the standard library only,
so it starts in milliseconds and nothing from the environment (PYTHONPATH, site-packages) runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("jupyter_amlflow.sandbox")

GRACE = 10.0  # as long as the sandbox's own stop waits before SIGKILL
_POLL = 0.1


class Watchdog:
    """The owner's side: start the watchdog process and tell it what to clean up.

    Args:
        folder: Removed when the owner goes away (None: a folder the caller owns; left alone).
    """

    def __init__(self, folder: Path | None) -> None:
        self._lock = threading.Lock()
        read_end, write_end = os.pipe()  # both non-inheritable: no other child holds the write end
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(Path(__file__).resolve()), *([str(folder)] if folder else [])],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # the owner's stderr may be gone by the time it has anything to say
                cwd="/",
                start_new_session=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._pipe: int | None = write_end

    @property
    def pid(self) -> int:
        """The watchdog process's id."""
        return self._process.pid

    def watch_group(self, pgid: int) -> None:
        """Kill process group ``pgid`` if this process goes away before ``forget_group``."""
        self._send(f"group {pgid}")

    def forget_group(self, pgid: int) -> None:
        """The group is gone (stopped by its owner): never signal that id."""
        self._send(f"forget {pgid}")

    def release(self) -> None:
        """The owner cleaned up itself: the watchdog exits without touching anything."""
        self._send("release")
        with self._lock:
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            os.close(pipe)
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("the sandbox's watchdog (pid %d) did not exit after release", self._process.pid)

    def _send(self, message: str) -> None:
        with self._lock:
            if self._pipe is None:
                return
            try:
                # Shorter than PIPE_BUF: one write, never interleaved with another thread's.
                os.write(self._pipe, f"{message}\n".encode())
            except OSError as exc:  # the watchdog died; the sandbox still works, it is just unguarded
                log.warning("the sandbox's watchdog is gone (%s); its processes are not guarded", exc)


# -- the watchdog process ----------------------------------------------------------------------------
def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies do not count: nothing can kill them)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after the command (which may hold spaces and parentheses): state, ppid, pgrp.
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _working_in(folder: Path) -> set[int]:
    """This user's processes whose working directory is inside ``folder`` (Linux; empty elsewhere)."""
    found: set[int] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            found.add(int(entry.name))
    return found


def _signal(groups: set[int], pids: set[int], signum: int) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def clean_up(groups: set[int], folder: Path | None, grace: float = GRACE) -> None:
    """SIGTERM every group, SIGKILL what is left after ``grace`` seconds, then remove ``folder``."""
    # A backend whose group the owner had no time to name (killed between spawning it and writing
    # the message) still runs inside the folder, where the backends' working directories are;
    # nothing else has any business in a folder about to be removed. Those are signalled one by
    # one: a group found this way could be the owner's own, with its shell in it.
    strays = _working_in(folder) if folder is not None else set()

    def running() -> tuple[set[int], set[int]]:
        return {g for g in groups if _group_alive(g)}, {p for p in strays if _pid_alive(p)}

    _signal(groups, strays, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(running()) and time.monotonic() < deadline:
        time.sleep(_POLL)
    if any(left := running()):
        _signal(*left, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(running()) and time.monotonic() < deadline:
            time.sleep(_POLL)
    if folder is not None:
        # rmtree does not follow a symlink: only what is inside the folder goes.
        shutil.rmtree(folder, ignore_errors=True)


def watch(stream: int, folder: Path | None) -> None:
    """Read messages from ``stream`` until the owner releases us or goes away (end of file)."""
    groups: set[int] = set()
    pending = b""
    while True:
        chunk = os.read(stream, 4096)
        if not chunk:
            break  # every write end is closed: the owner is gone
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            verb, _, arg = line.decode("ascii", "replace").partition(" ")
            if verb == "release":
                return
            if verb in ("group", "forget") and arg.isdigit() and int(arg) > 1:
                if verb == "group":
                    groups.add(int(arg))
                else:
                    groups.discard(int(arg))
    clean_up(groups, folder)


def main(argv: list[str]) -> int:
    """``_watchdog.py [FOLDER]``, messages on standard input."""
    # A session of its own has no terminal; a stray SIGINT or SIGHUP must not cut a clean-up short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    watch(0, Path(argv[0]).resolve() if argv else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
