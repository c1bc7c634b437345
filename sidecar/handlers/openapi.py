"""The OpenAPI 3.1 document of ``/statelock/v1/``."""

from __future__ import annotations

from typing import Any

from sidecar import __version__

_FAULT = {"type": "object", "description": "Nova-shaped fault: {\"<faultName>\": {code, message}}",
          "additionalProperties": {"type": "object", "properties": {
              "code": {"type": "integer"}, "message": {"type": "string"}}}}
_OWNER = {"type": "object", "properties": {"user_id": {"type": "string"},
                                           "project_id": {"type": "string"},
                                           "roles": {"type": "array", "items": {"type": "string"}}}}
_LOCK: dict[str, Any] = {
    "type": "object",
    "required": ["id", "kind", "scope", "target", "reason", "owner", "created_at"],
    "properties": {
        "id": {"type": "string", "example": "lk-0f3c..."},
        "kind": {"type": "string", "enum": ["state", "boot", "delete"]},
        "scope": {"type": "string", "enum": ["instance", "project", "host"]},
        "target": {"type": "string"},
        "reason": {"type": "string"},
        "owner": _OWNER,
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "state": {"type": "string", "enum": ["active", "pending", "failed"]},
        "source": {"type": "string", "enum": ["nova", "api", "suspend-lock"]},
        "note": {"type": "string"},
        "active": {"type": "boolean"},
        "expired": {"type": "boolean"},
    },
}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


_ERRORS = {str(code): _resp(text, {"$ref": "#/components/schemas/Fault"}) for code, text in (
    (400, "malformed request"), (401, "no identity"), (403, "the policy refuses (a role problem)"),
    (404, "no such lock or instance"), (409, "a lock forbids it"),
    (503, "policy engine, lock store or audit log unavailable (fails closed)"))}
_ID = {"name": "X-Statelock-Decision-Id", "in": "header", "required": False,
       "schema": {"type": "string"}}
_LOCK_RESPONSE = {"type": "object", "properties": {"lock": {"$ref": "#/components/schemas/Lock"}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Statelock lock API", "version": __version__,
             "description": "Instance, project and host locks enforced in front of Nova. Every "
                            "call is decided by the policy bundle and recorded; responses carry "
                            "X-Statelock-Decision-Id."},
    "components": {
        "schemas": {"Lock": _LOCK, "Fault": _FAULT},
        "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
    },
    "security": [{"token": []}],
    "paths": {
        "/statelock/v1/locks": {
            "post": {
                "summary": "Place a lock",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["lock"], "properties": {"lock": {
                        "type": "object", "required": ["target", "reason"],
                        "properties": {"kind": _LOCK["properties"]["kind"],
                                       "scope": _LOCK["properties"]["scope"],
                                       "target": {"type": "string"},
                                       "reason": {"type": "string", "maxLength": 255},
                                       "expires_at": _LOCK["properties"]["expires_at"]}}}}}}},
                "responses": {"201": _resp("placed", _LOCK_RESPONSE), **_ERRORS},
            },
            "get": {
                "summary": "List locks",
                "parameters": [{"name": n, "in": "query", "required": False,
                                "schema": {"type": "string"}}
                               for n in ("scope", "target", "kind", "owner", "active")],
                "responses": {"200": _resp("locks", {"type": "object", "properties": {
                    "locks": {"type": "array", "items": {"$ref": "#/components/schemas/Lock"}}}}),
                    **_ERRORS},
            },
        },
        "/statelock/v1/locks/{lock_id}": {
            "parameters": [{"name": "lock_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "get": {"summary": "Show a lock", "responses": {"200": _resp("the lock", _LOCK_RESPONSE),
                                                            **_ERRORS}},
            "delete": {"summary": "Lift a lock (policy action unlock)",
                       "responses": {"204": _resp("lifted"), **_ERRORS}},
        },
        "/statelock/v1/instances/{instance_id}/suspend-lock": {
            "parameters": [{"name": "instance_id", "in": "path", "required": True,
                            "schema": {"type": "string", "format": "uuid"}}],
            "post": {"summary": "Lock (boot lock by default), then suspend the instance",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object", "required": ["reason"], "properties": {
                             "reason": {"type": "string"},
                             "kind": _LOCK["properties"]["kind"]}}}}},
                     "responses": {"200": _resp("locked and suspended", _LOCK_RESPONSE),
                                   "502": _resp("the suspend failed; the lock stays in force"),
                                   "504": _resp("the suspend timed out; the lock stays in force"),
                                   **_ERRORS}},
        },
        "/statelock/v1/instances/{instance_id}/unlock-resume": {
            "parameters": [{"name": "instance_id", "in": "path", "required": True,
                            "schema": {"type": "string", "format": "uuid"}}],
            "post": {"summary": "Lift the suspend-locks and resume the instance",
                     "responses": {"200": _resp("unlocked and resumed"), **_ERRORS}},
        },
        "/statelock/v1/health": {"get": {"summary": "Component health and policy revision",
                                         "security": [],
                                         "responses": {"200": _resp("healthy"),
                                                       "503": _resp("degraded")}}},
    },
}
for _path in OPENAPI["paths"].values():
    for _op in _path.values():
        if isinstance(_op, dict) and "responses" in _op:
            for _r in _op["responses"].values():
                _r.setdefault("headers", {"X-Statelock-Decision-Id": {"schema": _ID["schema"]}})
