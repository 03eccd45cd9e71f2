"""Files under ``~/.jupyter_amlflow``: a folder only its owner can use, files written whole, never through links.

The folder holds the saved sign-in (``auth-record-<cloud>.json``), the panel's remembered
choice (``panel.json``) and, in ``unsent/``, MLflow values that could not be sent before the
kernel exited (``async_logging.save_unsent``). If others could write to the folder, anyone could
plant a symlink there and make our next write overwrite a file of the victim's choosing; so the
folder, and each folder below it that we use, must belong to this user with no group or other
permissions (as the token cache's folder must). A file that replaces another is written to a fresh
``mkstemp`` file in the folder that ``os.replace`` then renames over the target (a rename replaces
a symlink, it never follows it); a file that must be new is created exclusively (``O_EXCL``,
``O_NOFOLLOW``) under the first free name. Reads open with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["UnsafeLocation", "create_private", "private_folder", "read_private", "state_dir", "write_private"]

_POSIX = os.name != "nt"


class UnsafeLocation(PermissionError):
    """A folder or file others could tamper with; the message says what to run."""


def state_dir() -> Path:
    """``~/.jupyter_amlflow`` (resolved on each use: tests and users change HOME)."""
    return Path.home() / ".jupyter_amlflow"


def _check_folder(folder: Path) -> None:
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeLocation(f"{folder} is a symbolic link; remove it (rm {folder}) and try again")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeLocation(f"{folder} is not a folder; remove or rename it and try again")
    if not _POSIX:
        return
    if st.st_uid != os.getuid():
        raise UnsafeLocation(f"{folder} belongs to another user (uid {st.st_uid}); remove it, or set HOME to your own")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise UnsafeLocation(f"others have access to {folder} (its mode is {mode:o}); run: chmod 700 {folder}")


def private_folder(folder: Path) -> Path:
    """``folder``, created 0700 if missing, after checking that only this user can use it.

    A folder below ``state_dir()`` is checked with every folder between (``~/.jupyter_amlflow``
    itself included): whoever could write to one of them could swap what lies below.

    Raises:
        UnsafeLocation: It, or a folder between, is a link, not a folder, another user's, or open
            to group or others.
        OSError: It could not be created.
    """
    top = state_dir()
    chain = [folder]
    if folder != top and folder.is_relative_to(top):
        chain = [*reversed([p for p in folder.parents if p.is_relative_to(top)]), folder]
    for each in chain:
        with contextlib.suppress(FileExistsError):
            each.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(each, 0o700)
        _check_folder(each)
    return folder


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0600), atomically, in a folder only this user can use.

    Raises:
        UnsafeLocation: The folder fails ``private_folder``'s checks.
        OSError: Writing failed; the old file, if any, is left as it was.
    """
    folder = private_folder(path.parent)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def create_private(folder: Path, stem: str, text: str, *, suffix: str = ".json") -> Path:
    """Write ``text`` to a new file (mode 0600) in ``folder``; returns its path.

    The file is ``stem + suffix``, or ``stem-N + suffix`` with the first free N: a name that
    exists, a planted link included, is never opened.

    Raises:
        UnsafeLocation: The folder fails ``private_folder``'s checks.
        FileExistsError: No free name among the first thousand.
        OSError: Writing failed (a partly written file is removed).
    """
    folder = private_folder(folder)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for n in range(1000):
        path = folder / (f"{stem}{suffix}" if n == 0 else f"{stem}-{n}{suffix}")
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return path
    raise FileExistsError(f"no free file name for {stem}{suffix} in {folder}")


def read_private(path: Path) -> str | None:
    """The text of ``path``, or None if there is none.

    Raises:
        UnsafeLocation: The folder fails ``private_folder``'s checks, or ``path`` is a symlink.
        OSError: It could not be read.
    """
    try:
        _check_folder(path.parent)
    except FileNotFoundError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeLocation(f"{path} is a symbolic link; remove it (rm {path})") from exc
        raise
    with os.fdopen(fd, encoding="utf-8") as fh:
        return fh.read()
