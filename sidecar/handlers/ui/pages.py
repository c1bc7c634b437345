"""The console's pages: decisions (filtered, paged), one decision, locks, an instance's timeline.

Pages read through the same services as the JSON API (``DECISIONS``, the lock store,
``locks_api.timeline``), so the two can't disagree. The decisions page takes the
filters of ``GET /statelock/v1/decisions`` as query parameters (a filtered view is a
URL to bookmark or share), plus ``before`` (the cursor of the next, older page) and
``limit`` (the page size, ``PAGE`` by default, at most ``MAX_PAGE``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.appkeys import DECISIONS, ENGINE, STORE
from sidecar.audit.index import Cursor, Indexed
from sidecar.audit.query import QueryFilters, filters_from_mapping
from sidecar.errors import BadRequest, NotFound
from sidecar.handlers.locks_api import timeline
from sidecar.handlers.ui.auth import require
from sidecar.handlers.ui.render import page
from sidecar.locks.model import LockFilter
from sidecar.vocab import LOCK_LIST_STATES, one_of

PAGE = 50
MAX_PAGE = 500
FILTER_FIELDS = ("since", "until", "outcome", "action", "instance", "project", "subject", "lock", "revision",
                 "decision_id")


def view_filters(query: Mapping[str, str]) -> tuple[QueryFilters, Cursor | None, int, dict[str, str]]:
    """The filters, cursor and page size of a decisions URL, and the filters as given (for links).

    Raises BadRequest naming a bad filter. Empty fields (an unfilled form) are left out.
    """
    given = {k: v for k, v in query.items() if v.strip() and k not in ("before", "limit")}
    try:
        filters = filters_from_mapping(given)
        before = Cursor.parse(query["before"]) if query.get("before") else None
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    size = query.get("limit", "")
    if size and (not size.isdigit() or not 0 < int(size) <= MAX_PAGE):
        raise BadRequest(f"limit: {size!r} is not a page size from 1 to {MAX_PAGE}")
    return filters, before, int(size) if size else PAGE, given


async def decisions(request: web.Request) -> web.Response:
    """``GET /statelock/ui/decisions``: newest first, paged, filtered by the URL's query."""
    session = await require(request)
    filters, before, size, given = view_filters(request.query)
    rows = await request.config_dict[DECISIONS].page(filters, before, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    chains = await request.config_dict[DECISIONS].chains()
    older = rows[-1].cursor.text() if more and rows else None
    return page(request, "decisions.html", session=session, rows=rows, given=given, older=older,
                fields=FILTER_FIELDS, size=size, first_page=before is None, chains=chains,
                limit=request.query.get("limit", ""))


async def find_one(request: web.Request, wanted: str) -> Indexed:
    source = request.config_dict[DECISIONS]
    try:
        found = await source.find(wanted)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    if found is None:
        raise NotFound(f"Decision {wanted} could not be found.")
    rows = await source.page(QueryFilters(decision_id=str(found.decision.get("decision_id"))), None, 1)
    if not rows:
        raise NotFound(f"Decision {wanted} could not be found.")
    return rows[0]


def decision_context(row: Indexed) -> dict[str, Any]:
    """What the decision page shows of a record."""
    record = row.record
    st = _obj(record.get("statelock"))
    result = _obj(record.get("result"))
    inp = _obj(record.get("input"))
    blocked = set(_list(result.get("lock_ids")))
    overridden = set(_list(st.get("overrides")) or _list(result.get("overrides")))
    locks = [dict(lk, blocked=lk.get("id") in blocked, overridden=lk.get("id") in overridden)
             for lk in _list(inp.get("locks")) if isinstance(lk, dict)]
    return {"row": row, "record": record, "st": st, "result": result, "input": inp, "locks": locks,
            "reasons": _list(result.get("reasons")), "timings": _obj(record.get("metrics")),
            "upstream": st.get("upstream"), "lock_outcome": st.get("lock_outcome"),
            "error": record.get("error"), "masked": _list(record.get("masked")),
            "engine_decision_id": st.get("engine_decision_id")}


async def decision(request: web.Request) -> web.Response:
    """``GET /statelock/ui/decisions/{id}``: the whole decision, with a replay button."""
    session = await require(request)
    row = await find_one(request, request.match_info["decision_id"])
    engine = request.config_dict[ENGINE]
    return page(request, "decision.html", session=session, replay=None, engine=engine.name,
                loaded=engine.loaded_revisions(), **decision_context(row))


async def locks(request: web.Request) -> web.Response:
    """``GET /statelock/ui/locks?state=active|expired|lifted|all``: locks with kind, scope, owner, reason, expiry."""
    session = await require(request)
    state = one_of(LOCK_LIST_STATES, request.query.get("state", "active"), "state")
    now = datetime.now(UTC)
    found = await request.config_dict[STORE].find(LockFilter(state=state), now)
    return page(request, "locks.html", session=session, locks=[lk.as_json(now) for lk in found], state=state,
                states=LOCK_LIST_STATES)


async def instance(request: web.Request) -> web.Response:
    """``GET /statelock/ui/instances/{id}``: every lock created, lifted and expired, and the decisions on it."""
    session = await require(request)
    try:
        instance_id = str(uuid.UUID(request.match_info["instance_id"]))
    except ValueError:
        raise BadRequest(f"{request.match_info['instance_id']!r} is not an instance UUID") from None
    now = datetime.now(UTC)
    held = await request.config_dict[STORE].find(LockFilter(scope="instance", target=instance_id), now)
    rows = await request.config_dict[DECISIONS].page(QueryFilters(instance=instance_id), None, PAGE)
    return page(request, "instance.html", session=session, instance_id=instance_id,
                locks=[lk.as_json(now) for lk in held], events=timeline(held, now), rows=rows, size=PAGE)


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
