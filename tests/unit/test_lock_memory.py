"""Unit tests for sidecar.locks.memory: versions, the bound, expiry at read time, order."""

from __future__ import annotations

from datetime import timedelta

from sidecar.locks.memory import LockMemory, ScopedSummary, in_force, oldest_first
from tests.support.locks import NOW, ids, make_lock


def test_rows_are_kept_for_one_version_only() -> None:
    memory = LockMemory()
    assert memory.at(1).rows(("instance", "a")) is None
    memory.put(("instance", "a"), [make_lock("lk-1", target="a")])
    memory.scoped = ScopedSummary(False, None)
    assert ids(memory.at(1).rows(("instance", "a")) or ()) == ["lk-1"]
    assert memory.at(2).rows(("instance", "a")) is None
    assert memory.scoped is None
    assert (memory.hits, memory.misses, memory.resets) == (1, 2, 1)


def test_past_max_targets_it_starts_again_empty() -> None:
    memory = LockMemory(max_targets=2).at(0)
    for target in ("a", "b", "c"):
        memory.put(("instance", target), [])
    assert memory.rows(("instance", "a")) is None
    assert memory.rows(("instance", "c")) == ()


def test_expiry_applies_at_the_time_of_the_read() -> None:
    rows = [make_lock("lk-1", expires_in=60), make_lock("lk-2", created=1)]
    assert ids(in_force(rows, NOW)) == ["lk-1", "lk-2"]
    assert ids(in_force(rows, NOW + timedelta(seconds=60))) == ["lk-2"]


def test_several_targets_come_oldest_first() -> None:
    own = [make_lock("lk-b", created=2)]
    project = [make_lock("lk-a", "project", "demo", created=1), make_lock("lk-c", "project", "demo", created=3)]
    assert ids(oldest_first([own, project], NOW + timedelta(seconds=5))) == ["lk-a", "lk-b", "lk-c"]


def test_scoped_summary() -> None:
    assert ScopedSummary(True, None).any_in_force(NOW)
    assert not ScopedSummary(False, None).any_in_force(NOW)
    assert ScopedSummary(False, NOW).any_in_force(NOW - timedelta(seconds=1))
    assert not ScopedSummary(False, NOW).any_in_force(NOW)
