"""The decision index, one contract for both stores (SQLite beside the log, PostgreSQL), and its follower.

Records are written by the real ``JsonlAuditLog`` (a real chain); every filtered page
the index answers must be what ``query_records`` finds in the log files, newest first;
the follower catches up with records written while it was down, and indexes a chain anew
when the index holds a record the chain does not.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.files import log_files
from sidecar.audit.index import Cursor, DecisionIndex, index_row
from sidecar.audit.index_feed import ChainFollower
from sidecar.audit.index_pg import PostgresIndex
from sidecar.audit.index_sqlite import SqliteIndex
from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.query import QueryFilters, filters_from_mapping, query_records
from sidecar.audit.record import make_completion, make_record, new_decision_id
from tests.support.postgres import PgServer, pg_server_fixture  # noqa: F401

pytestmark = pytest.mark.integration

SUBJECTS = ("alice", "bob", "billing-svc")
ACTIONS = ("os-stop", "resume", "lock", "delete")
OUTCOMES = ("allow", "deny", "error")


@pytest.fixture(params=["sqlite", "postgresql"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DecisionIndex]:
    store: DecisionIndex
    if request.param == "sqlite":
        store = SqliteIndex(tmp_path / "index.db")
    else:
        pg: PgServer = request.getfixturevalue("pg_server")
        store = PostgresIndex(pg.create_database(), timeout_s=5.0)
    await store.open()
    yield store
    await store.close()


def varied(i: int) -> dict[str, Any]:
    """Decision ``i``: subjects, actions, outcomes, instances, projects, revisions and locks vary with i."""
    outcome = OUTCOMES[i % 3]
    lock_ids = [f"lk-{i % 4}"] if i % 2 else []
    record = make_record(
        decision_id=new_decision_id(), req_id=i,
        input_doc={"subject": {"user_id": SUBJECTS[i % 3], "project_id": f"p{i % 2}", "roles": ["member"]},
                   "action": {"name": ACTIONS[i % 4], "kind": "state_change", "params": {}},
                   "target": {"instance_id": f"vm-{i % 5}", "project_id": f"t{i % 3}", "host": None},
                   "locks": [{"id": lid, "reason": f"hold {lid}\x00<b>"} for lid in lock_ids]},
        result=None if outcome == "error" else {"allow": outcome == "allow", "status": 200 if outcome == "allow"
                                                else 409, "reasons": [] if outcome == "allow" else
                                                ["locked"], "lock_ids": lock_ids},
        revision=f"rev-{i // 10}", outcome=outcome, enforced=True, method="POST",
        path=f"/v2.1/servers/vm-{i % 5}/action", status=0, requested_by="10.0.0.1",
        error_code="policy_error" if outcome == "error" else None)
    return record


async def write(path: Path, count: int, start: int = 0, **kwargs: Any) -> list[dict[str, Any]]:
    """Append ``count`` varied decisions (and a completion for each allowed one) through a real log."""
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False, **kwargs)
    await log.open()
    written = []
    for i in range(start, start + count):
        record = varied(i)
        await log.append(record, durable=True)
        written.append(record)
        if record["statelock"]["outcome"] == "allow":
            await log.append(make_completion(decision_id=record["decision_id"], status=202, latency_s=0.01))
    await log.close()
    return written


FILTERS: list[dict[str, str]] = [
    {}, {"outcome": "deny"}, {"outcome": "error"}, {"subject": "bob"}, {"action": "lock"}, {"instance": "vm-3"},
    {"project": "t1"}, {"revision": "rev-2"}, {"lock": "lk-3"}, {"subject": "alice", "outcome": "allow"},
    {"since": "2000-01-01T00:00:00Z"}, {"until": "2000-01-01T00:00:00Z"}, {"limit": "7"},
    {"action": "os-stop", "instance": "vm-0", "lock": "lk-0"},
]


@pytest.mark.parametrize("given", FILTERS, ids=[json.dumps(f) for f in FILTERS])
async def test_every_filter_finds_what_the_log_files_hold(index: DecisionIndex, tmp_path: Path,
                                                          given: dict[str, str]) -> None:
    path = tmp_path / "decisions.jsonl"
    await write(path, 60)
    assert await ChainFollower(index, path, "r1", "chain-1").step() == 60 + 20
    filters = filters_from_mapping(given)
    expected = query_records(log_files(path), filters)
    rows = await index.page(filters, None, filters.limit)
    assert [r.decision_id for r in rows] == [r["decision_id"] for r in reversed(expected)]
    assert [r.record for r in reversed(rows)] == [{**e, "statelock": {**e["statelock"], "replica": "r1",
                                                                      "chain": "chain-1"}} for e in expected]


async def test_pages_follow_on_without_gaps_or_repeats(index: DecisionIndex, tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    written = await write(path, 45)
    await ChainFollower(index, path, "r1", "c").step()
    seen: list[str] = []
    before: Cursor | None = None
    while True:
        page = await index.page(QueryFilters(), before, 10)
        if not page:
            break
        seen += [r.decision_id for r in page]
        before = page[-1].cursor
    assert seen == [r["decision_id"] for r in reversed(written)]


async def test_find_by_id_or_prefix_with_its_completions(index: DecisionIndex, tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    written = await write(path, 9)
    await ChainFollower(index, path, "r1", "c").step()
    allowed = next(r for r in written if r["statelock"]["outcome"] == "allow")
    found = await index.find(allowed["decision_id"][:8])
    assert found is not None and found.decision == allowed
    assert found.completion is not None and found.completion["statelock"]["upstream"]["status"] == 202
    assert await index.find("0" * 36) is None
    assert await index.find(allowed["decision_id"][:7]) is None  # NOTE: a prefix needs 8 characters


async def test_a_prefix_naming_two_decisions_is_refused(index: DecisionIndex, tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    await log.open()
    for n in (1, 2):
        await log.append({**varied(n), "decision_id": f"abcdef12-0000-0000-0000-00000000000{n}"})
    await log.close()
    await ChainFollower(index, path, "r1", "c").step()
    with pytest.raises(ValueError, match="matches 2 decisions"):
        await index.find("abcdef12")
    found = await index.find("abcdef12-0000-0000-0000-000000000002")
    assert found is not None and found.decision["decision_id"].endswith("2")


async def test_a_follower_catches_up_with_records_written_while_it_was_down(index: DecisionIndex,
                                                                            tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    first = ChainFollower(index, path, "r1", "c")
    live = await write(path, 5)
    assert await first.step() == 5 + len([r for r in live if r["statelock"]["outcome"] == "allow"])
    assert [r.decision_id for r in await index.page(QueryFilters(), None, None)] == \
        [r["decision_id"] for r in reversed(live)]
    later = await write(path, 7, start=5, max_bytes=2000)  # NOTE: rotated meanwhile: the chain spans files
    assert len(log_files(path)) > 2
    again = ChainFollower(index, path, "r1", "c")
    assert await again.step() == 7 + len([r for r in later if r["statelock"]["outcome"] == "allow"])
    assert await again.step() == 0
    assert await first.step() == 0  # NOTE: the files changed under it: it finds its place from the index's head
    assert [r.decision_id for r in await index.page(QueryFilters(), None, None)] == \
        [r["decision_id"] for r in reversed(live + later)]
    head = await index.head("r1", "c")
    last = json.loads(log_files(path)[-1].read_text().splitlines()[-1]) if log_files(path)[-1].stat().st_size \
        else json.loads(log_files(path)[-2].read_text().splitlines()[-1])
    assert head is not None and (head.seq, head.hash) == (last["seq"], last["hash"])
    assert again.last_seq == head.seq


async def test_an_index_that_holds_what_the_chain_does_not_is_rebuilt(index: DecisionIndex, tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write(path, 6)
    await ChainFollower(index, path, "r1", "c").step()
    for leftover in tmp_path.iterdir():
        if leftover.name.startswith("decisions.jsonl"):
            leftover.unlink()
    fresh = await write(path, 3, start=100)  # NOTE: another chain under the same name: seq 1, 2, ...
    assert await ChainFollower(index, path, "r1", "c").step() == len(fresh) + len(
        [r for r in fresh if r["statelock"]["outcome"] == "allow"])
    assert [r.decision_id for r in await index.page(QueryFilters(), None, None)] == \
        [r["decision_id"] for r in reversed(fresh)]


async def test_two_chains_in_one_index_are_each_marked(index: DecisionIndex, tmp_path: Path) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    a = await write(one, 4)
    b = await write(two, 4, start=50)
    await ChainFollower(index, one, "replica-a", str(one)).step()
    await ChainFollower(index, two, "replica-b", str(two)).step()
    rows = await index.page(QueryFilters(), None, None)
    marks = {r.decision_id: (r.replica, r.chain, r.record["statelock"]["replica"]) for r in rows}
    assert {d["decision_id"] for d in a + b} == set(marks)
    assert all(marks[d["decision_id"]] == ("replica-a", str(one), "replica-a") for d in a)
    assert all(marks[d["decision_id"]] == ("replica-b", str(two), "replica-b") for d in b)
    last = [json.loads(p.read_text().splitlines()[-1])["seq"] for p in (one, two)]
    assert [(c.replica, c.seq) for c in await index.chains()] == [("replica-a", last[0]), ("replica-b", last[1])]


def test_a_checkpoint_or_an_unchained_record_makes_no_row() -> None:
    assert index_row({"type": "checkpoint", "checkpoint_seq": 1, "log": {"seq": 3}}, "r", "c") is None
    assert index_row(varied(1), "r", "c") is None  # NOTE: not yet chained: no seq, no hash


async def test_sqlite_writes_while_another_writer_holds_the_lock_do_not_stall_the_loop(tmp_path: Path) -> None:
    """A worker's transaction in the shared index: this one's batch waits in a thread, the loop runs on."""
    store = SqliteIndex(tmp_path / "index.db")
    await store.open()
    try:
        rows = [row for row in (index_row({**varied(i), "seq": i + 1, "prev_hash": "0" * 64, "hash": f"{i:064x}"},
                                          "r1", "chain") for i in range(200)) if row is not None]
        other = sqlite3.connect(tmp_path / "index.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        adding = asyncio.create_task(store.add(rows))
        ticks = 0
        started = time.perf_counter()
        while time.perf_counter() - started < 0.3:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not adding.done(), "the batch waited for the other writer"
        assert ticks >= 15, f"the event loop ran only {ticks} times in 0.3 s while the index waited"
        other.execute("COMMIT")
        await asyncio.wait_for(adding, 10)
        page = await store.page(QueryFilters(), None, 500)
        assert len(page) == 200
        other.close()
    finally:
        await store.close()


async def test_sqlite_index_checkpoints_its_wal(tmp_path: Path) -> None:
    store = SqliteIndex(tmp_path / "index.db")
    await store.open()
    try:
        rows = [row for row in (index_row({**varied(i), "seq": i + 1, "prev_hash": "0" * 64, "hash": f"{i:064x}"},
                                          "r1", "chain") for i in range(5000)) if row is not None]
        await store.add(rows)
        for _ in range(100):
            if store._checkpointing is None:
                break
            await asyncio.sleep(0.05)
        assert store.wal_checkpoints == 1, "5,000 rows in one add: one checkpoint after it, in a worker thread"
        assert (await store.head("r1", "chain")) is not None
    finally:
        await store.close()


async def test_the_sqlite_index_wal_stays_bounded_under_steady_writes(tmp_path: Path) -> None:
    """Small transactions that never stop: each checkpoint must let the WAL start over, not only copy it."""
    store = SqliteIndex(tmp_path / "index.db")
    await store.open()
    wal = tmp_path / "index.db-wal"
    sizes: list[int] = []
    try:
        seq = 0
        for _ in range(6):
            # NOTE: writes go on while each checkpoint runs, as they do under load.
            for _ in range(4200 // 16):
                batch = []
                for _ in range(16):
                    seq += 1
                    row = index_row({**varied(seq), "seq": seq, "prev_hash": "0" * 64, "hash": f"{seq:064x}"},
                                    "r1", "chain")
                    assert row is not None
                    batch.append(row)
                await store.add(batch)
                await asyncio.sleep(0.001)
            sizes.append(wal.stat().st_size)
        assert store.wal_checkpoints >= 4
        assert sizes[-1] <= 2 * max(sizes[:2]), f"the WAL grows with every interval: {sizes}"
    finally:
        await store.close()
