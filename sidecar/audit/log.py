"""The decision log: JSON lines, hash-chained, with group commit and rotation by size.

``append`` queues a record and, with ``durable=True``, returns only once it is on
disk (written and fsynced). The records queued while a write is in flight, or within
``flush_window_ms`` of the first, share one write and one fsync, as in a database's
group commit, so "recorded before forwarded" does not cost one fsync per request.
A record appended with ``durable=False`` (a decision's completion) does not start a
write of its own: it rides with the next durable record, or goes ``LAZY_S`` later
when none comes (``sidecar.audit.commit_queue``), so a state change pays for one
fsync, not two. ``flush`` waits until everything appended so far is on disk (the
readers of the log and its index call it).
The event loop chains a batch (encodes and hashes its records: CPU work, done where
it never waits for the GIL) and hands the bytes to the log's own writer thread
(``sidecar.audit.batch_thread``), which only writes, fsyncs, rotates and checkpoints:
system calls that let the GIL go, so the thread does not hold up the loop. One
batch is in flight at a time; the loop is told when it is on disk, settles its
waiters and chains the next. A failed write
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
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sidecar.audit.active_file import ActiveFile
from sidecar.audit.batch_thread import BatchThread
from sidecar.audit.checkpoint import CheckpointFile
from sidecar.audit.commit_queue import LAZY_S, CommitQueue, Pending
from sidecar.audit.files import default_key_path, is_regular_or_absent, log_files, rotated_files, rotated_name
from sidecar.audit.pickup import chain_state, pick_up
from sidecar.audit.record import GENESIS, chained_line, summarise
from sidecar.audit.tail import TailCheck
from sidecar.audit.writer_lock import WriterLock
from sidecar.errors import AuditError

log = logging.getLogger(__name__)

_Batch = tuple[bytes, list[Pending], tuple[str, int]]
"""What the writer thread is handed: the bytes, their records and waiters, the head they lead to."""


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


__all__ = ["LAZY_S", "AuditLog", "JsonlAuditLog", "log_files", "rotated_files", "rotated_name", "summarise"]


class JsonlAuditLog:
    """An AuditLog writing one JSON line per record to a file (see module docstring).

    ``max_bytes`` 0 never rotates. ``on_written``, if given, is called in the event
    loop (the one ``open`` ran in) with each batch of records once they are on disk (with their ``seq``,
    ``prev_hash`` and ``hash``), and with each checkpoint once it is written: the place to hand them to
    a ``DecisionShipper``; it must not block, and what it raises is logged and ignored.
    ``checkpoint_interval_s`` (positive) and ``signing_key`` (None: ``<path>-signing.key``) shape the
    checkpoints. ``written`` counts records
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
        self._file = ActiveFile(self._path, fsync)
        self._checkpoints: CheckpointFile | None = None
        self._checkpointed_seq = 0
        self._checkpoint_at = 0.0
        self._tail = TailCheck("not open", None, 0)
        self._thread: BatchThread[_Batch] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._head_lock = threading.Lock()
        # NOTE: the loop's view (what the next batch links to) and the thread's (what is on disk, for
        # checkpoints) are the same head once a batch has settled; each side writes only its own.
        self._prev = GENESIS
        self._seq = 0
        self._disk = (GENESIS, 0)
        self._queue: CommitQueue | None = None
        self.failures = 0
        self.written = 0
        self.batches = 0
        self.checkpoints = 0
        self.checkpoint_failures = 0

    @property
    def path(self) -> Path:
        """The active file."""
        return self._path

    @property
    def rotations(self) -> int:
        """Files rotated away since open."""
        return self._file.rotations

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
        self._loop = asyncio.get_running_loop()
        self._queue = CommitQueue(self._loop, self._window, self._send)
        self._disk = (self._prev, self._seq)
        self._checkpoint_at = time.monotonic() + self._interval
        self._thread = BatchThread("statelock-audit-writer", self._write_batches,
                                   due=self._until_checkpoint, tick=self._checkpoint_if_due)
        self._thread.start()

    def _open_sync(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._regular = is_regular_or_absent(self._path)
        if not self._regular:
            log.warning("decision log %s is not a regular file: no writer lock, rotation, tail check or "
                        "checkpoints", self._path)
            self._file.open_plain()
            self._prev, self._seq = GENESIS, 0
            self._tail = TailCheck("not a regular file: not checked", None, 0)
            return
        self._lock.acquire()
        try:
            found = pick_up(self._path, self._key_path, self._fsync)
            self._prev, self._seq = found.prev_hash, found.seq
            self._checkpoints, self._checkpointed_seq, self._tail = (found.checkpoints, found.checkpointed_seq,
                                                                     found.tail)
            self._file.open(found.next_rotation, chain_started=bool(self._seq))
        except BaseException:
            self._file.close()
            self._lock.release()
            raise

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
        if self._thread is not None and self._queue is not None:
            self._queue.closing = True
            self._send()  # NOTE: a pending window is cut short.
            await self._queue.idle.wait()
            thread, self._thread = self._thread, None
            await asyncio.to_thread(thread.stop)
        await asyncio.to_thread(self._checkpoint)
        self._file.close()
        self._lock.release()

    async def append(self, record: dict[str, Any], durable: bool = True) -> None:
        queue = self._queue
        if self._thread is None or queue is None or queue.closing:
            raise AuditError("decision log is not open")
        fut = queue.add(record, durable)
        if fut is not None:
            await fut

    async def flush(self) -> None:
        """Return once every record appended so far is on disk (or its write failed: that is counted)."""
        if self._thread is not None and self._queue is not None:
            done = self._queue.flush_waiter()
            if done is not None:
                await done

    # -- the event loop's side: chain a batch, settle it -----------------------------------

    def _send(self) -> None:
        """Event loop: chain what is queued and hand it to the writer thread (one batch in flight)."""
        queue = self._queue
        assert queue is not None
        batch = queue.take()
        if not batch:
            return
        data, kept, head = self._chain(batch)
        thread = self._thread
        queue.in_flight = True
        if not kept:  # NOTE: no record could be encoded (each waiter was told): nothing to write.
            if queue.settled():
                self._send()
            return
        if thread is None:  # NOTE: closed under us; close() waits for idle, so this is a bug guard.
            self._settle(kept, AuditError("decision log is not open"), head)
            return
        thread.submit((data, kept, head))

    def _chain(self, batch: list[Pending]) -> tuple[bytes, list[Pending], tuple[str, int]]:
        """Link a batch onto the head: the bytes to write, the records they hold and the head after them.

        A record that can't be encoded is left out and its waiter told so.
        """
        lines: list[bytes] = []
        kept: list[Pending] = []
        prev, seq = self._prev, self._seq
        for record, fut in batch:
            candidate = {**record, "seq": seq + 1, "prev_hash": prev}
            try:
                digest, line = chained_line(prev, candidate)
            except (TypeError, ValueError) as exc:
                self.failures += 1
                log.error("decision record %s can't be encoded: %s", record.get("decision_id"), exc)
                if fut is not None and not fut.done():
                    fut.set_exception(AuditError(f"decision record can't be encoded: {exc}"))
                continue
            record.update(seq=seq + 1, prev_hash=prev, hash=digest)
            prev, seq = digest, seq + 1
            lines.append(line)
            kept.append((record, fut))
        return (b"\n".join(lines) + b"\n" if lines else b""), kept, (prev, seq)

    def _settle(self, batch: list[Pending], err: AuditError | None, head: tuple[str, int]) -> None:
        """Event loop: a batch is on disk (or failed): move the head, tell its waiters, send the next."""
        if err is None:
            with self._head_lock:
                self._prev, self._seq = head
            self.written += len(batch)
            self.batches += 1
        else:
            # NOTE: the head does not move, so the next batch links to the last good record.
            self.failures += len(batch)
        for _, fut in batch:
            if fut is not None and not fut.done():
                if err is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(err)
        if err is None:
            self._tell([record for record, _ in batch])
        assert self._queue is not None
        if self._queue.settled():
            self._send()

    def _tell(self, written: list[dict[str, Any]]) -> None:
        if written and self._on_written is not None:
            try:
                self._on_written(written)
            except Exception:  # NOTE: a listener's bug must not stop the log.
                log.exception("decision log listener failed")

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Writer thread: run ``fn(*args)`` in the event loop."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # NOTE: the loop is closed: nobody is left waiting.
            log.warning("decision log: event loop closed, a written batch not settled")

    # -- the writer thread's side: write, fsync, rotate, checkpoint ------------------------

    def _write_batches(self, batches: list[_Batch]) -> None:
        """Writer thread: put each batch on disk (one is in flight, so this is one) and report back."""
        for data, kept, head in batches:
            err: AuditError | None = None
            try:
                self._file.write(data)
                self._disk = head
            except Exception as exc:  # NOTE: whatever stops the write, every waiter must hear of it.
                log.error("decision log write failed for %d records: %s", len(kept), exc)
                err = AuditError(f"decision log write failed: {exc}")
            self._to_loop(self._settle, kept, err, head)
            if err is None and self._max_bytes and self._regular and self._file.size >= self._max_bytes:
                try:
                    self._file.rotate()
                except OSError as exc:
                    log.error("decision log %s could not be rotated (writing on): %s", self._path, exc)

    def _needs_checkpoint(self) -> bool:
        return self._checkpoints is not None and self._disk[1] != self._checkpointed_seq

    def _until_checkpoint(self) -> float | None:
        """Writer thread: seconds until the next checkpoint is due (None: none is waiting)."""
        if not self._needs_checkpoint():
            return None
        return max(0.0, self._checkpoint_at - time.monotonic())

    def _checkpoint_if_due(self) -> None:
        if self._needs_checkpoint() and time.monotonic() >= self._checkpoint_at:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Writer thread (or close, once it ended): sign the on-disk head into the checkpoint file."""
        checkpoints = self._checkpoints
        if checkpoints is None or not self._needs_checkpoint():
            return
        digest, seq = self._disk
        self._checkpoint_at = time.monotonic() + self._interval
        try:
            checkpoint = checkpoints.append(seq, digest, self._file.head_file)
        except OSError as exc:
            self.checkpoint_failures += 1
            log.error("decision log %s: checkpoint of seq %d can't be written to %s (%s); trying again in "
                      "%g s", self._path, seq, checkpoints.path, exc, self._interval)
            return
        self._checkpointed_seq = seq
        self.checkpoints += 1
        self._to_loop(self._tell, [checkpoint])
