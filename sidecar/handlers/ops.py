"""Health and readiness endpoints for operators and load balancers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.appkeys import ENFORCER, SHIPPER
from sidecar.errors import SidecarError
from sidecar.locks.model import LOCK_KINDS


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


async def ready(request: web.Request) -> web.Response:
    """``GET /statelock/v1/readyz``: 200 once a policy revision serves and the lock store answers.

    A rejected bundle reload does not make a replica unready: the previous revision
    keeps serving (``/health`` shows the error).
    """
    enforcer = request.app[ENFORCER]
    policy = enforcer.engine.health()
    serving = bool(enforcer.engine.revision) and (policy.get("engine") != "opa" or bool(policy.get("ok")))
    try:
        await enforcer.store.count()
        store_ok = True
    except SidecarError:
        store_ok = False
    ok = serving and store_ok
    return web.json_response({"ready": ok, "policy": policy, "lockstore": {"ok": store_ok}},
                             status=200 if ok else 503)


async def live(request: web.Request) -> web.Response:
    """``GET /statelock/v1/livez``: the process answers."""
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format."""
    enforcer = request.app[ENFORCER]
    m = enforcer.metrics
    policy = enforcer.engine.health()
    m.policy.info({"engine": str(policy.get("engine", "")), "revision": enforcer.engine.revision})
    try:
        by_kind = await enforcer.store.count_in_force_by_kind(datetime.now(UTC))
    except SidecarError:
        by_kind = {}
    for kind in LOCK_KINDS:
        m.active_locks.labels(kind).set(by_kind.get(kind, 0))
    if SHIPPER in request.app:
        for name, value in request.app[SHIPPER].stats().items():
            m.shipping.labels(name).set(value)
    return web.Response(body=m.render(), content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def add_routes(app: web.Application) -> None:
    """Register the ops routes."""
    app.router.add_get("/statelock/v1/health", health)
    app.router.add_get("/statelock/v1/readyz", ready)
    app.router.add_get("/statelock/v1/livez", live)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/statelock/v1/metrics", metrics)
