"""``/statelock/v1/decisions``: the decision log, queried and looked up by id, for auditors and admins.

Both answer 403 unless the caller holds a role in ``AUDIT_ROLES``. The list takes
the filters of ``statelock audit query`` as query parameters (400 for a bad one);
the look-up answers the decision as written (with its chain fields) and its
completions, 404 for an id on no record.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sidecar.appkeys import CONFIG, IDENTIFIER
from sidecar.audit.log import log_files
from sidecar.audit.query import filters_from_mapping, find_decision, query_records
from sidecar.errors import BadRequest, Forbidden, NotFound

AUDIT_ROLES = frozenset({"auditor", "admin"})


async def _auditor(request: web.Request) -> None:
    subject = await request.app[IDENTIFIER].identify(request.headers)
    if not AUDIT_ROLES & set(subject.roles):
        raise Forbidden("Reading decisions needs the auditor or admin role.")


async def list_decisions(request: web.Request) -> web.Response:
    """Records matching ``decision_id, instance, subject, outcome, action, lock, since, until, limit``."""
    await _auditor(request)
    try:
        filters = filters_from_mapping(request.query)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    records = await asyncio.to_thread(query_records, log_files(request.app[CONFIG].audit.path),
                                      filters)
    return web.json_response({"decisions": records})


async def show_decision(request: web.Request) -> web.Response:
    """``GET /statelock/v1/decisions/{id}`` (an id, or a unique prefix of 8 or more characters)."""
    await _auditor(request)
    wanted = request.match_info["decision_id"]
    try:
        found = await asyncio.to_thread(find_decision, log_files(request.app[CONFIG].audit.path), wanted)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    if found is None:
        raise NotFound(f"Decision {wanted} could not be found.")
    return web.json_response({"decision": found.decision, "completion": found.completion,
                              "completions": list(found.completions)})


def add_routes(app: web.Application) -> None:
    """Register the decisions API."""
    app.router.add_get("/statelock/v1/decisions", list_decisions)
    app.router.add_get("/statelock/v1/decisions/{decision_id}", show_decision)
