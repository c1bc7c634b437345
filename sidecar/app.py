"""Builds the aiohttp Application: components opened and closed in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.appkeys import CONFIG, ENFORCER
from sidecar.audit.log import JsonlAuditLog
from sidecar.backends.base import Backend
from sidecar.classify import load_route_table
from sidecar.config import Config
from sidecar.enforce import Enforcer
from sidecar.handlers import locks_api, nova, ops
from sidecar.identity import HeaderIdentifier, Identifier
from sidecar.locks.store import open_lock_store
from sidecar.policy.engine import create_engine

log = logging.getLogger(__name__)


def create_identifier(cfg: Config) -> Identifier:
    """The identifier for the configured identity mode (not yet started)."""
    return HeaderIdentifier(cfg.identity.mode, cfg.identity.admin_role)


def create_backend(cfg: Config, identifier: Identifier) -> Backend:
    """The backend the config names (not yet started)."""
    if cfg.backend.kind == "upstream":
        from sidecar.backends.upstream import UpstreamBackend

        return UpstreamBackend(cfg.backend, cfg.target.host_ttl_s)
    from sidecar.backends.driver import DriverBackend

    return DriverBackend(cfg.backend, identifier, cfg.identity.admin_role)


async def _components(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    table = load_route_table(cfg.classifier.actions)
    store = open_lock_store(cfg.lockstore.url)
    engine = create_engine(cfg.policy)
    audit = JsonlAuditLog(cfg.audit.path, cfg.audit.flush_window_ms, cfg.audit.fsync)
    identifier = create_identifier(cfg)
    backend = create_backend(cfg, identifier)
    async with contextlib.AsyncExitStack() as stack:
        await store.open()
        stack.push_async_callback(store.close)
        await engine.start()
        stack.push_async_callback(engine.close)
        await audit.open()
        stack.push_async_callback(audit.close)
        await identifier.start()
        stack.push_async_callback(identifier.close)
        await backend.start()
        stack.push_async_callback(backend.close)
        enforcer = Enforcer(cfg, table, backend, engine, store, audit, identifier)
        app[ENFORCER] = enforcer
        # NOTE: pending suspend-locks are finished in the background; their locks apply already.
        reconcile = asyncio.create_task(enforcer.locks.reconcile(), name="statelock-reconcile")
        stack.callback(reconcile.cancel)
        log.info("statelock ready: backend=%s policy=%s revision=%s mode=%s",
                 cfg.backend.kind, engine.name, engine.revision, cfg.mode)
        yield


def create_app(cfg: Config) -> web.Application:
    """The Statelock application for a validated Config."""
    app = web.Application(client_max_size=cfg.limits.max_body_bytes)
    app[CONFIG] = cfg
    app.cleanup_ctx.append(_components)
    ops.add_routes(app)
    locks_api.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", nova.nova_handler)
    return app
