"""Builds the aiohttp Application: the composition root of the request path.

``create_app`` makes the Application with the error boundary and the routes;
``_components`` (a ``cleanup_ctx``) builds every long-lived component, opens them
in order, puts what handlers need under typed ``AppKey``s and closes them in
reverse order. This is the only place that picks implementations by config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from sidecar import appkeys as keys
from sidecar.audit.files import is_regular_or_absent, side_file
from sidecar.audit.index import DecisionIndex, IndexUnavailable
from sidecar.audit.index_sqlite import SqliteIndex
from sidecar.audit.indexer import IndexProcess
from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.shipping import DecisionShipper
from sidecar.audit.source import DecisionSource, FileDecisions, IndexedDecisions
from sidecar.backends.base import Backend
from sidecar.classify import Classifier, load_route_table
from sidecar.config import Config
from sidecar.decide import Decider
from sidecar.guard import Guard, NoGuard
from sidecar.handlers import decisions_api, locks_api, nova, ops, ui
from sidecar.handlers.boundary import error_boundary
from sidecar.handlers.lifecycle import STATE, ServerState, count_in_flight
from sidecar.identity import HeaderIdentifier, Identifier
from sidecar.lockops import LockService
from sidecar.locks.factory import SQLITE_SCHEME, open_lock_store
from sidecar.locks.store import LockStore
from sidecar.lockview import LockView
from sidecar.metrics import Metrics
from sidecar.pipeline import Pipeline, Stages
from sidecar.policy.engine import create_engine
from sidecar.recorder import Recorder
from sidecar.workers import WorkerInfo

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

        service_auth = projects = None
        if cfg.identity.mode == "keystone":
            from sidecar.keystone import KeystoneIdentifier

            assert isinstance(identifier, KeystoneIdentifier)
            projects = identifier.service
            if not cfg.backend.service_auth.token:
                service_auth = identifier.service
        return UpstreamBackend(cfg.backend, cfg.target.host_ttl_s, service_auth, projects)
    from sidecar.backends.driver import DriverBackend

    return DriverBackend(cfg.backend, cfg.identity.admin_role)


def create_guard(cfg: Config, store: LockStore, stack: contextlib.ExitStack) -> Guard:
    """The guard: advisory locks on PostgreSQL (replicas); with SQLite in-process, or across workers.

    SQLite with ``server.workers > 1``: a ``FileGuard`` on ``<db>-guard``, opened here
    and closed by ``stack``; LockStoreError if its file can't be opened.
    """
    if cfg.lockstore.guard == "none":
        log.warning("lockstore.guard is 'none': actions are NOT ordered against lock changes (tests only)")
        return NoGuard()
    if cfg.server.workers > 1 and cfg.lockstore.url.startswith(SQLITE_SCHEME):
        from sidecar.locks.file_guard import FileGuard, guard_file
        from sidecar.locks.sqlite import sqlite_path

        guard = FileGuard(guard_file(sqlite_path(cfg.lockstore.url)), cfg.lockstore.guard_timeout_s)
        guard.open()
        stack.callback(guard.close)
        return guard
    return store.guard(cfg.lockstore.guard_timeout_s)


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


def create_index(cfg: Config) -> DecisionIndex | None:
    """The decision index ``audit.index`` names (not yet open); None for off, or a log that is not a file."""
    mode = cfg.audit.index
    if mode == "off" or not is_regular_or_absent(Path(cfg.audit.path)):
        return None
    on_pg = cfg.lockstore.url.startswith(("postgresql://", "postgres://"))
    if mode == "postgresql" or (mode == "auto" and on_pg):
        from sidecar.audit.index_pg import PostgresIndex

        return PostgresIndex(cfg.lockstore.url, timeout_s=cfg.lockstore.guard_timeout_s)
    return SqliteIndex(cfg.audit.index_path or side_file(cfg.audit.path, "index.db"))


def _fan_out(listeners: Sequence[Callable[[Sequence[dict[str, Any]]], None]]
             ) -> Callable[[Sequence[dict[str, Any]]], None] | None:
    """One ``on_written`` listener calling each of ``listeners`` (one's failure does not stop the others)."""
    if not listeners:
        return None

    def each(records: Sequence[dict[str, Any]]) -> None:
        for listener in listeners:
            try:
                listener(records)
            except Exception:  # NOTE: a listener's bug must not keep records from the others.
                log.exception("decision log listener failed")

    return each


def _indexer(cfg: Config, disk_seq: Callable[[], int]) -> IndexProcess | None:
    """The indexer process that keeps the decision index up to date (not yet started); None without an index."""
    index = create_index(cfg)
    if index is None:
        return None
    replica, chain = cfg.audit.replica or socket.gethostname(), str(Path(cfg.audit.path).resolve())
    return IndexProcess(index, cfg.audit.path, replica, chain, disk_seq)


async def _open_decisions(cfg: Config, feed: IndexProcess | None, audit: JsonlAuditLog,
                          stack: contextlib.AsyncExitStack) -> DecisionSource:
    """The source the console and the decisions API read: the index once caught up, else the files."""
    replica = cfg.audit.replica or socket.gethostname()
    if feed is not None:
        try:
            await feed.index.open()
            stack.push_async_callback(feed.index.close)
            await feed.start()
            stack.push_async_callback(feed.close)
            return IndexedDecisions(feed.index, feed, audit.flush)
        except IndexUnavailable as exc:
            log.error("decision index unavailable, decisions are read from the log files instead: %s", exc.message)
    return FileDecisions(cfg.audit.path, replica, audit.flush)


def _pipeline(cfg: Config, app: web.Application, backend: Backend, guard: Guard,
              recorder: Recorder, decider: Decider, locks: LockService) -> Pipeline:
    classifier = Classifier(load_route_table(cfg.classifier.actions), cfg.limits.max_json_depth,
                            cfg.classifier.unknown_reads)
    stages = Stages(classifier=classifier, identifier=app[keys.IDENTIFIER], guard=guard,
                    store=app[keys.STORE], ops=backend.ops, decider=decider,
                    dispatcher=backend.dispatcher, locks=locks,
                    lock_view=LockView(app[keys.STORE], backend.ops), recorder=recorder,
                    metrics=app[keys.METRICS])
    return Pipeline(stages, reads_skip_policy=cfg.classifier.reads_skip_policy, dry_run=cfg.dry_run,
                    backend_kind=cfg.backend.kind)


async def _components(app: web.Application) -> AsyncIterator[None]:
    cfg = app[keys.CONFIG]
    store = open_lock_store(cfg.lockstore.url, pool_size=cfg.lockstore.pool_size,
                            timeout_s=cfg.lockstore.guard_timeout_s)
    reloads = app[keys.METRICS].policy_reloads
    engine = create_engine(cfg.policy, on_reload=lambda ok: reloads.labels("success" if ok else "failure").inc())
    identifier = create_identifier(cfg)
    backend = create_backend(cfg, identifier)
    async with contextlib.AsyncExitStack() as stack:
        shipper = await _start_shipper(cfg, stack)
        if shipper is not None:
            app[keys.SHIPPER] = shipper
        feed = _indexer(cfg, lambda: int(audit.chain_state()["last_seq"]))
        listeners = [shipper.submit_all] if shipper else []
        audit = JsonlAuditLog(cfg.audit.path, cfg.audit.flush_window_ms, cfg.audit.fsync,
                              max_bytes=cfg.audit.max_bytes, on_written=_fan_out(listeners),
                              checkpoint_interval_s=cfg.audit.checkpoint_interval_s,
                              signing_key=cfg.audit.signing_key)
        await store.open()
        stack.push_async_callback(store.close)
        await engine.start()
        stack.push_async_callback(engine.close)
        await audit.open()
        # NOTE: closed before the shipper (pushed later), so its last batch is still shipped.
        stack.push_async_callback(audit.close)
        # NOTE: after the log opened (its torn tail cut), before any request: the index catches up first.
        app[keys.DECISIONS] = await _open_decisions(cfg, feed, audit, stack)
        await identifier.start()
        stack.push_async_callback(identifier.close)
        await backend.start()
        stack.push_async_callback(backend.close)
        app[keys.STORE], app[keys.ENGINE], app[keys.AUDIT] = store, engine, audit
        app[keys.IDENTIFIER], app[keys.BACKEND] = identifier, backend
        recorder = Recorder(audit, lambda: engine.revision, app[keys.METRICS], mode=cfg.mode,
                            on_failure=cfg.audit.on_failure, redact_paths=cfg.audit.redact_paths)
        decider = Decider(engine, recorder)
        guard = create_guard(cfg, store, stack.enter_context(contextlib.ExitStack()))
        locks = LockService(backend.ops, store, decider, recorder, guard)
        app[keys.RECORDER], app[keys.LOCKS] = recorder, locks
        app[keys.PIPELINE] = _pipeline(cfg, app, backend, guard, recorder, decider, locks)
        # NOTE: pending suspend-locks are finished in the background; their locks apply already.
        reconcile = asyncio.create_task(locks.reconcile(), name="statelock-reconcile")
        stack.callback(reconcile.cancel)
        log.info("statelock ready: backend=%s policy=%s revision=%s mode=%s",
                 cfg.backend.kind, engine.name, engine.revision, cfg.mode)
        yield


def create_app(cfg: Config, worker: WorkerInfo | None = None) -> web.Application:
    """The Statelock application for a validated Config, served by ``worker`` (default: the only one).

    A worker k > 1 of ``server.workers`` is given ``workers.worker_config(cfg, k)``.
    """
    app = web.Application(client_max_size=cfg.limits.max_body_bytes,
                          handler_args=nova.server_settings(cfg.limits),
                          middlewares=[count_in_flight, error_boundary])
    app[STATE] = ServerState()
    nova.add_limits(app)
    app[keys.CONFIG] = cfg
    app[keys.WORKER] = worker or WorkerInfo()
    app[keys.METRICS] = Metrics()
    app.cleanup_ctx.append(_components)
    ops.add_routes(app)
    locks_api.add_routes(app)
    decisions_api.add_routes(app)
    if cfg.console.enabled:
        ui.add_console(app)
    # NOTE: [\s\S] so that a path holding a decoded newline still reaches the handler (a Nova 4xx).
    app.router.add_route("*", r"/{tail:[\s\S]*}", nova.nova_handler)
    return app
