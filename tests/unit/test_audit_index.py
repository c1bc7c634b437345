"""The decision index's pure parts: rows from records, times, page cursors, the filters as SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sidecar.audit.index import CompletionRow, Cursor, IndexRow, from_us, index_row, to_us
from sidecar.audit.index_sql import for_dialect, where
from sidecar.audit.query import QueryFilters
from sidecar.audit.record import make_completion, make_record


def _chained(record: dict[str, object], seq: int = 3) -> dict[str, object]:
    return {**record, "seq": seq, "prev_hash": "0" * 64, "hash": "f" * 64}


def test_a_decision_row_carries_what_the_filters_read() -> None:
    record = make_record(
        decision_id="d-1", req_id=1, revision="rev-7", outcome="deny", enforced=True, method="POST",
        path="/v2.1/servers/vm-1/action", status=409, requested_by="10.0.0.1",
        input_doc={"subject": {"user_id": "alice\x00", "project_id": "demo", "roles": []},
                   "action": {"name": "os-stop", "kind": "state_change"},
                   "target": {"instance_id": "vm-1", "project_id": "owner-project", "host": None},
                   "locks": [{"id": "lk-1"}]},
        result={"allow": False, "reasons": ["locked", "really"], "lock_ids": ["lk-1"]})
    row = index_row(_chained(record), "r1", "/log")
    assert isinstance(row, IndexRow)
    assert (row.decision_id, row.outcome, row.action, row.instance, row.project, row.revision) == (
        "d-1", "deny", "os-stop", "vm-1", "owner-project", "rev-7")
    assert row.subject == "alice\ufffd" and row.reason == "locked; really" and row.lock_ids == ("lk-1",)
    assert (row.replica, row.chain, row.seq, row.hash) == ("r1", "/log", 3, "f" * 64)
    assert '"alice\\u0000"' in row.body  # NOTE: the record itself keeps the NUL, escaped


def test_a_completion_row_names_its_decision() -> None:
    row = index_row(_chained(make_completion(decision_id="d-1", status=202, latency_s=0.1), 4), "r1", "/log")
    assert isinstance(row, CompletionRow) and (row.decision_id, row.seq) == ("d-1", 4)


@pytest.mark.parametrize("when", [datetime(1970, 1, 1, tzinfo=UTC), datetime(2026, 11, 25, 1, 2, 3, 999999,
                                                                               tzinfo=UTC)])
def test_times_are_exact_microseconds(when: datetime) -> None:
    assert from_us(to_us(when)) == when


@pytest.mark.parametrize("text", ["", "12", "12.", ".3", "a.b", "1.2.3", "-1.2"])
def test_a_bad_cursor_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="before"):
        Cursor.parse(text)


def test_a_cursor_reads_back() -> None:
    assert Cursor.parse(Cursor(1764000000000000, 42).text()) == Cursor(1764000000000000, 42)


@pytest.mark.parametrize(("filters", "clause", "params"), [
    (QueryFilters(), "", []),
    (QueryFilters(outcome="deny", subject="bob"), "WHERE outcome = ? AND subject = ?", ["deny", "bob"]),
    (QueryFilters(decision_id="short"), "WHERE decision_id = ?", ["short"]),
    (QueryFilters(decision_id="abcdef12"), "WHERE decision_id >= ? AND decision_id < ?",
     ["abcdef12", "abcdef12\U0010ffff"]),
    (QueryFilters(lock="lk-1"), "WHERE row_id IN (SELECT row_id FROM decision_index_locks WHERE lock_id = ?)",
     ["lk-1"]),
    (QueryFilters(since=datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)), "WHERE ts_us > 0 AND ts_us >= ?", [1_000_000]),
])
def test_filters_become_a_where_clause(filters: QueryFilters, clause: str, params: list[object]) -> None:
    assert where(filters) == (clause, params)


def test_postgresql_placeholders() -> None:
    assert for_dialect("a = ? AND b = ?", "postgresql") == "a = %s AND b = %s"
    assert for_dialect("a = ?", "sqlite") == "a = ?"
