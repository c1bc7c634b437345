"""Exports of decisions: CSV with formula injection neutralised, and JSON.

A CSV cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read as a formula by spreadsheet programs (OWASP's CSV injection); such a cell gets a
leading ``'``, which the spreadsheet shows as text. A lock reason is the caller's own
text, so every cell is neutralised, not only the ones we expect to be free text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sidecar.audit.index import Indexed, reason_of

CSV_COLUMNS = ("timestamp", "outcome", "action", "instance", "project", "subject", "revision", "reason",
               "lock_reasons", "decision_id", "replica", "chain", "seq", "hash")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text (see the module docstring)."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def lock_reasons(record: Mapping[str, Any]) -> str:
    """The reasons of the locks in force for a decision (its input's ``locks``), joined by '; '."""
    inp = record.get("input")
    locks = inp.get("locks") if isinstance(inp, dict) else None
    if not isinstance(locks, list):
        return ""
    return "; ".join(str(lk.get("reason", "")) for lk in locks if isinstance(lk, dict) and lk.get("reason"))


def csv_text(rows: Iterable[Indexed]) -> str:
    """The rows as CSV (a header line, then one line per decision), every cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cells = (row.record.get("timestamp", ""), row.outcome, row.action, row.instance, row.project, row.subject,
                 row.revision, reason_of(row.record), lock_reasons(row.record), row.decision_id, row.replica,
                 row.chain, row.seq, row.hash)
        writer.writerow([neutralise("" if cell is None else str(cell)) for cell in cells])
    return out.getvalue()


def json_text(rows: Iterable[Indexed]) -> str:
    """The rows' full records (completions attached, replica and chain marked) as a JSON document."""
    return json.dumps({"decisions": [row.record for row in rows]}, ensure_ascii=False, indent=1)
