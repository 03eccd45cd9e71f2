"""Files the sandbox command writes for a person: created new, never through a symlink, 0600.

``amlflow-sandbox --env-file PATH`` must not touch a file that was there before (a person's own
``.env`` full of their secrets), must not write through a link someone planted, and at exit
removes the file only if it is still the one it made.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class OwnFile:
    """A file this process created exclusively; ``remove`` deletes it only while it is still that file.

    Args:
        path: Where it was created.
        identity: ``(st_dev, st_ino)`` of the file created.
    """

    def __init__(self, path: Path, identity: tuple[int, int]) -> None:
        self.path = path
        self._identity = identity

    @classmethod
    def create(cls, path: Path, text: str) -> OwnFile:
        """Create ``path`` (mode 0600) holding ``text``.

        Raises:
            FileExistsError: Something, a symlink included, is at ``path`` already.
            OSError: The folder is missing or not writable.
        """
        fd = os.open(path, _FLAGS, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask did
            with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as out:
                out.write(text)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return cls(path, (st.st_dev, st.st_ino))

    def remove(self) -> bool:
        """Delete the file if it is still the one created (not replaced, not a link); True if deleted."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != self._identity:
            return False
        self.path.unlink()
        return True


def taken(path: Path) -> bool:
    """Whether anything is at ``path``, a dangling symlink included."""
    return os.path.lexists(path)
