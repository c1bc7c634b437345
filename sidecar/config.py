"""Configuration: YAML loaded into frozen dataclasses.

``load_config(path)`` returns a ``Config`` or raises ``ConfigError`` whose message
names the offending key (``backend.upstream_url``) and says how to fix it. Unknown
keys, wrong types, bad values and inconsistent combinations all fail here, at
start-up, never on the request path. Every field has a default and help text;
``statelock check-config --explain`` prints them.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from sidecar.audit.redact import check_paths
from sidecar.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
# NOTE: from a checkout the map is found next to the package; installed (the container),
# it is config/actions.yaml under the working directory.
_DEFAULT_ACTIONS = (str(REPO_ROOT / "config" / "actions.yaml")
                    if (REPO_ROOT / "config" / "actions.yaml").exists() else "config/actions.yaml")


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class ServiceAuthConfig:
    """Statelock's own identity towards the upstream (suspend-lock, target lookups)."""

    token: str | None = _help(
        "X-Auth-Token Statelock sends on its own calls to a noauth-style upstream "
        "(e.g. 'statelock:service:admin'). Never a caller's token.",
        default=None,
    )


@dataclass(frozen=True)
class BackendConfig:
    """Where allowed requests go."""

    kind: str = _help("'upstream' (reverse proxy to a compute API) or 'driver'.", default="upstream")
    upstream_url: str | None = _help(
        "Base URL of the compute API, e.g. http://127.0.0.1:18774.", default=None
    )
    connect_timeout_s: float = _help("Upstream connect timeout in seconds.", default=5.0)
    timeout_s: float = _help("Upstream total timeout per request in seconds (504 after).", default=60.0)
    pool_size: int = _help("Keep-alive connections kept to the upstream.", default=100)
    service_auth: ServiceAuthConfig = _help(
        "Statelock's own credentials for its calls.", default_factory=ServiceAuthConfig
    )
    driver: Mapping[str, Any] = _help(
        "Driver settings for kind=driver: {name: libvirt|xenapi|fake, ...driver keys}.",
        default_factory=dict,
    )


@dataclass(frozen=True)
class KeystoneConfig:
    """identity.mode keystone: tokens validated against Keystone (keys as keystonemiddleware's)."""

    auth_url: str | None = _help("Keystone identity API, e.g. http://keystone:5000/v3 (/v3 is added if missing).",
                                 default=None)
    username: str | None = _help("Statelock's service user; it validates tokens (needs the service or "
                                 "admin role) and makes Statelock's own calls.", default=None)
    password: str | None = _help("The service user's password (never logged).", default=None, repr=False)
    project_name: str | None = _help("The service user's project, e.g. service.", default=None)
    user_domain_name: str = _help("The service user's domain.", default="Default")
    project_domain_name: str = _help("The service project's domain.", default="Default")
    token_cache_time: int = _help("Seconds a validated token is trusted before it is checked again (bounded "
                                  "by its expiry; a revoked token stops working within this). 0: no cache.",
                                  default=300)
    token_cache_size: int = _help("Validated tokens kept (least recently used dropped first).", default=10000)
    negative_cache_time: float = _help("Seconds a token Keystone rejected is answered 401 without asking again.",
                                       default=5.0)
    timeout_s: float = _help("Longest wait for Keystone per call; slower is 503 for state changes.", default=3.0)
    reads_when_keystone_down: str = _help(
        "'forward' (let Nova decide) or 'deny' (503): reads when Keystone can't be asked. Applies only when "
        "classifier.reads_skip_policy is false; otherwise reads are forwarded unidentified.", default="forward")
    www_authenticate_uri: str | None = _help("The uri of the WWW-Authenticate header on a 401 (default: auth_url).",
                                             default=None)
    cafile: str | None = _help("CA bundle for an https Keystone.", default=None)
    insecure: bool = _help("Skip TLS verification of Keystone (testing only).", default=False)


@dataclass(frozen=True)
class IdentityConfig:
    """How a caller becomes a Subject."""

    mode: str = _help("'noauth' (X-Auth-Token user:project[:roles]), 'trusted-headers' or 'keystone'.",
                      default="noauth")
    admin_role: str = _help("The role that makes a subject an admin, as Nova's context_is_admin.", default="admin")
    keystone: KeystoneConfig = _help("Keystone settings for mode keystone.", default_factory=KeystoneConfig)


@dataclass(frozen=True)
class LockStoreConfig:
    """The lock table."""

    url: str = _help(
        "sqlite:///relative.db or sqlite:////absolute/path.db (one node), or "
        "postgresql://user:password@host:5432/dbname (several replicas sharing one lock table).",
        default="sqlite:///statelock-locks.db", repr=False,
    )
    guard: str = _help(
        "'advisory': a state change and a lock change on one instance never overlap (PostgreSQL "
        "advisory locks across replicas; an in-process lock with sqlite). 'none': NO guard, UNSAFE: "
        "an action decided just before a lock call may reach the upstream after that call returned. "
        "Only for tests that show the race.",
        default="advisory",
    )
    guard_timeout_s: float = _help(
        "PostgreSQL: longest wait for an instance's guard, a pooled connection or a query; "
        "past it the request fails closed (503).",
        default=5.0,
    )
    pool_size: int = _help(
        "PostgreSQL: connections per replica. Each in-flight state change holds one from its "
        "lock read through its forward.",
        default=20,
    )


@dataclass(frozen=True)
class PolicyConfig:
    """The policy engine and its bundle."""

    engine: str = _help("'embedded' (regopy, in process) or 'opa' (an OPA server).", default="embedded")
    bundle: str = _help("Directory holding the Rego bundle (.manifest, *.rego, data.json).", default="policies/")
    opa_url: str | None = _help("OPA server base URL for engine=opa, e.g. http://127.0.0.1:8181.", default=None)
    timeout_ms: int = _help("Longest wait for a decision; slower is a deny (503).", default=500)
    decision_path: str = _help("The decision document queried.", default="statelock/authz/decision")


@dataclass(frozen=True)
class ShippingConfig:
    """Where decision records are shipped (off unless ``url`` is set)."""

    url: str | None = _help("Decision-log service URL, e.g. http://collector:8080/logs (gzip JSON "
                            "arrays, as OPA uploads them).", default=None)
    spool_dir: str = _help("Records not yet acknowledged wait here, so a restart loses none.",
                           default="statelock-spool")
    max_spool_bytes: int = _help("Spool bound; past it new records are dropped and counted.",
                                 default=64 * 1024 * 1024)
    max_batch_records: int = _help("Records per upload at most.", default=500)
    linger_s: float = _help("How long a record may wait for others to share its upload.", default=1.0)
    timeout_s: float = _help("Upload timeout in seconds.", default=10.0)


@dataclass(frozen=True)
class AuditConfig:
    """The decision log."""

    path: str = _help("JSONL decision log; one record per state-changing request.", default="statelock-decisions.jsonl")
    on_failure: str = _help("'deny' (refuse state changes when the log can't be written) or 'continue'.",
                            default="deny")
    flush_window_ms: float = _help(
        "Group commit: records that arrive while a write is in flight share the next fsync; a "
        "window above 0 also waits that long to gather more (fewer fsyncs, more latency).",
        default=0.0)
    fsync: bool = _help("fsync each batch before the requests it holds proceed.", default=True)
    max_bytes: int = _help("Rotate the log when it passes this size (0: never); the hash chain "
                           "continues across files.", default=256 * 1024 * 1024)
    redact_paths: tuple[str, ...] = _help(
        "Extra JSON Pointers to mask in records (e.g. /input/action/params/name); secrets such "
        "as adminPass and tokens are always masked.", default=())
    checkpoint_interval_s: float = _help(
        "Seconds between signed checkpoints of the chain's head (written to <path>-checkpoints only "
        "when records were added since the last one, and at shutdown); they show records cut off "
        "the log's end.", default=60.0)
    signing_key: str | None = _help(
        "Ed25519 private key (PEM) that signs checkpoints; made with mode 0600 on first start if "
        "absent, refused if group or others may read it. Default: <path>-signing.key beside the log; "
        "better a path the log's readers can't reach.", default=None)
    shipping: ShippingConfig = _help("Shipping to an OPA-compatible decision-log service.",
                                     default_factory=lambda: ShippingConfig())


@dataclass(frozen=True)
class ClassifierConfig:
    """How requests are classified."""

    actions: str = _help("The Nova route/action map.", default=_DEFAULT_ACTIONS)
    reads_skip_policy: bool = _help("Forward reads without asking the policy (the fast path).", default=True)
    unknown_reads: str = _help("'forward' GETs of routes not in the map (Nova answers them), or 'deny' "
                               "them: only listed reads pass.", default="forward")


@dataclass(frozen=True)
class LimitsConfig:
    """Limits on what a request may carry and how long it may take; each answers Nova-shaped."""

    max_body_bytes: int = _help("Largest request body (Nova's own limit is 114688); 413 overLimit.",
                                default=114688)
    max_json_depth: int = _help("Deepest JSON nesting accepted in a body; 400 badRequest.", default=32)
    max_header_line_bytes: int = _help(
        "Longest request line or single header line (Nova's [wsgi] max_header_line is 16384); "
        "414/431 overLimit. The HTTP parser cuts off at twice this with a plain 400.",
        default=16384)
    max_header_bytes: int = _help("Largest total size of all header lines; 431 overLimit.", default=65536)
    max_header_count: int = _help(
        "Most header lines in one request; 431 overLimit. The HTTP parser cuts off at twice this.",
        default=100)
    header_timeout_s: float = _help(
        "Longest wait for a request's headers, and longest idle keep-alive; the connection is closed.",
        default=30.0)
    request_timeout_s: float = _help("Longest wait for a request's body once its headers are in; 408.",
                                     default=60.0)
    max_concurrent_requests: int = _help(
        "Most requests handled at once; past it 503 serviceUnavailable with Retry-After.", default=1000)


@dataclass(frozen=True)
class TargetConfig:
    """How an instance's project and host are learned."""

    host_ttl_s: float = _help("How long a resolved host is trusted (migrations move it).", default=30.0)


@dataclass(frozen=True)
class Config:
    """The whole Statelock configuration."""

    listen: str = _help("host:port to serve on; STATELOCK_LISTEN overrides it.", default="127.0.0.1:8774")
    mode: str = _help("'enforce' or 'dry-run' (forward everything, record what would happen).", default="enforce")
    backend: BackendConfig = _help("Where allowed requests go.", default_factory=BackendConfig)
    identity: IdentityConfig = _help("How callers are identified.", default_factory=IdentityConfig)
    lockstore: LockStoreConfig = _help("The lock table.", default_factory=LockStoreConfig)
    policy: PolicyConfig = _help("The policy engine.", default_factory=PolicyConfig)
    audit: AuditConfig = _help("The decision log.", default_factory=AuditConfig)
    classifier: ClassifierConfig = _help("Request classification.", default_factory=ClassifierConfig)
    limits: LimitsConfig = _help("Request limits.", default_factory=LimitsConfig)
    target: TargetConfig = _help("Target resolution.", default_factory=TargetConfig)

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"


_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("enforce", "dry-run"),
    "backend.kind": ("upstream", "driver"),
    "identity.mode": ("noauth", "trusted-headers", "keystone"),
    "identity.keystone.reads_when_keystone_down": ("forward", "deny"),
    "policy.engine": ("embedded", "opa"),
    "audit.on_failure": ("deny", "continue"),
    "classifier.unknown_reads": ("forward", "deny"),
}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _build(cls: type[Any], raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown key {where}{unknown[0]!s}; valid keys here are: {', '.join(sorted(fields))}"
        )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        values[name] = _coerce(hints[name], value, key)
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, key)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    if (origin is not None and issubclass(origin, Mapping)) or tp is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _validate(cfg: Config) -> None:
    for key, choices in _CHOICES.items():
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    host, sep, port = cfg.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"listen: {cfg.listen!r} is not host:port (e.g. 127.0.0.1:8774)")
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
    else:
        if "name" not in b.driver:
            raise ConfigError("backend.driver.name: required when backend.kind is driver (libvirt, xenapi, fake)")
        if b.upstream_url:
            raise ConfigError("backend.upstream_url: only valid when backend.kind is upstream")
    if b.timeout_s <= 0 or b.connect_timeout_s <= 0:
        raise ConfigError("backend.timeout_s / backend.connect_timeout_s: must be positive")
    if b.pool_size < 1:
        raise ConfigError("backend.pool_size: must be at least 1")
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
    _validate_keystone(cfg)
    if cfg.policy.engine == "opa" and not cfg.policy.opa_url:
        raise ConfigError("policy.opa_url: required when policy.engine is opa")
    if cfg.policy.timeout_ms <= 0:
        raise ConfigError("policy.timeout_ms: must be positive")
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


def sqlite_path(url: str) -> str:
    """Return the file path in a ``sqlite:///`` URL (four slashes: absolute)."""
    path = url[len("sqlite:///") :]
    return path or ":memory:"


def config_from_mapping(raw: Any, env: Mapping[str, str] | None = None) -> Config:
    """Build and validate a Config from parsed YAML; raises ConfigError."""
    env = os.environ if env is None else env
    cfg: Config = _build(Config, raw, "")
    listen = env.get("STATELOCK_LISTEN")
    if listen:
        cfg = dataclasses.replace(cfg, listen=listen)
    _validate(cfg)
    return cfg


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read a YAML config file; raises ConfigError naming the problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return config_from_mapping(raw, env)


def explain(cls: type[Any] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """List (key, default, help) for every config key, for ``--explain``."""
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            rows.extend(explain(tp, key + "."))
            continue
        default: Any = None
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        rows.append((key, repr(default), f.metadata.get("help", "")))
    return rows
