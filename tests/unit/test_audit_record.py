"""The record builders of sidecar.audit.record: the completion, and what a lock call adds to a decision."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.audit.query import parse_time
from sidecar.audit.record import is_completion, make_completion, make_record
from sidecar.vocab import LockState


def _decision(**extra: Any) -> dict[str, Any]:
    return make_record(
        decision_id="d-1", req_id=1, input_doc={"action": {"name": "suspend_lock"}}, result={"allow": True},
        revision="r1", outcome="allow", enforced=True, method="POST",
        path="/statelock/v1/instances/vm-1/suspend-lock", status=0, requested_by="10.0.0.1", **extra)


@pytest.mark.parametrize(("extra", "statelock"), [
    ({}, {}),
    ({"locks_placed": ["lk-1", "lk-2"]}, {"locks_placed": ["lk-1", "lk-2"]}),
    ({"locks_lifted": ("lk-3",)}, {"locks_lifted": ["lk-3"]}),
    ({"locks_placed": ["lk-1"], "locks_lifted": ["lk-0"]}, {"locks_placed": ["lk-1"], "locks_lifted": ["lk-0"]}),
])
def test_a_decision_names_the_locks_it_placed_or_lifted(extra: dict[str, Any], statelock: dict[str, Any]) -> None:
    record = _decision(**extra)
    assert {k: v for k, v in record["statelock"].items() if k.startswith("locks_")} == statelock


def test_a_forwarded_request_completion_has_the_recorders_shape() -> None:
    record = make_completion(decision_id="d-1", status=202, latency_s=0.0123456, error_code=None)
    assert is_completion(record)
    assert set(record) == {"type", "decision_id", "timestamp", "statelock"}
    assert record["decision_id"] == "d-1"
    assert record["statelock"] == {"upstream": {"status": 202, "latency_ms": 12.346}, "error_code": None}
    assert record["timestamp"].endswith("Z")
    parse_time(record["timestamp"])


@pytest.mark.parametrize(("kwargs", "upstream", "lock"), [
    ({"status": 202, "lock_ids": ["lk-1"], "lock_state": "active"},
     {"status": 202, "latency_ms": 5.0}, {"ids": ["lk-1"], "state": "active", "reconciled": False}),
    ({"status": 0, "error_code": "upstream_unavailable", "lock_ids": ["lk-1"], "lock_state": "failed"},
     {"status": 0, "latency_ms": 5.0}, {"ids": ["lk-1"], "state": "failed", "reconciled": False}),
    ({"status": 200, "backend_result": "suspended", "lock_ids": ["lk-1"], "lock_state": "active",
      "reconciled": True},
     {"status": 200, "latency_ms": 5.0, "result": "suspended"},
     {"ids": ["lk-1"], "state": "active", "reconciled": True}),
    ({"status": 202, "lock_ids": ("lk-1", "lk-2"), "lock_state": "lifted"},
     {"status": 202, "latency_ms": 5.0}, {"ids": ["lk-1", "lk-2"], "state": "lifted", "reconciled": False}),
], ids=["suspend-done", "suspend-failed", "reconciled-by-driver", "unlock"])
def test_a_lock_operation_completion_says_what_became_of_its_locks(
    kwargs: dict[str, Any], upstream: dict[str, Any], lock: dict[str, Any],
) -> None:
    record = make_completion(decision_id="d-1", latency_s=0.005, **kwargs)
    assert record["statelock"]["upstream"] == upstream
    assert record["statelock"]["lock"] == lock
    assert record["statelock"]["error_code"] == kwargs.get("error_code")


def test_a_completion_without_lock_fields_has_no_lock() -> None:
    state: LockState | None = None
    assert "lock" not in make_completion(decision_id="d", status=202, latency_s=0, lock_state=state)["statelock"]
