"""The decision index: one row per decision record, so a filtered page never reads the whole log.

The hash chain (``JsonlAuditLog``) stays the source of truth; the index is a copy of
what the chain holds, made to be searched. Each row carries the fields the filters
of ``sidecar.audit.query`` look at (time, outcome, action, instance, project,
subject, revision, lock ids), a short reason, where the record lives (``replica``,
``chain``, ``seq``, ``hash``) and the record itself, so a replica can open a record
written by another one. Completions go to a table of their own and are attached to
their decision when it is read, as ``query_records`` does.

This module is pure: ``index_row`` and ``completion_row`` turn records into rows,
``Cursor`` is the place a newest-first page stops. The stores are
``sidecar.audit.index_sqlite`` (one node, a file beside the log) and
``sidecar.audit.index_pg`` (replicas sharing the lock store's PostgreSQL), both
behind ``DecisionIndex``; ``sidecar.audit.indexer`` keeps one up to date (``index_feed.ChainFollower``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from sidecar.audit.query import FoundDecision, QueryFilters, record_instance, record_lock_ids, record_time
from sidecar.audit.record import is_completion
from sidecar.errors import SidecarError

REASON_CHARS = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RowFields:
    """What the index shows of a decision: the page's columns and its place in its chain."""

    decision_id: str
    outcome: str
    action: str
    instance: str
    project: str
    subject: str
    revision: str
    reason: str
    replica: str
    chain: str
    seq: int
    hash: str


@dataclass(frozen=True, kw_only=True)
class IndexRow(RowFields):
    """What one decision record puts in the index."""

    ts_us: int
    lock_ids: tuple[str, ...]
    body: str


@dataclass(frozen=True)
class CompletionRow:
    """A completion record, kept for the decision it completes."""

    decision_id: str
    replica: str
    chain: str
    seq: int
    hash: str
    body: str


@dataclass(frozen=True, kw_only=True)
class Indexed(RowFields):
    """A decision read back from the index: the record (completions attached) and its row's fields."""

    record: dict[str, Any]
    when: datetime
    cursor: Cursor


@dataclass(frozen=True)
class Cursor:
    """Where a newest-first page ended: the next page holds what sorts after (ts_us, row)."""

    ts_us: int
    row: int

    def text(self) -> str:
        return f"{self.ts_us}.{self.row}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """A cursor from its text; ValueError (fit for a 400) when it is not one."""
        ts, sep, row = text.partition(".")
        if not sep or not ts.isdigit() or not row.isdigit():
            raise ValueError(f"before: {text!r} is not a page cursor (take it from a page's 'older' link)")
        return cls(int(ts), int(row))


@dataclass(frozen=True)
class ChainHead:
    """The last record of a chain the index holds."""

    replica: str
    chain: str
    seq: int
    hash: str
    updated: datetime | None = None


class DecisionIndex(Protocol):
    """A store of index rows (SQLite or PostgreSQL); every call raises ``IndexUnavailable`` on a store fault."""

    dialect: str

    def child_spec(self) -> tuple[list[str], bytes]:
        """How ``sidecar.audit.indexer`` opens the same store: arguments, and a first line for its input."""

    async def open(self) -> None:
        """Create the tables if missing; IndexUnavailable when the store can't be reached."""

    async def close(self) -> None:
        """Release connections."""

    async def add(self, rows: Sequence[IndexRow | CompletionRow]) -> None:
        """Insert rows (one chain, in seq order); a row already held (same replica, chain, seq) is skipped."""

    async def head(self, replica: str, chain: str) -> ChainHead | None:
        """The last record of a chain held, None if none is."""

    async def drop_chain(self, replica: str, chain: str) -> int:
        """Forget every row of a chain (before it is indexed again); the rows dropped."""

    async def page(self, filters: QueryFilters, before: Cursor | None, limit: int | None) -> list[Indexed]:
        """Up to ``limit`` matches (every one with None), newest first, those after ``before`` when given."""

    async def find(self, wanted: str) -> FoundDecision | None:
        """The decision with this id (or unique prefix, see ``query.find_decision``); ValueError if ambiguous."""

    async def chains(self) -> list[ChainHead]:
        """Every chain the index holds, with its last record."""


class IndexUnavailable(SidecarError):
    """The index store can't be read or written (503; the message says why, without secrets)."""

    code = "index_unavailable"
    status = 503


def index_row(record: Mapping[str, Any], replica: str, chain: str) -> IndexRow | CompletionRow | None:
    """The row a chained record puts in the index; None for a record without ``seq`` and ``hash``."""
    seq, digest, decision_id = record.get("seq"), record.get("hash"), record.get("decision_id")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
        return None
    body = record_json(record)
    if not isinstance(decision_id, str):
        decision_id = ""
    if is_completion(record):
        return CompletionRow(decision_id, replica, chain, seq, digest, body)
    inp = _obj(record.get("input"))
    subject = _obj(inp.get("subject"))
    project = _obj(inp.get("target")).get("project_id") or subject.get("project_id")
    when = record_time(record)
    return IndexRow(
        decision_id=decision_id, ts_us=to_us(when) if when else 0,
        outcome=_text(_obj(record.get("statelock")).get("outcome")),
        action=_text(_obj(inp.get("action")).get("name")), instance=_text(record_instance(record)),
        project=_text(project), subject=_text(subject.get("user_id")),
        revision=_text(_obj(_obj(record.get("bundles")).get("statelock")).get("revision")),
        reason=reason_of(record)[:REASON_CHARS], replica=replica, chain=chain, seq=seq, hash=digest,
        lock_ids=tuple(sorted(record_lock_ids(record))), body=body)


def record_json(record: Mapping[str, Any]) -> str:
    """A record's JSON text for the index (compact, UTF-8 kept); orjson, or json for what it refuses."""
    try:
        return orjson.dumps(record).decode()
    except TypeError:  # NOTE: ints past 64 bits, NaN and the like: the standard encoder takes them.
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def reason_of(record: Mapping[str, Any]) -> str:
    """What a decision says for itself: its reasons, else its error's message, else ''."""
    reasons = _obj(record.get("result")).get("reasons")
    if isinstance(reasons, list) and reasons:
        return "; ".join(str(r) for r in reasons)
    would = _obj(_obj(record.get("statelock")).get("would_have")).get("reasons")
    if isinstance(would, list) and would:
        return "; ".join(str(r) for r in would)
    return _text(_obj(record.get("error")).get("message"))


def attach_completions(record: dict[str, Any], completions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``record`` with ``statelock.upstream`` (and ``lock_outcome``) from its latest completion."""
    for completion in completions:
        st = _obj(completion.get("statelock"))
        upstream = st.get("upstream")
        if not isinstance(upstream, dict):
            continue
        added: dict[str, Any] = {"upstream": {**upstream, **({"error_code": st["error_code"]}
                                                             if st.get("error_code") else {})}}
        if isinstance(st.get("lock"), dict):
            added["lock_outcome"] = dict(st["lock"])
        target = record.setdefault("statelock", {})
        if isinstance(target, dict):
            target.update(added)
    return record


def to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (a naive one is taken as UTC), exactly."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def from_us(ts_us: int) -> datetime:
    """The aware UTC datetime ``ts_us`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=ts_us)


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """The half-open range of strings that start with ``prefix`` (for an index range scan)."""
    return prefix, prefix + "\U0010ffff"


def _text(value: Any) -> str:
    # NOTE: PostgreSQL text can't hold NUL; the record's own JSON (``body``) keeps it escaped.
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text.replace("\x00", "\ufffd")


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
