"""The SQL of the decision index, for SQLite and PostgreSQL: the tables and the filtered page.

Statements are written with ``?`` placeholders; ``for_dialect`` turns them into
psycopg's ``%s`` for PostgreSQL (no statement here holds a literal ``?`` or ``%``).
``where`` turns ``QueryFilters`` into a WHERE clause and its parameters: the same
filters, with the same meaning, as ``QueryFilters.matches`` over the log files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sidecar.audit.index import Cursor, Indexed, attach_completions, from_us, prefix_bounds, to_us
from sidecar.audit.query import MIN_ID_PREFIX, FoundDecision, QueryFilters

TABLE = "decision_index"
LOCKS = "decision_index_locks"
COMPLETIONS = "decision_index_completions"
CHAINS = "decision_index_chains"

COLUMNS = ("row_id", "decision_id", "ts_us", "outcome", "action", "instance", "project", "subject", "revision",
           "reason", "replica", "chain", "seq", "hash", "body")

_FILTER_COLUMNS = ("outcome", "action", "instance", "project", "subject", "revision")


def schema(dialect: str) -> list[str]:
    """The statements that create the index's tables and indexes (idempotent)."""
    pg = dialect == "postgresql"
    row_id = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY" if pg else "INTEGER PRIMARY KEY"
    big = "BIGINT" if pg else "INTEGER"
    # NOTE: ids are compared by code point (prefix ranges), whatever the database's collation.
    id_type = 'TEXT COLLATE "C"' if pg else "TEXT"
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (row_id {row_id}, decision_id {id_type} NOT NULL, ts_us {big} NOT NULL, "
        "outcome TEXT NOT NULL, action TEXT NOT NULL, instance TEXT NOT NULL, project TEXT NOT NULL, "
        "subject TEXT NOT NULL, revision TEXT NOT NULL, reason TEXT NOT NULL, replica TEXT NOT NULL, "
        f"chain TEXT NOT NULL, seq {big} NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL, "
        "UNIQUE (replica, chain, seq))",
        f"CREATE TABLE IF NOT EXISTS {LOCKS} (lock_id TEXT NOT NULL, row_id {big} NOT NULL, "
        "PRIMARY KEY (lock_id, row_id))",
        f"CREATE TABLE IF NOT EXISTS {COMPLETIONS} (row_id {row_id}, decision_id TEXT NOT NULL, "
        f"replica TEXT NOT NULL, chain TEXT NOT NULL, seq {big} NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL, "
        "UNIQUE (replica, chain, seq))",
        f"CREATE TABLE IF NOT EXISTS {CHAINS} (replica TEXT NOT NULL, chain TEXT NOT NULL, seq {big} NOT NULL, "
        f"hash TEXT NOT NULL, updated_us {big} NOT NULL, PRIMARY KEY (replica, chain))",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_time ON {TABLE} (ts_us, row_id)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_id ON {TABLE} (decision_id)",
        f"CREATE INDEX IF NOT EXISTS {COMPLETIONS}_id ON {COMPLETIONS} (decision_id)",
    ]
    stmts += [f"CREATE INDEX IF NOT EXISTS {TABLE}_{col} ON {TABLE} ({col}, ts_us, row_id)"
              for col in _FILTER_COLUMNS]
    return stmts


def for_dialect(sql: str, dialect: str) -> str:
    """``sql`` with the placeholders of ``dialect``."""
    return sql.replace("?", "%s") if dialect == "postgresql" else sql


INSERT_ROW = (f"INSERT INTO {TABLE} (decision_id, ts_us, outcome, action, instance, project, subject, revision, "
              "reason, replica, chain, seq, hash, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT (replica, chain, seq) DO NOTHING RETURNING row_id")
INSERT_LOCK = f"INSERT INTO {LOCKS} (lock_id, row_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
INSERT_COMPLETION = (f"INSERT INTO {COMPLETIONS} (decision_id, replica, chain, seq, hash, body) "
                     "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (replica, chain, seq) DO NOTHING")
UPSERT_HEAD = (f"INSERT INTO {CHAINS} (replica, chain, seq, hash, updated_us) VALUES (?, ?, ?, ?, ?) "
               f"ON CONFLICT (replica, chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
               f"updated_us = excluded.updated_us WHERE excluded.seq > {CHAINS}.seq")
HEAD = f"SELECT replica, chain, seq, hash, updated_us FROM {CHAINS} WHERE replica = ? AND chain = ?"
ALL_HEADS = f"SELECT replica, chain, seq, hash, updated_us FROM {CHAINS} ORDER BY replica, chain"
DROP_CHAIN = [
    f"DELETE FROM {LOCKS} WHERE row_id IN (SELECT row_id FROM {TABLE} WHERE replica = ? AND chain = ?)",
    f"DELETE FROM {TABLE} WHERE replica = ? AND chain = ?",
    f"DELETE FROM {COMPLETIONS} WHERE replica = ? AND chain = ?",
    f"DELETE FROM {CHAINS} WHERE replica = ? AND chain = ?",
]


def where(filters: QueryFilters, before: Cursor | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading ``WHERE``, or '') and parameters for ``filters``."""
    clauses: list[str] = []
    params: list[Any] = []
    if filters.decision_id is not None:
        wanted = filters.decision_id.strip()
        if len(wanted) >= MIN_ID_PREFIX:
            low, high = prefix_bounds(wanted)
            clauses.append("decision_id >= ? AND decision_id < ?")
            params += [low, high]
        else:
            clauses.append("decision_id = ?")
            params.append(wanted)
    for col in _FILTER_COLUMNS:
        value = getattr(filters, col)
        if value is not None:
            clauses.append(f"{col} = ?")
            params.append(value)
    if filters.lock is not None:
        clauses.append(f"row_id IN (SELECT row_id FROM {LOCKS} WHERE lock_id = ?)")
        params.append(filters.lock)
    if filters.since is not None or filters.until is not None:
        clauses.append("ts_us > 0")  # NOTE: a record whose time does not parse matches no time window
    if filters.since is not None:
        clauses.append("ts_us >= ?")
        params.append(to_us(filters.since))
    if filters.until is not None:
        clauses.append("ts_us < ?")
        params.append(to_us(filters.until))
    if before is not None:
        clauses.append("(ts_us < ? OR (ts_us = ? AND row_id < ?))")
        params += [before.ts_us, before.ts_us, before.row]
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def page_sql(filters: QueryFilters, before: Cursor | None, limit: int | None) -> tuple[str, list[Any]]:
    """The newest-first select of a page (every match when ``limit`` is None)."""
    clause, params = where(filters, before)
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} {clause} ORDER BY ts_us DESC, row_id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def completions_sql(count: int) -> str:
    """The completions of ``count`` decision ids, oldest first."""
    marks = ", ".join("?" * count)
    return f"SELECT decision_id, body FROM {COMPLETIONS} WHERE decision_id IN ({marks}) ORDER BY seq, row_id"


def indexed(rows: Sequence[Sequence[Any]], completions: Sequence[Sequence[Any]]) -> list[Indexed]:
    """Rows of ``page_sql`` (in its column order) with their completions attached."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for decision_id, body in completions:
        by_id.setdefault(str(decision_id), []).append(json.loads(body))
    out = []
    for row in rows:
        (row_id, decision_id, ts_us, outcome, action, instance, project, subject, revision, reason, replica,
         chain, seq, digest, body) = row
        record = attach_completions(json.loads(body), by_id.get(decision_id, []))
        st = record.setdefault("statelock", {})
        if isinstance(st, dict):
            st.update(replica=replica, chain=chain)
        out.append(Indexed(decision_id, outcome, action, instance, project, subject, revision, reason, replica,
                           chain, int(seq), digest, record=record, when=from_us(int(ts_us)),
                           cursor=Cursor(int(ts_us), int(row_id))))
    return out


def found(wanted: str, rows: Sequence[Sequence[Any]], completions: Sequence[Sequence[Any]]) -> FoundDecision | None:
    """The decision ``find`` names among ``rows`` (``page_sql`` columns), as ``query.find_decision`` answers.

    Raises ValueError when the rows hold more than one decision id.
    """
    ids = sorted({str(r[1]) for r in rows})
    if len(ids) > 1:
        raise ValueError(f"decision_id: {wanted!r} matches {len(ids)} decisions ({', '.join(ids[:3])}"
                         f"{', ...' if len(ids) > 3 else ''}); give more characters")
    if not ids:
        return None
    record = json.loads(rows[0][-1])
    return FoundDecision(record, tuple(json.loads(body) for decision_id, body in completions if decision_id == ids[0]))


def find_sql(wanted: str) -> tuple[str, list[Any]]:
    """The rows a decision id (or a prefix of ``MIN_ID_PREFIX`` or more) names: up to four, oldest first."""
    clause, params = where(QueryFilters(decision_id=wanted))
    return f"SELECT {', '.join(COLUMNS)} FROM {TABLE} {clause} ORDER BY row_id LIMIT 4", params
