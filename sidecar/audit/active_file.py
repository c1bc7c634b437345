"""The decision log's active file: append whole batches, cut back on failure, rotate by size.

Owned by the log's writer thread once the log is open (``JsonlAuditLog``); nothing
here touches the event loop or the chain, it only puts bytes on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sidecar.audit.files import fsync_dir, open_fd, rotated_files, rotated_name


class ActiveFile:
    """``<path>``, open for appending; ``head_file`` names the file holding the last record written."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self.head_file = path.name
        self.rotations = 0
        self._fh: Any = None
        self._size = 0
        self._dirty = False
        self._next_n = 1

    @property
    def is_open(self) -> bool:
        return self._fh is not None

    @property
    def size(self) -> int:
        return self._size

    def open(self, next_rotation: int, chain_started: bool) -> None:
        """Open ``path`` for appending; ``next_rotation``: the next ``<path>.<n>`` to use."""
        self._fh = os.fdopen(open_fd(self.path, os.O_WRONLY | os.O_APPEND), "ab", buffering=0)
        self._size = self._fh.seek(0, os.SEEK_END)
        self._dirty = False
        self._next_n = next_rotation
        rotated = rotated_files(self.path) if self._size == 0 and chain_started else []
        self.head_file = rotated[-1].name if rotated else self.path.name

    def open_plain(self) -> None:
        """Open a path that is not a regular file (``/dev/stdout``, a pipe) as it is."""
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open until close()
        self._size, self._dirty = 0, False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def write(self, data: bytes) -> None:
        """Append ``data`` and fsync; on failure cut the file back to its last whole record."""
        fd = self._fh.fileno()
        if self._dirty:
            os.ftruncate(fd, self._size)
            self._dirty = False
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if self.fsync:
                os.fdatasync(fd)
        except OSError:
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                self._dirty = True  # NOTE: retried before the next write.
            raise
        self._size += len(data)
        self.head_file = self.path.name

    def rotate(self) -> None:
        """Rename the full active file to its rotated name and start a new one."""
        target = rotated_name(self.path, self._next_n)
        while target.exists():
            self._next_n += 1
            target = rotated_name(self.path, self._next_n)
        os.rename(self.path, target)
        try:
            fresh = os.fdopen(open_fd(self.path, os.O_WRONLY | os.O_APPEND), "ab", buffering=0)
        except OSError:
            os.rename(target, self.path)
            raise
        if self.fsync:
            fsync_dir(self.path.parent)
        self._fh.close()
        self._fh, self._size, self._dirty = fresh, 0, False
        self.head_file = target.name
        self._next_n += 1
        self.rotations += 1
