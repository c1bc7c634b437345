"""``GET /statelock/v1/decisions``: the decision log, queried, for auditors and admins."""

from __future__ import annotations

import asyncio

from aiohttp import web

from sidecar.appkeys import CONFIG, IDENTIFIER
from sidecar.audit.log import log_files
from sidecar.audit.query import filters_from_mapping, query_records
from sidecar.errors import BadRequest, Forbidden

AUDIT_ROLES = frozenset({"auditor", "admin"})


async def list_decisions(request: web.Request) -> web.Response:
    """Records matching ``instance, subject, outcome, action, lock, since, until, limit``.

    403 unless the caller holds ``auditor`` or ``admin``; 400 for a bad filter.
    """
    subject = await request.app[IDENTIFIER].identify(request.headers)
    if not AUDIT_ROLES & set(subject.roles):
        raise Forbidden("Reading decisions needs the auditor or admin role.")
    try:
        filters = filters_from_mapping(request.query)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    records = await asyncio.to_thread(query_records, log_files(request.app[CONFIG].audit.path),
                                      filters)
    return web.json_response({"decisions": records})


def add_routes(app: web.Application) -> None:
    """Register the decisions API."""
    app.router.add_get("/statelock/v1/decisions", list_decisions)
