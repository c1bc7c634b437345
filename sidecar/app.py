"""Builds the aiohttp Application: components opened and closed in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.appkeys import CONFIG, ENFORCER, SHIPPER
from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.shipping import DecisionShipper
from sidecar.backends.base import Backend
from sidecar.classify import load_route_table
from sidecar.config import Config
from sidecar.enforce import Enforcer
from sidecar.guard import Guard, InstanceGuard
from sidecar.handlers import decisions_api, locks_api, nova, ops
from sidecar.identity import HeaderIdentifier, Identifier
from sidecar.locks.pg_guard import NoGuard, PgAdvisoryGuard
from sidecar.locks.postgres import PostgresLockStore
from sidecar.locks.store import LockStore, open_lock_store
from sidecar.policy.engine import create_engine

log = logging.getLogger(__name__)


def create_identifier(cfg: Config) -> Identifier:
    """The identifier for the configured identity mode (not yet started)."""
    if cfg.identity.mode == "keystone":
        from sidecar.keystone import KeystoneIdentifier

        return KeystoneIdentifier(cfg.identity.keystone, cfg.identity.admin_role)
    return HeaderIdentifier(cfg.identity.mode, cfg.identity.admin_role)


def create_backend(cfg: Config, identifier: Identifier) -> Backend:
    """The backend the config names (not yet started)."""
    if cfg.backend.kind == "upstream":
        from sidecar.backends.upstream import UpstreamBackend

        service_auth = None
        if cfg.identity.mode == "keystone" and not cfg.backend.service_auth.token:
            from sidecar.keystone import KeystoneIdentifier

            assert isinstance(identifier, KeystoneIdentifier)
            service_auth = identifier.service
        return UpstreamBackend(cfg.backend, cfg.target.host_ttl_s, service_auth)
    from sidecar.backends.driver import DriverBackend

    return DriverBackend(cfg.backend, identifier, cfg.identity.admin_role)


def create_guard(cfg: Config, store: LockStore) -> Guard:
    """The guard the store calls for: advisory locks on PostgreSQL (replicas), else in-process."""
    if cfg.lockstore.guard == "none":
        log.warning("lockstore.guard is 'none': actions are NOT ordered against lock changes (tests only)")
        return NoGuard()
    if isinstance(store, PostgresLockStore):
        return PgAdvisoryGuard(store, cfg.lockstore.guard_timeout_s)
    return InstanceGuard()


async def _start_shipper(cfg: Config, stack: contextlib.AsyncExitStack) -> DecisionShipper | None:
    ship = cfg.audit.shipping
    if ship.url is None:
        return None
    shipper = DecisionShipper(ship.url, ship.spool_dir, max_batch_records=ship.max_batch_records,
                              max_spool_bytes=ship.max_spool_bytes, linger_s=ship.linger_s,
                              timeout_s=ship.timeout_s)
    await shipper.start()
    stack.push_async_callback(shipper.close)
    return shipper


async def _components(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    table = load_route_table(cfg.classifier.actions)
    store = open_lock_store(cfg.lockstore.url, pool_size=cfg.lockstore.pool_size,
                            timeout_s=cfg.lockstore.guard_timeout_s)
    engine = create_engine(cfg.policy)
    identifier = create_identifier(cfg)
    backend = create_backend(cfg, identifier)
    async with contextlib.AsyncExitStack() as stack:
        shipper = await _start_shipper(cfg, stack)
        on_written = None
        if shipper is not None:
            app[SHIPPER] = shipper
            on_written = shipper.submit_all
        audit = JsonlAuditLog(cfg.audit.path, cfg.audit.flush_window_ms, cfg.audit.fsync,
                              max_bytes=cfg.audit.max_bytes, on_written=on_written,
                              checkpoint_interval_s=cfg.audit.checkpoint_interval_s,
                              signing_key=cfg.audit.signing_key)
        await store.open()
        stack.push_async_callback(store.close)
        await engine.start()
        stack.push_async_callback(engine.close)
        await audit.open()
        # NOTE: closed before the shipper (pushed later), so its last batch is still shipped.
        stack.push_async_callback(audit.close)
        await identifier.start()
        stack.push_async_callback(identifier.close)
        await backend.start()
        stack.push_async_callback(backend.close)
        enforcer = Enforcer(cfg, table, backend, engine, store, audit, identifier,
                            guard=create_guard(cfg, store))
        app[ENFORCER] = enforcer
        # NOTE: pending suspend-locks are finished in the background; their locks apply already.
        reconcile = asyncio.create_task(enforcer.locks.reconcile(), name="statelock-reconcile")
        stack.callback(reconcile.cancel)
        log.info("statelock ready: backend=%s policy=%s revision=%s mode=%s",
                 cfg.backend.kind, engine.name, engine.revision, cfg.mode)
        yield


def create_app(cfg: Config) -> web.Application:
    """The Statelock application for a validated Config."""
    app = web.Application(client_max_size=cfg.limits.max_body_bytes,
                          handler_args=nova.server_settings(cfg.limits))
    nova.add_limits(app)
    app[CONFIG] = cfg
    app.cleanup_ctx.append(_components)
    ops.add_routes(app)
    locks_api.add_routes(app)
    decisions_api.add_routes(app)
    # NOTE: [\s\S] so that a path holding a decoded newline still reaches the handler (a Nova 4xx).
    app.router.add_route("*", r"/{tail:[\s\S]*}", nova.nova_handler)
    return app
