"""``uuid.parse`` and ``uuid.rfc4122`` decide as the real OPA does.

``uuid.rfc4122`` is random, so the table compares what OPA promises about it:
a version 4 RFC 4122 UUID, the same for the same key within one evaluation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.policy.wasm.builtins import EvalContext, load_all
from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

INPUT: dict[str, Any] = {"n": None, "num": 1}

TEXTS = [
    "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8",
    "c232ab00-9414-11ec-b3c8-9f6bdeced846", "000003e8-cbb9-21ea-b201-00045a86c8a1",
    "000003e8-cbb9-21ea-b201-01045a86c8a1", "000003e8-cbb9-21ea-b205-02045a86c8a1",
    "000003e8-cbb9-21ea-b201-03045a86c8a1", "00000000-0000-2000-8003-000000000000",
    "00000000-0000-1000-c000-000000000000", "00000000-0000-1000-e000-000000000000",
    "00000000-0000-1000-0000-000000000000", "ffffffff-ffff-1fff-bfff-ffffffffffff",
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
    "1ec9414c-232a-6b00-b3c8-9f6bdeced846", "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "URN:UUID:6ba7b810-9dad-11d1-80b4-00c04fd430c8", "urn:uid:x6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", "x6ba7b810-9dad-11d1-80b4-00c04fd430c8y",
    "6ba7b8109dad11d180b400c04fd430c8", "6ba7b8109dad11d180b400c04fd430cg",
    "6ba7b810-9dad-11d1-80b4-00c04fd430c", "6ba7b810-9dad-11d1-80b400c04fd430c8-",
    "6ba7b810_9dad_11d1_80b4_00c04fd430c8", "6ba7b810-9dad-11d1-80b4-00c04fd430cé", "", "not a uuid",
]

PARSE = [f"uuid.parse({json.dumps(t)})" for t in TEXTS] + ["uuid.parse(input.n)", "uuid.parse(input.num)"]
_UUID4 = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
RFC4122 = [
    'uuid.rfc4122("a") == uuid.rfc4122("a")', 'uuid.rfc4122("a") != uuid.rfc4122("b")',
    f'regex.match("{_UUID4}", uuid.rfc4122("x"))', 'uuid.parse(uuid.rfc4122("y")).version',
    'uuid.parse(uuid.rfc4122("y")).variant', 'count(uuid.rfc4122(""))',
    'count({uuid.rfc4122(k) | some k in ["p", "q", "r", "p"]})',
]

TABLES = {"parse": PARSE, "rfc4122": RFC4122}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_uuid_builtins_agree_with_opa(table: str) -> None:
    assert compare_expressions(TABLES[table], input_doc=INPUT) == []


def test_rfc4122_is_cached_per_evaluation_only() -> None:
    fn = load_all()["uuid.rfc4122"]
    one, other = EvalContext(now_ns=0), EvalContext(now_ns=0)
    assert fn(one, "k") == fn(one, "k") != fn(other, "k")
