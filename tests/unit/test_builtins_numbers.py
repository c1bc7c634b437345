"""``numbers.range_step`` and ``rand.intn`` decide as the real OPA does.

``rand.intn`` is random, so its table compares what OPA promises: a value in
``[0, |n|)``, 0 for n 0, the same for the same (key, n) within one evaluation.
"""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.policy.wasm.builtins import EvalContext, Halt, load_all
from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

INPUT: dict[str, Any] = {"n": None, "s": "1", "f": 1.5, "two": 2.0, "big": 1e3, "e15": 1e15, "e16": 1e16,
                         "neg": -2.0}

_OPERANDS = [(1, 10, 1), (1, 10, 3), (10, 1, 3), (0, 0, 1), (-5, 5, 2), (5, -5, 2), (1, 10, 100),
             (1, 10, 0), (1, 10, -1), (-1, -10, 4), (500, 530, 7), (510, 520, 1), (-2, 2, 1)]
RANGE_STEP = [f"numbers.range_step({a}, {b}, {c})" for a, b, c in _OPERANDS] + [
    "numbers.range_step(1, 5, 1.0)", "numbers.range_step(1.0, 5, 2)", "numbers.range_step(1, 5.0, 2)",
    "numbers.range_step(1, 5, 1.5)", "numbers.range_step(1.5, 5, 1)", "numbers.range_step(1e2, 105, 1)",
    "numbers.range_step(9223372036854775806, 9223372036854775809, 1)",
    "numbers.range_step(100000000000000000000, 100000000000000000002, 1)",
    "numbers.range_step(1, 3, 100000000000000000000)",
    "numbers.range_step(input.two, 6, input.two)", "numbers.range_step(1, input.big, 400)",
    "numbers.range_step(1, 5, input.f)", "numbers.range_step(input.s, 5, 1)",
    "numbers.range_step(input.n, 5, 1)",
]
RAND_INTN = [
    'rand.intn("a", 10) == rand.intn("a", 10)', 'rand.intn("a", 10) < 10', 'rand.intn("a", 10) >= 0',
    'rand.intn("a", -10) >= 0', 'rand.intn("a", -10) < 10', 'rand.intn("a", 0)', 'rand.intn("a", 1)',
    'rand.intn("b", -1)', 'rand.intn("a", 1.5)', 'rand.intn("a", 2.0) < 2',
    'rand.intn(input.n, 5)', 'rand.intn("a", input.s)', 'rand.intn("a", input.f)',
    'rand.intn("a", input.e15) >= 0', 'rand.intn("a", input.e16) >= 0', 'rand.intn("a", input.neg) < 2',
    'rand.intn("a", 9223372036854775807) >= 0', 'rand.intn("a", 9223372036854775808)',
    'count({rand.intn("c", 1000000) | some i in numbers.range(1, 20)})',
]

TABLES = {"range_step": RANGE_STEP, "rand_intn": RAND_INTN}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_numbers_builtins_agree_with_opa(table: str) -> None:
    assert compare_expressions(TABLES[table], input_doc=INPUT) == []


def test_rand_intn_is_cached_per_evaluation_only() -> None:
    fn = load_all()["rand.intn"]
    one = EvalContext(now_ns=0)
    first = fn(one, "k", 1 << 62)
    assert fn(one, "k", 1 << 62) == fn(one, "k", -(1 << 62)) == first
    assert fn(EvalContext(now_ns=0), "k", 1 << 62) != first


def test_an_integer_operand_written_with_an_exponent() -> None:
    assert compare_expressions(['rand.intn("a", 1e3) < 1000', "time.add_date(0, 0, 0, 1e0)"]) == []


def test_rand_intn_of_the_least_int64_fails_the_evaluation() -> None:
    # NOTE: OPA itself panics on this (rand.Intn of a negative bound); the engine must not decide.
    with pytest.raises(Halt):
        load_all()["rand.intn"](EvalContext(now_ns=0), "a", -(1 << 63))
