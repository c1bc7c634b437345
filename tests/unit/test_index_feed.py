"""The chain follower: what it reads from a log's files, and what a failed index write leaves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import sidecar.audit.index_feed as index_feed
from sidecar.audit.index import ChainHead, CompletionRow, Cursor, Indexed, IndexRow, IndexUnavailable
from sidecar.audit.index_feed import ChainFollower
from sidecar.audit.query import FoundDecision, QueryFilters
from tests.unit.audit_logs import decision


class FlakyIndex:
    """An in-memory index whose first ``failures`` writes fail."""

    dialect = "memory"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.rows: list[IndexRow | CompletionRow] = []

    def child_spec(self) -> tuple[list[str], bytes]:
        return [], b""

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
        if not self.rows:
            return None
        last = self.rows[-1]
        return ChainHead(replica, chain, last.seq, last.hash)

    async def drop_chain(self, replica: str, chain: str) -> int:
        dropped, self.rows = len(self.rows), []
        return dropped

    async def page(self, filters: QueryFilters, before: Cursor | None, limit: int | None) -> list[Indexed]:
        return []

    async def find(self, wanted: str) -> FoundDecision | None:
        return None

    async def chains(self) -> list[ChainHead]:
        return []


def _line(n: int) -> bytes:
    record: dict[str, Any] = {**decision(n), "seq": n, "prev_hash": "0" * 64, "hash": f"{n:064x}"}
    return json.dumps(record).encode() + b"\n"


async def test_a_failed_write_leaves_its_place_and_the_next_step_writes_the_same_rows(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(_line(1) + _line(2) + b'{"type": "checkpoint", "checkpoint_seq": 2}\n')
    index = FlakyIndex(failures=1)
    follower = ChainFollower(index, path, "r1", "c")
    with pytest.raises(IndexUnavailable, match="down"):
        await follower.step()
    assert await follower.step() == 2
    with path.open("ab") as fh:
        fh.write(_line(3))
    assert await follower.step() == 1
    assert [r.seq for r in index.rows] == [1, 2, 3] and follower.last_seq == 3


async def test_a_line_still_being_written_waits_and_a_line_that_is_not_json_is_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "decisions.jsonl"
    whole = _line(2)
    path.write_bytes(_line(1) + b"not json\n" + whole[:40])
    index = FlakyIndex()
    follower = ChainFollower(index, path, "r1", "c")
    assert await follower.step() == 1
    assert any("is not JSON" in r.getMessage() for r in caplog.records)
    with path.open("ab") as fh:
        fh.write(whole[40:])
    assert await follower.step() == 1
    assert [r.seq for r in index.rows] == [1, 2]


async def test_nothing_appended_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(_line(1))
    follower = ChainFollower(FlakyIndex(), path, "r1", "c")
    assert await follower.step() == 1
    reads: list[int] = []
    real = index_feed.read_rows

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(index_feed, "read_rows", counted)
    assert [await follower.step() for _ in range(5)] == [0] * 5
    assert reads == []


async def test_a_log_that_cannot_be_read_is_an_unavailable_index(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(_line(1))

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(index_feed, "read_rows", unreadable)
    follower = ChainFollower(FlakyIndex(), path, "r1", "c")
    with pytest.raises(IndexUnavailable, match=r"cannot read the decision log .*Permission denied"):
        await follower.step()
    monkeypatch.undo()
    assert await follower.step() == 1  # NOTE: it found its place again from the index's head
