"""Signed checkpoints as JsonlAuditLog writes them (sidecar.audit.checkpoint)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.checkpoint import CheckpointFile, checkpoint_digest, read_checkpoints, signature_valid
from sidecar.audit.log import JsonlAuditLog, log_files
from sidecar.audit.record import GENESIS
from sidecar.audit.signing import key_id, load_or_create
from sidecar.errors import AuditError
from tests.unit.audit_logs import decision, lines, write_log


def _checkpoints(path: Path) -> list[dict[str, Any]]:
    found = read_checkpoints(path.with_name(path.name + "-checkpoints"))
    assert all(ln.checkpoint is not None for ln in found)
    return [ln.checkpoint for ln in found if ln.checkpoint is not None]


def _head(path: Path) -> tuple[int, str]:
    last = json.loads(lines(path)[-1])
    return last["seq"], last["hash"]


async def _until(predicate: Any, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_checkpoints_are_written_while_records_come_and_not_when_idle(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False, checkpoint_interval_s=0.05)
    await log.open()
    await log.append(decision(1))
    await log.append(decision(2))
    await _until(lambda: log.checkpoints == 1)
    [first] = _checkpoints(path)
    assert (first["log"]["seq"], first["log"]["hash"]) == _head(path)
    await asyncio.sleep(0.2)
    assert log.checkpoints == 1, "no records since: no new checkpoint"
    await log.append(decision(3))
    await _until(lambda: log.checkpoints == 2)
    await log.append(decision(4))
    await log.close()
    assert log.checkpoints == 3, "close covers the record written since"
    assert [c["log"]["seq"] for c in _checkpoints(path)] == [2, 3, 4]


async def test_close_writes_a_checkpoint_of_the_head(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 5)
    [checkpoint] = _checkpoints(path)
    key = load_or_create(tmp_path / "decisions.jsonl-signing.key")
    assert checkpoint == {
        "type": "checkpoint", "checkpoint_seq": 1, "timestamp": checkpoint["timestamp"],
        "log": {"file": "decisions.jsonl", "seq": 5, "hash": _head(path)[1]},
        "prev_checkpoint": GENESIS, "key_id": key_id(key.public_key()), "signature": checkpoint["signature"]}
    assert signature_valid(key.public_key(), checkpoint)
    assert not signature_valid(key.public_key(), {**checkpoint, "log": {**checkpoint["log"], "seq": 4}})


async def test_an_empty_log_gets_no_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 0)
    assert not (tmp_path / "decisions.jsonl-checkpoints").exists()


async def test_checkpoints_chain_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    for run in range(3):
        await write_log(path, 2, start=2 * run + 1)
    await write_log(path, 0)
    checkpoints = _checkpoints(path)
    assert [c["checkpoint_seq"] for c in checkpoints] == [1, 2, 3]
    assert [c["log"]["seq"] for c in checkpoints] == [2, 4, 6]
    assert checkpoints[0]["prev_checkpoint"] == GENESIS
    for before, after in itertools.pairwise(checkpoints):
        assert after["prev_checkpoint"] == checkpoint_digest(before)


async def test_checkpoints_are_handed_to_on_written_after_their_records(tmp_path: Path) -> None:
    seen: list[str] = []

    def listener(batch: Sequence[dict[str, Any]]) -> None:
        seen.extend(r.get("type", "decision") + ":" + str(r.get("seq", r.get("log", {}).get("seq"))) for r in batch)

    await write_log(tmp_path / "decisions.jsonl", 3, on_written=listener)
    assert seen == ["decision:1", "decision:2", "decision:3", "checkpoint:3"]


async def test_the_head_file_is_named_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = await write_log(path, 20, max_bytes=1500)
    [checkpoint] = _checkpoints(path)
    newest = log_files(path)[-1] if path.stat().st_size else log_files(path)[-2]
    assert log.rotations >= 2
    assert checkpoint["log"]["file"] == newest.name
    assert checkpoint["log"]["seq"] == json.loads(lines(newest)[-1])["seq"] == 20


async def test_a_checkpoint_that_cannot_be_written_is_counted_and_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False, checkpoint_interval_s=0.05)
    await log.open()
    real = CheckpointFile.append

    def disk_full(self: CheckpointFile, seq: int, head_hash: str, file: str) -> dict[str, Any]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CheckpointFile, "append", disk_full)
    await log.append(decision(1))
    await _until(lambda: log.checkpoint_failures >= 1)
    await log.append(decision(2))
    assert log.written == 2 and log.failures == 0
    assert "No space left" in caplog.text
    monkeypatch.setattr(CheckpointFile, "append", real)
    await _until(lambda: log.checkpoints == 1)
    await log.close()
    assert [c["log"]["seq"] for c in _checkpoints(path)] == [2]
    assert log.chain_state()["checkpoint_failures"] == log.checkpoint_failures >= 1


async def test_a_key_other_than_the_checkpoints_one_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 2)
    old = key_id(load_or_create(tmp_path / "decisions.jsonl-signing.key").public_key())
    (tmp_path / "decisions.jsonl-signing.key").unlink()
    with pytest.raises(AuditError) as refused:
        await JsonlAuditLog(str(path)).open()
    new = key_id(load_or_create(tmp_path / "decisions.jsonl-signing.key").public_key())
    message = refused.value.message
    assert old in message and new in message
    assert "restore that key, or move" in message and str(tmp_path / "decisions.jsonl-checkpoints") in message
    (tmp_path / "decisions.jsonl-checkpoints").rename(tmp_path / "old-checkpoints")
    await write_log(path, 1, start=3)
    assert [c["checkpoint_seq"] for c in _checkpoints(path)] == [1]


async def test_a_torn_checkpoint_is_cut_and_the_chain_of_checkpoints_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 2)
    cp_path = tmp_path / "decisions.jsonl-checkpoints"
    with cp_path.open("ab") as fh:
        fh.write(b'{"type": "checkpoint", "checkpoint_se')
    await write_log(path, 2, start=3)
    checkpoints = _checkpoints(path)
    assert [c["checkpoint_seq"] for c in checkpoints] == [1, 2]
    assert checkpoints[1]["prev_checkpoint"] == checkpoint_digest(checkpoints[0])
    assert (tmp_path / "decisions.jsonl-checkpoints-torn").read_bytes() == b'{"type": "checkpoint", "checkpoint_se\n'


async def test_a_checkpoint_file_whose_last_line_is_no_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 2)
    with (tmp_path / "decisions.jsonl-checkpoints").open("a") as fh:
        fh.write('{"type": "decision"}\n')
    with pytest.raises(AuditError, match="its last line is not a checkpoint"):
        await JsonlAuditLog(str(path)).open()


def test_the_checkpoint_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint_interval_s must be positive"):
        JsonlAuditLog(str(tmp_path / "d.jsonl"), checkpoint_interval_s=0)
