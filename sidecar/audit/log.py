"""The decision log: JSON lines, hash-chained, with group commit and rotation by size.

``append`` hands a record to the writer and, with ``durable=True``, returns only
once the record is on disk (written and fsynced). Records that arrive within
``flush_window_ms`` of each other share one write and one fsync, as in a
database's group commit, so "recorded before forwarded" does not cost one fsync
per request. A failed write raises ``AuditError`` in every waiting caller and is
counted; the caller applies ``audit.on_failure``. A failed write leaves nothing
behind: the file is cut back to its last whole record, and the chain goes on from it.

Rotation: with ``max_bytes`` set, once the active file reaches that size it is
renamed ``<path>.<n>`` (n = 000001, 000002, ...: oldest first, and in that order
under a shell glob) and a new ``<path>`` is started. The chain runs on across files:
``seq`` keeps counting and the first record of a new file has as ``prev_hash`` the
hash of the last record of the previous one, so ``statelock audit verify
<path>.* <path>`` checks the whole history, and a missing file shows as a gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sidecar.audit.record import GENESIS, chained_line
from sidecar.errors import AuditError

log = logging.getLogger(__name__)

_Pending = tuple[dict[str, Any], "asyncio.Future[None] | None"]


class AuditLog(Protocol):
    """Where decision records go."""

    failures: int

    async def open(self) -> None:
        """Open the log, picking up the hash chain where it ended."""

    async def close(self) -> None:
        """Flush what is pending and close."""

    async def append(self, record: dict[str, Any], durable: bool = True) -> None:
        """Add a record; with durable=True return once it is on disk. AuditError on failure."""


def rotated_name(path: Path, n: int) -> Path:
    """The name the n-th rotation of ``path`` gets (``decisions.jsonl.000003``)."""
    return path.with_name(f"{path.name}.{n:06d}")


def rotated_files(path: str | Path) -> list[Path]:
    """The rotated files of a log, oldest first (by their number, not their name)."""
    base = Path(path)
    pattern = re.compile(re.escape(base.name) + r"\.(\d+)")
    found: list[tuple[int, Path]] = []
    if base.parent.is_dir():
        for entry in base.parent.iterdir():
            m = pattern.fullmatch(entry.name)
            if m and entry.is_file():
                found.append((int(m.group(1)), entry))
    return [p for _, p in sorted(found)]


def log_files(path: str | Path) -> list[Path]:
    """Every file of a log in chain order: the rotated ones, then the active one if present."""
    base = Path(path)
    return rotated_files(base) + ([base] if base.is_file() else [])


def _tail_state(path: Path) -> tuple[str, int] | None:
    """The hash and seq of the last record in ``path``; None if it holds no record."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        block = min(size, 65536)
        while True:
            fh.seek(size - block)
            tail = fh.read(block)
            lines = [ln for ln in tail.splitlines() if ln.strip()]
            if len(lines) >= 2 or block == size:
                break
            block = min(size, block * 4)
    if not lines:
        return None
    last = json.loads(lines[-1])
    return str(last["hash"]), int(last["seq"])


def _cut_torn_tail(path: Path) -> int:
    """Cut a final line that has no newline (a write cut short by a crash); bytes cut.

    Such a line belongs to a batch that was never acknowledged (acknowledgement
    follows the fsync of the whole batch). Its bytes are kept in ``<path>-torn``, a
    name outside the ``<path>.*`` glob of the rotated files.
    """
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        keep = size
        while keep > 0:
            start = max(0, keep - 65536)
            fh.seek(start)
            chunk = fh.read(keep - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            keep = start
        fh.seek(keep)
        fragment = fh.read()
        with path.with_name(path.name + "-torn").open("ab") as torn:
            torn.write(fragment + b"\n")
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(fragment)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlAuditLog:
    """An AuditLog writing one JSON line per record to a file (see module docstring).

    ``max_bytes`` 0 never rotates. ``on_written``, if given, is called in the event
    loop with each batch of records once they are on disk (with their ``seq``,
    ``prev_hash`` and ``hash``): the place to hand them to a ``DecisionShipper``; it
    must not block, and what it raises is logged and ignored. ``written`` counts
    records on disk, ``batches`` the writes that put them there, ``failures`` the
    records that could not be written, ``rotations`` the files rotated away.
    """

    def __init__(self, path: str, flush_window_ms: float = 2.0, fsync: bool = True,
                 max_bytes: int = 0,
                 on_written: Callable[[Sequence[dict[str, Any]]], None] | None = None) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be zero (never rotate) or positive")
        self._path = Path(path)
        self._window = flush_window_ms / 1000.0
        self._fsync = fsync
        self._max_bytes = max_bytes
        self._on_written = on_written
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
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

    @property
    def path(self) -> Path:
        """The active file."""
        return self._path

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._open_sync)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"cannot open decision log {self._path}: {exc}") from exc
        self._closing = False
        self._task = asyncio.create_task(self._writer(), name="statelock-audit-writer")

    def _open_sync(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        cut = _cut_torn_tail(self._path)
        if cut:
            log.warning("decision log %s ended in a torn line (%d bytes, never acknowledged); "
                        "moved to %s-torn", self._path, cut, self._path.name)
        rotated = rotated_files(self._path)
        if rotated:
            m = re.search(r"\.(\d+)$", rotated[-1].name)
            self._next_n = int(m.group(1)) + 1 if m else 1
        state = None
        for candidate in [self._path, *reversed(rotated)]:
            state = _tail_state(candidate)
            if state is not None:
                break
        self._prev, self._seq = state or (GENESIS, 0)
        self._fh = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open until close()
        self._size = self._fh.seek(0, os.SEEK_END)
        self._dirty = False

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._closing = True
            self._wakeup.set()
            try:
                await task
            except Exception:  # NOTE: the writer failed its callers already; closing goes on.
                log.exception("decision log writer ended with an error")
        if self._pending:
            await self._flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    async def append(self, record: dict[str, Any], durable: bool = True) -> None:
        if self._task is None or self._closing:
            raise AuditError("decision log is not open")
        fut: asyncio.Future[None] | None = (
            asyncio.get_running_loop().create_future() if durable else None
        )
        self._pending.append((record, fut))
        self._wakeup.set()
        if fut is not None:
            await fut

    async def _writer(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._window and not self._closing:
                await asyncio.sleep(self._window)
            self._wakeup.clear()
            await self._flush()
            if self._closing and not self._pending:
                return

    def _chain(self, batch: list[_Pending]) -> tuple[bytes, list[_Pending]]:
        """Link a batch into the chain; the bytes to write and the records they hold."""
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
                if fut is not None and not fut.done():
                    fut.set_exception(AuditError(f"decision record can't be encoded: {exc}"))
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
            fresh = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open until close()
        except OSError:
            os.rename(target, self._path)
            raise
        if self._fsync:
            _fsync_dir(self._path.parent)
        self._fh.close()
        self._fh, self._size, self._dirty = fresh, 0, False
        self._next_n += 1
        self.rotations += 1

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        data, batch = self._chain(batch)
        if not batch:
            return
        try:
            await asyncio.to_thread(self._write, data)
        except Exception as exc:  # NOTE: whatever stops the write, every waiter must hear of it.
            self.failures += len(batch)
            log.error("decision log write failed for %d records: %s", len(batch), exc)
            err = AuditError(f"decision log write failed: {exc}")
            # NOTE: the chain does not advance, so the next batch links to the last good record.
            for _, fut in batch:
                if fut is not None and not fut.done():
                    fut.set_exception(err)
            return
        self._prev, self._seq = self._next
        self.written += len(batch)
        self.batches += 1
        for _, fut in batch:
            if fut is not None and not fut.done():
                fut.set_result(None)
        if self._on_written is not None:
            try:
                self._on_written([record for record, _ in batch])
            except Exception:  # NOTE: a listener's bug must not stop the log.
                log.exception("decision log listener failed")
        if self._max_bytes and self._size >= self._max_bytes:
            try:
                await asyncio.to_thread(self._rotate)
            except OSError as exc:
                log.error("decision log %s could not be rotated (writing on): %s", self._path, exc)


def summarise(record: Mapping[str, Any]) -> str:
    """One line for logs: decision id, outcome, action, instance."""
    st = record.get("statelock", {})
    inp = record.get("input", {})
    return (f"{record.get('decision_id')} {st.get('outcome')} "
            f"{inp.get('action', {}).get('name')} {inp.get('target', {}).get('instance_id')}")
