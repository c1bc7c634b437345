"""The index feed's live path: batches queued in the loop, written off it, retried when the index fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sidecar.audit.index import ChainHead, CompletionRow, Cursor, Indexed, IndexRow, IndexUnavailable
from sidecar.audit.index_feed import LINGER_S, IndexFeed
from sidecar.audit.query import FoundDecision, QueryFilters
from tests.unit.audit_logs import decision


class FlakyIndex:
    """An in-memory index whose first ``failures`` writes fail."""

    dialect = "memory"
    linger_s = LINGER_S

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.rows: list[IndexRow | CompletionRow] = []

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def add(self, rows: Sequence[IndexRow | CompletionRow]) -> None:
        if self.failures:
            self.failures -= 1
            raise IndexUnavailable("the index is down")
        self.rows += rows

    async def head(self, replica: str, chain: str) -> ChainHead | None:
        return None

    async def drop_chain(self, replica: str, chain: str) -> int:
        return 0

    async def page(self, filters: QueryFilters, before: Cursor | None, limit: int | None) -> list[Indexed]:
        return []

    async def find(self, wanted: str) -> FoundDecision | None:
        return None

    async def chains(self) -> list[ChainHead]:
        return []


def _chained(n: int) -> dict[str, Any]:
    return {**decision(n), "seq": n, "prev_hash": "0" * 64, "hash": f"{n:064x}"}


async def test_a_failed_write_is_retried_until_the_index_takes_it(tmp_path: Path) -> None:
    index = FlakyIndex(failures=2)
    feed = IndexFeed(index, tmp_path / "none.jsonl", "r1", "c", retry_s=0.01)
    await feed.start()
    feed.submit([_chained(1), _chained(2), {"type": "checkpoint", "checkpoint_seq": 1}])
    assert await feed.flush(timeout_s=2)
    assert [r.seq for r in index.rows] == [1, 2]
    assert feed.failures == 2 and feed.state()["last_error"] is None and feed.state()["pending"] == 0
    await feed.close()


async def test_past_max_pending_the_oldest_records_wait_for_the_next_catch_up(tmp_path: Path) -> None:
    index = FlakyIndex(failures=1_000_000)
    feed = IndexFeed(index, tmp_path / "none.jsonl", "r1", "c", max_pending=3, retry_s=0.01)
    await feed.start()
    feed.submit([_chained(n) for n in range(1, 6)])
    await asyncio.sleep(0.05)
    assert not await feed.flush(timeout_s=0.05)
    assert feed.dropped == 2 and feed.state()["pending"] <= 3 and feed.state()["last_error"] == "the index is down"
    index.failures = 0
    assert await feed.flush(timeout_s=2)
    assert [r.seq for r in index.rows] == [3, 4, 5]
    await feed.close()
