"""The files of a decision log (sidecar.audit.files): names outside the rotation glob, modes, reading back."""

from __future__ import annotations

import json
import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import sidecar.audit.files as files
from sidecar.audit.files import (
    active_path,
    checkpoints_path,
    default_key_path,
    line_number,
    lines_from_end,
    log_files,
    open_fd,
)
from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.writer_lock import WriterLock


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000, 0o077], ids=["umask-022", "umask-000", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(old)


async def test_every_file_of_a_log_is_created_0640_and_the_key_0600(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False, max_bytes=600)
    await log.open()
    for n in range(12):
        await log.append({"n": n, "pad": "x" * 100})
    await log.close()
    with path.open("ab") as fh:
        fh.write(b'{"torn')
    log = JsonlAuditLog(str(path), flush_window_ms=0, fsync=False, max_bytes=600)
    await log.open()
    await log.append({"n": 12})
    await log.close()

    made = {p.name: _mode(p) for p in tmp_path.iterdir()}
    expected_file = 0o640 & ~umask
    assert made.pop("decisions.jsonl-signing.key") == 0o600
    assert {"decisions.jsonl", "decisions.jsonl-checkpoints", "decisions.jsonl-writer.lock",
            "decisions.jsonl-torn", "decisions.jsonl.000001"} <= set(made)
    assert made == dict.fromkeys(made, expected_file), made
    assert expected_file in (0o640, 0o600)


def test_an_existing_file_readable_by_everyone_is_tightened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_text("")
    path.chmod(0o644)
    os.close(open_fd(path, os.O_WRONLY | os.O_APPEND))
    assert _mode(path) == 0o640
    assert "readable by every local user" in caplog.text


def test_side_files_stay_outside_the_rotation_glob(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    side = [checkpoints_path(path), default_key_path(path), WriterLock(path).path, path.with_name(path.name + "-torn")]
    for p in [path, path.with_name("decisions.jsonl.000001"), *side]:
        p.write_text("")
    assert sorted(tmp_path.glob("decisions.jsonl.*")) == [tmp_path / "decisions.jsonl.000001"]
    assert log_files(path) == [tmp_path / "decisions.jsonl.000001", path]


@pytest.mark.parametrize(("given", "active"), [
    ("d/decisions.jsonl", "d/decisions.jsonl"),
    ("d/decisions.jsonl.000003", "d/decisions.jsonl"),
    ("d/decisions.jsonl.1234567", "d/decisions.jsonl"),
    ("decisions-a.jsonl", "decisions-a.jsonl"),
])
def test_active_path_of_a_rotated_file(given: str, active: str) -> None:
    assert active_path(given) == Path(active)


def test_lines_from_end_matches_a_forward_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_BLOCK", 7)  # NOTE: lines longer than a block, and blocks mid-line.
    rng = random.Random(7)
    for _ in range(200):
        lines = ["x" * rng.randint(0, 20) for _ in range(rng.randint(0, 25))]
        data = "".join(line + "\n" for line in lines).encode()
        path = tmp_path / "f"
        path.write_bytes(data)
        forward, offset = [], 0
        for line in lines:
            if line.strip():
                forward.append((offset, (line + "\n").encode()))
            offset += len(line) + 1
        got = list(lines_from_end(path))
        assert got == forward[::-1]
        for start, _ in got:
            assert line_number(path, start) == data[:start].count(b"\n") + 1


def test_last_record_needs_seq_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"seq": 1, "hash": "a"}) + "\n" + json.dumps({"seq": 2, "hash": "b"}) + "\n")
    assert files.last_record(path) == {"seq": 2, "hash": "b"}
    path.write_text(json.dumps({"seq": 1, "hash": "a"}) + "\n[1]\n")
    with pytest.raises(ValueError, match="not a decision record"):
        files.last_record(path)
    assert files.last_record(tmp_path / "missing") is None
