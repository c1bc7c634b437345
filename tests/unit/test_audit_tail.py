"""The open-time check of a log's tail (sidecar.audit.tail) and the chain state it leaves for /health."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.log import JsonlAuditLog, log_files, rotated_files
from sidecar.audit.tail import check_tail
from tests.unit.audit_logs import decision, lines, rehash, rewrite_from, write_log


async def _state(path: Path) -> dict[str, Any]:
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    await log.open()
    state = log.chain_state()
    await log.close()
    return state


async def _crashed_after(path: Path, checkpointed: int, more: int, **kwargs: Any) -> None:
    """A log with a checkpoint at ``checkpointed`` and ``more`` records after it (a crash: no close)."""
    await write_log(path, checkpointed, **kwargs)
    cp = path.with_name(path.name + "-checkpoints")
    saved = cp.read_bytes()
    await write_log(path, more, start=checkpointed + 1, **kwargs)
    cp.write_bytes(saved)


async def test_an_intact_tail_since_the_last_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _crashed_after(path, 5, 3)
    state = await _state(path)
    last = json.loads(lines(path)[-1])
    assert state["broken_at"] is None
    assert state["tail_checked"] == "the records since checkpoint 1 (seq 5)"
    assert (state["verified_from"], state["verified_through"]) == (5, 8)
    assert (state["last_seq"], state["last_hash"]) == (8, last["hash"])
    assert state["last_checkpoint"]["checkpoint_seq"] == 1 and state["last_checkpoint"]["seq"] == 5
    assert state["checkpoints"] is True and state["checkpoint_failures"] == 0


async def test_a_clean_close_leaves_nothing_after_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 4)
    state = await _state(path)
    assert (state["verified_from"], state["verified_through"], state["broken_at"]) == (4, 4, None)


def _edit(path: Path, index: int) -> None:
    out = lines(path)
    record = json.loads(out[index])
    record["statelock"]["outcome"] = "deny"
    out[index] = json.dumps(record) + "\n"
    path.write_text("".join(out))


def _where(path: Path, seq: int) -> tuple[Path, int]:
    """The file of the log at ``path`` holding record ``seq``, and its 0-based line there."""
    for file in log_files(path):
        for index, line in enumerate(lines(file)):
            if json.loads(line)["seq"] == seq:
                return file, index
    raise AssertionError(f"no record {seq}")


def _cut(path: Path, count: int) -> None:
    path.write_text("".join(lines(path)[:-count]))


def _reorder(path: Path, index: int) -> None:
    out = lines(path)
    out[index], out[index + 1] = out[index + 1], out[index]
    path.write_text("".join(out))


def _rewrite_checkpointed(path: Path, index: int) -> None:
    rewrite_from(path, index, {"requested_by": "10.6.6.6"})


def _insert_rehashed(path: Path, index: int) -> None:
    out = lines(path)
    forged = json.loads(out[index])
    forged["decision_id"] = "forged"
    out.insert(index + 1, rehash(json.dumps(forged)))
    path.write_text("".join(out))


@pytest.mark.parametrize(("tamper", "arg", "seq", "line", "reason"), [
    (_edit, 6, 7, 7, "hash mismatch"),
    (_reorder, 5, 7, 6, "seq 7 after seq 5"),
    (_insert_rehashed, 6, 7, 8, "repeats the previous record's"),
    (_cut, 3, 6, 5, "truncated: the log ends at seq 5, before checkpoint 1's seq 8: 3 records missing"),
    (_rewrite_checkpointed, 7, 8, 8, "does not have the hash checkpoint 1 signed: the log was rewritten"),
], ids=["edit", "reorder", "insert", "truncate", "rewrite-from-the-checkpoint"])
async def test_a_broken_tail_is_reported_and_writing_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tamper: Any, arg: int, seq: int, line: int, reason: str,
) -> None:
    path = tmp_path / "decisions.jsonl"
    await _crashed_after(path, 4, 4) if tamper is not _cut and tamper is not _rewrite_checkpointed else \
        await write_log(path, 8)
    tamper(path, arg)
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    await log.open()
    broken = log.chain_state()["broken_at"]
    assert broken is not None
    assert (broken["seq"], broken["file"], broken["line"]) == (seq, str(path), line)
    assert reason in broken["reason"]
    assert "the chain is broken" in caplog.text
    head = log.chain_state()["last_seq"]
    await log.append(decision(99))
    await log.close()
    assert json.loads(lines(path)[-1])["seq"] == head + 1


async def test_a_forged_last_checkpoint_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 3)
    cp = path.with_name(path.name + "-checkpoints")
    checkpoint = json.loads(cp.read_text())
    checkpoint["log"]["seq"] = 2
    cp.write_text(json.dumps(checkpoint) + "\n")
    broken = (await _state(path))["broken_at"]
    assert broken is not None and "signature does not verify" in broken["reason"]
    assert broken["file"] == str(cp)


async def test_without_a_checkpoint_a_bounded_tail_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 30)
    shutil.move(path.with_name(path.name + "-checkpoints"), tmp_path / "aside")
    state = await _state(path)
    assert state["tail_checked"] == "the last 30 records (no checkpoint yet)"
    assert (state["verified_from"], state["verified_through"], state["broken_at"]) == (1, 30, None)
    tail = check_tail(log_files(path), None, bound=10)
    assert (tail.how, tail.verified_from, tail.verified_through) == ("the last 10 records (no checkpoint yet)", 21, 30)
    _edit(path, 25)
    assert check_tail(log_files(path), None, bound=10).broken_at == {
        "seq": 26, "file": str(path), "line": 26,
        "reason": "hash mismatch: the record was changed after it was written"}
    assert check_tail(log_files(path), None, bound=3).broken_at is None, "the bound is the bound"


async def test_the_tail_check_reads_back_across_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _crashed_after(path, 5, 30, max_bytes=1500)
    cp = path.with_name(path.name + "-checkpoints")
    crashed = cp.read_bytes()
    assert len(rotated_files(path)) >= 3
    state = await _state(path)
    assert state["broken_at"] is None
    assert (state["verified_from"], state["verified_through"]) == (5, 35)
    cp.write_bytes(crashed)  # NOTE: that close checkpointed seq 35; back to the crash.
    _edit(*_where(path, 3))
    assert (await _state(path))["broken_at"] is None, "records before the checkpoint are not read at open"
    cp.write_bytes(crashed)
    holder, index = _where(path, 5)
    _edit(holder, index)
    broken = (await _state(path))["broken_at"]
    assert broken is not None and (broken["seq"], broken["file"], broken["line"]) == (5, str(holder), index + 1)
    assert "hash mismatch" in broken["reason"]


async def test_an_empty_log_checks_out(tmp_path: Path) -> None:
    state = await _state(tmp_path / "decisions.jsonl")
    assert state["tail_checked"] == "empty log"
    assert (state["last_seq"], state["verified_from"], state["broken_at"], state["last_checkpoint"]) == (
        0, None, None, None)
