"""``GET /statelock/v1/decisions``: the decision log, queried, for auditors and admins."""

from __future__ import annotations

import asyncio

from aiohttp import web

from sidecar.appkeys import ENFORCER
from sidecar.audit.log import log_files
from sidecar.audit.query import filters_from_mapping, query_records
from sidecar.errors import BadRequest, SidecarError
from sidecar.faults import fault_body

AUDIT_ROLES = frozenset({"auditor", "admin"})


async def list_decisions(request: web.Request) -> web.Response:
    """Records matching ``instance, subject, outcome, action, lock, since, until, limit``.

    403 unless the caller holds ``auditor`` or ``admin``; 400 for a bad filter.
    """
    enforcer = request.app[ENFORCER]
    try:
        subject = await enforcer.identifier.identify(request.headers)
        if not AUDIT_ROLES & set(subject.roles):
            return web.Response(status=403, content_type="application/json", body=fault_body(
                403, "Reading decisions needs the auditor or admin role."))
        try:
            filters = filters_from_mapping(request.query)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        records = await asyncio.to_thread(query_records, log_files(enforcer.cfg.audit.path), filters)
    except SidecarError as exc:
        return web.Response(status=exc.status, content_type="application/json",
                            body=fault_body(exc.status, exc.message), headers=dict(exc.headers))
    return web.json_response({"decisions": records})


def add_routes(app: web.Application) -> None:
    """Register the decisions API."""
    app.router.add_get("/statelock/v1/decisions", list_decisions)
