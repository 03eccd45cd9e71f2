"""Files under ``~/.jupyter_amlflow``: a folder only its owner can use, files written whole, never through links.

The folder holds the saved sign-in (``auth-record-<cloud>.json``) and the panel's remembered
choice (``panel.json``). If others could write to the folder, anyone could plant a symlink there
and make our next write overwrite a file of the victim's choosing; so the folder must belong to
this user with no group or other permissions (as the token cache's folder must), and writes go
to a fresh ``mkstemp`` file in the folder that ``os.replace`` then renames over the target (a
rename replaces a symlink, it never follows it). Reads open with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["UnsafeLocation", "read_private", "state_dir", "write_private"]

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

    Raises:
        UnsafeLocation: It is a link, not a folder, another user's, or open to group or others.
        OSError: It could not be created.
    """
    with contextlib.suppress(FileExistsError):
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(folder, 0o700)
    _check_folder(folder)
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
