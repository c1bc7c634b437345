"""Unit tests for sidecar.locks.model.Lock: in force, expired, lifted, and what the API shows."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from sidecar.identity import Subject
from sidecar.locks.model import Lock
from tests.support.locks import NOW, make_lock

LEA = Subject("lea", "legal", ())


def lifted(lock: Lock) -> Lock:
    return replace(lock, state="lifted", lifted_at=NOW - timedelta(seconds=5), lifted_by=LEA,
                   lifted_decision_id="dec-1")


@pytest.mark.parametrize(("lock", "state", "active", "expired", "is_lifted"), [
    (make_lock("lk-1"), "active", True, False, False),
    (make_lock("lk-1", expires_in=1), "active", True, False, False),
    (replace(make_lock("lk-1"), state="pending"), "pending", True, False, False),
    (replace(make_lock("lk-1"), state="failed"), "failed", True, False, False),
    (make_lock("lk-1", expires_in=0), "expired", False, True, False),
    (replace(make_lock("lk-1", expires_in=-1), state="failed"), "expired", False, True, False),
    (lifted(make_lock("lk-1")), "lifted", False, False, True),
    (lifted(make_lock("lk-1", expires_in=3600)), "lifted", False, False, True),
    (lifted(make_lock("lk-1", expires_in=-1)), "lifted", False, False, True),
])
def test_as_json_says_one_of_active_expired_lifted(
    lock: Lock, state: str, active: bool, expired: bool, is_lifted: bool
) -> None:
    doc = lock.as_json(NOW)
    assert (doc["state"], doc["active"], doc["expired"], doc["lifted"]) == (state, active, expired, is_lifted)
    assert lock.in_force(NOW) is active
    assert lock.expired(NOW) is expired
    assert lock.lifted is is_lifted
    assert lock.list_state(NOW) == ("lifted" if is_lifted else "expired" if expired else "active")


def test_as_json_of_a_lifted_lock_says_who_lifted_it_when_and_by_which_decision() -> None:
    doc = lifted(make_lock("lk-1")).as_json(NOW)
    assert {k: doc[k] for k in ("lifted_at", "lifted_by", "lifted_decision_id")} == {
        "lifted_at": "2030-01-01T11:59:55Z", "lifted_by": {"user_id": "lea", "project_id": "legal"},
        "lifted_decision_id": "dec-1"}


def test_as_json_of_a_lock_never_lifted_has_empty_lifted_fields() -> None:
    doc: dict[str, Any] = make_lock("lk-1").as_json(NOW)
    assert (doc["lifted_at"], doc["lifted_by"], doc["lifted_decision_id"]) == (None, None, None)


def test_the_policy_input_is_unchanged_by_history() -> None:
    assert lifted(make_lock("lk-1")).as_input() == make_lock("lk-1").as_input()
