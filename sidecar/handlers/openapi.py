"""The OpenAPI 3.1 document of Statelock's own routes (``/statelock/v1/`` and ``/metrics``).

Each operation lists the errors it can answer, and no other (a listing is never a
409); every answer Statelock makes of a decided call carries X-Statelock-Decision-Id.
``tests/unit/test_openapi.py`` validates the document and holds it to the routes the
application registers.
"""

from __future__ import annotations

from typing import Any

from sidecar import __version__
from sidecar.vocab import LOCK_KINDS, LOCK_LIST_STATES, LOCK_SCOPES, LOCK_SOURCES, LOCK_STATES

_FAULT = {"type": "object", "description": "Nova-shaped fault: {\"<faultName>\": {code, message}}",
          "additionalProperties": {"type": "object", "properties": {
              "code": {"type": "integer"}, "message": {"type": "string"}}}}
_SUBJECT = {"type": "object", "properties": {"user_id": {"type": "string"},
                                             "project_id": {"type": "string"},
                                             "roles": {"type": "array", "items": {"type": "string"}}}}
_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
_LOCK: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "scope", "target", "reason", "owner", "created_at", "state"],
    "properties": {
        "id": {"type": "string", "example": "lk-0f3c..."},
        "kind": {"type": "string", "enum": list(LOCK_KINDS)},
        "scope": {"type": "string", "enum": list(LOCK_SCOPES)},
        "target": {"type": "string"},
        "reason": {"type": "string"},
        "owner": _SUBJECT,
        "created_at": _TIME,
        "expires_at": _MAYBE_TIME,
        "state": {"type": "string", "enum": sorted({*LOCK_STATES, "expired"}),
                  "description": "pending/active/failed while in force (a suspend-lock's progress), "
                                 "expired or lifted once it no longer applies"},
        "source": {"type": "string", "enum": list(LOCK_SOURCES)},
        "note": {"type": "string"},
        "active": {"type": "boolean"},
        "expired": {"type": "boolean"},
        "lifted": {"type": "boolean"},
        "lifted_at": _MAYBE_TIME,
        "lifted_by": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
            "user_id": {"type": "string"}, "project_id": {"type": "string"}}}]},
        "lifted_decision_id": {"type": ["string", "null"]},
        "placed_decision_id": {"type": ["string", "null"]},
    },
}
_EVENT = {"type": "object", "properties": {
    "event": {"type": "string", "enum": ["created", "lifted", "expired"]}, "at": _TIME,
    "lock_id": {"type": "string"}, "kind": {"type": "string"}, "reason": {"type": "string"},
    "by": {"type": ["string", "null"]}, "decision_id": {"type": ["string", "null"]}}}
_RECORD = {"type": "object", "description": "A decision record as written (docs/audit.md); from the "
           "decision index, statelock.replica and statelock.chain say which replica's chain holds it",
           "additionalProperties": True}

_ERROR_TEXT = {
    400: "malformed request or filter", 401: "no identity", 403: "the policy or a role refuses",
    404: "no such lock, instance, target or decision", 409: "a lock forbids it",
    502: "the backend failed (the lock stays in force)", 503: "policy engine, lock store, identity or "
    "audit log unavailable (fails closed)", 504: "the backend did not answer in time"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answers(ok: str, description: str, schema: dict[str, Any] | None, *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {ok: {"description": description}}
    if schema is not None:
        out[ok]["content"] = _json(schema)
    for code in errors:
        out[str(code)] = {"description": _ERROR_TEXT[code],
                          "content": _json({"$ref": "#/components/schemas/Fault"})}
    return out


def _param(name: str, where: str = "query", schema: dict[str, Any] | None = None,
           description: str = "") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path",
            "schema": schema or {"type": "string"}, "description": description}


_LOCK_ONE = {"type": "object", "properties": {"lock": {"$ref": "#/components/schemas/Lock"}}}
_LOCK_LIST: dict[str, Any] = {"type": "object", "properties": {"locks": {"type": "array",
                                                         "items": {"$ref": "#/components/schemas/Lock"}}}}
_INSTANCE = _param("instance_id", "path", {"type": "string", "format": "uuid"})
_OPEN: dict[str, Any] = {"security": []}
_PROBE = {"type": "object", "additionalProperties": True}
_DECISION_FILTERS = [
    _param("decision_id", description="an id, or a prefix of 8 or more characters"),
    _param("instance"), _param("project", description="the instance's project (or the caller's)"),
    _param("subject", description="the caller's user id"),
    _param("revision", description="the policy revision it was decided under"),
    _param("outcome", schema={"type": "string", "enum": ["allow", "deny", "error"]}),
    _param("action", description="resume, os-stop, lock, suspend_lock, ..."),
    _param("lock", description="a lock the decision placed, lifted, saw or was blocked by"),
    _param("since", schema=_TIME), _param("until", schema=_TIME),
    _param("limit", schema={"type": "integer", "minimum": 1})]

PATHS: dict[str, Any] = {
    "/statelock/v1/locks": {
        "post": {
            "summary": "Place a lock (policy action lock)",
            "requestBody": {"required": True, "content": _json({
                "type": "object", "required": ["lock"], "properties": {"lock": {
                    "type": "object", "required": ["target", "reason"], "additionalProperties": False,
                    "properties": {"kind": _LOCK["properties"]["kind"], "scope": _LOCK["properties"]["scope"],
                                   "target": {"type": "string"},
                                   "reason": {"type": "string", "maxLength": 255},
                                   "expires_at": _MAYBE_TIME,
                                   "force": {"type": "boolean", "description": "place it although the "
                                             "target does not exist (yet); the record says so"}}}}})},
            "responses": _answers("201", "placed", _LOCK_ONE, 400, 401, 403, 404, 409, 503),
        },
        "get": {
            "summary": "List locks (in force by default)",
            "parameters": [_param("state", schema={"type": "string", "enum": list(LOCK_LIST_STATES)}),
                           *(_param(n) for n in ("scope", "target", "kind", "owner")),
                           _param("active", schema={"type": "string", "enum": ["true", "false"]},
                                  description="older spelling of state=active / state=expired")],
            "responses": _answers("200", "locks", _LOCK_LIST, 400, 401, 503),
        },
    },
    "/statelock/v1/locks/{lock_id}": {
        "parameters": [_param("lock_id", "path")],
        "get": {"summary": "Show a lock (in force, expired or lifted)",
                "responses": _answers("200", "the lock", _LOCK_ONE, 401, 404, 503)},
        "delete": {"summary": "Lift a lock (policy action unlock); its row stays as history",
                   "responses": _answers("204", "lifted", None, 401, 403, 404, 503)},
    },
    "/statelock/v1/instances/{instance_id}/locks": {
        "parameters": [_INSTANCE],
        "get": {"summary": "Every lock the instance had, and its created / lifted / expired timeline",
                "responses": _answers("200", "the timeline", {"type": "object", "properties": {
                    "instance_id": {"type": "string"}, "locks": _LOCK_LIST["properties"]["locks"],
                    "events": {"type": "array", "items": _EVENT}}}, 400, 401, 503)},
    },
    "/statelock/v1/instances/{instance_id}/suspend-lock": {
        "parameters": [_INSTANCE],
        "post": {"summary": "Lock (boot lock by default), then suspend the instance",
                 "requestBody": {"required": True, "content": _json({
                     "type": "object", "required": ["reason"], "properties": {
                         "reason": {"type": "string"}, "kind": _LOCK["properties"]["kind"]}})},
                 "responses": _answers("200", "locked and suspended", _LOCK_ONE,
                                       400, 401, 403, 404, 409, 502, 503, 504)},
    },
    "/statelock/v1/instances/{instance_id}/unlock-resume": {
        "parameters": [_INSTANCE],
        "post": {"summary": "Lift the suspend-locks and resume the instance",
                 "requestBody": {"required": False, "content": _json({"type": "object", "maxProperties": 0})},
                 "responses": _answers("200", "lifted and resumed", {"type": "object", "properties": {
                     "unlocked": _LOCK_LIST["properties"]["locks"]}}, 400, 401, 403, 404, 502, 503, 504)},
    },
    "/statelock/v1/decisions": {
        "get": {"summary": "Decision records matching the filters (auditor or admin)",
                "parameters": _DECISION_FILTERS,
                "responses": _answers("200", "records, oldest first", {"type": "object", "properties": {
                    "decisions": {"type": "array", "items": _RECORD}}}, 400, 401, 403, 503)},
    },
    "/statelock/v1/decisions/{decision_id}": {
        "parameters": [_param("decision_id", "path")],
        "get": {"summary": "One decision and its completion (auditor or admin)",
                "responses": _answers("200", "the record", {"type": "object", "properties": {
                    "decision": _RECORD, "completion": {"oneOf": [{"type": "null"}, _RECORD]},
                    "completions": {"type": "array", "items": _RECORD}}}, 400, 401, 403, 404, 503)},
    },
    "/statelock/v1/health": {"get": {"summary": "Component health, policy revision, chain state", **_OPEN,
                                     "responses": {"200": {"description": "healthy (warnings listed)",
                                                           "content": _json(_PROBE)},
                                                   "503": {"description": "degraded",
                                                           "content": _json(_PROBE)}}}},
    "/statelock/v1/readyz": {"get": {"summary": "Ready for traffic (503 while stopping)", **_OPEN,
                                     "responses": {"200": {"description": "ready", "content": _json(_PROBE)},
                                                   "503": {"description": "not ready or draining",
                                                           "content": _json(_PROBE)}}}},
    "/statelock/v1/livez": {"get": {"summary": "The process answers", **_OPEN,
                                    "responses": {"200": {"description": "alive", "content": _json(_PROBE)}}}},
    "/statelock/v1/openapi.json": {"get": {"summary": "This document", **_OPEN,
                                           "responses": {"200": {"description": "OpenAPI 3.1",
                                                                 "content": _json(_PROBE)}}}},
}
_METRICS = {"get": {"summary": "Prometheus metrics (text exposition format)", **_OPEN,
                    "responses": {"200": {"description": "metrics",
                                          "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
PATHS["/metrics"] = _METRICS
PATHS["/statelock/v1/metrics"] = _METRICS

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Statelock API", "version": __version__,
             "description": "Instance, project and host locks enforced in front of Nova, and the "
                            "decision log. Every decided call is recorded; its answers carry "
                            "X-Statelock-Decision-Id, naming the record."},
    "components": {
        "schemas": {"Lock": _LOCK, "Fault": _FAULT},
        "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
    },
    "security": [{"token": []}],
    "paths": PATHS,
}
for _path, _item in PATHS.items():
    for _op in _item.values():
        if isinstance(_op, dict) and "responses" in _op and _path.startswith("/statelock/v1/") \
                and _op.get("security") != []:
            for _answer in _op["responses"].values():
                _answer.setdefault("headers", {"X-Statelock-Decision-Id": {
                    "description": "the decision record of this call (absent for reads)",
                    "schema": {"type": "string"}}})
