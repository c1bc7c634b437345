"""The console's and the decision index's config keys: each bad value names its key and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config import config_from_mapping
from sidecar.errors import ConfigError

BASE: dict[str, Any] = {"backend": {"kind": "upstream", "upstream_url": "http://127.0.0.1:8774"}}


@pytest.mark.parametrize(("overrides", "key"), [
    ({"audit": {"index": "mysql"}}, "audit.index"),
    ({"audit": {"index": "postgresql"}}, "audit.index"),
    ({"audit": {"index": "off", "index_path": "/tmp/x.db"}}, "audit.index_path"),
    ({"audit": {"index_path": " "}}, "audit.index_path"),
    ({"audit": {"replica": ""}}, "audit.replica"),
    ({"audit": {"replica": "r" * 129}}, "audit.replica"),
    ({"console": {"session_ttl_s": 0}}, "console.session_ttl_s"),
    ({"console": {"max_sessions": 0}}, "console.max_sessions"),
    ({"console": {"backtest_max_decisions": 0}}, "console.backtest_max_decisions"),
    ({"console": {"export_max_rows": 0}}, "console.export_max_rows"),
    ({"console": {"backtest_dir": ""}}, "console.backtest_dir"),
])
def test_bad_values_name_their_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_mapping({**BASE, **overrides}, env={})


def test_defaults_and_good_values() -> None:
    cfg = config_from_mapping(BASE, env={})
    assert (cfg.audit.index, cfg.audit.index_path, cfg.audit.replica) == ("auto", None, None)
    assert cfg.console.enabled and cfg.console.backtest_dir is None and cfg.console.session_ttl_s == 28800
    pg = config_from_mapping({**BASE, "lockstore": {"url": "postgresql://u@h/db"},
                              "audit": {"index": "postgresql", "replica": "r1"}}, env={})
    assert (pg.audit.index, pg.audit.replica) == ("postgresql", "r1")
