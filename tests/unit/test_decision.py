"""Unit tests for sidecar.policy.decision: an engine result -> Decision or PolicyError."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.errors import PolicyError
from sidecar.policy.decision import Decision, decision_from_result


@pytest.mark.parametrize(("result", "match"), [
    (None, "undefined"),
    ([], "not an object"),
    ("allow", "not an object"),
    (True, "not an object"),
    (1, "not an object"),
    ({}, "no boolean 'allow'"),
    ({"allow": None}, "no boolean 'allow'"),
    ({"allow": "true"}, "no boolean 'allow'"),
    ({"allow": 1}, "no boolean 'allow'"),
    ({"allow": 0}, "no boolean 'allow'"),
    ({"allow": [True]}, "no boolean 'allow'"),
    ({"allow": False, "status": "409"}, "'status' is not an integer"),
    ({"allow": False, "status": 409.0}, "'status' is not an integer"),
    ({"allow": False, "status": True}, "'status' is not an integer"),
    ({"allow": False, "status": None}, "'status' is not an integer"),
    ({"allow": False, "reasons": "locked"}, "'reasons' is not a list of strings"),
    ({"allow": False, "reasons": ["locked", 1]}, "'reasons' is not a list of strings"),
    ({"allow": False, "reasons": None}, "'reasons' is not a list of strings"),
    ({"allow": False, "lock_ids": {"lk-1": True}}, "'lock_ids' is not a list of strings"),
    ({"allow": True, "overrides": [None]}, "'overrides' is not a list of strings"),
])
def test_unusable_results_are_policy_errors(result: Any, match: str) -> None:
    with pytest.raises(PolicyError, match=match) as info:
        decision_from_result(result, "rev-1")
    assert info.value.status == 503


@pytest.mark.parametrize(("allow", "status", "expected"), [
    (False, None, 403),
    (False, 403, 403),
    (False, 409, 409),
    (False, 200, 403),
    (False, 404, 403),
    (False, 500, 403),
    (False, 503, 403),
    (True, None, 403),
    (True, 409, 409),
])
def test_status_is_normalised_for_denials(allow: bool, status: int | None, expected: int) -> None:
    result: dict[str, Any] = {"allow": allow}
    if status is not None:
        result["status"] = status
    assert decision_from_result(result, "rev").status == expected


def test_a_full_result_is_carried_over() -> None:
    result = {"allow": False, "status": 409, "reasons": ["instance is locked"], "lock_ids": ["lk-1", "lk-2"],
              "overrides": ["admin"], "extra": {"k": 1}}
    decision = decision_from_result(result, "rev-7", engine_decision_id="d-1")
    assert decision == Decision(
        allow=False, reasons=("instance is locked",), lock_ids=("lk-1", "lk-2"), status=409,
        overrides=("admin",), revision="rev-7", engine_decision_id="d-1", result=result,
    )
    assert decision.result is not result


def test_missing_lists_default_to_empty() -> None:
    decision = decision_from_result({"allow": True}, "rev")
    assert decision.allow is True
    assert (decision.reasons, decision.lock_ids, decision.overrides) == ((), (), ())
    assert decision.engine_decision_id is None
