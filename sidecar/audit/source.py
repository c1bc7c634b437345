"""Where the console and ``GET /statelock/v1/decisions`` read decisions: the index, or the log files.

``DecisionSource`` is the one reading service both use, so the page and the JSON
API can't disagree. ``IndexedDecisions`` reads a ``DecisionIndex`` (every replica's
rows with PostgreSQL), after waiting for this replica's own records to be in it;
``FileDecisions`` reads the log files with ``query_records`` (``audit.index: off``,
or a log that is not a regular file). Both answer newest-first pages of ``Indexed``
decisions, the API's oldest-first lists, and look-ups by id. Each read first waits for
the log's own queue (``flush``: a completion record is written lazily), so what was
answered before the read is in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from sidecar.audit.files import log_files
from sidecar.audit.index import ChainHead, Cursor, DecisionIndex, Indexed, from_us, reason_of, to_us
from sidecar.audit.query import (
    FoundDecision,
    QueryFilters,
    find_decision,
    query_records,
    record_instance,
    record_project,
    record_revision,
    record_time,
)

Flush = Callable[[], Awaitable[None]]
"""The decision log's ``flush``: waits until what was appended is on disk."""


async def _on_disk() -> None:
    """The Flush of a source given no log: what it reads is already on disk."""


class Feed(Protocol):
    """What keeps an index up to date with this replica's chain (``sidecar.audit.indexer.IndexProcess``)."""

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until this replica's records on disk are in the index; False past ``timeout_s``."""

    def state(self) -> dict[str, Any]:
        """The feed's state, for the console and ``/health``."""


class DecisionSource(Protocol):
    """Decisions to read (see the module docstring); store faults raise a SidecarError (503)."""

    async def page(self, filters: QueryFilters, before: Cursor | None, limit: int | None) -> list[Indexed]:
        """Up to ``limit`` matches (all with None), newest first, those older than ``before``."""

    async def query(self, filters: QueryFilters) -> list[dict[str, Any]]:
        """As ``query_records``: the matching records oldest first, the ``filters.limit`` most recent."""

    async def find(self, wanted: str) -> FoundDecision | None:
        """As ``find_decision``; ValueError for an empty or ambiguous id."""

    async def chains(self) -> list[ChainHead]:
        """The chains whose decisions this source holds."""

    def describe(self) -> dict[str, Any]:
        """What the source is, for the console and ``/health``."""


class IndexedDecisions:
    """A DecisionSource over a DecisionIndex fed by ``feed`` (this replica's chain)."""

    def __init__(self, index: DecisionIndex, feed: Feed, flush: Flush = _on_disk) -> None:
        self.index = index
        self.feed = feed
        self._flush = flush

    async def _caught_up(self) -> None:
        await self._flush()
        await self.feed.flush()

    async def page(self, filters: QueryFilters, before: Cursor | None, limit: int | None) -> list[Indexed]:
        await self._caught_up()
        return await self.index.page(filters, before, limit)

    async def query(self, filters: QueryFilters) -> list[dict[str, Any]]:
        rows = await self.page(filters, None, filters.limit)
        return [row.record for row in reversed(rows)]

    async def find(self, wanted: str) -> FoundDecision | None:
        if not wanted.strip():
            raise ValueError("decision_id: empty value")
        await self._caught_up()
        return await self.index.find(wanted.strip())

    async def chains(self) -> list[ChainHead]:
        return await self.index.chains()

    def describe(self) -> dict[str, Any]:
        return self.feed.state()


class FileDecisions:
    """A DecisionSource reading the log at ``path`` (every call reads its files)."""

    def __init__(self, path: str | Path, replica: str, flush: Flush = _on_disk) -> None:
        self.path = Path(path)
        self.replica = replica
        self._flush = flush

    async def page(self, filters: QueryFilters, before: Cursor | None, limit: int | None) -> list[Indexed]:
        await self._flush()
        records = await asyncio.to_thread(query_records, log_files(self.path), replace(filters, limit=None))
        out: list[Indexed] = []
        for record in reversed(records):
            row = self._indexed(record)
            if before is not None and (row.cursor.ts_us, row.cursor.row) >= (before.ts_us, before.row):
                continue
            out.append(row)
            if limit is not None and len(out) >= limit:
                break
        return out

    def _indexed(self, record: dict[str, Any]) -> Indexed:
        when = record_time(record)
        inp = _obj(record.get("input"))
        seq = record.get("seq")
        seq = seq if isinstance(seq, int) else 0
        st = record.setdefault("statelock", {})
        if isinstance(st, dict):
            st.update(replica=self.replica, chain=str(self.path))
        ts_us = to_us(when) if when else 0
        return Indexed(
            str(record.get("decision_id", "")), str(_obj(st).get("outcome") or ""),
            str(_obj(inp.get("action")).get("name") or ""), record_instance(record) or "",
            record_project(record) or "", str(_obj(inp.get("subject")).get("user_id") or ""),
            record_revision(record) or "", reason_of(record), self.replica, str(self.path), seq,
            str(record.get("hash", "")), record=record, when=from_us(ts_us), cursor=Cursor(ts_us, seq))

    async def query(self, filters: QueryFilters) -> list[dict[str, Any]]:
        await self._flush()
        return await asyncio.to_thread(query_records, log_files(self.path), filters)

    async def find(self, wanted: str) -> FoundDecision | None:
        await self._flush()
        return await asyncio.to_thread(find_decision, log_files(self.path), wanted)

    async def chains(self) -> list[ChainHead]:
        return []

    def describe(self) -> dict[str, Any]:
        return {"backend": "files", "replica": self.replica, "chain": str(self.path)}



def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
