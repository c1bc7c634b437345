"""Health and readiness endpoints for operators and load balancers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sidecar.appkeys import ENFORCER


async def health(request: web.Request) -> web.Response:
    """``GET /statelock/v1/health``: each component's state; 503 when one is not ok."""
    enforcer = request.app[ENFORCER]
    policy = enforcer.engine.health()
    doc: dict[str, Any] = {
        "policy": policy,
        "audit": {"ok": True, "write_failures": enforcer.audit.failures},
        "mode": enforcer.cfg.mode,
        "backend": enforcer.cfg.backend.kind,
    }
    try:
        doc["lockstore"] = {"ok": True, "locks": await enforcer.store.count()}
    except Exception as exc:  # NOTE: health must answer whatever the store raises
        doc["lockstore"] = {"ok": False, "error": str(exc)}
    ok = bool(policy.get("ok")) and bool(doc["lockstore"]["ok"])
    doc["status"] = "ok" if ok else "degraded"
    return web.json_response(doc, status=200 if ok else 503)


async def live(request: web.Request) -> web.Response:
    """``GET /statelock/v1/livez``: the process answers."""
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    """Register the ops routes."""
    app.router.add_get("/statelock/v1/health", health)
    app.router.add_get("/statelock/v1/readyz", health)
    app.router.add_get("/statelock/v1/livez", live)
