"""The on-disk spool of a decision shipper: batches waiting for their acknowledgement.

A ``Spool`` owns one directory. ``persist`` cuts encoded records into batches (at
most ``max_batch_records`` records and ``max_batch_bytes`` of uncompressed JSON) and
writes each as the exact body it will be sent as: a gzip JSON array, in a file named
``<seq>-<records>.json.gz``, written to a temporary name, fsynced and renamed. A batch
that can't be written is held in memory instead (and lost only if the process ends).
``open`` takes the directory's lock (two shippers on one spool would send its batches
twice) and picks up the batches an earlier run left; ``acknowledged`` removes one.

The spool is bounded by ``max_bytes`` (compressed): a batch that does not fit is
dropped, and ``on_drop(records, why)`` is told. Files are created 0640 whatever the
umask (they hold the records, as the decision log does). Not thread-safe beyond this: ``persist`` may run in a
worker thread while the event loop reads ``batches``; everything else runs in the loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import logging
import os
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sidecar.audit.files import FILE_MODE, fsync_dir

log = logging.getLogger(__name__)

SPOOL_NAME = re.compile(r"(\d{12})-(\d+)\.json\.gz")


@dataclass
class SpooledBatch:
    """A spooled batch: its file (None if only held in memory), and what it holds."""

    seq: int
    records: int
    size: int
    path: Path | None
    body: bytes | None = None


class Spool:
    """Batches on disk, oldest first (see the module docstring)."""

    def __init__(self, directory: str | Path, *, max_bytes: int, max_batch_records: int,
                 max_batch_bytes: int, fsync: bool,
                 on_drop: Callable[[int, str], None]) -> None:
        self.directory = Path(directory)
        self._max_bytes = max_bytes
        self._max_records = max_batch_records
        self._max_batch_bytes = max_batch_bytes
        self._fsync = fsync
        self._on_drop = on_drop
        self.batches: deque[SpooledBatch] = deque()
        self.bytes = 0
        self.spooled = 0
        self._next_seq = 1
        self._persist_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._lock_fd: int | None = None

    @property
    def backlog_records(self) -> int:
        """Records spooled but not yet acknowledged."""
        return sum(b.records for b in list(self.batches))

    def open(self) -> None:
        """Lock the directory and pick up the batches found in it (blocking: run in a thread).

        Raises OSError if the directory can't be used, or is in use by another shipper.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OSError(f"decision log spool {self.directory} is in use by another shipper") from None
        self._lock_fd = fd
        found: list[SpooledBatch] = []
        for entry in self.directory.iterdir():
            if entry.name.endswith(".tmp"):
                entry.unlink()  # NOTE: a batch whose write never finished; its records were never counted as spooled.
                continue
            m = SPOOL_NAME.fullmatch(entry.name)
            if m is None:
                continue
            found.append(SpooledBatch(int(m.group(1)), int(m.group(2)), entry.stat().st_size, entry))
        found.sort(key=lambda b: b.seq)
        with self._persist_lock, self._state_lock:
            self.batches.extend(found)
            self.bytes += sum(b.size for b in found)
            self._next_seq = max([self._next_seq, *(b.seq + 1 for b in found)])
        if found:
            log.info("decision shipper: %d records in %d batches from an earlier run are in %s",
                     sum(b.records for b in found), len(found), self.directory)

    def close(self) -> None:
        """Release the directory's lock; the batches stay for the next ``open``."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def persist(self, encoded: list[bytes]) -> None:
        """Spool encoded records as batches (runs in a thread, one at a time).

        It does its own bookkeeping, so a cancel of the task that awaits it loses nothing.
        """
        with self._persist_lock:
            wrote = False
            for group in self._groups(encoded):
                body = gzip.compress(b"[" + b",".join(group) + b"]", compresslevel=6)
                if self.bytes + len(body) > self._max_bytes:
                    self._on_drop(len(group), f"the spool is full ({self.bytes} of "
                                              f"{self._max_bytes} bytes)")
                    continue
                seq, self._next_seq = self._next_seq, self._next_seq + 1
                path: Path | None = self.directory / f"{seq:012d}-{len(group)}.json.gz"
                kept: bytes | None = None
                try:
                    assert path is not None
                    self._write_file(path, body)
                    wrote = True
                except OSError as exc:
                    log.error("decision log batch %d can't be spooled to disk (%s); holding it in memory",
                              seq, exc)
                    path, kept = None, body
                with self._state_lock:
                    self.bytes += len(body)
                    self.spooled += len(group)
                self.batches.append(SpooledBatch(seq, len(group), len(body), path, kept))
            if wrote and self._fsync:
                with contextlib.suppress(OSError):
                    fsync_dir(self.directory)

    def acknowledged(self, batch: SpooledBatch) -> None:
        """The collector has ``batch``: remove its file and forget it."""
        if batch.path is not None:
            try:
                os.unlink(batch.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("shipped decision log batch %s can't be removed (%s): a restart will "
                          "send it again", batch.path, exc)
        self.forget(batch)

    def forget(self, batch: SpooledBatch) -> None:
        """Stop tracking ``batch`` (the oldest), leaving its file alone."""
        if self.batches and self.batches[0] is batch:
            self.batches.popleft()
        with self._state_lock:
            self.bytes -= batch.size

    def _groups(self, encoded: list[bytes]) -> list[list[bytes]]:
        groups: list[list[bytes]] = []
        current: list[bytes] = []
        size = 2
        for item in encoded:
            if current and (len(current) >= self._max_records or size + len(item) + 1 > self._max_batch_bytes):
                groups.append(current)
                current, size = [], 2
            current.append(item)
            size += len(item) + 1
        if current:
            groups.append(current)
        return groups

    def _write_file(self, path: Path, body: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb") as fh:
            fh.write(body)
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())
        os.rename(tmp, path)


def read_batch(batch: SpooledBatch) -> bytes:
    """The body of a batch: held in memory, or read from its file (OSError if it can't be)."""
    if batch.body is not None:
        return batch.body
    if batch.path is None:
        raise FileNotFoundError("no spool file")
    return batch.path.read_bytes()
