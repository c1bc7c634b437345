"""``/statelock/v1/decisions``: the decision log, queried and looked up by id, for auditors and admins.

Both answer 403 unless the caller holds a role that may read decisions
(``reader_roles``: auditor and admin, plus the bundle's ``data.statelock.audit_roles``,
so the same policy that decides requests decides who reads them; the console asks
the same). The list takes the filters of ``statelock audit query`` (and ``project``,
``revision``) as query parameters (400 for a bad one); the look-up answers the
decision as written (with its chain fields) and its completions, 404 for an id on no
record. Both read ``DECISIONS``: the decision index (every replica's decisions, each
marked with ``statelock.replica`` and ``statelock.chain``) or the log files.
"""

from __future__ import annotations

import logging

from aiohttp import web

from sidecar.appkeys import DECISIONS, ENGINE, IDENTIFIER
from sidecar.audit.query import filters_from_mapping
from sidecar.errors import BadRequest, Forbidden, NotFound, PolicyError
from sidecar.identity import Subject
from sidecar.policy.engine import PolicyEngine

log = logging.getLogger(__name__)

AUDIT_ROLES = frozenset({"auditor", "admin"})
AUDIT_ROLES_PATH = ("statelock", "audit_roles")


async def reader_roles(engine: PolicyEngine) -> frozenset[str]:
    """The roles that may read decisions: ``AUDIT_ROLES`` and the bundle's ``data.statelock.audit_roles``.

    A bundle whose list can't be read (an OPA that does not answer, a value that is
    not a list of strings) adds nothing: the built-in roles still read.
    """
    try:
        extra = await engine.data_at(AUDIT_ROLES_PATH)
    except PolicyError as exc:
        log.warning("data.statelock.audit_roles can't be read (%s); only %s read decisions", exc.message,
                    ", ".join(sorted(AUDIT_ROLES)))
        return AUDIT_ROLES
    if isinstance(extra, list) and all(isinstance(r, str) for r in extra):
        return AUDIT_ROLES | frozenset(extra)
    return AUDIT_ROLES


async def may_read(engine: PolicyEngine, subject: Subject) -> tuple[bool, frozenset[str]]:
    """Whether ``subject`` may read decisions, and the roles that may."""
    roles = await reader_roles(engine)
    return bool(roles & set(subject.roles)) or (subject.is_admin and "admin" in roles), roles


async def _auditor(request: web.Request) -> None:
    subject = await request.app[IDENTIFIER].identify(request.headers)
    allowed, roles = await may_read(request.app[ENGINE], subject)
    if not allowed:
        raise Forbidden(f"Reading decisions needs one of the roles {', '.join(sorted(roles))}.")


async def list_decisions(request: web.Request) -> web.Response:
    """Records matching ``decision_id, instance, project, subject, outcome, action, lock, revision, since,
    until, limit``, oldest first."""
    await _auditor(request)
    try:
        filters = filters_from_mapping(request.query)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    return web.json_response({"decisions": await request.app[DECISIONS].query(filters)})


async def show_decision(request: web.Request) -> web.Response:
    """``GET /statelock/v1/decisions/{id}`` (an id, or a unique prefix of 8 or more characters)."""
    await _auditor(request)
    wanted = request.match_info["decision_id"]
    try:
        found = await request.app[DECISIONS].find(wanted)
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
