"""Statelock's own lock API under ``/statelock/v1/``.

Every call is identified like a Nova call (same identity mode), goes through the
policy through ``LockService`` and is recorded. Errors use Nova's fault shape so
one client library handles both APIs. Reading locks needs a role in
``READ_ROLES``; anyone else sees only the locks placed from their own project.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.appkeys import ENFORCER
from sidecar.classify import parse_json_body
from sidecar.errors import BadRequest, NotFound, SidecarError
from sidecar.faults import fault_body
from sidecar.handlers.openapi import OPENAPI
from sidecar.identity import Subject
from sidecar.locks.model import LOCK_KINDS, LOCK_SCOPES, Lock, LockFilter, parse_rfc3339
from sidecar.recorder import DECISION_HEADER, Ctx

PREFIX = "/statelock/v1"
READ_ROLES = frozenset({"admin", "auditor", "billing", "legal", "security", "statelock-override"})


def _error(exc: SidecarError, decision_id: str | None = None) -> web.Response:
    resp = web.Response(status=exc.status, body=fault_body(exc.status, exc.message),
                        content_type="application/json")
    for name, value in exc.headers:
        resp.headers.add(name, value)
    if decision_id:
        resp.headers[DECISION_HEADER] = decision_id
    return resp


def _json(doc: Any, status: int = 200, decision_id: str | None = None) -> web.Response:
    resp = web.json_response(doc, status=status)
    if decision_id:
        resp.headers[DECISION_HEADER] = decision_id
    return resp


async def _subject(request: web.Request) -> Subject:
    return await request.app[ENFORCER].identifier.identify(request.headers)


def _ctx(request: web.Request) -> Ctx:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return Ctx(request.method, request.path, str(peer[0]) if peer else "")


async def _body(request: web.Request) -> dict[str, Any]:
    enforcer = request.app[ENFORCER]
    raw = await request.read()
    doc = parse_json_body(raw, request.headers.get("Content-Type", ""),
                          enforcer.cfg.limits.max_json_depth)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise BadRequest("The request body must be a JSON object.")
    return doc


def _str_field(doc: dict[str, Any], key: str, required: bool = True, max_len: int = 255) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise BadRequest(f"{key} must be a string of 1 to {max_len} characters")
    return value


def _lock_doc(lock: Lock) -> dict[str, Any]:
    return lock.as_json(datetime.now(UTC))


async def create_lock(request: web.Request) -> web.Response:
    """``POST /statelock/v1/locks {"lock": {kind, scope, target, reason, expires_at}}`` -> 201."""
    ctx = _ctx(request)
    try:
        subject = await _subject(request)
        body = await _body(request)
        spec = body.get("lock")
        if not isinstance(spec, dict) or set(body) != {"lock"}:
            raise BadRequest('The body must be {"lock": {...}}.')
        unknown = set(spec) - {"kind", "scope", "target", "reason", "expires_at"}
        if unknown:
            raise BadRequest(f"Unknown lock field(s): {', '.join(sorted(unknown))}")
        kind = spec.get("kind", "state")
        scope = spec.get("scope", "instance")
        if kind not in LOCK_KINDS or scope not in LOCK_SCOPES:
            raise BadRequest(f"kind must be one of {', '.join(LOCK_KINDS)} and scope one of "
                             f"{', '.join(LOCK_SCOPES)}")
        target = _str_field(spec, "target")
        if scope == "instance":
            target = _canonical_instance(target)
        reason = _str_field(spec, "reason")
        expires_at = None
        if spec.get("expires_at") is not None:
            try:
                expires_at = parse_rfc3339(str(spec["expires_at"]))
            except ValueError as exc:
                raise BadRequest(f"expires_at is not an RFC 3339 time with a zone: {exc}") from exc
        lock = await request.app[ENFORCER].locks.place(ctx, subject, kind, scope, target, reason,
                                                       expires_at)
    except SidecarError as exc:
        return _error(exc, ctx.decision_id)
    return _json({"lock": _lock_doc(lock)}, 201, ctx.decision_id)


def _canonical_instance(target: str) -> str:
    try:
        return str(uuid.UUID(target))
    except ValueError:
        raise BadRequest(f"target {target!r} is not an instance UUID") from None


def _visible(subject: Subject, lock: Lock) -> bool:
    return bool(READ_ROLES & set(subject.roles)) or lock.owner.project_id == subject.project_id


async def list_locks(request: web.Request) -> web.Response:
    """``GET /statelock/v1/locks?scope&target&kind&owner&active``."""
    try:
        subject = await _subject(request)
        q = request.query
        unknown = set(q) - {"scope", "target", "kind", "owner", "active"}
        if unknown:
            raise BadRequest(f"Unknown filter(s): {', '.join(sorted(unknown))}")
        active: bool | None = None
        if "active" in q:
            if q["active"].lower() not in ("true", "false"):
                raise BadRequest("active must be true or false")
            active = q["active"].lower() == "true"
        filters = LockFilter(scope=q.get("scope"), target=q.get("target"), kind=q.get("kind"),
                             owner=q.get("owner"),
                             state="all" if active is None else "active" if active else "expired")
        now = datetime.now(UTC)
        locks = await request.app[ENFORCER].store.find(filters, now)
    except SidecarError as exc:
        return _error(exc)
    # NOTE: lifted locks stay hidden here until the API gains ?state= (issue 17).
    return _json({"locks": [lk.as_json(now) for lk in locks if _visible(subject, lk) and not lk.lifted]})


async def show_lock(request: web.Request) -> web.Response:
    """``GET /statelock/v1/locks/{id}``."""
    try:
        subject = await _subject(request)
        lock = await request.app[ENFORCER].store.get(request.match_info["lock_id"])
        if lock is None or lock.lifted or not _visible(subject, lock):
            raise NotFound(f"Lock {request.match_info['lock_id']} could not be found.")
    except SidecarError as exc:
        return _error(exc)
    return _json({"lock": _lock_doc(lock)})


async def delete_lock(request: web.Request) -> web.Response:
    """``DELETE /statelock/v1/locks/{id}`` -> 204 (policy action ``unlock``)."""
    ctx = _ctx(request)
    try:
        subject = await _subject(request)
        await request.app[ENFORCER].locks.lift(ctx, subject, request.match_info["lock_id"])
    except SidecarError as exc:
        return _error(exc, ctx.decision_id)
    resp = web.Response(status=204)
    resp.headers[DECISION_HEADER] = ctx.decision_id
    return resp


async def suspend_lock(request: web.Request) -> web.Response:
    """``POST /statelock/v1/instances/{id}/suspend-lock {"reason", "kind"}``."""
    ctx = _ctx(request)
    try:
        subject = await _subject(request)
        body = await _body(request)
        unknown = set(body) - {"reason", "kind"}
        if unknown:
            raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))}")
        instance_id = _canonical_instance(request.match_info["instance_id"])
        kind = body.get("kind", "boot")
        if kind not in LOCK_KINDS:
            raise BadRequest(f"kind must be one of {', '.join(LOCK_KINDS)}")
        lock = await request.app[ENFORCER].locks.suspend_lock(
            ctx, subject, instance_id, _str_field(body, "reason"), kind)
    except SidecarError as exc:
        return _error(exc, ctx.decision_id)
    return _json({"lock": _lock_doc(lock)}, 200, ctx.decision_id)


async def unlock_resume(request: web.Request) -> web.Response:
    """``POST /statelock/v1/instances/{id}/unlock-resume {}``."""
    ctx = _ctx(request)
    try:
        subject = await _subject(request)
        body = await _body(request)
        if body:
            raise BadRequest("unlock-resume takes an empty body")
        instance_id = _canonical_instance(request.match_info["instance_id"])
        lifted = await request.app[ENFORCER].locks.unlock_resume(ctx, subject, instance_id)
    except SidecarError as exc:
        return _error(exc, ctx.decision_id)
    return _json({"unlocked": [_lock_doc(lk) for lk in lifted]}, 200, ctx.decision_id)


async def openapi(request: web.Request) -> web.Response:
    """``GET /statelock/v1/openapi.json``."""
    return web.Response(text=json.dumps(OPENAPI, indent=2), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """Register the lock API."""
    app.router.add_post(f"{PREFIX}/locks", create_lock)
    app.router.add_get(f"{PREFIX}/locks", list_locks)
    app.router.add_get(f"{PREFIX}/locks/{{lock_id}}", show_lock)
    app.router.add_delete(f"{PREFIX}/locks/{{lock_id}}", delete_lock)
    app.router.add_post(f"{PREFIX}/instances/{{instance_id}}/suspend-lock", suspend_lock)
    app.router.add_post(f"{PREFIX}/instances/{{instance_id}}/unlock-resume", unlock_resume)
    app.router.add_get(f"{PREFIX}/openapi.json", openapi)
