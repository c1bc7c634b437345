"""One writer per chain: the writer lock of sidecar.audit.writer_lock, as JsonlAuditLog takes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.audit.log import JsonlAuditLog, log_files, rotated_files
from sidecar.audit.verify import verify_files
from sidecar.audit.writer_lock import WriterLock
from sidecar.errors import AuditError
from tests.support.paths import ROOT
from tests.unit.audit_logs import decision, write_log


async def test_a_second_log_on_the_same_path_refuses_naming_the_path_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    first = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    await first.open()
    await first.append(decision(1))
    second = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    with pytest.raises(AuditError) as refused:
        await second.open()
    message = refused.value.message
    assert str(path) in message
    assert "its own audit.path" in message and "replica or worker" in message
    assert str(tmp_path / "decisions.jsonl-writer.lock") in message
    with pytest.raises(AuditError, match="not open"):
        await second.append(decision(99))
    await first.append(decision(2))
    await first.close()
    result = verify_files([path])
    assert result.ok and result.records == 2


async def test_the_lock_is_free_again_once_the_first_log_closes(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await write_log(path, 2)
    await write_log(path, 2, start=3)
    assert verify_files([path]).records == 4


async def test_the_lock_survives_rotation(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    first = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False, max_bytes=2000)
    await first.open()
    for i in range(1, 30):
        await first.append(decision(i))
    assert first.rotations >= 3
    with pytest.raises(AuditError, match="already being written"):
        await JsonlAuditLog(str(path)).open()
    await first.close()
    assert len(rotated_files(path)) == first.rotations
    assert verify_files(log_files(path)).ok


async def test_logs_on_different_paths_in_one_directory_do_not_conflict(tmp_path: Path) -> None:
    a = JsonlAuditLog(str(tmp_path / "decisions-a.jsonl"), flush_window_ms=0, fsync=False)
    b = JsonlAuditLog(str(tmp_path / "decisions-b.jsonl"), flush_window_ms=0, fsync=False)
    await a.open()
    await b.open()
    await a.append(decision(1))
    await b.append(decision(1))
    await a.close()
    await b.close()
    assert verify_files([tmp_path / "decisions-a.jsonl"]).ok and verify_files([tmp_path / "decisions-b.jsonl"]).ok


def test_a_lock_held_by_another_process_names_its_pid(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from sidecar.audit.writer_lock import WriterLock; "
         f"WriterLock({str(path)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
        cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(AuditError, match=f"pid {holder.pid};"):
            WriterLock(path).acquire()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    lock = WriterLock(path)
    lock.acquire()
    assert lock.held
    lock.release()
    assert not lock.held


async def test_a_failed_open_lets_go_of_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    key = tmp_path / "signing.key"
    await write_log(path, 1, signing_key=key)
    key.chmod(0o644)
    with pytest.raises(AuditError, match="chmod 600"):
        await JsonlAuditLog(str(path), signing_key=key).open()
    key.chmod(0o600)
    await write_log(path, 1, start=2, signing_key=key)
    assert verify_files([path]).records == 2


async def test_a_path_that_is_not_a_file_takes_no_lock_and_leaves_no_side_files() -> None:
    if not Path("/dev/null").exists():
        pytest.skip("needs /dev/null")
    first = JsonlAuditLog("/dev/null", flush_window_ms=0, fsync=False)
    second = JsonlAuditLog("/dev/null", flush_window_ms=0, fsync=False)
    await first.open()
    await second.open()
    await first.append(decision(1))
    state = first.chain_state()
    await first.close()
    await second.close()
    assert state["checkpoints"] is False and state["last_seq"] == 1
    assert not [p for p in Path("/dev").iterdir() if p.name.startswith("null-")]
