"""Statelock's own lock API under ``/statelock/v1/``.

Every call is identified like a Nova call (same identity mode), goes through the
policy through ``LockService`` and is recorded, refusals included
(``Recorder.refusing``). Errors are raised and answered by the error boundary in
Nova's fault shape, so one client library handles both APIs. Reading locks needs a role in
``READ_ROLES``; anyone else sees only the locks placed from their own project.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.appkeys import CONFIG, IDENTIFIER, LOCKS, RECORDER, STORE
from sidecar.classify import parse_json_body
from sidecar.errors import BadRequest, NotFound
from sidecar.handlers.openapi import OPENAPI
from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter, parse_rfc3339, rfc3339
from sidecar.recorder import DECISION_HEADER, Ctx
from sidecar.vocab import LOCK_KINDS, LOCK_LIST_STATES, LOCK_SCOPES, one_of

PREFIX = "/statelock/v1"
READ_ROLES = frozenset({"admin", "auditor", "billing", "legal", "security", "statelock-override"})


def _json(doc: Any, status: int = 200, ctx: Ctx | None = None) -> web.Response:
    resp = web.json_response(doc, status=status)
    if ctx is not None and ctx.recorded:
        resp.headers[DECISION_HEADER] = ctx.decision_id
    return resp


async def _subject(request: web.Request) -> Subject:
    return await request.app[IDENTIFIER].identify(request.headers)


def _ctx(request: web.Request) -> Ctx:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return Ctx(request.method, request.path, str(peer[0]) if peer else "")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    doc = parse_json_body(raw, request.headers.get("Content-Type", ""),
                          request.app[CONFIG].limits.max_json_depth)
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
    async with request.app[RECORDER].refusing(ctx):
        subject = await _subject(request)
        body = await _body(request)
        spec = body.get("lock")
        if not isinstance(spec, dict) or set(body) != {"lock"}:
            raise BadRequest('The body must be {"lock": {...}}.')
        unknown = set(spec) - {"kind", "scope", "target", "reason", "expires_at", "force"}
        if unknown:
            raise BadRequest(f"Unknown lock field(s): {', '.join(sorted(unknown))}")
        kind = one_of(LOCK_KINDS, spec.get("kind", "state"), "lock.kind")
        scope = one_of(LOCK_SCOPES, spec.get("scope", "instance"), "lock.scope")
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
        force = spec.get("force", False)
        if not isinstance(force, bool):
            raise BadRequest("lock.force must be true or false")
        lock = await request.app[LOCKS].place(ctx, subject, kind, scope, target, reason, expires_at,
                                              force)
    return _json({"lock": _lock_doc(lock)}, 201, ctx)


def _canonical_instance(target: str) -> str:
    try:
        return str(uuid.UUID(target))
    except ValueError:
        raise BadRequest(f"target {target!r} is not an instance UUID") from None


def _visible(subject: Subject, lock: Lock) -> bool:
    return bool(READ_ROLES & set(subject.roles)) or lock.owner.project_id == subject.project_id


async def list_locks(request: web.Request) -> web.Response:
    """``GET /statelock/v1/locks?state&scope&target&kind&owner``: ``state`` active (default),
    expired, lifted or all; ``active=true|false`` is the older spelling of active/expired."""
    subject = await _subject(request)
    q = request.query
    unknown = set(q) - {"state", "scope", "target", "kind", "owner", "active"}
    if unknown:
        raise BadRequest(f"Unknown filter(s): {', '.join(sorted(unknown))}")
    state = one_of(LOCK_LIST_STATES, q.get("state", "active"), "state")
    if "active" in q:
        if q["active"].lower() not in ("true", "false") or "state" in q:
            raise BadRequest("active must be true or false, and not given with state")
        state = "active" if q["active"].lower() == "true" else "expired"
    filters = LockFilter(scope=q.get("scope"), target=q.get("target"), kind=q.get("kind"),
                         owner=q.get("owner"), state=state)
    now = datetime.now(UTC)
    locks = await request.app[STORE].find(filters, now)
    return _json({"locks": [lk.as_json(now) for lk in locks if _visible(subject, lk)]})


async def show_lock(request: web.Request) -> web.Response:
    """``GET /statelock/v1/locks/{id}``: in force, expired or lifted (history is kept)."""
    subject = await _subject(request)
    lock = await request.app[STORE].get(request.match_info["lock_id"])
    if lock is None or not _visible(subject, lock):
        raise NotFound(f"Lock {request.match_info['lock_id']} could not be found.")
    return _json({"lock": _lock_doc(lock)})


async def instance_history(request: web.Request) -> web.Response:
    """``GET /statelock/v1/instances/{id}/locks``: every lock the instance had, and its timeline.

    ``events`` lists each lock's ``created``, ``lifted`` and ``expired`` moments, oldest
    first, with who and why (and the decision that placed or lifted it).
    """
    subject = await _subject(request)
    instance_id = _canonical_instance(request.match_info["instance_id"])
    now = datetime.now(UTC)
    locks = [lk for lk in await request.app[STORE].find(
        LockFilter(scope="instance", target=instance_id), now) if _visible(subject, lk)]
    return _json({"instance_id": instance_id, "locks": [lk.as_json(now) for lk in locks],
                  "events": timeline(locks, now)})


def timeline(locks: list[Lock], now: datetime) -> list[dict[str, Any]]:
    """The created / lifted / expired events of ``locks`` in time order."""
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    for lk in locks:
        base = {"lock_id": lk.id, "kind": lk.kind, "reason": lk.reason}
        events.append((lk.created_at, 0, {**base, "event": "created", "at": rfc3339(lk.created_at),
                                          "by": lk.owner.user_id, "decision_id": lk.placed_decision_id}))
        if lk.lifted_at is not None:
            events.append((lk.lifted_at, 1, {**base, "event": "lifted", "at": rfc3339(lk.lifted_at),
                                             "by": lk.lifted_by.user_id if lk.lifted_by else None,
                                             "decision_id": lk.lifted_decision_id}))
        elif lk.expires_at is not None and lk.expires_at <= now:
            events.append((lk.expires_at, 2, {**base, "event": "expired", "at": rfc3339(lk.expires_at),
                                              "by": None, "decision_id": None}))
    return [e for _, _, e in sorted(events, key=lambda item: (item[0], item[1], item[2]["lock_id"]))]


async def delete_lock(request: web.Request) -> web.Response:
    """``DELETE /statelock/v1/locks/{id}`` -> 204 (policy action ``unlock``)."""
    ctx = _ctx(request)
    async with request.app[RECORDER].refusing(ctx):
        subject = await _subject(request)
        await request.app[LOCKS].lift(ctx, subject, request.match_info["lock_id"])
    resp = web.Response(status=204)
    if ctx.recorded:
        resp.headers[DECISION_HEADER] = ctx.decision_id
    return resp


async def suspend_lock(request: web.Request) -> web.Response:
    """``POST /statelock/v1/instances/{id}/suspend-lock {"reason", "kind"}``."""
    ctx = _ctx(request)
    async with request.app[RECORDER].refusing(ctx):
        subject = await _subject(request)
        body = await _body(request)
        unknown = set(body) - {"reason", "kind"}
        if unknown:
            raise BadRequest(f"Unknown field(s): {', '.join(sorted(unknown))}")
        instance_id = _canonical_instance(request.match_info["instance_id"])
        kind = one_of(LOCK_KINDS, body.get("kind", "boot"), "kind")
        lock = await request.app[LOCKS].suspend_lock(ctx, subject, instance_id,
                                                     _str_field(body, "reason"), kind)
    return _json({"lock": _lock_doc(lock)}, 200, ctx)


async def unlock_resume(request: web.Request) -> web.Response:
    """``POST /statelock/v1/instances/{id}/unlock-resume {}``."""
    ctx = _ctx(request)
    async with request.app[RECORDER].refusing(ctx):
        subject = await _subject(request)
        body = await _body(request)
        if body:
            raise BadRequest("unlock-resume takes an empty body")
        instance_id = _canonical_instance(request.match_info["instance_id"])
        lifted = await request.app[LOCKS].unlock_resume(ctx, subject, instance_id)
    return _json({"unlocked": [_lock_doc(lk) for lk in lifted]}, 200, ctx)


async def openapi(request: web.Request) -> web.Response:
    """``GET /statelock/v1/openapi.json``."""
    return web.Response(text=json.dumps(OPENAPI, indent=2), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """Register the lock API."""
    app.router.add_post(f"{PREFIX}/locks", create_lock)
    app.router.add_get(f"{PREFIX}/locks", list_locks)
    app.router.add_get(f"{PREFIX}/locks/{{lock_id}}", show_lock)
    app.router.add_delete(f"{PREFIX}/locks/{{lock_id}}", delete_lock)
    app.router.add_get(f"{PREFIX}/instances/{{instance_id}}/locks", instance_history)
    app.router.add_post(f"{PREFIX}/instances/{{instance_id}}/suspend-lock", suspend_lock)
    app.router.add_post(f"{PREFIX}/instances/{{instance_id}}/unlock-resume", unlock_resume)
    app.router.add_get(f"{PREFIX}/openapi.json", openapi)
