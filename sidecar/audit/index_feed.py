"""Keeping the decision index up to date with this replica's chain.

``IndexFeed.start`` first catches up from the chain (``catch_up``): it reads the log
back from its end to the record the index last holds for this chain, checks that
record's hash, and indexes everything after it, so records written while the index
was down (or never indexed, after a crash) are found again. When the index holds a
record the chain does not (another log under the same name, or a chain cut back),
the chain's rows are dropped and indexed anew: the chain is the source of truth.

Then ``submit`` (the log's ``on_written`` listener, called in the event loop once a
batch is on disk) queues each batch, and a writer task adds what gathered within
``linger_s`` to the index in one transaction, off the request path (the index's own
``linger_s``: PostgreSQL gathers for 0.25 s, a round trip per transaction). The server
feeds a PostgreSQL index this way; a SQLite one is fed by a process of its own
(``sidecar.audit.indexer``) with ``ChainFollower``, which reads what is appended to the
chain's files instead of being handed each batch. A failed write is
logged, counted in ``failures`` and tried again;
past ``max_pending`` records waiting, the oldest are dropped (counted in ``dropped``)
and left to the next start-up's catch-up. ``flush`` waits until what was submitted so
far is in the index: a reader of this replica's own decisions calls it first, so a
decision just made is on the next page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sidecar.aio import cancel_and_wait
from sidecar.audit.files import lines_from_end, log_files
from sidecar.audit.index import ChainHead, CompletionRow, DecisionIndex, IndexRow, IndexUnavailable, index_row

log = logging.getLogger(__name__)

BATCH = 2000
LINGER_S = 0.25
"""How long a written batch waits for others before it goes into the index (a reader's flush won't wait)."""


@dataclass(frozen=True)
class _Start:
    """Where catching up starts: file index and byte offset; ``rebuild`` when the index disagrees."""

    file: int
    offset: int
    rebuild: bool = False


def find_start(files: Sequence[Path], head: ChainHead | None) -> _Start:
    """Where the records after ``head`` begin in ``files`` (oldest first), reading back from the end.

    Raises OSError if a file can't be read.
    """
    if head is None:
        return _Start(0, 0)
    for index in range(len(files) - 1, -1, -1):
        for offset, raw in lines_from_end(files[index]):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            seq = record.get("seq") if isinstance(record, dict) else None
            if not isinstance(seq, int) or seq > head.seq:
                continue
            if seq == head.seq and record.get("hash") == head.hash:
                return _Start(index, offset + len(raw))
            return _Start(0, 0, rebuild=True)
    # NOTE: every record left is newer than the head: the files that held it were removed on purpose.
    return _Start(0, 0)


def _loads(raw: bytes) -> Any:
    """A line's JSON: orjson, or the standard decoder for what orjson refuses (ints past 64 bits, NaN)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def read_rows(files: Sequence[Path], start: _Start, replica: str, chain: str,
              limit: int = BATCH) -> tuple[list[IndexRow | CompletionRow], _Start]:
    """Up to ``limit`` rows from ``start`` on, and where the next read starts (past the last whole line
    read: fewer than ``limit`` rows means the end was reached)."""
    rows: list[IndexRow | CompletionRow] = []
    file, offset = start.file, start.offset
    while file < len(files):
        with files[file].open("rb") as fh:
            fh.seek(offset)
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # NOTE: a line still being written; the next read brings it
                offset += len(raw)
                try:
                    record = _loads(raw)
                except ValueError:
                    log.warning("%s: a line at byte %d is not JSON; not indexed", files[file], offset - len(raw))
                    continue
                row = index_row(record, replica, chain) if isinstance(record, dict) else None
                if row is not None:
                    rows.append(row)
                if len(rows) >= limit:
                    return rows, _Start(file, offset)
        if file == len(files) - 1:
            break
        file, offset = file + 1, 0
    return rows, _Start(file, offset)


class ChainFollower:
    """Indexes what a chain's files hold past the index's head, and then what is appended to them.

    ``step`` reads from where the last one stopped, as long as the log's files are the same ones;
    after a rotation (or at the first step) it finds its place again from the index's head
    (``find_start``), dropping the chain's rows first when the index holds a record the chain does not.
    A failed write leaves the place where it was, so the next step writes the same rows again.
    """

    def __init__(self, index: DecisionIndex, log_path: str | Path, replica: str, chain: str) -> None:
        self.index = index
        self.log_path = Path(log_path)
        self.replica = replica
        self.chain = chain
        self._files: list[Path] | None = None
        self._at: _Start | None = None
        self.last_seq: int | None = None
        """The seq of the last row this follower added (None before it added one)."""

    async def step(self) -> int:
        """Index what was appended since the last step; how many rows were added. IndexUnavailable on a fault."""
        files = log_files(self.log_path)
        try:
            at = self._at if files == self._files else None
            if at is not None and at.file == len(files) - 1 and files[-1].stat().st_size == at.offset:
                return 0  # NOTE: nothing appended (a follower's usual look): no read, no thread hop
            if at is None:
                at = await self._find(files)
            added = 0
            while True:
                rows, after = await asyncio.to_thread(read_rows, files, at, self.replica, self.chain)
                if rows:
                    await self.index.add(rows)
                    self.last_seq = rows[-1].seq
                self._files, self._at, at = files, after, after
                added += len(rows)
                if len(rows) < BATCH:
                    return added
        except OSError as exc:
            self._at = None
            raise IndexUnavailable(f"cannot read the decision log {self.log_path} to index it: {exc}") from exc

    async def _find(self, files: list[Path]) -> _Start:
        head = await self.index.head(self.replica, self.chain)
        start = await asyncio.to_thread(find_start, files, head)
        if start.rebuild:
            dropped = await self.index.drop_chain(self.replica, self.chain)
            log.warning("decision index: it held a record the chain %s does not (seq %s); its %d rows were "
                        "dropped and the chain is indexed anew", self.chain, head.seq if head else None, dropped)
        return start


class IndexFeed:
    """Feeds one chain's records into a DecisionIndex (see the module docstring)."""

    def __init__(self, index: DecisionIndex, log_path: str | Path, replica: str, chain: str, *,
                 max_pending: int = 100_000, retry_s: float = 1.0, linger_s: float | None = None) -> None:
        self.index = index
        self.log_path = Path(log_path)
        self.replica = replica
        self.chain = chain
        self._max_pending = max_pending
        self._retry_s = retry_s
        self._linger_s = index.linger_s if linger_s is None else linger_s
        self._pending: list[IndexRow | CompletionRow] = []
        self._wakeup = asyncio.Event()
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.dropped = 0
        self.caught_up = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        """Catch up from the chain, then index each batch written; IndexUnavailable if the index fails."""
        self.caught_up = await self.catch_up()
        self._task = asyncio.create_task(self._writer(), name="statelock-decision-index")

    async def catch_up(self) -> int:
        """Index the chain's records the index lacks (see the module docstring); how many were added."""
        added = await ChainFollower(self.index, self.log_path, self.replica, self.chain).step()
        if added:
            log.info("decision index: %d records of chain %s caught up from the log", added, self.chain)
        return added

    def submit(self, records: Sequence[dict[str, Any]]) -> None:
        """Queue a batch just written (the log's ``on_written``); checkpoints are not indexed.

        The rows are made here, in the event loop, a batch at a time: made in a worker thread, the
        same CPU work would hold the GIL against the loop (a thread running Python keeps it for up
        to the switch interval, 5 ms, whenever the loop wants it back).
        """
        rows = self._rows([r for r in records if "seq" in r])
        if not rows:
            return
        self._pending.extend(rows)
        self._trim()
        self._idle.clear()
        self._wakeup.set()

    def _rows(self, records: Sequence[dict[str, Any]]) -> list[IndexRow | CompletionRow]:
        return [row for row in (index_row(r, self.replica, self.chain) for r in records) if row is not None]

    def _trim(self) -> None:
        if len(self._pending) > self._max_pending:
            extra = len(self._pending) - self._max_pending
            del self._pending[:extra]
            self.dropped += extra

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until what was submitted is in the index; False if that took longer than ``timeout_s``."""
        if self._task is None or self._task.done():
            return not self._pending
        self._urgent.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _writer(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._linger_s and not self._urgent.is_set() and len(self._pending) < BATCH:
                # NOTE: a batch per written group costs a thread hop and a transaction each; waiting a
                # little gathers them (a reader's flush cuts the wait short).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._linger_s)
            self._urgent.clear()
            while self._pending:
                batch = self._pending[:BATCH]
                del self._pending[:BATCH]
                try:
                    await self.index.add(batch)
                except IndexUnavailable as exc:
                    self.failures += 1
                    if self.last_error != str(exc):
                        log.error("decision index write failed (retrying; the chain keeps every record): %s", exc)
                    self.last_error = str(exc)
                    self._pending[:0] = batch
                    self._trim()
                    await asyncio.sleep(self._retry_s)
                    continue
                self.last_error = None
            self._idle.set()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what is pending (for up to ``timeout_s``), then stop."""
        if self._task is not None and self._pending:
            await self.flush(timeout_s)
        await cancel_and_wait(self._task)
        self._task = None

    def state(self) -> dict[str, Any]:
        """The feed's state, for ``/health`` and the console."""
        return {"backend": self.index.dialect, "replica": self.replica, "chain": self.chain,
                "pending": len(self._pending), "failures": self.failures, "dropped": self.dropped,
                "caught_up_at_start": self.caught_up, "last_error": self.last_error}
