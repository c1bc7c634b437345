"""``statelock audit verify`` with checkpoints (sidecar.audit.checkpoint_verify): what it must catch."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.checkpoint import make_checkpoint, read_checkpoints, signed_bytes
from sidecar.audit.checkpoint_verify import covered_seqs, verify_checkpoints
from sidecar.audit.log import log_files, rotated_files
from sidecar.audit.signing import load_or_create, public_pem, sign
from sidecar.audit.verify import verify_files
from sidecar.cli.audit import add_audit_commands, run_audit_command
from tests.unit.audit_logs import lines, rewrite_from, write_log
from tests.unit.test_audit_verify import (
    _blank,
    _delete,
    _duplicate,
    _edit,
    _edit_and_rehash,
    _insert_forged,
    _insert_plain,
    _reorder,
    _truncate,
)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="statelock")
    add_audit_commands(parser.add_subparsers(dest="command"))
    return run_audit_command(parser.parse_args(argv))


def _verify(path: Path, *extra: str) -> int:
    return _run(["audit", "verify", *extra, *map(str, log_files(path))])


def _cp(path: Path) -> Path:
    return path.with_name(path.name + "-checkpoints")


def _cp_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(_cp(path))]


def _write_cp(path: Path, checkpoints: list[dict[str, Any]]) -> None:
    _cp(path).write_text("".join(json.dumps(c) + "\n" for c in checkpoints))


async def _log_with_checkpoints(path: Path, runs: int = 3, per_run: int = 10, **kwargs: Any) -> None:
    for run in range(runs):
        await write_log(path, per_run, start=run * per_run + 1, **kwargs)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "decisions.jsonl"


async def test_an_intact_log_and_its_checkpoints_verify(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _log_with_checkpoints(path)
    assert _verify(path) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok: 30 records in 1 file, chain intact")
    assert out[1].startswith(f"ok: 3 checkpoints in {_cp(path)}, signatures valid (key ed25519:")
    assert "covering seq 30; 0 records after it not covered yet" in out[2]


async def test_ten_records_cut_off_the_end_are_reported_as_truncated(
    path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    await _log_with_checkpoints(path)
    path.write_text("".join(lines(path)[:-10]))
    assert verify_files([path]).ok, "the chain alone can't see it"
    assert _verify(path) == 1
    out = capsys.readouterr().out
    assert f"FAILED: {_cp(path)} line 3 (checkpoint 3): truncated: the log ends at seq 20, but this " in out
    assert "covers seq 30: 10 records missing from its end" in out


async def test_a_truncation_stays_visible_after_a_restart(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _log_with_checkpoints(path)
    path.write_text("".join(lines(path)[:-10]))
    await write_log(path, 4, start=21)
    assert verify_files([path]).ok
    assert _verify(path) == 1
    out = capsys.readouterr().out
    assert "truncated: the log ends at seq 24" in out and "6 records missing" in out
    assert "covers seq 24, before the previous checkpoint's seq 30: the log went backwards" in out


async def test_records_after_the_last_checkpoint_are_not_covered_yet(
    path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    await _log_with_checkpoints(path, runs=1)
    saved = _cp(path).read_bytes()
    await write_log(path, 5, start=11)
    _cp(path).write_bytes(saved)  # NOTE: as after a crash: no checkpoint of the last 5 yet.
    path.write_text("".join(lines(path)[:-3]))
    assert _verify(path) == 0
    assert "covering seq 10; 2 records after it not covered yet" in capsys.readouterr().out


def _forge_seq(cps: list[dict[str, Any]]) -> None:
    cps[1]["log"]["seq"] -= 1


def _forge_signature(cps: list[dict[str, Any]]) -> None:
    cps[1]["signature"] = sign(Ed25519PrivateKey.generate(), signed_bytes(cps[1]))


def _other_key(cps: list[dict[str, Any]]) -> None:
    other = Ed25519PrivateKey.generate()
    prev = cps[0]
    head = cps[1]["log"]
    cps[1] = make_checkpoint(other, prev, seq=head["seq"], head_hash=head["hash"], file=head["file"])


def _drop_middle(cps: list[dict[str, Any]]) -> None:
    del cps[1]


def _swap(cps: list[dict[str, Any]]) -> None:
    cps[1], cps[2] = cps[2], cps[1]


def _drop_first(cps: list[dict[str, Any]]) -> None:
    del cps[0]


@pytest.mark.parametrize(("forge", "line", "reason"), [
    (_forge_seq, 2, "signature does not verify: the checkpoint was forged or altered"),
    (_forge_signature, 2, "signature does not verify: the checkpoint was forged or altered"),
    (_other_key, 2, "signed with another key (ed25519:"),
    (_drop_middle, 2, "checkpoint 3 after checkpoint 1: checkpoints are missing"),
    (_swap, 2, "checkpoint 3 after checkpoint 1"),
    (_drop_first, 1, "the checkpoint chain starts at checkpoint 2, not 1"),
], ids=["forged-seq", "forged-signature", "other-key", "dropped", "swapped", "first-dropped"])
async def test_a_forged_or_moved_checkpoint_is_detected(
    path: Path, capsys: pytest.CaptureFixture[str], forge: Callable[[list[dict[str, Any]]], None], line: int,
    reason: str,
) -> None:
    await _log_with_checkpoints(path)
    checkpoints = _cp_lines(path)
    forge(checkpoints)
    _write_cp(path, checkpoints)
    assert _verify(path) == 1
    out = capsys.readouterr().out
    assert f"FAILED: {_cp(path)} line {line}" in out
    assert reason in out


async def test_a_torn_or_foreign_checkpoint_line_is_reported(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _log_with_checkpoints(path)
    with _cp(path).open("a") as fh:
        fh.write('{"type": "decision"}\n{"type": "checkp')
    assert _verify(path) == 1
    out = capsys.readouterr().out
    assert f"{_cp(path)} line 4: not a checkpoint" in out
    assert f"{_cp(path)} line 5: truncated final line" in out


async def test_a_rewritten_log_is_caught_by_the_checkpoints(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _log_with_checkpoints(path)
    rewrite_from(path, 14, {"requested_by": "10.6.6.6"})
    assert verify_files([path]).ok, "re-chained from record 15 on: the chain alone can't see it"
    assert _verify(path) == 1
    out = capsys.readouterr().out
    assert f"{_cp(path)} line 2 (checkpoint 2): says record 20 has hash" in out
    assert "the log was rewritten at or before record 20" in out


TAMPERS = [_edit, _edit_and_rehash, _delete, _insert_forged, _insert_plain, _duplicate, _reorder, _truncate, _blank]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.__name__.strip("_") for t in TAMPERS])
async def test_every_tamper_the_chain_catches_is_still_caught(
    path: Path, capsys: pytest.CaptureFixture[str], tamper: Callable[[list[str]], list[str]],
) -> None:
    await _log_with_checkpoints(path, runs=2, per_run=3)
    path.write_text("".join(tamper(lines(path))))
    assert _verify(path) == 1
    assert f"FAILED: {path} line " in capsys.readouterr().out


async def test_verify_offline_with_the_public_key_only(path: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    await _log_with_checkpoints(path, max_bytes=3000)
    assert len(rotated_files(path)) >= 2
    public = tmp_path / "statelock-audit.pub"
    public.write_text(public_pem(load_or_create(tmp_path / "decisions.jsonl-signing.key").public_key()))
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in [*log_files(path), _cp(path)]:
        shutil.copy(f, copy / f.name)
    copied = copy / path.name
    capsys.readouterr()

    assert _verify(copied) == 2
    assert "give --public-key FILE" in capsys.readouterr().err
    assert _verify(copied, "--public-key", str(public)) == 0
    assert "signatures valid" in capsys.readouterr().out
    assert _run(["audit", "verify", "--public-key", str(public), "--checkpoints", str(_cp(copied)),
                 *map(str, log_files(copied))]) == 0
    capsys.readouterr()
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(public_pem(Ed25519PrivateKey.generate().public_key()))
    assert _verify(copied, "--public-key", str(stranger)) == 1
    assert "signed with another key" in capsys.readouterr().out


async def test_checkpoint_options(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await _log_with_checkpoints(path)
    path.write_text("".join(lines(path)[:-10]))
    assert _verify(path, "--no-checkpoints") == 0
    capsys.readouterr()
    assert _verify(path, "--checkpoints", str(tmp_path / "missing")) == 2
    assert "cannot read the checkpoints" in capsys.readouterr().err
    assert _verify(path, "--signing-key", str(tmp_path / "decisions.jsonl-signing.key")) == 1
    capsys.readouterr()
    _cp(path).unlink()
    assert _verify(path) == 0
    assert "note: no checkpoints" in capsys.readouterr().out


async def test_partial_verification_leaves_older_checkpoints_unchecked(
    path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    await _log_with_checkpoints(path, max_bytes=3000)
    files = log_files(path)
    later = [f for f in files if json.loads(lines(f)[0])["seq"] > 10]
    assert 0 < len(later) < len(files)
    assert _run(["audit", "verify", "--partial", *map(str, later)]) == 0
    assert "1 checkpoint could not be compared with the records" in capsys.readouterr().out


async def test_verify_checkpoints_reports_each_problem(path: Path) -> None:
    await _log_with_checkpoints(path)
    checkpoints = read_checkpoints(_cp(path))
    key = load_or_create(path.with_name(path.name + "-signing.key"))
    records = verify_files([path], want=covered_seqs(checkpoints))
    assert records.hashes.keys() == {10, 20, 30}
    report = verify_checkpoints(checkpoints, key.public_key(), records)
    assert report.ok and report.checkpoints == 3 and report.missing == 0 and report.uncovered == 0
    assert report.last is not None and report.last["checkpoint_seq"] == 3
