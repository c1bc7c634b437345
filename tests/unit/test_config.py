"""Unit tests for sidecar.config: defaults, validation, loading, explain."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import (
    REPO_ROOT,
    AuditConfig,
    BackendConfig,
    Config,
    config_from_mapping,
    explain,
    load_config,
)
from sidecar.errors import ConfigError

UPSTREAM = "http://127.0.0.1:18774"


def minimal(**sections: Any) -> dict[str, Any]:
    """The smallest valid raw config, with sections merged in one level deep."""
    raw: dict[str, Any] = {"backend": {"upstream_url": UPSTREAM}}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


def test_defaults() -> None:
    cfg = config_from_mapping(minimal(), env={})
    assert cfg.listen == "127.0.0.1:8774"
    assert (cfg.listen_host, cfg.listen_port) == ("127.0.0.1", 8774)
    assert cfg.mode == "enforce" and not cfg.dry_run
    assert cfg.backend == BackendConfig(upstream_url=UPSTREAM)
    assert cfg.backend.kind == "upstream"
    assert (cfg.backend.connect_timeout_s, cfg.backend.timeout_s, cfg.backend.pool_size) == (5.0, 60.0, 100)
    assert cfg.backend.service_auth.token is None
    assert cfg.backend.driver == {}
    assert (cfg.identity.mode, cfg.identity.admin_role) == ("noauth", "admin")
    assert cfg.lockstore.url == "sqlite:///statelock-locks.db"
    assert (cfg.policy.engine, cfg.policy.bundle, cfg.policy.opa_url) == ("embedded", "policies/", None)
    assert (cfg.policy.timeout_ms, cfg.policy.decision_path) == (500, "statelock/authz/decision")
    assert cfg.audit == AuditConfig()
    assert (cfg.audit.on_failure, cfg.audit.flush_window_ms, cfg.audit.fsync) == ("deny", 0.0, True)
    assert cfg.classifier.actions == str(REPO_ROOT / "config" / "actions.yaml")
    assert cfg.classifier.reads_skip_policy is True
    assert (cfg.limits.max_body_bytes, cfg.limits.max_json_depth) == (114688, 32)
    assert cfg.target.host_ttl_s == 30.0


def test_values_are_taken_and_ints_become_floats() -> None:
    cfg = config_from_mapping(minimal(
        mode="dry-run",
        backend={"timeout_s": 10, "pool_size": 3, "service_auth": {"token": "statelock:service:admin"}},
        identity={"mode": "trusted-headers", "admin_role": "cloud-admin"},
        policy={"engine": "opa", "opa_url": "http://127.0.0.1:8181"},
        audit={"on_failure": "continue", "fsync": False, "flush_window_ms": 0},
        listen="[::1]:9000",
    ), env={})
    assert cfg.dry_run
    assert cfg.backend.timeout_s == 10.0 and isinstance(cfg.backend.timeout_s, float)
    assert cfg.backend.service_auth.token == "statelock:service:admin"
    assert cfg.identity.admin_role == "cloud-admin"
    assert cfg.policy.opa_url == "http://127.0.0.1:8181"
    assert (cfg.audit.fsync, cfg.audit.flush_window_ms) == (False, 0.0)
    assert (cfg.listen_host, cfg.listen_port) == ("::1", 9000)


def test_driver_backend_is_valid_without_upstream_url() -> None:
    cfg = config_from_mapping({"backend": {"kind": "driver", "driver": {"name": "fake", "uri": "x"}}}, env={})
    assert cfg.backend.driver == {"name": "fake", "uri": "x"}
    assert cfg.backend.upstream_url is None


def test_null_sections_take_defaults() -> None:
    cfg = config_from_mapping(minimal(audit=None, limits=None), env={})
    assert cfg.audit == AuditConfig()


# (raw config, the key the message must name)
INVALID: list[tuple[dict[str, Any] | list[Any] | str, str]] = [
    (minimal(frobnicate=1), "unknown key frobnicate"),
    (minimal(backend={"frobnicate": 1}), "unknown key backend.frobnicate"),
    (minimal(backend={"service_auth": {"user": "x"}}), "unknown key backend.service_auth.user"),
    (minimal(audit={"pth": "x"}), "unknown key audit.pth"),
    (["a", "list"], "config: expected a mapping"),
    ("a string", "config: expected a mapping"),
    (minimal(backend="http://x"), "backend: expected a mapping"),
    (minimal(listen=8774), "listen: expected a string"),
    (minimal(backend={"timeout_s": "5"}), "backend.timeout_s: expected a number"),
    (minimal(backend={"timeout_s": True}), "backend.timeout_s: expected a number"),
    (minimal(backend={"pool_size": 1.5}), "backend.pool_size: expected a whole number"),
    (minimal(backend={"pool_size": True}), "backend.pool_size: expected a whole number"),
    (minimal(backend={"upstream_url": 5}), "backend.upstream_url: expected a string"),
    (minimal(backend={"driver": ["libvirt"]}), "backend.driver: expected a mapping"),
    (minimal(backend={"service_auth": {"token": 5}}), "backend.service_auth.token: expected a string"),
    (minimal(audit={"fsync": "yes"}), "audit.fsync: expected true or false"),
    (minimal(classifier={"reads_skip_policy": 1}), "classifier.reads_skip_policy: expected true or false"),
    (minimal(limits={"max_json_depth": "32"}), "limits.max_json_depth: expected a whole number"),
    (minimal(mode="enforcing"), "mode: 'enforcing' is not one of"),
    (minimal(backend={"kind": "proxy"}), "backend.kind: 'proxy' is not one of"),
    (minimal(identity={"mode": "kerberos"}), "identity.mode: 'kerberos' is not one of"),
    (minimal(policy={"engine": "cedar"}), "policy.engine: 'cedar' is not one of"),
    (minimal(audit={"on_failure": "ignore"}), "audit.on_failure: 'ignore' is not one of"),
    (minimal(listen="8774"), "listen:"),
    (minimal(listen=":8774"), "listen:"),
    (minimal(listen="localhost:http"), "listen:"),
    (minimal(listen="localhost:70000"), "listen:"),
    ({}, "backend.upstream_url: required"),
    ({"backend": {"kind": "upstream"}}, "backend.upstream_url: required"),
    (minimal(backend={"upstream_url": "ftp://nova"}), "backend.upstream_url: 'ftp://nova'"),
    (minimal(backend={"upstream_url": "http://"}), "backend.upstream_url:"),
    (minimal(backend={"driver": {"name": "fake"}}), "backend.driver: only valid"),
    ({"backend": {"kind": "driver"}}, "backend.driver.name: required"),
    ({"backend": {"kind": "driver", "driver": {"uri": "qemu:///system"}}}, "backend.driver.name: required"),
    ({"backend": {"kind": "driver", "driver": {"name": "fake"}, "upstream_url": UPSTREAM}},
     "backend.upstream_url: only valid"),
    (minimal(backend={"timeout_s": 0}), "backend.timeout_s"),
    (minimal(backend={"connect_timeout_s": -1}), "backend.connect_timeout_s"),
    (minimal(backend={"pool_size": 0}), "backend.pool_size"),
    (minimal(lockstore={"url": "mysql://db/locks"}), "lockstore.url: scheme 'mysql' is not supported"),
    (minimal(lockstore={"guard": "other"}), "lockstore.guard"),
    (minimal(lockstore={"guard_timeout_s": 0}), "lockstore.guard_timeout_s"),
    (minimal(lockstore={"pool_size": 0}), "lockstore.pool_size"),
    (minimal(lockstore={"url": "sqlite://relative.db"}), "lockstore.url"),
    (minimal(policy={"engine": "opa"}), "policy.opa_url: required"),
    (minimal(policy={"timeout_ms": 0}), "policy.timeout_ms"),
    (minimal(audit={"flush_window_ms": -1}), "audit.flush_window_ms"),
    (minimal(limits={"max_body_bytes": 0}), "max_body_bytes"),
    (minimal(limits={"max_json_depth": 0}), "max_json_depth"),
]


@pytest.mark.parametrize(("raw", "message"), INVALID, ids=[m for _, m in INVALID])
def test_every_validation_error_names_its_key(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(raw, env={})
    assert message in info.value.message


def test_unknown_key_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"valid keys here are: .*fsync.*path"):
        config_from_mapping(minimal(audit={"bogus": 1}), env={})


def test_statelock_listen_overrides_the_file() -> None:
    cfg = config_from_mapping(minimal(listen="127.0.0.1:8774"), env={"STATELOCK_LISTEN": "0.0.0.0:18080"})
    assert cfg.listen == "0.0.0.0:18080"
    assert cfg.listen_port == 18080


def test_empty_statelock_listen_is_ignored() -> None:
    assert config_from_mapping(minimal(), env={"STATELOCK_LISTEN": ""}).listen == "127.0.0.1:8774"


def test_statelock_listen_is_validated() -> None:
    with pytest.raises(ConfigError, match="listen: 'nonsense'"):
        config_from_mapping(minimal(), env={"STATELOCK_LISTEN": "nonsense"})


def test_load_config_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "statelock.yaml"
    path.write_text(f"mode: dry-run\nbackend:\n  upstream_url: {UPSTREAM}\n", encoding="utf-8")
    cfg = load_config(path, env={"STATELOCK_LISTEN": "127.0.0.1:1"})
    assert cfg.dry_run
    assert cfg.backend.upstream_url == UPSTREAM
    assert cfg.listen == "127.0.0.1:1"


def test_load_config_on_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*absent\.yaml"):
        load_config(tmp_path / "absent.yaml", env={})


def test_load_config_on_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("backend: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(path, env={})


def test_load_config_validates_what_it_read(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("backend:\n  upstream_url: http://x\n  pool_sise: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown key backend\.pool_sise"):
        load_config(path, env={})


def all_keys(cls: type[Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            out |= all_keys(tp, f"{prefix}{f.name}.")
        else:
            out.add(f"{prefix}{f.name}")
    return out


def test_explain_lists_every_key_with_help() -> None:
    rows = explain()
    keys = [key for key, _, _ in rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == all_keys(Config)
    assert {"listen", "backend.service_auth.token", "backend.driver", "audit.fsync", "target.host_ttl_s"} <= set(keys)
    assert all(help_text for _, _, help_text in rows)


@pytest.mark.parametrize(("key", "default"), [
    ("listen", "'127.0.0.1:8774'"),
    ("backend.pool_size", "100"),
    ("backend.driver", "{}"),
    ("backend.upstream_url", "None"),
    ("audit.fsync", "True"),
])
def test_explain_shows_defaults(key: str, default: str) -> None:
    assert dict((k, d) for k, d, _ in explain())[key] == default


