"""The audit keys added to sidecar.config for checkpoints: defaults, validation, help text."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config import config_from_mapping, explain
from sidecar.errors import ConfigError

UPSTREAM = {"backend": {"upstream_url": "http://127.0.0.1:18774"}}


def test_checkpoint_defaults() -> None:
    cfg = config_from_mapping(UPSTREAM, env={})
    assert (cfg.audit.checkpoint_interval_s, cfg.audit.signing_key) == (60.0, None)


def test_checkpoint_keys_are_read() -> None:
    cfg = config_from_mapping({**UPSTREAM, "audit": {"checkpoint_interval_s": 5, "signing_key": "/etc/k.pem"}},
                              env={})
    assert (cfg.audit.checkpoint_interval_s, cfg.audit.signing_key) == (5.0, "/etc/k.pem")


@pytest.mark.parametrize(("audit", "message"), [
    ({"checkpoint_interval_s": 0}, "audit.checkpoint_interval_s: must be positive"),
    ({"checkpoint_interval_s": -60}, "audit.checkpoint_interval_s: must be positive"),
    ({"checkpoint_interval_s": "often"}, "audit.checkpoint_interval_s: expected a number"),
    ({"signing_key": "  "}, "audit.signing_key: empty; give a file path"),
    ({"signing_key": 7}, "audit.signing_key"),
])
def test_bad_checkpoint_keys_name_the_key(audit: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({**UPSTREAM, "audit": audit}, env={})


def test_checkpoint_keys_are_explained() -> None:
    keys = {key: text for key, _, text in explain()}
    assert "signed checkpoints" in keys["audit.checkpoint_interval_s"]
    assert "0600" in keys["audit.signing_key"] and "<path>-signing.key" in keys["audit.signing_key"]
