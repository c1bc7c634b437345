"""Querying the decision log: exactly the matching decision records, with their upstream status."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sidecar.audit.query import (
    QueryFilters,
    filters_from_mapping,
    find_decision,
    parse_time,
    query_records,
    record_lock_ids,
)
from sidecar.audit.record import make_completion, make_record
from sidecar.cli.audit import add_audit_commands, run_audit_command
from tests.support.paths import ROOT


def _decision(decision_id: str, at: str, user: str, outcome: str, action: str, instance: str | None,
              locks: tuple[str, ...] = (), lock_ids: tuple[str, ...] = (), status: int = 0,
              enforced: bool = True) -> dict[str, Any]:
    input_doc: dict[str, Any] = {
        "subject": {"user_id": user, "project_id": "demo", "roles": ["member"]},
        "action": {"name": action, "kind": "state_change", "params": {}},
        "locks": [{"id": lk, "kind": "boot", "reason": f"reason {lk}"} for lk in locks],
    }
    if instance is not None:
        input_doc["target"] = {"instance_id": instance, "project_id": "demo", "host": None}
    result = None if outcome == "error" else {
        "allow": outcome == "allow", "status": 200 if outcome == "allow" else 409,
        "reasons": [] if outcome == "allow" else [f"instance is locked: {', '.join(lock_ids)}"],
        "lock_ids": list(lock_ids)}
    record = make_record(
        decision_id=decision_id, req_id=1, input_doc=input_doc, result=result, revision="r1",
        outcome=outcome, enforced=enforced, method="POST",
        path=f"/v2.1/servers/{instance or 'vm-9'}/action", status=status, requested_by="10.0.0.1",
        error_code="policy_error" if outcome == "error" else None,
        error_message="policy engine unavailable" if outcome == "error" else None)
    record["timestamp"] = at
    return record


def _completion(decision_id: str, at: str, status: int) -> dict[str, Any]:
    return {"type": "completion", "decision_id": decision_id, "timestamp": at,
            "statelock": {"upstream": {"status": status, "latency_ms": 12.5}, "error_code": None}}


# d3 is an error recorded before its target was known: its instance comes from the path.
LOG_1 = [
    _decision("d1", "2026-11-25T01:00:00.000000Z", "alice", "allow", "resume", "vm-1"),
    _completion("d1", "2026-11-25T01:00:00.050000Z", 202),
    _decision("d2", "2026-11-25T02:00:00.000000Z", "bob", "deny", "resume", "vm-2",
              locks=("lk-1",), lock_ids=("lk-1",), status=409),
    _decision("d3", "2026-11-25T03:00:00.000000Z", "alice", "error", "os-stop", None, status=503),
]
LOG_2 = [
    _decision("d4", "2026-11-25T04:00:00.000000Z", "carol", "allow", "unlock", "vm-3", locks=("lk-2",)),
    _decision("d5", "2026-11-25T05:00:00.000000Z", "bob", "deny", "delete", "vm-2",
              locks=("lk-1", "lk-3"), lock_ids=("lk-3",), status=409),
    _decision("d6", "2026-11-26T00:00:00.000000Z", "alice", "allow", "os-start", "vm-1"),
    _completion("d6", "2026-11-26T00:00:01.000000Z", 202),
    _completion("d4", "2026-11-26T00:00:02.000000Z", 500),
]


@pytest.fixture
def log_paths(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "decisions.jsonl.000001", tmp_path / "decisions.jsonl"]
    for path, records in zip(paths, (LOG_1, LOG_2), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return paths


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["decision_id"] for r in records]


@pytest.mark.parametrize(("params", "expected"), [
    ({}, ["d1", "d2", "d3", "d4", "d5", "d6"]),
    ({"instance": "vm-1"}, ["d1", "d6"]),
    ({"instance": "vm-9"}, ["d3"]),
    ({"instance": "vm-404"}, []),
    ({"subject": "bob"}, ["d2", "d5"]),
    ({"outcome": "allow"}, ["d1", "d4", "d6"]),
    ({"outcome": "deny"}, ["d2", "d5"]),
    ({"outcome": "error"}, ["d3"]),
    ({"action": "resume"}, ["d1", "d2"]),
    ({"lock": "lk-1"}, ["d2", "d5"]),
    ({"lock": "lk-2"}, ["d4"]),
    ({"lock": "lk-3"}, ["d5"]),
    ({"since": "2026-11-25T03:00:00Z"}, ["d3", "d4", "d5", "d6"]),
    ({"until": "2026-11-25T03:00:00Z"}, ["d1", "d2"]),
    ({"since": "2026-11-25T02:00:00Z", "until": "2026-11-25T04:00:00.000001Z"}, ["d2", "d3", "d4"]),
    ({"since": "2026-11-25T03:30:00+01:00"}, ["d3", "d4", "d5", "d6"]),
    ({"since": "2026-11-26"}, ["d6"]),
    ({"until": "2026-11-26"}, ["d1", "d2", "d3", "d4", "d5"]),
    ({"subject": "alice", "outcome": "allow"}, ["d1", "d6"]),
    ({"subject": "bob", "lock": "lk-3", "action": "delete", "instance": "vm-2"}, ["d5"]),
    ({"subject": "bob", "outcome": "allow"}, []),
    ({"limit": "2"}, ["d5", "d6"]),
    ({"outcome": "allow", "limit": "10"}, ["d1", "d4", "d6"]),
])
def test_query_returns_exactly_the_matching_decisions(
    log_paths: list[Path], params: dict[str, str], expected: list[str],
) -> None:
    assert _ids(query_records(log_paths, filters_from_mapping(params))) == expected


def test_completions_are_not_returned_but_attached_to_their_decision(log_paths: list[Path]) -> None:
    records = {r["decision_id"]: r for r in query_records(log_paths, QueryFilters())}
    assert all(r.get("type") != "completion" for r in records.values())
    assert records["d1"]["statelock"]["upstream"] == {"status": 202, "latency_ms": 12.5}
    assert records["d4"]["statelock"]["upstream"]["status"] == 500
    assert records["d6"]["statelock"]["upstream"]["status"] == 202
    assert "upstream" not in records["d2"]["statelock"]
    assert "upstream" not in records["d3"]["statelock"]


def test_a_completion_in_a_later_file_finds_its_decision(log_paths: list[Path]) -> None:
    (d4,) = query_records(log_paths, QueryFilters(subject="carol"))
    assert d4["statelock"]["upstream"]["status"] == 500


def test_unparseable_lines_are_skipped(log_paths: list[Path]) -> None:
    with log_paths[1].open("a") as fh:
        fh.write('{"decision_id": "torn\n[1, 2]\n\n')
    assert _ids(query_records(log_paths, QueryFilters())) == ["d1", "d2", "d3", "d4", "d5", "d6"]


@pytest.mark.parametrize(("params", "message"), [
    ({"outcome": "maybe"}, "outcome: 'maybe' is not one of allow, deny, error"),
    ({"since": "yesterday"}, "since: 'yesterday' is not an RFC 3339 timestamp"),
    ({"until": "2026-13-01T00:00:00Z"}, "until: '2026-13-01T00:00:00Z' is not a valid date"),
    ({"since": "2026-11-25T01:00:00"}, "since: .* is not an RFC 3339 timestamp"),
    ({"since": "2026-11-26", "until": "2026-11-25"}, "since: must be earlier than until"),
    ({"instance": " "}, "instance: empty value"),
    ({"limit": "-1"}, "limit: '-1' is not a positive number"),
    ({"limit": "0"}, "limit: must be a positive number"),
    ({"user": "alice"}, "unknown filter 'user'"),
])
def test_bad_filters_are_refused_with_a_clear_message(params: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        filters_from_mapping(params)


def test_parse_time_accepts_rfc3339_forms() -> None:
    assert parse_time("2026-11-25T01:02:03.123456789Z") == datetime(2026, 11, 25, 1, 2, 3, 123456, UTC)
    assert parse_time("2026-11-25t01:02:03z") == datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC)
    assert parse_time("2026-11-25") == datetime(2026, 11, 25, tzinfo=UTC)


# -- the command ------------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="statelock")
    add_audit_commands(parser.add_subparsers(dest="command"))
    return run_audit_command(parser.parse_args(argv))


def test_query_command_json_is_one_array_of_the_matches(
    log_paths: list[Path], capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(["audit", "query", *map(str, log_paths), "--subject", "bob", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert _ids(records) == ["d2", "d5"]
    assert records[0]["result"]["lock_ids"] == ["lk-1"]


def test_query_command_table_has_aligned_columns(
    log_paths: list[Path], capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(["audit", "query", *map(str, log_paths), "--instance", "vm-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    header = lines[0].split()
    assert header == ["time", "decision_id", "outcome", "subject", "action", "instance", "status", "reasons"]
    starts = [lines[0].index(name) for name in header]
    rows = [["2026-11-25T01:00:00.000000Z", "d1", "allow", "alice", "resume", "vm-1", "202", "-"],
            ["2026-11-26T00:00:00.000000Z", "d6", "allow", "alice", "os-start", "vm-1", "202", "-"]]
    for line, row in zip(lines[1:], rows, strict=True):
        assert [line[start:].split()[0] for start in starts] == row
        assert all(start == 0 or line[start - 1] == " " for start in starts)


def test_query_command_table_shows_reasons_and_errors(
    log_paths: list[Path], capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run(["audit", "query", *map(str, log_paths), "--outcome", "deny", "--lock", "lk-3"]) == 0
    out = capsys.readouterr().out
    assert "instance is locked: lk-3" in out and "409" in out
    assert _run(["audit", "query", *map(str, log_paths), "--outcome", "error"]) == 0
    out = capsys.readouterr().out
    assert "policy engine unavailable" in out and "vm-9" in out and "503" in out


def test_query_command_with_no_match(log_paths: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["audit", "query", *map(str, log_paths), "--subject", "nobody"]) == 0
    assert "(no matching records)" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--since", "soon"], "--since: 'soon' is not an RFC 3339 timestamp"),
    (["--limit", "x"], "--limit: 'x' is not a positive number"),
])
def test_query_command_rejects_bad_filters(
    log_paths: list[Path], capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
) -> None:
    assert _run(["audit", "query", str(log_paths[0]), *argv]) == 2
    assert message in capsys.readouterr().err


def test_query_command_reports_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["audit", "query", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_bad_outcome_is_a_usage_error(log_paths: list[Path]) -> None:
    with pytest.raises(SystemExit) as exc:
        _run(["audit", "query", str(log_paths[0]), "--outcome", "maybe"])
    assert exc.value.code == 2


# -- look-up by id, and the lock a call placed or lifted ---------------------------------------

PLACED = "3f2a9c1e-5b7d-4c1a-9e0f-000000000001"
LIFTED = "3f2a9c1e-5b7d-4c1a-9e0f-000000000002"
BLOCKED = "7b1d0e42-8a3c-4f6e-b1d2-000000000003"


def _lock_call(decision_id: str, at: str, action: str, placed: tuple[str, ...] = (),
               lifted: tuple[str, ...] = ()) -> dict[str, Any]:
    record = make_record(
        decision_id=decision_id, req_id=1,
        input_doc={"subject": {"user_id": "billing-svc"}, "action": {"name": action},
                   "target": {"instance_id": "vm-7"}, "locks": []},
        result={"allow": True, "status": 200, "reasons": [], "lock_ids": []}, revision="r1",
        outcome="allow", enforced=True, method="POST", path="/statelock/v1/instances/vm-7/suspend-lock",
        status=0, requested_by="10.0.0.1", locks_placed=placed, locks_lifted=lifted)
    record["timestamp"] = at
    return record


LOG_IDS = [
    _lock_call(PLACED, "2026-11-27T01:00:00.000000Z", "suspend_lock", placed=("lk-9",)),
    make_completion(decision_id=PLACED, status=202, latency_s=0.0125, lock_ids=("lk-9",),
                    lock_state="active"),
    _decision(BLOCKED, "2026-11-27T02:00:00.000000Z", "alice", "deny", "resume", "vm-7",
              locks=("lk-9",), lock_ids=("lk-9",), status=409),
    _lock_call(LIFTED, "2026-11-27T03:00:00.000000Z", "unlock_resume", lifted=("lk-9",)),
    make_completion(decision_id=LIFTED, status=202, latency_s=0.02, lock_ids=("lk-9",),
                    lock_state="lifted"),
]


@pytest.fixture
def id_log(tmp_path: Path) -> Path:
    path = tmp_path / "ids.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in LOG_IDS))
    return path


@pytest.mark.parametrize(("params", "expected"), [
    ({"decision_id": PLACED}, [PLACED]),
    ({"decision_id": BLOCKED}, [BLOCKED]),
    ({"decision_id": "7b1d0e42"}, [BLOCKED]),
    ({"decision_id": "7b1d0e42-8a3c"}, [BLOCKED]),
    ({"decision_id": "3f2a9c1e"}, [PLACED, LIFTED]),
    ({"decision_id": "3f2a9c1"}, []),
    ({"decision_id": "7b1d0e42-0000"}, []),
    ({"decision_id": PLACED, "outcome": "deny"}, []),
    ({"lock": "lk-9"}, [PLACED, BLOCKED, LIFTED]),
    ({"lock": "lk-9", "action": "suspend_lock"}, [PLACED]),
    ({"lock": "lk-9", "action": "unlock_resume"}, [LIFTED]),
])
def test_decision_id_and_lock_filters(id_log: Path, params: dict[str, str], expected: list[str]) -> None:
    assert _ids(query_records([id_log], filters_from_mapping(params))) == expected


def test_a_short_id_matches_only_exactly(log_paths: list[Path]) -> None:
    assert _ids(query_records(log_paths, filters_from_mapping({"decision_id": "d1"}))) == ["d1"]


def test_record_lock_ids_include_the_locks_placed_and_lifted() -> None:
    placed, _, blocked, lifted, _ = LOG_IDS
    assert record_lock_ids(placed) == {"lk-9"}
    assert record_lock_ids(lifted) == {"lk-9"}
    assert record_lock_ids(blocked) == {"lk-9"}
    assert record_lock_ids(_decision("x", "2026-11-27T00:00:00Z", "a", "allow", "resume", "vm-1")) == set()


def test_a_lock_operation_completion_is_attached_as_its_lock_outcome(id_log: Path) -> None:
    placed, _, lifted = query_records([id_log], filters_from_mapping({"lock": "lk-9"}))
    assert placed["statelock"]["upstream"] == {"status": 202, "latency_ms": 12.5}
    assert placed["statelock"]["lock_outcome"] == {"ids": ["lk-9"], "state": "active", "reconciled": False}
    assert lifted["statelock"]["lock_outcome"]["state"] == "lifted"


@pytest.mark.parametrize("wanted", [PLACED, f" {PLACED} "])
def test_find_decision_returns_the_record_as_written_and_its_completion(id_log: Path, wanted: str) -> None:
    found = find_decision([id_log], wanted)
    assert found is not None
    assert found.decision == LOG_IDS[0]
    assert found.completions == (LOG_IDS[1],)
    assert found.completion == LOG_IDS[1]


def test_find_decision_without_a_completion(id_log: Path) -> None:
    found = find_decision([id_log], "7b1d0e42")
    assert found is not None
    assert found.decision["decision_id"] == BLOCKED
    assert found.completions == () and found.completion is None


@pytest.mark.parametrize("wanted", ["00000000-0000-4000-8000-000000000000", "3f2a9c1", "7b1d"])
def test_find_decision_of_an_unknown_id_is_none(id_log: Path, wanted: str) -> None:
    assert find_decision([id_log], wanted) is None


@pytest.mark.parametrize(("wanted", "message"), [
    ("3f2a9c1e", f"'3f2a9c1e' matches 2 decisions \\({PLACED}, {LIFTED}\\); give more characters"),
    ("  ", "decision_id: empty value"),
])
def test_find_decision_refuses_an_ambiguous_or_empty_id(id_log: Path, wanted: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        find_decision([id_log], wanted)


def test_find_decision_reads_every_file_given(log_paths: list[Path]) -> None:
    found = find_decision(log_paths, "d4")
    assert found is not None and found.completion is not None
    assert found.completion["statelock"]["upstream"]["status"] == 500
    with pytest.raises(OSError):
        find_decision([*log_paths, log_paths[0].with_name("missing.jsonl")], "d4")


def test_query_command_by_decision_id(id_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["audit", "query", str(id_log), "--decision-id", "7b1d0e42", "--format", "json"]) == 0
    assert _ids(json.loads(capsys.readouterr().out)) == [BLOCKED]
    assert _run(["audit", "query", str(id_log), "--lock", "lk-9"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines()[1:]] == [PLACED, BLOCKED, LIFTED]


def test_query_command_rejects_an_empty_decision_id(id_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["audit", "query", str(id_log), "--decision-id", " "]) == 2
    assert "--decision-id: empty value" in capsys.readouterr().err


def test_query_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    # NOTE: far more than a pipe holds, so the write meets the closed pipe.
    path.write_text("".join(
        json.dumps(_decision(f"id-{n:06d}", "2026-11-25T01:00:00Z", "alice", "allow", "resume",
                             f"vm-{n}")) + "\n" for n in range(600)))
    proc = subprocess.Popen([sys.executable, "-m", "sidecar", "audit", "query", str(path), "--format", "json"],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"[\n"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0, err
    assert err == ""
