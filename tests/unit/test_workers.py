"""``sidecar.workers``: the per-worker names, the worker's config, and the validation of server.workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.config import config_from_mapping
from sidecar.errors import ConfigError
from sidecar.workers import WorkerInfo, worker_chains, worker_config, worker_path

UPSTREAM = {"upstream_url": "http://127.0.0.1:18774"}


def _cfg(**raw: Any) -> Any:
    return config_from_mapping({"backend": UPSTREAM, **raw}, env={})


@pytest.mark.parametrize(("path", "index", "expected"), [
    ("/var/log/decisions.jsonl", 1, "/var/log/decisions.jsonl"),
    ("/var/log/decisions.jsonl", 2, "/var/log/decisions-w2.jsonl"),
    ("decisions", 3, "decisions-w3"),
    ("/spool/statelock-spool", 2, "/spool/statelock-spool-w2"),
])
def test_worker_path(path: str, index: int, expected: str) -> None:
    assert worker_path(path, index) == Path(expected)


def test_worker_chains_lists_the_configured_ones_and_those_left_on_disk(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    assert worker_chains(log, 2) == [log, tmp_path / "decisions-w2.jsonl"]
    (tmp_path / "decisions-w4.jsonl.000001").write_text("")  # a rotated file of a chain left by 4 workers
    (tmp_path / "decisions-w9.jsonl-checkpoints").write_text("")  # not a chain file
    (tmp_path / "other-w3.jsonl").write_text("")
    assert worker_chains(log, 1) == [log, tmp_path / "decisions-w4.jsonl"]


def test_worker_1_runs_the_config_as_it_is_and_worker_k_gets_its_own_chain_and_spool() -> None:
    cfg = _cfg(server={"workers": 2}, audit={"path": "/d/decisions.jsonl"})
    assert worker_config(cfg, 1) is cfg
    second = worker_config(cfg, 2)
    assert second.audit.path == "/d/decisions-w2.jsonl"
    assert second.audit.index_path == "/d/decisions.jsonl-index.db"  # the one index every worker feeds
    assert second.audit.shipping.spool_dir == "statelock-spool-w2"
    assert second.lockstore == cfg.lockstore and second.server == cfg.server
    pinned = worker_config(_cfg(server={"workers": 2}, audit={"index_path": "/i.db"}), 2)
    assert pinned.audit.index_path == "/i.db"


def test_worker_info_describes_itself_for_health() -> None:
    assert WorkerInfo(2, 3, 41).describe() == {"index": 2, "count": 3, "pid": 41}
    assert WorkerInfo().describe()["count"] == 1


def test_one_worker_is_the_default() -> None:
    assert _cfg().server.workers == 1


@pytest.mark.parametrize(("raw", "message"), [
    ({"server": {"workers": 0}}, "server.workers: 0 is not between 1 and 64"),
    ({"server": {"workers": 65}}, "server.workers: 65 is not between 1 and 64"),
    ({"server": {"workers": "2"}}, "server.workers: expected a whole number"),
    ({"server": {"workers": 2}, "lockstore": {"url": "sqlite:///:memory:"}}, "not an in-memory database"),
    ({"server": {"workers": 2}, "audit": {"path": "/dev/stdout"}}, "give audit.path a file"),
    ({"server": {"wokers": 2}}, "unknown key server.wokers"),
])
def test_server_workers_is_validated(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _cfg(**raw)
    assert message in info.value.message
