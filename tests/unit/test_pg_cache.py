"""Unit tests for sidecar.locks.pg_cache.LockCache: notifications applied in order, exactness."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from sidecar.locks.pg_cache import LockCache
from tests.support.locks import INSTANCE, NOW, OTHER, make_lock


def note(generation: int, scope: str = "instance", target: str = INSTANCE) -> str:
    return json.dumps({"generation": generation, "scope": scope, "target": target})


@pytest.mark.parametrize(("notes", "instance_cached", "scoped_cached", "applied"), [
    ([], True, True, 5),
    ([note(4)], True, True, 5),                                   # already applied: ignored
    ([note(6, target=OTHER)], True, True, 6),                     # another instance
    ([note(6)], False, True, 6),                                  # this instance changed
    ([note(6, "project", "demo")], True, False, 6),               # a project lock changed
    ([note(7, target=OTHER)], False, False, 7),                   # a gap: everything dropped
    ([note(6, "*", "")], False, False, 6),                        # truncate or a moved lock
    (["not json"], False, False, -1),                             # unreadable: know nothing
])
def test_cache_applies_notifications_in_order(
    notes: list[str], instance_cached: bool, scoped_cached: bool, applied: int
) -> None:
    cache = LockCache()
    cache.reset(5)
    cache.put_instance(INSTANCE, [make_lock("lk-1")], 5, NOW)
    cache.put_scoped([], 5, NOW)
    for payload in notes:
        cache.apply(payload)
    generation = max(applied, 5)
    assert cache.applied == applied
    assert (cache.instance(INSTANCE, generation, NOW) is not None) is (instance_cached and applied >= 5)
    assert (cache.scoped(generation, NOW) is not None) is (scoped_cached and applied >= 5)


def test_cache_is_exact_only_between_its_generation_and_what_was_applied() -> None:
    cache = LockCache()
    cache.reset(5)
    cache.put_instance(INSTANCE, [make_lock("lk-1")], 5, NOW)
    assert cache.instance(INSTANCE, 5, NOW) is not None
    assert cache.instance(INSTANCE, 6, NOW) is None                       # the listener lags
    assert cache.instance(INSTANCE, 4, NOW) is None                       # an older guard
    assert cache.instance(INSTANCE, 5, NOW - timedelta(seconds=1)) is None  # before it was read
    cache.apply(note(6, target=OTHER))
    assert cache.instance(INSTANCE, 6, NOW) is not None
    cache.put_instance(OTHER, [], 5, NOW)                                 # read before a change applied
    assert cache.instance(OTHER, 6, NOW) is None

