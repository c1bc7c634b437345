"""What ``serve`` checks before it starts, which is exactly what ``check-config`` checks.

``check_offline(cfg)`` builds every component the configuration names without
connecting to anything: the route table is loaded, the embedded policy bundle
compiled, the driver constructed from its settings (unknown keys and names
refused), the lock store chosen, the TLS certificate loaded, and the directories
Statelock writes to checked. It raises ``ConfigError`` (the config is wrong) or
``StartupError`` (the machine is not ready for it: a directory, a certificate),
each naming the key and the fix. ``serve`` runs it first, so a config that
``check-config`` passes is one ``serve`` accepts.

``check_connections(cfg)`` (``check-config --connect``) also reaches what the
config points at (the lock store, the upstream or the hypervisor, Keystone, OPA)
and says which answered.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

import drivers
from sidecar.classify import load_route_table
from sidecar.config import Config
from sidecar.errors import ConfigError, PolicyError, SidecarError, StartupError
from sidecar.locks.factory import open_lock_store
from sidecar.locks.model import redact_url
from sidecar.locks.sqlite import sqlite_path


def check_offline(cfg: Config) -> ssl.SSLContext | None:
    """Build everything ``serve`` would build, connecting to nothing; the TLS context if any."""
    load_route_table(cfg.classifier.actions)
    _check_policy(cfg)
    _check_backend(cfg)
    open_lock_store(cfg.lockstore.url, pool_size=cfg.lockstore.pool_size,
                    timeout_s=cfg.lockstore.guard_timeout_s)
    if cfg.lockstore.url.startswith("sqlite:///") and sqlite_path(cfg.lockstore.url) != ":memory:":
        _writable_dir("lockstore.url", Path(sqlite_path(cfg.lockstore.url)).parent)
    _writable_dir("audit.path", Path(cfg.audit.path).parent)
    if cfg.audit.shipping.url is not None:
        _writable_dir("audit.shipping.spool_dir", Path(cfg.audit.shipping.spool_dir))
    return tls_context(cfg)


def _check_policy(cfg: Config) -> None:
    if cfg.policy.engine == "embedded":
        from sidecar.policy.embedded import EmbeddedEngine
        from sidecar.policy.wasm.compiler import find_opa

        try:
            find_opa(cfg.policy.opa_binary or None)
        except PolicyError as exc:
            raise ConfigError(f"policy.opa_binary: {exc.message} (the embedded engine compiles the bundle "
                              "with it; or set policy.engine: opa)") from exc
        try:
            EmbeddedEngine(cfg.policy).load()
        except PolicyError as exc:
            raise ConfigError(f"policy.bundle: {exc.message} (point policy.bundle at a directory "
                              "holding the Rego bundle, e.g. policies/; `statelock policy test` "
                              "checks it)") from exc
    else:
        from sidecar.policy.opa import OpaEngine

        OpaEngine(cfg.policy)  # NOTE: validates policy.opa_url without connecting


def _check_backend(cfg: Config) -> None:
    if cfg.backend.kind != "driver":
        return
    settings = dict(cfg.backend.driver)
    name = str(settings.pop("name"))
    try:
        drivers.create(name, settings)
    except drivers.DriverError as exc:
        key = "backend.driver.name" if name not in drivers.DRIVER_NAMES else "backend.driver"
        raise ConfigError(f"{key}: {exc.message}") from exc


def _writable_dir(key: str, directory: Path) -> None:
    """The directory exists and is writable, or can be created; StartupError naming ``key``."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise StartupError(f"{key}: {probe} is not a directory (it is where {directory} would go)")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "directory" if probe == directory else f"nearest existing parent of {directory}"
        raise StartupError(f"{key}: the {what}, {probe}, is not writable by this user "
                           f"(uid {os.getuid()}); fix its owner or mode, or choose another path")


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    """The server TLS context for ``tls.certfile``/``tls.keyfile``; StartupError if they can't load."""
    if not cfg.tls.certfile:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg.tls.certfile, cfg.tls.keyfile)
    except FileNotFoundError as exc:
        raise StartupError(f"tls.certfile: cannot read {exc.filename or cfg.tls.certfile}: "
                           "no such file") from exc
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"tls.certfile: {cfg.tls.certfile} (key {cfg.tls.keyfile or 'in the same file'}) "
                           f"is not a usable PEM certificate and key: {exc}") from exc
    return ctx


@dataclass(frozen=True)
class Reached:
    """One ``--connect`` check: what was asked, whether it answered, and what it said."""

    component: str
    ok: bool
    detail: str


async def check_connections(cfg: Config) -> list[Reached]:
    """Reach the lock store, the backend, Keystone and OPA as ``serve`` would; never raises."""
    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        (f"lock store {redact_url(cfg.lockstore.url)}", lambda: _lock_store(cfg))]
    if cfg.backend.kind == "upstream":
        checks.append((f"upstream {cfg.backend.upstream_url}", lambda: _upstream(cfg)))
    else:
        checks.append((f"driver {cfg.backend.driver.get('name')}", lambda: _driver(cfg)))
    if cfg.identity.mode == "keystone":
        checks.append((f"keystone {cfg.identity.keystone.auth_url}", lambda: _keystone(cfg)))
    if cfg.policy.engine == "opa":
        checks.append((f"opa {cfg.policy.opa_url}", lambda: _opa(cfg)))
    out = []
    for name, check in checks:
        try:
            out.append(Reached(name, True, await check()))
        except (SidecarError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            out.append(Reached(name, False, getattr(exc, "message", None) or str(exc) or type(exc).__name__))
    return out


async def _lock_store(cfg: Config) -> str:
    store = open_lock_store(cfg.lockstore.url, pool_size=1, timeout_s=cfg.lockstore.guard_timeout_s)
    await store.open()
    try:
        return f"answered: {await store.count()} lock rows"
    finally:
        await store.close()


async def _upstream(cfg: Config) -> str:
    assert cfg.backend.upstream_url is not None
    timeout = aiohttp.ClientTimeout(total=cfg.backend.connect_timeout_s + 5)
    async with aiohttp.ClientSession(timeout=timeout) as session, \
            session.get(cfg.backend.upstream_url.rstrip("/") + "/") as resp:
        if resp.status >= 500:
            raise StartupError(f"answered {resp.status}")
        return f"answered {resp.status}"


async def _driver(cfg: Config) -> str:
    settings = dict(cfg.backend.driver)
    driver = drivers.create(str(settings.pop("name")), settings)
    try:
        found = await driver.list_instances()
    except drivers.DriverError as exc:
        raise StartupError(exc.message) from exc
    finally:
        await driver.close()
    return f"answered: {len(found)} instances"


async def _keystone(cfg: Config) -> str:
    from sidecar.service_auth import KeystoneServiceAuth

    auth = KeystoneServiceAuth(cfg.identity.keystone)
    try:
        await auth.token()
    finally:
        await auth.close()
    return f"issued a token to {cfg.identity.keystone.username}"


async def _opa(cfg: Config) -> str:
    from sidecar.policy.opa import OpaEngine

    engine = OpaEngine(cfg.policy)
    await engine.start()
    try:
        if engine.last_error:
            raise StartupError(engine.last_error)
        return f"answered: revision {engine.revision or '(none)'}"
    finally:
        await engine.close()
