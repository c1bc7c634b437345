"""``semver.compare`` and ``semver.is_valid`` decide as the real OPA does."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from sidecar.policy.wasm.builtins import EvalContext, Halt, load_all
from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

INPUT: dict[str, Any] = {"n": None, "num": 1, "arr": ["1.0.0"]}

VERSIONS = [
    "1.0.0", "v1.0.0", "vv1.0.0", "V1.0.0", "1.0", "1", "1.0.0.0", "01.0.0", "1.00.0", "1.0.00", "0.0.0",
    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
    "1.0.0-rc.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0-x-y-z.--", "1.0.0-01", "1.0.0-0a",
    "1.0.0-alpha..1", "1.0.0-", "1.0.0+", "1.0.0+build.1", "1.0.0+build..1", "1.0.0-alpha+001",
    "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0+21AF26D3----117B344092BD",
    "2.0.0", "2.1.0", "2.1.1", "10.0.0", "9223372036854775807.0.0", "9223372036854775808.0.0",
    "+1.0.0", "-1.0.0", "1.-0.0", "1.0.0-alpha.9223372036854775807", "1.0.0-á", " 1.0.0", "1.0.0 ",
    "1.0.0\n", "", "a.b.c", "1.0.0-alpha_1", "1.0.0-1.2", "1.0.0-1.10", "1.0.0-1.a", "1.0.0-a.1",
]

IS_VALID = [f"semver.is_valid({json.dumps(v)})" for v in VERSIONS] + [
    "semver.is_valid(input.n)", "semver.is_valid(input.num)", "semver.is_valid(input.arr)"]
_ORDERED = [v for v in VERSIONS if not v.endswith("\n")]
COMPARE = [f"semver.compare({json.dumps(a)}, {json.dumps(b)})"
           for a, b in itertools.combinations(_ORDERED[:34], 2)][::3] + [
    f"semver.compare({json.dumps(v)}, \"1.0.0\")" for v in VERSIONS] + [
    f"semver.compare(\"1.0.0\", {json.dumps(v)})" for v in VERSIONS] + [
    "semver.compare(input.n, \"1.0.0\")", "semver.compare(\"1.0.0\", input.num)"]

TABLES = {"is_valid": IS_VALID, "compare": COMPARE}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_semver_builtins_agree_with_opa(table: str) -> None:
    assert compare_expressions(TABLES[table], input_doc=INPUT) == []


def test_pre_releases_equal_only_after_saturation_fail_the_evaluation() -> None:
    # NOTE: OPA never returns on this comparison (its loop has no exit once both are exhausted).
    with pytest.raises(Halt):
        load_all()["semver.compare"](EvalContext(now_ns=0), "1.0.0-9223372036854775808",
                                      "1.0.0-9223372036854775809")
