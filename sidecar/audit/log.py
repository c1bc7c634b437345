"""The decision log: JSON lines, hash-chained, with group commit.

``append`` hands a record to the writer and, with ``durable=True``, returns only
once the record is on disk (written and fsynced). Records that arrive within
``flush_window_ms`` of each other share one write and one fsync, as in a
database's group commit, so "recorded before forwarded" does not cost one fsync
per request. A failed write raises ``AuditError`` in every waiting caller and is
counted; the caller applies ``audit.on_failure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from sidecar.audit.record import GENESIS, chain_hash
from sidecar.errors import AuditError

log = logging.getLogger(__name__)


class AuditLog(Protocol):
    """Where decision records go."""

    failures: int

    async def open(self) -> None:
        """Open the log, picking up the hash chain where it ended."""

    async def close(self) -> None:
        """Flush what is pending and close."""

    async def append(self, record: dict[str, Any], durable: bool = True) -> None:
        """Add a record; with durable=True return once it is on disk. AuditError on failure."""


def _last_hash(path: Path) -> tuple[str, int]:
    """The hash and sequence number of the last record in ``path``, or the genesis."""
    if not path.exists() or path.stat().st_size == 0:
        return GENESIS, 0
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
    last = json.loads(lines[-1])
    return str(last["hash"]), int(last.get("seq", 0))


class JsonlAuditLog:
    """An AuditLog writing one JSON line per record to a file (see module docstring)."""

    def __init__(self, path: str, flush_window_ms: float = 2.0, fsync: bool = True) -> None:
        self._path = Path(path)
        self._window = flush_window_ms / 1000.0
        self._fsync = fsync
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None] | None]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fh: Any = None
        self._prev = GENESIS
        self._seq = 0
        self.failures = 0
        self.written = 0
        self.batches = 0

    async def open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._prev, self._seq = await asyncio.to_thread(_last_hash, self._path)
            self._fh = await asyncio.to_thread(self._path.open, "ab")
        except (OSError, ValueError, KeyError) as exc:
            raise AuditError(f"cannot open decision log {self._path}: {exc}") from exc
        self._task = asyncio.create_task(self._writer(), name="statelock-audit-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending:
            await self._flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    async def append(self, record: dict[str, Any], durable: bool = True) -> None:
        if self._task is None:
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
            if self._window:
                await asyncio.sleep(self._window)
            self._wakeup.clear()
            await self._flush()

    def _chain(self, batch: list[tuple[dict[str, Any], asyncio.Future[None] | None]]) -> bytes:
        lines = []
        prev, seq = self._prev, self._seq
        for record, _ in batch:
            seq += 1
            record["seq"] = seq
            record["prev_hash"] = prev
            record["hash"] = prev = chain_hash(prev, record)
            lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
        self._next = (prev, seq)
        return ("\n".join(lines) + "\n").encode()

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        data = self._chain(batch)
        try:
            await asyncio.to_thread(self._write, data)
        except (OSError, ValueError) as exc:
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


def summarise(record: Mapping[str, Any]) -> str:
    """One line for logs: decision id, outcome, action, instance."""
    st = record.get("statelock", {})
    inp = record.get("input", {})
    return (f"{record.get('decision_id')} {st.get('outcome')} "
            f"{inp.get('action', {}).get('name')} {inp.get('target', {}).get('instance_id')}")
