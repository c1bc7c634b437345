"""Unit tests for sidecar.audit.log.JsonlAuditLog and sidecar.audit.record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.active_file import ActiveFile
from sidecar.audit.log import LAZY_S, JsonlAuditLog, summarise
from sidecar.audit.record import GENESIS, canonical, chain_hash, make_record, new_decision_id
from sidecar.errors import AuditError


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_chained(records: list[dict[str, Any]], prev: str = GENESIS, seq: int = 0) -> None:
    for record in records:
        seq += 1
        assert record["seq"] == seq
        assert record["prev_hash"] == prev
        assert record["hash"] == chain_hash(prev, record)
        prev = record["hash"]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "decisions.jsonl"


@pytest.fixture
async def audit(path: Path) -> AsyncIterator[JsonlAuditLog]:
    log = JsonlAuditLog(str(path), flush_window_ms=20.0, fsync=True)
    await log.open()
    yield log
    await log.close()


async def test_records_form_a_hash_chain(audit: JsonlAuditLog, path: Path) -> None:
    for n in range(3):
        await audit.append({"n": n})
    records = read_records(path)
    assert [r["n"] for r in records] == [0, 1, 2]
    assert_chained(records)
    assert audit.written == 3


async def test_chain_continues_across_close_and_reopen(path: Path) -> None:
    first = JsonlAuditLog(str(path), flush_window_ms=0.0)
    await first.open()
    await first.append({"n": 0})
    await first.append({"n": 1})
    await first.close()
    second = JsonlAuditLog(str(path), flush_window_ms=0.0)
    await second.open()
    await second.append({"n": 2})
    await second.close()
    records = read_records(path)
    assert [r["n"] for r in records] == [0, 1, 2]
    assert_chained(records)


async def test_chain_picks_up_after_a_long_last_record(path: Path) -> None:
    first = JsonlAuditLog(str(path), flush_window_ms=0.0)
    await first.open()
    await first.append({"n": 0, "pad": "x" * 200_000})
    await first.close()
    second = JsonlAuditLog(str(path), flush_window_ms=0.0)
    await second.open()
    await second.append({"n": 1})
    await second.close()
    assert_chained(read_records(path))


async def test_a_tampered_record_breaks_the_chain(audit: JsonlAuditLog, path: Path) -> None:
    await audit.append({"n": 0})
    await audit.append({"n": 1})
    records = read_records(path)
    records[0]["n"] = 99
    with pytest.raises(AssertionError):
        assert_chained(records)


async def test_concurrent_durable_appends_share_a_batch(audit: JsonlAuditLog, path: Path) -> None:
    await asyncio.gather(*(audit.append({"n": n}) for n in range(10)))
    assert audit.written == 10
    assert 1 <= audit.batches < 10
    records = read_records(path)
    assert sorted(r["n"] for r in records) == list(range(10))
    assert_chained(records)


async def test_durable_append_returns_only_once_on_disk(audit: JsonlAuditLog, path: Path) -> None:
    await audit.append({"n": 0}, durable=True)
    assert [r["n"] for r in read_records(path)] == [0]


async def test_non_durable_append_does_not_wait_but_is_written(path: Path) -> None:
    log = JsonlAuditLog(str(path), flush_window_ms=10_000.0)
    await log.open()
    await log.append({"n": 0}, durable=False)
    assert log.written == 0
    await log.close()
    assert_chained(read_records(path))
    assert log.written == 1


async def test_a_non_durable_record_rides_with_the_next_durable_one(path: Path) -> None:
    log = JsonlAuditLog(str(path), flush_window_ms=0.0, fsync=False)
    await log.open()
    try:
        await log.append({"n": 0}, durable=False)
        await asyncio.sleep(0.01)  # NOTE: well inside LAZY_S: nothing written on its own.
        assert (log.written, log.batches) == (0, 0)
        await log.append({"n": 1}, durable=True)
        assert (log.written, log.batches) == (2, 1)
        assert [r["n"] for r in read_records(path)] == [0, 1]
    finally:
        await log.close()


async def test_a_lone_non_durable_record_is_written_after_the_lazy_window(path: Path) -> None:
    log = JsonlAuditLog(str(path), flush_window_ms=0.0, fsync=False)
    await log.open()
    try:
        await log.append({"n": 0}, durable=False)
        for _ in range(100):
            if log.written:
                break
            await asyncio.sleep(LAZY_S / 5)
        assert (log.written, log.batches) == (1, 1)
        assert_chained(read_records(path))
    finally:
        await log.close()


async def test_flush_returns_once_queued_and_in_flight_records_are_on_disk(path: Path) -> None:
    log = JsonlAuditLog(str(path), flush_window_ms=0.0, fsync=True)
    await log.open()
    try:
        await log.flush()  # NOTE: nothing queued: returns at once.
        durable = asyncio.create_task(log.append({"n": 0}))
        await asyncio.sleep(0)
        await log.append({"n": 1}, durable=False)
        await log.flush()
        assert [r["n"] for r in read_records(path)] == [0, 1]
        assert durable.done()
    finally:
        await log.close()


async def test_write_failure_fails_every_waiter_and_the_chain_resumes(
    audit: JsonlAuditLog, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await audit.append({"n": "good-0"})
    last_good = read_records(path)[-1]

    def broken(self: ActiveFile, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ActiveFile, "write", broken)
    results = await asyncio.gather(*(audit.append({"n": f"lost-{k}"}) for k in range(4)),
                                   return_exceptions=True)
    assert len(results) == 4
    assert all(isinstance(r, AuditError) for r in results), results
    assert all("No space left" in r.message for r in results if isinstance(r, AuditError))
    assert audit.failures == 4
    assert audit.written == 1
    monkeypatch.undo()

    await audit.append({"n": "good-1"})
    records = read_records(path)
    assert [r["n"] for r in records] == ["good-0", "good-1"]
    assert records[1]["prev_hash"] == last_good["hash"]
    assert records[1]["seq"] == last_good["seq"] + 1
    assert_chained(records)
    assert audit.failures == 4


async def test_failed_fsync_cuts_the_file_back_to_the_last_good_record(
    audit: JsonlAuditLog, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await audit.append({"n": "good-0"})
    before = path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("sidecar.audit.active_file.os.fdatasync", failing_fsync)
    with pytest.raises(AuditError, match="Input/output error"):
        await audit.append({"n": "lost"})
    assert path.read_bytes() == before
    assert audit.failures == 1
    monkeypatch.undo()

    await audit.append({"n": "good-1"})
    records = read_records(path)
    assert [r["n"] for r in records] == ["good-0", "good-1"]
    assert_chained(records)


async def test_append_before_open_is_an_audit_error(path: Path) -> None:
    log = JsonlAuditLog(str(path))
    with pytest.raises(AuditError, match="not open"):
        await log.append({"n": 0})


async def test_open_on_a_corrupt_tail_is_an_audit_error(path: Path) -> None:
    path.write_text('{"seq": 1, "hash": "ab"}\nnot json\n', encoding="utf-8")
    log = JsonlAuditLog(str(path))
    with pytest.raises(AuditError, match="cannot open decision log"):
        await log.open()


async def test_open_on_an_unwritable_path_is_an_audit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    log = JsonlAuditLog(str(blocker / "decisions.jsonl"))
    with pytest.raises(AuditError):
        await log.open()


def test_canonical_excludes_hash_and_sorts_keys() -> None:
    assert canonical({"b": 1, "a": "é", "hash": "x"}) == '{"a":"é","b":1}'.encode()


def test_chain_hash_depends_on_previous_hash_and_content() -> None:
    record = {"seq": 1, "x": 1}
    assert chain_hash(GENESIS, record) != chain_hash("f" * 64, record)
    assert chain_hash(GENESIS, record) != chain_hash(GENESIS, {"seq": 1, "x": 2})
    assert chain_hash(GENESIS, record) == chain_hash(GENESIS, {**record, "hash": "ignored"})


@pytest.mark.parametrize(("error_code", "result"), [(None, {"allow": True}), ("policy_error", None)])
def test_make_record_shape(error_code: str | None, result: dict[str, Any] | None) -> None:
    decision_id = new_decision_id()
    record = make_record(
        decision_id=decision_id, req_id=7, input_doc={"action": {"name": "os-stop"},
                                                      "target": {"instance_id": "i-1"}},
        result=result, revision="rev-1", outcome="allow" if result else "error", enforced=True,
        method="POST", path="/v2.1/servers/i-1/action", status=202 if result else 503,
        requested_by="127.0.0.1", error_code=error_code, error_message="boom" if error_code else None,
    )
    assert record["decision_id"] == decision_id
    assert record["bundles"] == {"statelock": {"revision": "rev-1"}}
    assert record["statelock"]["http"] == {"method": "POST", "path": "/v2.1/servers/i-1/action",
                                           "status": 202 if result else 503}
    assert record["timestamp"].endswith("Z")
    assert ("result" in record) is (result is not None)
    assert ("error" in record) is (error_code is not None)
    if error_code:
        assert record["error"] == {"code": error_code, "message": "boom"}
        assert record["statelock"]["error_code"] == error_code
    assert summarise(record) == f"{decision_id} {record['statelock']['outcome']} os-stop i-1"
