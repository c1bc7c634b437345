"""The guard across worker processes on one SQLite file: record locks on a guard file beside it.

``server.workers > 1`` runs several processes on one lock table, and the in-process
``InstanceGuard`` orders only the tasks of one of them. ``FileGuard`` adds POSIX
record locks (``fcntl``) on ``<db>-guard``: each key (an instance id, or
``ALL_INSTANCES``) is hashed to a slot, and each slot owns two bytes of the file:

* the *data* byte: a state change holds it shared, a lock change exclusively, from
  the lock read through the forward (or the table write). This is the exclusion.
* the *gate* byte: a lock change holds it exclusively from before it waits for the
  data byte until it is done; a state change must find it free (it takes it shared
  and lets go at once) before it counts itself in. Linux grants a shared record
  lock while an exclusive request waits, so without the gate a steady stream of
  state changes could keep a lock call out forever; with it, a lock call waits
  only for the state changes already inside.

Record locks belong to the process, not the task, and a process's second lock on a
byte merges with its first. So the slot is also the key of an in-process
``InstanceGuard`` (tasks of one worker order there first: an exclusive holder is
alone in its process), and the shared data lock is reference-counted: the first
task of a process takes it, the last one lets it go. Keys that hash to one slot
only serialise more. Taking a lock never blocks the event loop: it is tried
without waiting (one ``fcntl`` each, microseconds) and retried with a short backoff,
for at most ``timeout_s``, after which entering raises LockStoreError (503, nothing
was done), as the PostgreSQL guard does. A worker that dies loses its record locks
with its process, so nothing it held stays held.

The file is opened once (0640, like the database) and kept open: closing any
descriptor of it would drop every record lock the process holds on it.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from sidecar.errors import LockStoreError
from sidecar.guard import InstanceGuard

FILE_MODE = 0o640
_FIRST_WAIT_S = 0.0002
_MAX_WAIT_S = 0.005
_BUSY = (errno.EAGAIN, errno.EACCES)


def guard_file(db_path: str | Path) -> Path:
    """The guard file of the SQLite database at ``db_path``."""
    p = Path(db_path)
    return p.with_name(f"{p.name}-guard")


@functools.lru_cache(maxsize=65536)
def slot_of(key: str) -> int:
    """The slot of a guard key: 2**61 of them, so a collision (which only serialises more) is rare."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"statelock-guard").digest()
    return int.from_bytes(digest, "big") >> 3


class FileGuard:
    """Reader/writer guard keyed by instance id, shared by the processes on one guard file."""

    def __init__(self, path: str | Path, timeout_s: float) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._fd: int | None = None
        self._local = InstanceGuard()
        self._shared: dict[int, int] = {}

    def open(self) -> None:
        """Open (create) the guard file; LockStoreError naming it when that fails."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise LockStoreError(f"cannot open the guard file {self.path}: {exc.strerror or exc}") from exc
        self._fd = fd

    def close(self) -> None:
        """Close the guard file (every record lock of this process on it goes)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def shared(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the guard shared (a state change) for the block; LockStoreError if not free in time."""
        return self._hold_shared(key)

    def exclusive(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the guard exclusively (a lock change) for the block; LockStoreError if not free in time."""
        return self._hold_exclusive(key)

    def _lock(self, offset: int, mode: int) -> bool:
        """Try one record lock on the byte at ``offset``; False when another process holds it."""
        if self._fd is None:
            raise LockStoreError("the guard file is not open")
        try:
            fcntl.lockf(self._fd, mode | fcntl.LOCK_NB, 1, offset)
        except OSError as exc:
            if exc.errno in _BUSY:
                return False
            raise LockStoreError(f"the guard file {self.path} failed: {exc.strerror or exc}") from exc
        return True

    def _unlock(self, offset: int) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)

    def _enter_shared(self, slot: int) -> bool:
        """Count a state change in, if no lock change holds the gate (one synchronous step)."""
        gate, data = 2 * slot, 2 * slot + 1
        if not self._lock(gate, fcntl.LOCK_SH):
            return False
        try:
            if not self._shared.get(slot) and not self._lock(data, fcntl.LOCK_SH):
                return False
            self._shared[slot] = self._shared.get(slot, 0) + 1
            return True
        finally:
            self._unlock(gate)

    def _leave_shared(self, slot: int) -> None:
        left = self._shared.pop(slot) - 1
        if left:
            self._shared[slot] = left
        else:
            self._unlock(2 * slot + 1)

    async def _wait(self, attempt: Callable[[], bool], key: str, mode: str, started: float) -> None:
        """Retry ``attempt()`` (which just failed) until it returns True; LockStoreError past the bound.

        ``started``: the loop time the caller began to wait, when the bound began.
        """
        loop = asyncio.get_running_loop()
        deadline = started + self.timeout_s
        pause = _FIRST_WAIT_S
        while True:
            if loop.time() >= deadline:
                raise LockStoreError(f"the guard of {key} was not free within {self.timeout_s:g}s "
                                     f"(taken {mode}, another worker holds it)")
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_WAIT_S)
            if attempt():
                return

    @asynccontextmanager
    async def _hold_shared(self, key: str) -> AsyncIterator[None]:
        slot = slot_of(key)
        started = asyncio.get_running_loop().time()
        async with self._local.shared(str(slot)):
            # NOTE: the first try is the common case (no lock change anywhere): no coroutine, no clock.
            if not self._enter_shared(slot):
                await self._wait(lambda: self._enter_shared(slot), key, "shared", started)
            try:
                yield
            finally:
                self._leave_shared(slot)

    @asynccontextmanager
    async def _hold_exclusive(self, key: str) -> AsyncIterator[None]:
        slot = slot_of(key)
        gate, data = 2 * slot, 2 * slot + 1
        started = asyncio.get_running_loop().time()
        async with self._local.exclusive(str(slot)):
            if not self._lock(gate, fcntl.LOCK_EX):
                await self._wait(lambda: self._lock(gate, fcntl.LOCK_EX), key, "exclusively", started)
            try:
                if not self._lock(data, fcntl.LOCK_EX):
                    await self._wait(lambda: self._lock(data, fcntl.LOCK_EX), key, "exclusively", started)
                try:
                    yield
                finally:
                    self._unlock(data)
            finally:
                self._unlock(gate)
