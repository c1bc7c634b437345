"""Tamper evidence: the hash chain written by JsonlAuditLog and checked by verify_files."""

from __future__ import annotations

import argparse
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.audit.log import JsonlAuditLog, log_files, rotated_files
from sidecar.audit.record import GENESIS
from sidecar.audit.verify import verify_files
from sidecar.cli.audit import add_audit_commands, run_audit_command
from sidecar.errors import AuditError
from tests.unit.audit_logs import decision as _record
from tests.unit.audit_logs import lines as _lines
from tests.unit.audit_logs import rehash as _rehash
from tests.unit.audit_logs import write_log as _write_log


def _edit(lines: list[str]) -> list[str]:
    record = json.loads(lines[2])
    record["statelock"]["outcome"] = "deny"
    return [*lines[:2], json.dumps(record) + "\n", *lines[3:]]


def _edit_and_rehash(lines: list[str]) -> list[str]:
    record = json.loads(lines[2])
    record["input"]["subject"]["user_id"] = "mallory"
    return [*lines[:2], _rehash(json.dumps(record)), *lines[3:]]


def _delete(lines: list[str]) -> list[str]:
    return [*lines[:2], *lines[3:]]


def _delete_last(lines: list[str]) -> list[str]:
    return lines[:-1]


def _insert_forged(lines: list[str]) -> list[str]:
    forged = json.loads(lines[1])
    forged["decision_id"] = "forged"
    forged["prev_hash"] = json.loads(lines[1])["hash"]
    forged["seq"] = 3
    return [*lines[:2], _rehash(json.dumps(forged)), *lines[2:]]


def _insert_plain(lines: list[str]) -> list[str]:
    return [*lines[:2], json.dumps({"decision_id": "forged", "statelock": {"outcome": "allow"}}) + "\n",
            *lines[2:]]


def _duplicate(lines: list[str]) -> list[str]:
    return [*lines[:3], lines[2], *lines[3:]]


def _reorder(lines: list[str]) -> list[str]:
    return [*lines[:2], lines[3], lines[2], *lines[4:]]


def _truncate(lines: list[str]) -> list[str]:
    return [*lines[:-1], lines[-1][: len(lines[-1]) // 2]]


def _blank(lines: list[str]) -> list[str]:
    return [*lines[:2], "\n", *lines[2:]]


@pytest.mark.parametrize(("tamper", "line", "seq", "reason"), [
    (_edit, 3, 3, "hash mismatch"),
    (_edit_and_rehash, 4, 4, "prev_hash is not the previous record's hash"),
    (_delete, 3, 4, "seq 4 after seq 2"),
    (_insert_forged, 4, 3, "repeats the previous record's: a duplicated record"),
    (_insert_plain, 3, None, "missing or malformed seq"),
    (_duplicate, 4, 3, "a duplicated record"),
    (_reorder, 3, 4, "seq 4 after seq 2"),
    (_truncate, 6, None, "truncated final line"),
    (_blank, 3, None, "empty line"),
], ids=["edit", "edit-and-rehash", "delete", "insert-forged", "insert-plain", "duplicate", "reorder",
        "truncated", "blank-line"])
async def test_tampering_is_detected_at_the_first_bad_record(
    tmp_path: Path, tamper: Callable[[list[str]], list[str]], line: int, seq: int | None, reason: str,
) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 6)
    assert verify_files([path]).ok
    path.write_text("".join(tamper(_lines(path))))

    result = verify_files([path])

    assert not result.ok
    assert result.first_bad is not None
    assert result.first_bad.file == str(path)
    assert (result.first_bad.line, result.first_bad.seq) == (line, seq)
    assert reason in result.first_bad.reason
    assert result.records == line - 1


async def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 25)
    result = verify_files([path])
    assert result.ok
    assert result.first_bad is None
    assert result.records == 25
    assert result.last_seq == 25
    assert result.last_hash == json.loads(_lines(path)[-1])["hash"]


async def test_an_empty_log_verifies(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_text("")
    result = verify_files([path])
    assert result.ok and result.records == 0 and result.last_hash == GENESIS


async def test_a_log_that_does_not_start_at_genesis_needs_partial(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 6)
    path.write_text("".join(_lines(path)[2:]))

    strict = verify_files([path])
    assert not strict.ok and strict.first_bad is not None
    assert strict.first_bad.line == 1 and "starts at seq 3" in strict.first_bad.reason

    partial = verify_files([path], from_genesis=False)
    assert partial.ok and partial.records == 4


async def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    result = verify_files([tmp_path / "nope.jsonl"])
    assert not result.ok and result.first_bad is not None
    assert result.first_bad.line == 0 and "cannot read" in result.first_bad.reason


async def test_the_chain_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 3)
    await _write_log(path, 4, start=4)
    result = verify_files([path])
    assert result.ok and result.records == 7


# -- rotation --------------------------------------------------------------------------------


async def test_rotation_keeps_the_chain_across_files(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = await _write_log(path, 40, max_bytes=4000)

    files = log_files(path)
    rotated = rotated_files(path)
    assert len(rotated) >= 3
    assert log.rotations == len(rotated)
    assert [p.name for p in rotated] == [f"decisions.jsonl.{n:06d}" for n in range(1, len(rotated) + 1)]
    assert files == [*sorted(tmp_path.glob("decisions.jsonl.*")), path]
    prev_hash, seq = GENESIS, 0
    for f in files:
        for line in _lines(f):
            record = json.loads(line)
            assert (record["prev_hash"], record["seq"]) == (prev_hash, seq + 1)
            prev_hash, seq = record["hash"], record["seq"]
    assert seq == 40
    for f in rotated:
        assert f.stat().st_size >= 4000

    result = verify_files(files)
    assert result.ok and result.records == 40 and result.files == len(files)


async def test_a_missing_middle_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 40, max_bytes=4000)
    files = log_files(path)
    missing = files[1]
    first_after = json.loads(_lines(files[2])[0])["seq"]

    result = verify_files([files[0], *files[2:]])

    assert not result.ok and result.first_bad is not None
    assert result.first_bad.file == str(files[2])
    assert (result.first_bad.line, result.first_bad.seq) == (1, first_after)
    assert "missing" in result.first_bad.reason and "first record of this file" in result.first_bad.reason
    assert result.records == len(_lines(files[0]))
    assert missing.exists()


async def test_files_out_of_order_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 40, max_bytes=4000)
    files = log_files(path)
    result = verify_files([files[1], files[0], *files[2:]])
    assert not result.ok and result.first_bad is not None
    assert result.first_bad.file == str(files[1]) and result.first_bad.line == 1


async def test_reopening_after_rotation_continues_from_the_last_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 40, max_bytes=4000)
    path.unlink()  # NOTE: as after a crash between the rename and the new file.
    before = len(rotated_files(path))
    last = json.loads(_lines(rotated_files(path)[-1])[-1])

    await _write_log(path, 5, max_bytes=4000, start=41)

    first_new = json.loads(_lines(log_files(path)[before])[0])
    assert (first_new["seq"], first_new["prev_hash"]) == (last["seq"] + 1, last["hash"])
    assert verify_files(log_files(path)).ok


# -- failed writes and torn tails leave a verifiable chain ----------------------------------


async def test_a_failed_write_leaves_no_partial_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=True)
    await log.open()
    await log.append(_record(1))
    real_fsync = os.fdatasync

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", disk_full)
    with pytest.raises(AuditError, match="No space left"):
        await log.append(_record(2))
    monkeypatch.setattr(os, "fdatasync", real_fsync)
    await log.append(_record(3))
    await log.close()

    assert log.failures == 1 and log.written == 2
    assert [json.loads(line)["seq"] for line in _lines(path)] == [1, 2]
    assert verify_files([path]).ok


async def test_opening_cuts_a_torn_final_line_and_keeps_it_aside(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 3)
    whole = path.read_bytes()
    with path.open("ab") as fh:
        fh.write(b'{"decision_id": "half-writ')
    assert not verify_files([path]).ok

    await _write_log(path, 2, start=4)

    assert path.read_bytes().startswith(whole)
    assert (tmp_path / "decisions.jsonl-torn").read_bytes() == b'{"decision_id": "half-writ\n'
    result = verify_files([path])
    assert result.ok and result.records == 5


async def test_a_record_that_cannot_be_encoded_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False)
    await log.open()
    bad = _record(2)
    bad["input"]["params"] = {object()}
    await log.append(_record(1))
    with pytest.raises(AuditError, match="can't be encoded"):
        await log.append(bad)
    await log.append(_record(3))
    await log.close()
    assert verify_files([path]).records == 2 and verify_files([path]).ok


# -- the command ------------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="statelock")
    add_audit_commands(parser.add_subparsers(dest="command"))
    return run_audit_command(parser.parse_args(argv))


async def test_verify_command_reports_ok_with_the_record_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 40, max_bytes=4000)
    assert _run(["audit", "verify", *map(str, log_files(path))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 40 records in ")


async def test_verify_command_names_the_first_bad_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "decisions.jsonl"
    await _write_log(path, 6)
    path.write_text("".join(_duplicate(_lines(path))))
    assert _run(["audit", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"FAILED: {path} line 4 (seq 3): seq 3 repeats" in out
    assert "3 records before it verified" in out


def test_audit_without_a_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["audit"]) == 2
    assert "verify" in capsys.readouterr().err
