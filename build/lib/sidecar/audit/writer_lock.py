"""One writer per chain: an exclusive lock that a decision log holds while it is open.

Two writers on one file interleave their sequence numbers and break the hash chain
for good, so the second one must not start. The lock is an ``flock`` on
``<path>-writer.lock`` beside the log, not on the log itself: rotation renames the
active file, and a lock on its inode would go with it. flock locks belong to an open
file, so a second ``WriterLock`` on the same path fails in the same process too. The
holder's pid is written into the file for the message the next one gets; the file is
never removed (removing a lock file races with the next process taking it).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sidecar.audit.files import open_fd, side_file
from sidecar.errors import AuditError


class WriterLock:
    """The exclusive lock of the log at ``log_path`` (see the module docstring)."""

    def __init__(self, log_path: str | Path) -> None:
        self.log_path = Path(log_path)
        self.path = side_file(log_path, "writer.lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True between a successful ``acquire`` and ``release``."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise AuditError naming the log, the holder and the fix.

        Raises AuditError as well if the lock file can't be created (naming it and why).
        """
        if self._fd is not None:
            return
        try:
            fd = open_fd(self.path, os.O_RDWR)
        except OSError as exc:
            raise AuditError(f"decision log {self.log_path}: cannot open its writer lock {self.path}: "
                             f"{exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            raise AuditError(
                f"decision log {self.log_path} is already being written by another Statelock "
                f"({holder}; lock {self.path}): one hash chain takes one writer, so give each "
                "replica or worker its own audit.path (e.g. decisions-<host>.jsonl)") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # NOTE: the pid is only for the next one's message; the lock is what counts.
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (closing the file releases it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "pid unknown"
