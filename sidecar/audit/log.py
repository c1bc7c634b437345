"""The decision log: JSON lines, hash-chained, with group commit and rotation by size.

``append`` hands a record to the log's own writer thread (``sidecar.audit.batch_thread``)
and, with ``durable=True``, returns only once the record is on disk (written and
fsynced). The records queued while a write is in flight, or within
``flush_window_ms`` of the first, share one write and one fsync, as in a database's
group commit, so "recorded before forwarded" does not cost one fsync per request.
The thread chains, writes, fsyncs, rotates and checkpoints; the event loop only
queues a record and is woken once per batch to settle its waiters. A failed write
raises ``AuditError`` in every waiting caller and is counted; the caller applies
``audit.on_failure``. A failed write leaves nothing
behind: the file is cut back to its last whole record, and the chain goes on from it.

Rotation: with ``max_bytes`` set, once the active file reaches that size it is
renamed ``<path>.<n>`` (n = 000001, 000002, ...: oldest first, and in that order
under a shell glob) and a new ``<path>`` is started. The chain runs on across files:
``seq`` keeps counting and the first record of a new file has as ``prev_hash`` the
hash of the last record of the previous one, so ``statelock audit verify
<path>.* <path>`` checks the whole history, and a missing file shows as a gap.

One writer per chain: ``open`` takes ``<path>-writer.lock`` (``sidecar.audit.writer_lock``)
and a second log on the same path, in this process or another, fails to open with
an AuditError that says to give each replica or worker its own file. ``open`` then
checks the tail of the existing chain (``sidecar.audit.tail``: the records since the
last checkpoint, or the last 1000 when there is none) and ``chain_state()`` reports
what it found, for ``/health``. A broken tail does not stop the log (it is logged,
and reported): the records written from then on are chained to the last one found.

Signed checkpoints (``sidecar.audit.checkpoint``): every ``checkpoint_interval_s``
while records were written since the last one, and at close, the writer signs the
chain's head into ``<path>-checkpoints`` with the Ed25519 key at ``signing_key``
(made on first start, mode 0600; default ``<path>-signing.key``). Each checkpoint is
also handed to ``on_written``, so it ships with the records. A checkpoint that can't
be written is logged and counted (``checkpoint_failures``) and tried again an interval
later: the records themselves are on disk already.

Files are created 0640 whatever the umask (``sidecar.audit.files``). A path that is
not a regular file (``/dev/stdout``, a pipe, ``/dev/full`` in tests) is written as it
is, with no writer lock, no rotation, no tail check and no checkpoints: those need a
file (``chain_state()`` says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sidecar.audit.batch_thread import BatchThread
from sidecar.audit.checkpoint import CheckpointFile
from sidecar.audit.files import (
    default_key_path,
    fsync_dir,
    is_regular_or_absent,
    log_files,
    open_fd,
    rotated_files,
    rotated_name,
)
from sidecar.audit.pickup import chain_state, pick_up
from sidecar.audit.record import GENESIS, chained_line, summarise
from sidecar.audit.tail import TailCheck
from sidecar.audit.writer_lock import WriterLock
from sidecar.errors import AuditError

log = logging.getLogger(__name__)

_Pending = tuple[dict[str, Any], "asyncio.Future[None] | None"]
_Settled = list[tuple["asyncio.Future[None] | None", "AuditError | None"]]


class AuditLog(Protocol):
    """Where decision records go."""

    failures: int

    async def open(self) -> None:
        """Open the log, picking up the hash chain where it ended."""

    async def close(self) -> None:
        """Flush what is pending and close."""

    async def append(self, record: dict[str, Any], durable: bool = True) -> None:
        """Add a record; with durable=True return once it is on disk. AuditError on failure."""

    def chain_state(self) -> dict[str, Any]:
        """The state of the hash chain, for ``/health`` (see ``JsonlAuditLog.chain_state``)."""


__all__ = ["AuditLog", "JsonlAuditLog", "log_files", "rotated_files", "rotated_name", "summarise"]


class JsonlAuditLog:
    """An AuditLog writing one JSON line per record to a file (see module docstring).

    ``max_bytes`` 0 never rotates. ``on_written``, if given, is called in the event
    loop (the one ``open`` ran in) with each batch of records once they are on disk (with their ``seq``,
    ``prev_hash`` and ``hash``), and with each checkpoint once it is written: the
    place to hand them to a ``DecisionShipper``; it must not block, and what it raises
    is logged and ignored. ``checkpoint_interval_s`` (positive) and ``signing_key``
    (None: ``<path>-signing.key``) shape the checkpoints. ``written`` counts records
    on disk, ``batches`` the writes that put them there, ``failures`` the records that
    could not be written, ``rotations`` the files rotated away, ``checkpoints`` the
    checkpoints written and ``checkpoint_failures`` those that could not be.
    """

    def __init__(self, path: str, flush_window_ms: float = 2.0, fsync: bool = True,
                 max_bytes: int = 0,
                 on_written: Callable[[Sequence[dict[str, Any]]], None] | None = None, *,
                 checkpoint_interval_s: float = 60.0, signing_key: str | Path | None = None) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be zero (never rotate) or positive")
        if not checkpoint_interval_s > 0:
            raise ValueError("checkpoint_interval_s must be positive")
        self._path = Path(path)
        self._window = flush_window_ms / 1000.0
        self._fsync = fsync
        self._max_bytes = max_bytes
        self._on_written = on_written
        self._interval = checkpoint_interval_s
        self._key_path = Path(signing_key) if signing_key else default_key_path(self._path)
        self._lock = WriterLock(self._path)
        self._regular = True
        self._checkpoints: CheckpointFile | None = None
        self._checkpointed_seq = 0
        self._checkpoint_at = 0.0
        self._head_file = self._path.name
        self._tail = TailCheck("not open", None, 0)
        self._thread: BatchThread[_Pending] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._head_lock = threading.Lock()
        self._closing = False
        self._fh: Any = None
        self._size = 0
        self._dirty = False
        self._next_n = 1
        self._prev = GENESIS
        self._seq = 0
        self._next = (GENESIS, 0)
        self.failures = 0
        self.written = 0
        self.batches = 0
        self.rotations = 0
        self.checkpoints = 0
        self.checkpoint_failures = 0

    @property
    def path(self) -> Path:
        """The active file."""
        return self._path

    async def open(self) -> None:
        """Take the writer lock, pick the chain up, check its tail, start the writer.

        Raises AuditError when another writer holds the log, the signing key is unfit
        (readable by others, not Ed25519, another key than the checkpoints'), or a file
        can't be opened or continued from; the message names the file and the fix.
        """
        try:
            await asyncio.to_thread(self._open_sync)
        except AuditError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"cannot open decision log {self._path}: {exc}") from exc
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._checkpoint_at = time.monotonic() + self._interval
        self._thread = BatchThread("statelock-audit-writer", self._flush, window_s=self._window,
                                   due=self._until_checkpoint, tick=self._checkpoint_if_due)
        self._thread.start()

    def _open_sync(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._regular = is_regular_or_absent(self._path)
        if not self._regular:
            log.warning("decision log %s is not a regular file: no writer lock, rotation, tail check or "
                        "checkpoints", self._path)
            self._fh = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open until close()
            self._prev, self._seq, self._size, self._dirty = GENESIS, 0, 0, False
            self._tail = TailCheck("not a regular file: not checked", None, 0)
            return
        self._lock.acquire()
        try:
            self._open_file()
        except BaseException:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            self._lock.release()
            raise

    def _open_file(self) -> None:
        found = pick_up(self._path, self._key_path, self._fsync)
        self._prev, self._seq, self._next_n = found.prev_hash, found.seq, found.next_rotation
        self._checkpoints, self._checkpointed_seq, self._tail = (found.checkpoints, found.checkpointed_seq,
                                                                 found.tail)
        self._fh = os.fdopen(open_fd(self._path, os.O_WRONLY | os.O_APPEND), "ab", buffering=0)
        self._size = self._fh.seek(0, os.SEEK_END)
        self._dirty = False
        rotated = rotated_files(self._path) if self._size == 0 and self._seq else []
        self._head_file = rotated[-1].name if rotated else self._path.name

    def chain_state(self) -> dict[str, Any]:
        """The state of the chain, for ``/health``.

        ``last_seq`` / ``last_hash``: the head (what the next record links to).
        ``tail_checked``: what was verified at open (the records since the last
        checkpoint, or the last 1000), ``verified_from`` / ``verified_through`` the seqs
        that checked out; records written since are chained by this writer (under the
        writer lock) and not read back. ``broken_at``: None, or where the tail broke
        (``seq``, ``file``, ``line``, ``reason``). ``last_checkpoint``: None, or the
        last checkpoint's ``checkpoint_seq``, ``seq``, ``hash``, ``timestamp`` and
        ``key_id``. ``checkpoints``: False for a log that is not a regular file.
        ``checkpoint_failures``: checkpoints that could not be written.
        """
        with self._head_lock:
            seq, prev = self._seq, self._prev
        return chain_state(seq, prev, self._tail, self._checkpoints, self.checkpoint_failures)

    async def close(self) -> None:
        """Flush what is pending, write the last checkpoint, release the writer lock."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._closing = True
            # NOTE: the batches' settle callbacks were queued on the loop before this await returns.
            await asyncio.to_thread(thread.stop)
        await asyncio.to_thread(self._checkpoint)
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._lock.release()

    async def append(self, record: dict[str, Any], durable: bool = True) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or self._closing:
            raise AuditError("decision log is not open")
        fut: asyncio.Future[None] | None = loop.create_future() if durable else None
        thread.submit((record, fut))
        if fut is not None:
            await fut

    def _needs_checkpoint(self) -> bool:
        return self._checkpoints is not None and self._seq != self._checkpointed_seq

    def _until_checkpoint(self) -> float | None:
        """Writer thread: seconds until the next checkpoint is due (None: none is waiting)."""
        if not self._needs_checkpoint():
            return None
        return max(0.0, self._checkpoint_at - time.monotonic())

    def _checkpoint_if_due(self) -> None:
        if self._needs_checkpoint() and time.monotonic() >= self._checkpoint_at:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Writer thread (or close, once it ended): sign the chain's head into the checkpoint file."""
        checkpoints = self._checkpoints
        if checkpoints is None or not self._needs_checkpoint():
            return
        seq, digest = self._seq, self._prev
        self._checkpoint_at = time.monotonic() + self._interval
        try:
            checkpoint = checkpoints.append(seq, digest, self._head_file)
        except OSError as exc:
            self.checkpoint_failures += 1
            log.error("decision log %s: checkpoint of seq %d can't be written to %s (%s); trying again in "
                      "%g s", self._path, seq, checkpoints.path, exc, self._interval)
            return
        self._checkpointed_seq = seq
        self.checkpoints += 1
        self._settle_in_loop([], [checkpoint])

    def _settle_in_loop(self, settled: _Settled, written: list[dict[str, Any]]) -> None:
        """Writer thread: have the event loop settle these waiters and tell ``on_written``."""
        loop = self._loop
        if loop is None or (not settled and (not written or self._on_written is None)):
            return
        try:
            loop.call_soon_threadsafe(self._settle, settled, written)
        except RuntimeError:  # NOTE: the loop is closed: nobody is left waiting.
            log.warning("decision log: event loop closed, %d waiters not told", len(settled))

    def _settle(self, settled: _Settled, written: list[dict[str, Any]]) -> None:
        """Event loop: resolve each waiter (with its error, if any), then hand ``written`` on."""
        for fut, err in settled:
            if fut is not None and not fut.done():
                if err is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(err)
        if written and self._on_written is not None:
            try:
                self._on_written(written)
            except Exception:  # NOTE: a listener's bug must not stop the log.
                log.exception("decision log listener failed")

    def _chain(self, batch: list[_Pending], settled: _Settled) -> tuple[bytes, list[_Pending]]:
        """Link a batch into the chain; the bytes to write and the records they hold.

        A record that can't be encoded is left out, its waiter added to ``settled`` with the error.
        """
        lines: list[bytes] = []
        kept: list[_Pending] = []
        prev, seq = self._prev, self._seq
        for record, fut in batch:
            candidate = {**record, "seq": seq + 1, "prev_hash": prev}
            try:
                digest, line = chained_line(prev, candidate)
            except (TypeError, ValueError) as exc:
                self.failures += 1
                log.error("decision record %s can't be encoded: %s", record.get("decision_id"), exc)
                settled.append((fut, AuditError(f"decision record can't be encoded: {exc}")))
                continue
            record.update(seq=seq + 1, prev_hash=prev, hash=digest)
            prev, seq = digest, seq + 1
            lines.append(line)
            kept.append((record, fut))
        self._next = (prev, seq)
        return b"\n".join(lines) + b"\n" if lines else b"", kept

    def _write(self, data: bytes) -> None:
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
            if self._fsync:
                os.fdatasync(fd)
        except OSError:
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                self._dirty = True  # NOTE: retried before the next write.
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        """Rename the full active file to its rotated name and start a new one."""
        target = rotated_name(self._path, self._next_n)
        while target.exists():
            self._next_n += 1
            target = rotated_name(self._path, self._next_n)
        os.rename(self._path, target)
        try:
            fresh = os.fdopen(open_fd(self._path, os.O_WRONLY | os.O_APPEND), "ab", buffering=0)
        except OSError:
            os.rename(target, self._path)
            raise
        if self._fsync:
            fsync_dir(self._path.parent)
        self._fh.close()
        self._fh, self._size, self._dirty = fresh, 0, False
        self._head_file = target.name
        self._next_n += 1
        self.rotations += 1

    def _flush(self, batch: list[_Pending]) -> None:
        """Writer thread: chain, write and fsync one batch, then have the loop settle its waiters."""
        settled: _Settled = []
        data, batch = self._chain(batch, settled)
        if not batch:
            self._settle_in_loop(settled, [])
            return
        try:
            self._write(data)
        except Exception as exc:  # NOTE: whatever stops the write, every waiter must hear of it.
            self.failures += len(batch)
            log.error("decision log write failed for %d records: %s", len(batch), exc)
            err = AuditError(f"decision log write failed: {exc}")
            # NOTE: the chain does not advance, so the next batch links to the last good record.
            self._settle_in_loop(settled + [(fut, err) for _, fut in batch], [])
            return
        with self._head_lock:
            self._prev, self._seq = self._next
        self._head_file = self._path.name
        self.written += len(batch)
        self.batches += 1
        self._settle_in_loop(settled + [(fut, None) for _, fut in batch], [record for record, _ in batch])
        if self._max_bytes and self._regular and self._size >= self._max_bytes:
            try:
                self._rotate()
            except OSError as exc:
                log.error("decision log %s could not be rotated (writing on): %s", self._path, exc)

