"""The configuration schema: frozen dataclasses, each field with its default and help text.

Nothing here reads a file or validates a combination: ``sidecar.config.load`` builds
these from YAML and ``sidecar.config.validate`` checks them. ``explain`` (in load)
lists every key with its default and help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
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
    hypervisors: Mapping[str, Any] = _help(
        "kind=upstream, defence in depth: {<nova host>: <libvirt URI>} of the compute hosts, e.g. "
        "{cmp-1: 'qemu+tls://cmp-1/system'}. A suspend-lock then also writes the boot block into the "
        "domain on its host (refused by the Statelock qemu hook there), and unlock-resume clears it.",
        default_factory=dict,
    )
    hypervisor_uri: str | None = _help(
        "kind=upstream: the libvirt URI of every compute host not in hypervisors, with {host} for "
        "Nova's host name, e.g. 'qemu+tls://{host}/system'.", default=None)


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
        "advisory locks across replicas; with sqlite an in-process lock, and record locks on a file "
        "beside the database across server.workers). 'none': NO guard, UNSAFE: "
        "an action decided just before a lock call may reach the upstream after that call returned. "
        "Only for tests that show the race.",
        default="advisory",
    )
    guard_timeout_s: float = _help(
        "PostgreSQL, and SQLite with server.workers > 1: longest wait for an instance's guard (and, "
        "PostgreSQL, a pooled connection or a query); past it the request fails closed (503).",
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

    engine: str = _help("'embedded' (the bundle compiled by OPA to Wasm, evaluated in process) or 'opa' "
                        "(an OPA server).", default="embedded")
    bundle: str = _help("Directory holding the Rego bundle (.manifest, *.rego, data.json).", default="policies/")
    opa_url: str | None = _help("OPA server base URL for engine=opa, e.g. http://127.0.0.1:8181.", default=None)
    timeout_ms: int = _help("Longest wait for a decision; slower is a deny (503).", default=500)
    decision_path: str = _help("The decision document queried.", default="statelock/authz/decision")
    opa_binary: str = _help("engine=embedded: the opa executable that compiles the bundle (opa build -t wasm) "
                            "at start and on every reload; empty: opa on PATH, else .tools/bin/opa "
                            "(make opa builds it).", default="")


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
    index: str = _help(
        "The decision index the console and GET /statelock/v1/decisions read: 'auto' (PostgreSQL when "
        "lockstore.url is PostgreSQL, so every replica sees the decisions of all; else SQLite beside the "
        "log), 'sqlite', 'postgresql' (the lock store's database) or 'off' (read the log files). The hash "
        "chain stays the source of truth: the index catches up from it at start-up. The index is written "
        "by a process of its own beside each worker (python -m sidecar.audit.indexer), not in the server: "
        "with SQLite about 0.3 ms CPU per state change there (a fifth of the server's own), which shows "
        "only when every core is busy; 'off' gives it back, and big logs then page slowly.", default="auto")
    index_path: str | None = _help(
        "SQLite index file for index sqlite. Default: <path>-index.db beside the log.", default=None)
    replica: str | None = _help(
        "This replica's name in the index (each row is marked with its replica and chain). Default: the "
        "host name. Give each replica sharing one PostgreSQL its own.", default=None)


@dataclass(frozen=True)
class ConsoleConfig:
    """The auditors' console under /statelock/ui/."""

    enabled: bool = _help("Serve the console (login, decisions, locks, replay, export, backtest).", default=True)
    session_ttl_s: float = _help(
        "Longest life of a console session in seconds; a Keystone session also ends with its token.",
        default=8 * 3600.0)
    max_sessions: int = _help("Console sessions kept at once; past it the oldest is ended.", default=10000)
    backtest_dir: str | None = _help(
        "Directory whose sub-directories are candidate bundles an admin may backtest (a path on the "
        "server). Unset: backtest is off.", default=None)
    backtest_max_decisions: int = _help("Most past decisions one backtest re-evaluates.", default=10000)
    export_max_rows: int = _help("Most decisions one CSV or JSON export holds.", default=100000)


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
class TlsConfig:
    """Serving HTTPS (off unless ``certfile`` is set)."""

    certfile: str | None = _help("PEM certificate chain to serve HTTPS with.", default=None)
    keyfile: str | None = _help("PEM private key of the certificate (default: in certfile).", default=None)


@dataclass(frozen=True)
class ServerConfig:
    """The serving process: its workers, its event loop and its access log."""

    workers: int = _help(
        "Worker processes serving the one listen port (SO_REUSEPORT: the kernel spreads connections "
        "over them). 1: one process, as before. N>1: a supervisor starts N workers one after the "
        "other, restarts one that dies (it stops, exit 1 or 2, when one fails to start or 5 end within "
        "60 s), and drains them all on SIGTERM/SIGINT. Each worker writes its own decision-log chain "
        "(worker 1 audit.path itself, worker k <stem>-w<k><suffix>); with SQLite the guard holds across "
        "workers through record locks on <lock db>-guard. See docs/workers.md.", default=1)
    event_loop: str = _help(
        "'uvloop' (libuv's loop: less time per request in the loop itself) or 'asyncio' (the standard "
        "library's).", default="uvloop")
    access_log: bool = _help(
        "One INFO line per request on the 'aiohttp.access' logger (client, request line, status, bytes, "
        "seconds; never a header, so never a token). Off by default: it costs several percent of the "
        "CPU per request, and every decision is on record in the decision log anyway.", default=False)


@dataclass(frozen=True)
class Config:
    """The whole Statelock configuration."""

    listen: str = _help("host:port to serve on; STATELOCK_LISTEN overrides it.", default="127.0.0.1:8774")
    tls: TlsConfig = _help("HTTPS for the listener.", default_factory=TlsConfig)
    server: ServerConfig = _help("The serving process.", default_factory=ServerConfig)
    shutdown_timeout_s: float = _help(
        "On SIGTERM/SIGINT, how long requests in flight get to finish once the listener is closed; "
        "the rest are cut off (and logged).", default=30.0)
    shutdown_drain_s: float = _help(
        "On SIGTERM/SIGINT, how long to keep accepting requests while readiness answers 503, so a load "
        "balancer stops sending traffic first (0: close the listener at once).", default=0.0)
    mode: str = _help("'enforce' or 'dry-run' (forward everything, record what would happen).", default="enforce")
    backend: BackendConfig = _help("Where allowed requests go.", default_factory=BackendConfig)
    identity: IdentityConfig = _help("How callers are identified.", default_factory=IdentityConfig)
    lockstore: LockStoreConfig = _help("The lock table.", default_factory=LockStoreConfig)
    policy: PolicyConfig = _help("The policy engine.", default_factory=PolicyConfig)
    audit: AuditConfig = _help("The decision log.", default_factory=AuditConfig)
    classifier: ClassifierConfig = _help("Request classification.", default_factory=ClassifierConfig)
    limits: LimitsConfig = _help("Request limits.", default_factory=LimitsConfig)
    target: TargetConfig = _help("Target resolution.", default_factory=TargetConfig)
    console: ConsoleConfig = _help("The auditors' console.", default_factory=ConsoleConfig)

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"
