"""Replay and bundle data through a real OPA server (``policy.engine: opa``).

OPA serves one revision: a decision can be replayed against it while it is the one
OPA reports, not after; the bundle's ``data.statelock`` is read with ``POST /v1/query``.
"""

from __future__ import annotations

import pytest

from sidecar.config import PolicyConfig
from sidecar.policy.opa import OpaEngine
from tests.support.opa_server import OpaServer, opa_server  # noqa: F401
from tests.support.paths import BUNDLE_REVISION
from tests.unit.test_policy_replay import LOCKED

pytestmark = pytest.mark.integration


async def test_opa_replays_its_own_revision_and_reads_bundle_data(opa_server: OpaServer) -> None:  # noqa: F811
    engine = OpaEngine(PolicyConfig(engine="opa", opa_url=opa_server.url))
    await engine.start()
    try:
        current = await engine.decide(LOCKED)
        assert engine.loaded_revisions() == (BUNDLE_REVISION,)
        replayed = await engine.decide_at(LOCKED, BUNDLE_REVISION)
        assert replayed is not None and replayed.allow is current.allow is False
        assert replayed.lock_ids == ("lk-1",)
        assert await engine.decide_at(LOCKED, "statelock-policy-0") is None
        assert await engine.data_at(("statelock", "lock_roles")) == ["admin", "billing", "legal", "security"]
        assert await engine.data_at(("statelock", "audit_roles")) == ["security"]
        assert await engine.data_at(("statelock", "no_such_key")) is None
    finally:
        await engine.close()
