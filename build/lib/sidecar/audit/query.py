"""Query: the decision records of a log that match a set of filters, or one by its id.

Pure apart from reading the files given. Only decision records are returned; a
``"type": "completion"`` record is not, but what it carries (the upstream status and
latency of a forwarded request) is attached to its decision as ``statelock.upstream``
(and what became of a lock operation's locks as ``statelock.lock_outcome``).
The same filters serve ``statelock audit query`` and ``GET /statelock/v1/decisions``
(``filters_from_mapping`` validates query parameters for both); ``find_decision``
serves ``GET /statelock/v1/decisions/{id}``.

A decision id filter matches an id exactly, or, given at least ``MIN_ID_PREFIX``
characters, every id that starts with it (a UUID's first 8 characters are already
unique in practice; ``find_decision`` refuses a prefix that names two decisions).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sidecar.audit.record import is_completion

log = logging.getLogger(__name__)

OUTCOMES = ("allow", "deny", "error")
FILTER_KEYS = ("decision_id", "instance", "subject", "outcome", "action", "lock", "since", "until",
               "limit")
MIN_ID_PREFIX = 8

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2}))?")
_SERVERS = re.compile(r"/servers/([^/?]+)")
_PLAIN_ID = re.compile(r"[\w.:-]+", re.ASCII)


def parse_time(value: str, name: str = "time") -> datetime:
    """An RFC 3339 timestamp (or a bare date, taken as midnight UTC) as an aware datetime.

    Raises ValueError naming ``name`` and the expected form.
    """
    text = value.strip()
    if not _RFC3339.fullmatch(text):
        raise ValueError(f"{name}: {value!r} is not an RFC 3339 timestamp "
                         f"(e.g. 2026-11-25T01:00:00Z or 2026-11-25)")
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{name}: {value!r} is not a valid date or time ({exc})") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class QueryFilters:
    """What a record must match; None matches anything.

    ``since`` is inclusive and ``until`` exclusive, so consecutive windows never share a
    record. ``limit`` keeps the most recent matches (still oldest first).
    """

    decision_id: str | None = None
    instance: str | None = None
    subject: str | None = None
    outcome: str | None = None
    action: str | None = None
    lock: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"outcome: {self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name}: needs a time zone (e.g. a trailing Z)")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since: must be earlier than until")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit: must be a positive number")
        if self.decision_id is not None and not self.decision_id.strip():
            raise ValueError("decision_id: empty value (leave the filter out to match anything)")

    def matches(self, record: Mapping[str, Any]) -> bool:
        """True if a decision record passes every filter."""
        inp = _obj(record.get("input"))
        st = _obj(record.get("statelock"))
        if self.decision_id is not None and not id_matches(self.decision_id, record.get("decision_id")):
            return False
        if self.outcome is not None and st.get("outcome") != self.outcome:
            return False
        if self.subject is not None and _obj(inp.get("subject")).get("user_id") != self.subject:
            return False
        if self.action is not None and _obj(inp.get("action")).get("name") != self.action:
            return False
        if self.instance is not None and record_instance(record) != self.instance:
            return False
        if self.lock is not None and self.lock not in record_lock_ids(record):
            return False
        if self.since is not None or self.until is not None:
            when = record_time(record)
            if when is None:
                return False
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when >= self.until:
                return False
        return True


def filters_from_mapping(query_params: Mapping[str, str]) -> QueryFilters:
    """Filters from query parameters (or any str -> str mapping).

    Raises ValueError, with a message fit for a 400 answer, for an unknown key, an
    empty value, an unknown outcome, a bad timestamp or limit, or since >= until.
    """
    unknown = sorted(set(query_params) - set(FILTER_KEYS))
    if unknown:
        raise ValueError(f"unknown filter {unknown[0]!r}; the filters are {', '.join(FILTER_KEYS)}")
    values: dict[str, str] = {}
    for key in FILTER_KEYS:
        if key in query_params:
            value = query_params[key].strip()
            if not value:
                raise ValueError(f"{key}: empty value (leave the filter out to match anything)")
            values[key] = value
    limit: int | None = None
    if "limit" in values:
        if not values["limit"].isdigit():
            raise ValueError(f"limit: {values['limit']!r} is not a positive number")
        limit = int(values["limit"])
    return QueryFilters(
        decision_id=values.get("decision_id"), instance=values.get("instance"), subject=values.get("subject"),
        outcome=values.get("outcome"), action=values.get("action"), lock=values.get("lock"),
        since=parse_time(values["since"], "since") if "since" in values else None,
        until=parse_time(values["until"], "until") if "until" in values else None,
        limit=limit)


def query_records(paths: Sequence[str | Path], filters: QueryFilters) -> list[dict[str, Any]]:
    """The decision records in ``paths`` (read in order) that match ``filters``, oldest first.

    Each match whose request was forwarded gets ``statelock.upstream`` from its
    completion record. Lines that are not JSON objects are skipped (``verify`` is the
    tool that reports them). Raises OSError if a file can't be read.
    """
    matched: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    early: dict[str, dict[str, Any]] = {}
    for record in _read_records(paths):
        decision_id = record.get("decision_id")
        if is_completion(record):
            added = _completion_fields(record)
            if not isinstance(decision_id, str) or added is None:
                continue
            if decision_id in by_id:
                _attach(by_id[decision_id], added)
            else:
                early[decision_id] = added
        elif filters.matches(record):
            matched.append(record)
            if isinstance(decision_id, str):
                by_id[decision_id] = record
                if decision_id in early:
                    _attach(record, early.pop(decision_id))
    if filters.limit is not None:
        return matched[-filters.limit:]
    return matched


class FoundDecision(NamedTuple):
    """A decision record as written, and the completion records that name it (oldest first)."""

    decision: dict[str, Any]
    completions: tuple[dict[str, Any], ...]

    @property
    def completion(self) -> dict[str, Any] | None:
        """The latest completion, None if the decision has none (denied, or never forwarded)."""
        return self.completions[-1] if self.completions else None


def id_matches(wanted: str, decision_id: Any) -> bool:
    """True if ``decision_id`` is ``wanted``, or starts with it and ``wanted`` is long enough."""
    if not isinstance(decision_id, str):
        return False
    return decision_id == wanted or (len(wanted) >= MIN_ID_PREFIX and decision_id.startswith(wanted))


def find_decision(paths: Sequence[str | Path], decision_id: str) -> FoundDecision | None:
    """The decision whose id is ``decision_id`` (or starts with it, see the module docstring).

    The decision is returned exactly as written (with ``seq`` and ``hash``, so it can
    be checked against the chain); completions are those whose ``decision_id`` is the
    decision's. None if no decision has that id. Raises ValueError for an empty id, or
    a prefix that matches more than one decision (the message lists some of them), and
    OSError if a file can't be read.
    """
    wanted = decision_id.strip()
    if not wanted:
        raise ValueError("decision_id: empty value")
    # NOTE: an id of plain characters appears verbatim in its line, so other lines need no parse.
    needle = wanted.encode() if _PLAIN_ID.fullmatch(wanted) else b""
    decisions: dict[str, dict[str, Any]] = {}
    completions: dict[str, list[dict[str, Any]]] = {}
    for record in _read_records(paths, needle):
        rid = record.get("decision_id")
        if not id_matches(wanted, rid):
            continue
        assert isinstance(rid, str)
        if is_completion(record):
            completions.setdefault(rid, []).append(record)
        else:
            decisions.setdefault(rid, record)
    if len(decisions) > 1:
        some = ", ".join(sorted(decisions)[:3])
        raise ValueError(f"decision_id: {wanted!r} matches {len(decisions)} decisions ({some}"
                         f"{', ...' if len(decisions) > 3 else ''}); give more characters")
    if not decisions:
        return None
    [(rid, record)] = decisions.items()
    return FoundDecision(record, tuple(completions.get(rid, ())))


def record_time(record: Mapping[str, Any]) -> datetime | None:
    """A record's timestamp, or None if it has none that parses."""
    stamp = record.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return parse_time(stamp)
    except ValueError:
        return None


def record_instance(record: Mapping[str, Any]) -> str | None:
    """The instance a record is about: its target, else the server id in its request path."""
    inp = _obj(record.get("input"))
    target = _obj(inp.get("target")).get("instance_id")
    if isinstance(target, str) and target:
        return target
    path = _obj(_obj(record.get("statelock")).get("http")).get("path")
    if not isinstance(path, str):
        path = _obj(inp.get("request")).get("path")
    m = _SERVERS.search(path) if isinstance(path, str) else None
    if m and m.group(1) != "detail":
        return m.group(1)
    return None


def record_lock_ids(record: Mapping[str, Any]) -> set[str]:
    """The lock ids a decision record names.

    Those in force for the request (its input's ``locks``), those that blocked it (its
    result's ``lock_ids``), and those it placed or lifted (``statelock.locks_placed``
    and ``statelock.locks_lifted``, written by lock, suspend-lock and unlock calls): so
    a lock's id finds the record that created it as well as every one it touched.
    """
    ids = {str(lk["id"]) for lk in _list(_obj(record.get("input")).get("locks"))
           if isinstance(lk, dict) and "id" in lk}
    ids.update(str(i) for i in _list(_obj(record.get("result")).get("lock_ids")))
    st = _obj(record.get("statelock"))
    for key in ("locks_placed", "locks_lifted"):
        ids.update(str(i) for i in _list(st.get(key)))
    return ids


def _read_records(paths: Iterable[str | Path], needle: bytes = b"") -> Iterator[dict[str, Any]]:
    """The JSON objects in ``paths``; with ``needle``, only lines holding it are parsed."""
    for path in paths:
        with Path(path).open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip() or needle not in raw:
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    log.warning("%s line %d is not JSON; skipped", path, lineno)
                    continue
                if isinstance(record, dict):
                    yield record


def _completion_fields(completion: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a completion adds to its decision: ``upstream`` (and ``lock_outcome``); None if nothing."""
    st = _obj(completion.get("statelock"))
    upstream = st.get("upstream")
    if not isinstance(upstream, dict):
        return None
    out = dict(upstream)
    if st.get("error_code"):
        out["error_code"] = st["error_code"]
    added: dict[str, Any] = {"upstream": out}
    if isinstance(st.get("lock"), dict):
        added["lock_outcome"] = dict(st["lock"])
    return added


def _attach(record: dict[str, Any], added: dict[str, Any]) -> None:
    st = record.get("statelock")
    if isinstance(st, dict):
        st.update(added)
    else:
        record["statelock"] = dict(added)


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
