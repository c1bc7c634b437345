"""Health and readiness endpoints for operators and load balancers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sidecar.appkeys import AUDIT, CONFIG, DECISIONS, ENGINE, METRICS, SHIPPER, STORE, WORKER
from sidecar.audit.log import JsonlAuditLog
from sidecar.errors import SidecarError
from sidecar.handlers.lifecycle import STATE
from sidecar.vocab import LOCK_KINDS


async def health(request: web.Request) -> web.Response:
    """``GET /statelock/v1/health``: each component's state; 503 when one can't do its job.

    Degraded (503): no policy revision decides, the lock store does not answer, or the
    decision log's chain is broken. A rejected bundle reload, while the previous
    revision keeps deciding, and records that could not be written are ``warnings``.
    ``worker`` names the worker that answered (``index`` of ``count``, its ``pid``).
    """
    cfg = request.app[CONFIG]
    policy = request.app[ENGINE].health()
    doc: dict[str, Any] = {
        "policy": policy,
        "audit": _audit_health(request.app[AUDIT]),
        "mode": cfg.mode,
        "backend": cfg.backend.kind,
        "decisions": request.app[DECISIONS].describe(),
        "worker": request.app[WORKER].describe(),
    }
    try:
        by_kind = await request.app[STORE].count_in_force_by_kind(datetime.now(UTC))
        doc["lockstore"] = {"ok": True, "locks": sum(by_kind.values()),
                            "locks_by_kind": {k: by_kind.get(k, 0) for k in LOCK_KINDS}}
    except Exception as exc:  # NOTE: health must answer whatever the store raises
        doc["lockstore"] = {"ok": False, "error": str(exc)}
    serving = _policy_serving(request.app[ENGINE].revision, policy)
    ok = serving and bool(doc["lockstore"]["ok"]) and bool(doc["audit"]["ok"])
    warnings = []
    if serving and policy.get("last_error"):
        warnings.append(f"policy reload rejected, revision {policy.get('revision')} keeps serving: "
                        f"{policy.get('last_error')}")
    if doc["audit"]["write_failures"]:
        warnings.append(f"{doc['audit']['write_failures']} decision records could not be written")
    doc["status"] = "ok" if ok else "degraded"
    doc["warnings"] = warnings
    return web.json_response(doc, status=200 if ok else 503)


def _policy_serving(revision: str, policy: dict[str, Any]) -> bool:
    """A revision decides (a rejected reload leaves the last good one serving; OPA must answer)."""
    return bool(revision) and (policy.get("engine") != "opa" or bool(policy.get("ok")))


def _audit_health(audit: JsonlAuditLog) -> dict[str, Any]:
    """The decision log's part of /health: its chain (see ``JsonlAuditLog.chain_state``)."""
    chain = audit.chain_state()
    return {"ok": chain.get("broken_at") is None, "write_failures": audit.failures, "chain": chain}


async def ready(request: web.Request) -> web.Response:
    """``GET /statelock/v1/readyz``: 200 once a policy revision serves and the lock store answers.

    A rejected bundle reload does not make a replica unready: the previous revision
    keeps serving (``/health`` shows the error). A server that is stopping (draining)
    answers 503 at once, while its requests in flight finish.
    """
    engine = request.app[ENGINE]
    policy = engine.health()
    serving = _policy_serving(engine.revision, policy)
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
