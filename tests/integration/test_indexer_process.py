"""The SQLite decision index fed by a process of its own (``sidecar.audit.indexer``).

A real ``JsonlAuditLog`` writes the chain, a real child process follows it into a real
SQLite file, and the server's side reads it back: caught up before it answers, what
was written since is found after a flush, across rotations, after the child is killed,
and the child leaves when the server's end of its input closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from sidecar.audit.files import log_files
from sidecar.audit.index import IndexUnavailable
from sidecar.audit.index_sqlite import SqliteIndex
from sidecar.audit.indexer import IndexProcess
from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.query import QueryFilters
from tests.integration.test_decision_index import varied, write

pytestmark = pytest.mark.integration


async def _started(tmp_path: Path, log: JsonlAuditLog | None = None,
                   **kwargs: float) -> tuple[SqliteIndex, IndexProcess]:
    index = SqliteIndex(tmp_path / "index.db")
    await index.open()
    proc = IndexProcess(index, tmp_path / "decisions.jsonl", "r1", "c",
                        (lambda: int(log.chain_state()["last_seq"])) if log else (lambda: 0), **kwargs)
    await proc.start()
    return index, proc


async def _ids(index: SqliteIndex) -> list[str]:
    return [r.decision_id for r in reversed(await index.page(QueryFilters(), None, None))]


async def test_it_catches_up_before_start_returns_and_follows_what_is_written(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    before = await write(path, 6)
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False, max_bytes=3000)
    await log.open()
    index, proc = await _started(tmp_path, log, poll_s=5.0)  # NOTE: only a flush's wake-up makes it look
    allowed = len([r for r in before if r["statelock"]["outcome"] == "allow"])
    assert proc.caught_up == 6 + allowed and await _ids(index) == [r["decision_id"] for r in before]
    later = []
    for i in range(6, 30):
        record = varied(i)
        await log.append(record)
        later.append(record)
    assert len(log_files(path)) > 2  # NOTE: rotated while it followed
    assert await proc.flush(timeout_s=10)
    assert await _ids(index) == [r["decision_id"] for r in before + later]
    head = await index.head("r1", "c")
    assert head is not None and head.seq == log.chain_state()["last_seq"] and proc.state()["pending"] == 0
    await proc.close()
    await log.close()
    await index.close()


async def test_a_killed_indexer_is_started_again_and_misses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    await log.open()
    index, proc = await _started(tmp_path, log, retry_s=0.1)
    first = proc.state()["process"]
    assert isinstance(first, int)
    os.kill(first, signal.SIGKILL)
    written = []
    for i in range(10):
        record = varied(i)
        await log.append(record)
        written.append(record)
    assert await proc.flush(timeout_s=10)
    assert await _ids(index) == [r["decision_id"] for r in written]
    state = proc.state()
    assert state["restarts"] == 1 and state["process"] not in (None, first)
    await proc.close()
    await log.close()
    await index.close()


async def test_the_indexer_leaves_when_its_input_closes(tmp_path: Path) -> None:
    index, proc = await _started(tmp_path)
    pid = proc.state()["process"]
    assert isinstance(pid, int)
    await proc.close(timeout_s=5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert proc.state()["restarts"] == 0
    await index.close()


async def test_an_index_the_child_cannot_open_is_unavailable_at_start(tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "index.db")
    await index.open()
    bad = SqliteIndex(tmp_path / "index.db")
    bad.path = tmp_path  # NOTE: a directory: SQLite can't open it as a database
    proc = IndexProcess(bad, tmp_path / "decisions.jsonl", "r1", "c", lambda: 0)
    with pytest.raises(IndexUnavailable, match="decision index"):
        await proc.start()
    await index.close()


async def test_a_flush_that_cannot_be_met_says_so(tmp_path: Path) -> None:
    index, proc = await _started(tmp_path)
    proc._disk_seq = lambda: 5  # NOTE: a head the log never reaches
    assert not await proc.flush(timeout_s=0.1)
    assert proc.state()["pending"] == 5
    await proc.close()
    await index.close()
    assert json.loads(json.dumps(proc.state()))["process"] is None


async def test_health_sees_how_far_it_has_indexed_without_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    await log.open()
    index, proc = await _started(tmp_path, log)
    for i in range(12):
        await log.append(varied(i))
    for _ in range(200):
        if proc.state()["pending"] == 0:
            break
        await asyncio.sleep(0.025)
    assert proc.state()["pending"] == 0 and proc.indexed_seq == log.chain_state()["last_seq"] == 12
    await proc.close()
    await log.close()
    await index.close()
