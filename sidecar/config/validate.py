"""Validation of a built Config: choices, ranges and combinations, each failure naming its key.

``validate(cfg)`` raises ConfigError whose message names the offending key
(``backend.upstream_url``) and says how to fix it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sidecar.audit.redact import check_paths
from sidecar.config.schema import Config, KeystoneConfig
from sidecar.errors import ConfigError

_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("enforce", "dry-run"),
    "backend.kind": ("upstream", "driver"),
    "identity.mode": ("noauth", "trusted-headers", "keystone"),
    "identity.keystone.reads_when_keystone_down": ("forward", "deny"),
    "policy.engine": ("embedded", "opa"),
    "audit.on_failure": ("deny", "continue"),
    "classifier.unknown_reads": ("forward", "deny"),
    "audit.index": ("auto", "sqlite", "postgresql", "off"),
    "server.event_loop": ("uvloop", "asyncio"),
}


def validate(cfg: Config) -> None:
    """Raise ConfigError for the first invalid key or combination in ``cfg``."""
    for key, choices in _CHOICES.items():
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    host, sep, port = cfg.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"listen: {cfg.listen!r} is not host:port (e.g. 127.0.0.1:8774)")
    if cfg.shutdown_timeout_s < 0 or cfg.shutdown_drain_s < 0:
        raise ConfigError("shutdown_timeout_s / shutdown_drain_s: must be zero or positive")
    if cfg.tls.keyfile and not cfg.tls.certfile:
        raise ConfigError("tls.keyfile: needs tls.certfile too (the certificate it belongs to)")
    _validate_backend(cfg)
    _validate_lockstore(cfg)
    _validate_workers(cfg)
    _validate_keystone(cfg)
    if cfg.policy.engine == "opa" and not cfg.policy.opa_url:
        raise ConfigError("policy.opa_url: required when policy.engine is opa")
    if cfg.policy.timeout_ms <= 0:
        raise ConfigError("policy.timeout_ms: must be positive")
    _validate_audit(cfg)
    _validate_index(cfg)
    _validate_console(cfg)
    _validate_limits(cfg)


def _validate_backend(cfg: Config) -> None:
    b = cfg.backend
    if b.kind == "upstream":
        if not b.upstream_url:
            raise ConfigError("backend.upstream_url: required when backend.kind is upstream")
        parts = urlsplit(b.upstream_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"backend.upstream_url: {b.upstream_url!r} must be an http(s) URL with a host"
            )
        if b.driver:
            raise ConfigError("backend.driver: only valid when backend.kind is driver")
        for host, uri in b.hypervisors.items():
            if not isinstance(uri, str) or "://" not in uri:
                raise ConfigError(f"backend.hypervisors.{host}: {uri!r} is not a libvirt URI "
                                  "(e.g. qemu+tls://cmp-1/system)")
        if b.hypervisor_uri is not None and "{host}" not in b.hypervisor_uri:
            raise ConfigError(f"backend.hypervisor_uri: {b.hypervisor_uri!r} must hold {{host}} (Nova's "
                              "host name), e.g. qemu+tls://{host}/system")
    else:
        if b.hypervisors or b.hypervisor_uri:
            raise ConfigError("backend.hypervisors / backend.hypervisor_uri: only valid when backend.kind is "
                              "upstream (a driver backend already writes the boot block itself)")
        if "name" not in b.driver:
            raise ConfigError("backend.driver.name: required when backend.kind is driver (libvirt, xenapi, fake)")
        if b.upstream_url:
            raise ConfigError("backend.upstream_url: only valid when backend.kind is upstream")
    if b.timeout_s <= 0 or b.connect_timeout_s <= 0:
        raise ConfigError("backend.timeout_s / backend.connect_timeout_s: must be positive")
    if b.pool_size < 1:
        raise ConfigError("backend.pool_size: must be at least 1")


def _validate_lockstore(cfg: Config) -> None:
    ls = cfg.lockstore
    if not ls.url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        # NOTE: the URL itself is not shown: it may carry a password.
        raise ConfigError(
            f"lockstore.url: scheme {ls.url.partition(':')[0]!r} is not supported; use "
            "sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://user@host:5432/dbname"
        )
    if ls.guard not in ("advisory", "none"):
        raise ConfigError(f"lockstore.guard: {ls.guard!r} is not one of advisory, none")
    if ls.guard_timeout_s <= 0:
        raise ConfigError("lockstore.guard_timeout_s: must be positive")
    if ls.pool_size < 1:
        raise ConfigError("lockstore.pool_size: must be at least 1")


MAX_WORKERS = 64


def _validate_workers(cfg: Config) -> None:
    workers = cfg.server.workers
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"server.workers: {workers} is not between 1 and {MAX_WORKERS} (processes serving the "
                          "port; one per core at most is useful)")
    if workers == 1:
        return
    if cfg.lockstore.url in ("sqlite:///", "sqlite:///:memory:"):
        raise ConfigError("server.workers: more than 1 worker needs a lock store they share: a sqlite file "
                          "(sqlite:///path/locks.db) or postgresql://..., not an in-memory database")
    if cfg.audit.path.startswith("/dev/"):
        raise ConfigError(f"server.workers: each worker writes its own decision-log chain beside audit.path, "
                          f"which {cfg.audit.path!r} can't have; give audit.path a file")


def _validate_audit(cfg: Config) -> None:
    try:
        check_paths(cfg.audit.redact_paths)
    except ValueError as exc:
        raise ConfigError(f"audit.redact_paths: {exc}") from exc
    if cfg.audit.max_bytes < 0:
        raise ConfigError("audit.max_bytes: must be zero (never rotate) or positive")
    ship = cfg.audit.shipping
    if ship.url is not None and urlsplit(ship.url).scheme not in ("http", "https"):
        raise ConfigError(f"audit.shipping.url: {ship.url!r} must be an http(s) URL")
    if ship.max_spool_bytes < 1 or ship.max_batch_records < 1 or ship.timeout_s <= 0:
        raise ConfigError("audit.shipping: max_spool_bytes, max_batch_records and timeout_s must be positive")
    if cfg.audit.flush_window_ms < 0:
        raise ConfigError("audit.flush_window_ms: must be zero or positive")
    if not cfg.audit.checkpoint_interval_s > 0:
        raise ConfigError("audit.checkpoint_interval_s: must be positive (seconds between checkpoints, e.g. 60)")
    if cfg.audit.signing_key is not None and not cfg.audit.signing_key.strip():
        raise ConfigError("audit.signing_key: empty; give a file path, or leave the key out for "
                          "<audit.path>-signing.key")


def _validate_limits(cfg: Config) -> None:
    lim = cfg.limits
    for key in ("max_body_bytes", "max_json_depth", "max_header_line_bytes", "max_header_bytes",
                "max_header_count", "max_concurrent_requests", "header_timeout_s", "request_timeout_s"):
        if getattr(lim, key) <= 0:
            raise ConfigError(f"limits.{key}: must be positive")
    if lim.max_header_bytes < lim.max_header_line_bytes:
        raise ConfigError("limits.max_header_bytes: must be at least limits.max_header_line_bytes")


def _validate_keystone(cfg: Config) -> None:
    ks = cfg.identity.keystone
    if cfg.identity.mode != "keystone":
        if ks != KeystoneConfig():
            raise ConfigError("identity.keystone: only valid when identity.mode is keystone")
        return
    for name in ("auth_url", "username", "password", "project_name"):
        if not getattr(ks, name):
            raise ConfigError(f"identity.keystone.{name}: required when identity.mode is keystone")
    for name in ("auth_url", "www_authenticate_uri"):
        url = getattr(ks, name)
        if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
            raise ConfigError(f"identity.keystone.{name}: {url!r} must be an http(s) URL with a host")
    if ks.token_cache_time < 0 or ks.negative_cache_time < 0:
        raise ConfigError("identity.keystone.token_cache_time / negative_cache_time: must be zero or positive")
    if ks.token_cache_size < 1:
        raise ConfigError("identity.keystone.token_cache_size: must be at least 1")
    if ks.timeout_s <= 0:
        raise ConfigError("identity.keystone.timeout_s: must be positive")
    if ks.reads_when_keystone_down == "deny" and cfg.classifier.reads_skip_policy:
        raise ConfigError("identity.keystone.reads_when_keystone_down: 'deny' needs classifier.reads_skip_policy "
                          "false (reads on the fast path are forwarded without asking Keystone)")


def _validate_index(cfg: Config) -> None:
    audit = cfg.audit
    if audit.index == "postgresql" and not cfg.lockstore.url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("audit.index: 'postgresql' indexes into the lock store's database; set lockstore.url "
                          "to postgresql://... or use 'auto' or 'sqlite'")
    if audit.index_path is not None and (not audit.index_path.strip() or audit.index not in ("auto", "sqlite")):
        raise ConfigError("audit.index_path: give a file path, and only with audit.index auto or sqlite "
                          "(leave it out for <audit.path>-index.db)")
    if audit.replica is not None and not (0 < len(audit.replica.strip()) <= 128):
        raise ConfigError("audit.replica: 1 to 128 characters naming this replica (default: the host name)")


def _validate_console(cfg: Config) -> None:
    con = cfg.console
    if not con.session_ttl_s > 0:
        raise ConfigError("console.session_ttl_s: must be positive (seconds, e.g. 28800)")
    for key in ("max_sessions", "backtest_max_decisions", "export_max_rows"):
        if getattr(con, key) < 1:
            raise ConfigError(f"console.{key}: must be at least 1")
    if con.backtest_dir is not None and not con.backtest_dir.strip():
        raise ConfigError("console.backtest_dir: empty; give a directory of candidate bundles, or leave "
                          "it out to turn backtest off")
