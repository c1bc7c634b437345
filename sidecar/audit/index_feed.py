"""Following a chain's files into the decision index (``ChainFollower``).

A follower's first ``step`` catches up from the chain: it reads the log back from its
end to the record the index last holds for this chain (``find_start``), checks that
record's hash, and indexes everything after it, so records written while the index
was down (or never indexed, after a crash) are found again. When the index holds a
record the chain does not (another log under the same name, or a chain cut back),
the chain's rows are dropped and indexed anew: the chain is the source of truth.
Every later step reads what was appended since (``read_rows``) and adds it, up to
``BATCH`` rows per ``add``. ``sidecar.audit.indexer`` runs one in a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sidecar.audit.files import lines_from_end, log_files
from sidecar.audit.index import ChainHead, CompletionRow, DecisionIndex, IndexRow, IndexUnavailable, index_row

log = logging.getLogger(__name__)

BATCH = 2000


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
