"""Health and readiness endpoints for operators and load balancers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.appkeys import AUDIT, CONFIG, ENGINE, METRICS, SHIPPER, STORE
from sidecar.errors import SidecarError
from sidecar.handlers.lifecycle import STATE
from sidecar.vocab import LOCK_KINDS


async def health(request: web.Request) -> web.Response:
    """``GET /statelock/v1/health``: each component's state; 503 when one is not ok."""
    cfg = request.app[CONFIG]
    policy = request.app[ENGINE].health()
    doc: dict[str, Any] = {
        "policy": policy,
        "audit": {"ok": True, "write_failures": request.app[AUDIT].failures},
        "mode": cfg.mode,
        "backend": cfg.backend.kind,
    }
    try:
        doc["lockstore"] = {"ok": True, "locks": await request.app[STORE].count()}
    except Exception as exc:  # NOTE: health must answer whatever the store raises
        doc["lockstore"] = {"ok": False, "error": str(exc)}
    ok = bool(policy.get("ok")) and bool(doc["lockstore"]["ok"])
    doc["status"] = "ok" if ok else "degraded"
    return web.json_response(doc, status=200 if ok else 503)


async def ready(request: web.Request) -> web.Response:
    """``GET /statelock/v1/readyz``: 200 once a policy revision serves and the lock store answers.

    A rejected bundle reload does not make a replica unready: the previous revision
    keeps serving (``/health`` shows the error). A server that is stopping (draining)
    answers 503 at once, while its requests in flight finish.
    """
    engine = request.app[ENGINE]
    policy = engine.health()
    serving = bool(engine.revision) and (policy.get("engine") != "opa" or bool(policy.get("ok")))
    try:
        await request.app[STORE].count()
        store_ok = True
    except SidecarError:
        store_ok = False
    draining = request.app[STATE].draining
    ok = serving and store_ok and not draining
    doc: dict[str, Any] = {"ready": ok, "policy": policy, "lockstore": {"ok": store_ok}}
    if draining:
        doc["draining"] = True
    return web.json_response(doc, status=200 if ok else 503)


async def live(request: web.Request) -> web.Response:
    """``GET /statelock/v1/livez``: the process answers."""
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format."""
    m = request.app[METRICS]
    engine = request.app[ENGINE]
    policy = engine.health()
    m.policy.info({"engine": str(policy.get("engine", "")), "revision": engine.revision})
    try:
        by_kind = await request.app[STORE].count_in_force_by_kind(datetime.now(UTC))
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
