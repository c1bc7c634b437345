"""Replay and backtest over the real bundle (embedded Wasm engine): kept revisions, data, candidate counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sidecar.config import PolicyConfig
from sidecar.errors import PolicyError
from sidecar.policy.backtest import backtest, replayable
from sidecar.policy.embedded import KEPT_REVISIONS, EmbeddedEngine
from tests.support.paths import POLICIES

LOCKED = {"now": "2026-11-25T01:00:00Z",
          "subject": {"user_id": "alice", "project_id": "demo", "roles": ["member"]},
          "action": {"name": "os-stop", "kind": "state_change", "method": "POST", "path": "/x", "params": {}},
          "target": {"instance_id": "vm-1", "project_id": "demo", "host": None},
          "locks": [{"id": "lk-1", "kind": "state", "scope": "instance", "reason": "hold",
                     "owner": {"user_id": "legal-svc", "project_id": "service", "roles": ["legal"]},
                     "created_at": "2026-11-24T00:00:00Z", "expires_at": None}]}


def _bundle(root: Path, revision: str, exempt_stop: bool = False) -> Path:
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(POLICIES, root, ignore=shutil.ignore_patterns("*_test.rego"))
    data = json.loads((root / "data.json").read_text())
    if exempt_stop:
        data["statelock"]["lock_kinds"]["state"]["exempt_actions"].append("os-stop")
    (root / "data.json").write_text(json.dumps(data))
    (root / ".manifest").write_text(json.dumps({"revision": revision}))
    return root


async def test_recent_revisions_stay_loaded_for_replay(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b", "r0")
    engine = EmbeddedEngine(PolicyConfig(bundle=str(root)))
    engine.load()
    assert (await engine.decide(LOCKED)).allow is False
    for n in range(1, KEPT_REVISIONS + 1):
        _bundle(root, f"r{n}", exempt_stop=True)
        assert await engine.reload_if_changed()
    assert engine.revision == f"r{KEPT_REVISIONS}" and (await engine.decide(LOCKED)).allow is True
    assert engine.loaded_revisions() == tuple(f"r{n}" for n in range(1, KEPT_REVISIONS + 1))
    assert await engine.decide_at(LOCKED, "r0") is None  # NOTE: the oldest was let go
    replayed = await engine.decide_at(LOCKED, "r1")
    assert replayed is not None and replayed.allow is True and replayed.revision == "r1"
    _bundle(root, "r-locked")
    assert await engine.reload_if_changed()
    older = await engine.decide_at(LOCKED, "r2")
    assert older is not None and older.allow is True and (await engine.decide(LOCKED)).allow is False


async def test_bundle_data_is_read_where_it_is() -> None:
    engine = EmbeddedEngine(PolicyConfig(bundle=str(POLICIES)))
    engine.load()
    assert await engine.data_at(("statelock", "lock_roles")) == ["admin", "billing", "legal", "security"]
    assert await engine.data_at(("statelock", "no_such_key")) is None
    assert await engine.data_at(("statelock", "lock_roles", "deeper")) is None


def _record(inp: dict[str, Any], outcome: str, name: str | None = None) -> dict[str, Any]:
    doc = json.loads(json.dumps(inp))
    if name:
        doc["action"]["name"] = name
    return {"decision_id": f"d-{outcome}-{name}", "timestamp": "t", "input": doc, "statelock": {"outcome": outcome}}


@pytest.mark.parametrize(("record", "expected"), [
    (_record(LOCKED, "deny"), True), (_record(LOCKED, "allow"), True), (_record(LOCKED, "error"), False),
    (_record({k: v for k, v in LOCKED.items() if k != "locks"}, "deny"), False),
    (_record({"subject": {}, "action": {"name": "show", "kind": "read"}}, "allow"), True),
    (_record({"subject": {}, "action": {"name": "console_login", "kind": "read"}}, "allow"), False),
])
def test_what_can_be_replayed(record: dict[str, Any], expected: bool) -> None:
    assert replayable(record) is expected


def test_a_backtest_counts_the_changes_each_way(tmp_path: Path) -> None:
    candidate = _bundle(tmp_path / "candidate", "cand-1", exempt_stop=True)
    unlocked = {**LOCKED, "locks": []}
    records = [_record(LOCKED, "deny"), _record(unlocked, "allow", "os-start"), _record(LOCKED, "error"),
               _record(unlocked, "deny", "reboot")]
    result = backtest(candidate, "statelock/authz/decision", records)
    assert (result.revision, result.evaluated, result.skipped) == ("cand-1", 3, 1)
    assert (result.deny_to_allow, result.allow_to_deny, result.unchanged) == (2, 0, 1)
    assert [c.decision_id for c in result.changes] == ["d-deny-None", "d-deny-reboot"]
    assert backtest(candidate, "statelock/authz/decision", records, first=1).changes[0].candidate == "allow"


def test_a_candidate_that_does_not_compile_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "statelock").mkdir(parents=True)
    (broken / "statelock" / "authz.rego").write_text("package statelock.authz\n\ndecision := {\n")
    with pytest.raises(PolicyError, match="does not compile"):
        backtest(broken, "statelock/authz/decision", [])
