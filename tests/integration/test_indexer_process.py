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
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.audit.files import log_files
from sidecar.audit.index import DecisionIndex, IndexUnavailable
from sidecar.audit.index_pg import PostgresIndex
from sidecar.audit.index_sqlite import SqliteIndex
from sidecar.audit.indexer import IndexProcess
from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.query import QueryFilters
from tests.integration.test_decision_index import varied, write
from tests.support.fake_nova import FakeNova, build_app
from tests.support.postgres import PgServer, pg_server_fixture  # noqa: F401
from tests.support.process import free_port, indexer_pid, start_statelock, upstream_config

pytestmark = pytest.mark.integration
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], DecisionIndex]:
    """A new (not yet open) index of each kind: a SQLite file, or a database of a real PostgreSQL."""
    if request.param == "sqlite":
        return lambda: SqliteIndex(tmp_path / "index.db")
    pg: PgServer = request.getfixturevalue("pg_server")
    url = pg.create_database()
    return lambda: PostgresIndex(url, timeout_s=5.0)


async def _started(tmp_path: Path, log: JsonlAuditLog | None = None, store: Callable[[], DecisionIndex] | None = None,
                   **kwargs: float) -> tuple[DecisionIndex, IndexProcess]:
    index = store() if store else SqliteIndex(tmp_path / "index.db")
    await index.open()
    proc = IndexProcess(index, tmp_path / "decisions.jsonl", "r1", "c",
                        (lambda: int(log.chain_state()["last_seq"])) if log else (lambda: 0), **kwargs)
    await proc.start()
    return index, proc


async def _ids(index: DecisionIndex) -> list[str]:
    return [r.decision_id for r in reversed(await index.page(QueryFilters(), None, None))]


async def test_it_catches_up_before_start_returns_and_follows_what_is_written(
        tmp_path: Path, store: Callable[[], DecisionIndex]) -> None:
    path = tmp_path / "decisions.jsonl"
    before = await write(path, 6)
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False, max_bytes=3000)
    await log.open()
    index, proc = await _started(tmp_path, log, store, poll_s=5.0)  # NOTE: only a flush's wake-up makes it look
    pid = proc.state()["process"]
    if isinstance(index, PostgresIndex):  # NOTE: the URL (a password, maybe) went on its input, not its argv
        assert b"postgresql://" not in Path(f"/proc/{pid}/cmdline").read_bytes()
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


async def test_a_killed_indexer_is_started_again_and_misses_nothing(tmp_path: Path,
                                                                    store: Callable[[], DecisionIndex]) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    await log.open()
    index, proc = await _started(tmp_path, log, store, retry_s=0.1)
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


async def _gone(pid: int, timeout_s: float) -> bool:
    for _ in range(int(timeout_s / 0.05)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            return True  # NOTE: a zombie has exited; its parent (gone too) can't reap it
        await asyncio.sleep(0.05)
    return False


async def test_serve_restarts_a_killed_indexer_and_its_child_goes_with_it(aiohttp_server: AiohttpServer,
                                                                          tmp_path: Path) -> None:
    nova = FakeNova()
    ids = [nova.add_server() for _ in range(3)]
    upstream = await aiohttp_server(build_app(nova))
    config = upstream_config(tmp_path, str(upstream.make_url("")))
    port = free_port()
    proc = await start_statelock(config, port, tmp_path / "statelock.log")
    base = f"http://127.0.0.1:{port}"
    made: list[str] = []
    try:
        async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:demo"}) as session:
            async def reboot(n: int) -> None:
                for i in range(n):
                    async with session.post(f"{base}/v2.1/servers/{ids[i % 3]}/action",
                                            json={"reboot": {"type": "SOFT"}}) as resp:
                        assert resp.status == 202
                        made.append(resp.headers["X-Statelock-Decision-Id"])

            await reboot(4)
            first = indexer_pid(proc.pid)
            os.kill(first, signal.SIGKILL)
            await reboot(4)
            auditor = {"X-Auth-Token": "auditor:service:auditor"}
            for decision_id in made:
                async with session.get(f"{base}/statelock/v1/decisions/{decision_id}", headers=auditor) as resp:
                    assert resp.status == 200, await resp.text()
            async with session.get(f"{base}/statelock/v1/health") as resp:
                state = (await resp.json())["decisions"]
            assert state["backend"] == "sqlite" and state["restarts"] == 1 and state["pending"] == 0
            second = indexer_pid(proc.pid)
            assert second != first
    finally:
        proc.kill()  # NOTE: SIGKILL: no shutdown runs, the indexer must notice on its own
        await proc.wait()
    assert await _gone(second, 5.0), "the indexer outlived the server it indexed for"
