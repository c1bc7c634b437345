"""CSV and JSON exports: every cell a spreadsheet would read as a formula is neutralised."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sidecar.audit.export import CSV_COLUMNS, csv_text, json_text, lock_reasons, neutralise
from sidecar.audit.index import Cursor, Indexed


@pytest.mark.parametrize(("cell", "shown"), [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("", ""), (" =not first", " =not first"), ("a=b", "a=b"), ("'quoted", "'quoted"),
])
def test_neutralise(cell: str, shown: str) -> None:
    assert neutralise(cell) == shown


def _row(record: dict[str, Any], **fields: Any) -> Indexed:
    base: dict[str, Any] = dict(decision_id="d-1", when=datetime(2026, 1, 1, tzinfo=UTC), outcome="deny",
                                action="os-stop", instance="vm-1", project="demo", subject="=cmd|' /C calc'!A0",
                                revision="rev-1", reason="", replica="r1", chain="/var/log/d.jsonl", seq=7,
                                hash="ab" * 32, cursor=Cursor(1, 1))
    base.update(fields)
    return Indexed(record=record, **base)


def test_csv_neutralises_every_cell_and_names_its_columns() -> None:
    record = {"timestamp": "2026-01-01T00:00:00Z", "result": {"reasons": ["-locked"]},
              "input": {"locks": [{"id": "lk-1", "reason": "@evil"}, {"id": "lk-2", "reason": "plain"}]}}
    [header, row] = list(csv.reader(io.StringIO(csv_text([_row(record)]))))
    assert tuple(header) == CSV_COLUMNS
    cells = dict(zip(header, row, strict=True))
    assert cells["subject"] == "'=cmd|' /C calc'!A0"
    assert cells["reason"] == "'-locked" and cells["lock_reasons"] == "'@evil; plain"
    assert cells["seq"] == "7" and cells["decision_id"] == "d-1"


def test_json_holds_the_full_records() -> None:
    record = {"decision_id": "d-1", "input": {"locks": [{"reason": "=1+1"}]}}
    assert json.loads(json_text([_row(record)])) == {"decisions": [record]}


def test_lock_reasons_of_a_record_without_locks() -> None:
    assert lock_reasons({}) == "" and lock_reasons({"input": {"locks": "nope"}}) == ""
