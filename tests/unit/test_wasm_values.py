"""Rego value text as opa_value_dump writes it: read, written back, ordered as Rego orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sidecar.policy.wasm import values
from sidecar.policy.wasm.values import BigNumber, Key, Number, RegoSet

PARSED = [
    ("null", None), ("true", True), ("false", False), ('"a\\"b"', 'a"b'), ('"\\u0000é"', "\x00é"),
    ("1", 1), ("-0", 0), ("18446744073709551617", 2**64 + 1), ("1.5", 1.5), ("1e3", 1000.0),
    ("[1, [2]]", [1, [2]]), ("set()", RegoSet()), ("{1, 2}", RegoSet([1, 2])), ("{}", {}),
    ('{"a": 1, "b": [true]}', {"a": 1, "b": [True]}), ('{1: "x"}', {1: "x"}),
    ('{{"a": 1}}', RegoSet([{"a": 1}])), ("{[1, 2]: 3}", {Key([1, 2]): 3}),
]


@pytest.mark.parametrize(("text", "value"), PARSED, ids=[t for t, _ in PARSED])
def test_parse(text: str, value: Any) -> None:
    assert values.parse(text) == value


@pytest.mark.parametrize(("text", "value"), PARSED, ids=[t for t, _ in PARSED])
def test_dump_reads_back(text: str, value: Any) -> None:
    assert values.parse(values.dump(value)) == value


def test_a_number_a_float_cannot_hold_stays_text() -> None:
    big = values.parse("1e400")
    assert isinstance(big, BigNumber) and values.dump(big) == "1e400"


def test_sets_are_unique_and_in_rego_order() -> None:
    s = RegoSet(["b", 1, None, "a", 1, [0], {"k": 1}, True])
    assert s.items == [None, True, 1, "a", "b", [0], {"k": 1}]
    assert values.dump(s) == '{null,true,1,"a","b",[0],{"k":1}}'
    assert "a" in s and 2 not in s


@pytest.mark.parametrize("text", ["", "[1,", "{1: }", "nul", "1 2", "[1] x", "'a'", "01"])
def test_not_a_value(text: str) -> None:
    with pytest.raises(values.ValueSyntaxError):
        values.parse(text)


@pytest.mark.parametrize(("value", "name"), [(None, "null"), (True, "boolean"), (1, "number"), (1.5, "number"),
                                             ("s", "string"), ([], "array"), (RegoSet(), "set"), ({}, "object")])
def test_type_names_are_opas(value: Any, name: str) -> None:
    assert values.type_name(value) == name


def test_non_finite_floats_cannot_be_written() -> None:
    with pytest.raises(ValueError):
        values.dump(float("nan"))


def test_a_number_keeps_the_text_it_was_written_as() -> None:
    for text in ("1.50", "1e3", "1234567890123456789.0", "-0.0", ".0", "-.5", "1.", "2.e1"):
        number = values.parse(text)
        assert isinstance(number, Number) and number == float(text) and values.dump(number) == text
    assert values.parse("1234567890123456789.0").exact() == 1234567890123456789


def test_equal_numbers_are_one_set_member() -> None:
    assert len(RegoSet([1, values.parse("1.0"), values.parse("1e0")])) == 1
    assert RegoSet([2, 1]) == RegoSet([values.parse("1.0"), 2])


def test_true_and_one_are_different_keys() -> None:
    assert values.parse('{1: "a", true: "b"}') == {1: "a", Key(True): "b"}


# --- found by the differential corpus (tests/integration/test_engine_differential.py) -------------


def test_objects_sort_before_sets_as_in_opa() -> None:
    s = RegoSet([RegoSet(["a"]), {"k": 1}, [1], "s"])
    assert s.items == ["s", [1], {"k": 1}, RegoSet(["a"])]


def test_an_integral_float_beyond_2_53_is_written_as_its_text() -> None:
    assert values.dump(5.775808911430121e16) == "5.775808911430121e+16"
    assert values.dump(2.0**52) == "4503599627370496"


def test_minus_zero_is_zero_written_as_minus_zero() -> None:
    zero = values.parse("-0")
    assert zero == 0 and values.dump(zero) == "-0" and values.dump([zero, 0]) == "[-0,0]"
    assert RegoSet([zero, 0]).items == [zero] and values.sort_key(zero) == values.sort_key(0)


def test_number_keys_keep_their_text() -> None:
    parsed = values.parse("{-0.0: 1, 1e2: [1.0]}")
    assert [values.dump(k) for k in parsed] == ["-0.0", "1e2"]


RESULTS = [
    (b"set()", []),
    (b'{{"result": {"b": 1, "a": [1]}}}', [{"result": {"b": 1, "a": [1]}}]),
    (b'{{"result": {"z", "", null}}}', [{"result": [None, "", "z"]}]),
    (b'{{"result": {-0.0: 1, 1.0: 2, 5.775808911430121e+16: 3}}}',
     [{"result": {"-0.0": 1, "1.0": 2, "5.775808911430121e+16": 3}}]),
    (b'{{"result": {[1]: {2, 1}}}}', [{"result": {"[1]": [1, 2]}}]),
    (b'{{"result": "\xe7\x80a\xff"}}', [{"result": "\ufffd\ufffda\ufffd"}]),
    (b'{{"result": {1e400}}}', [{"result": [float("inf")]}]),
]


@pytest.mark.parametrize(("text", "expected"), RESULTS, ids=[t.decode(errors="replace") for t, _ in RESULTS])
def test_result_json_is_what_opas_server_answers(text: bytes, expected: Any) -> None:
    assert values.result_json(text) == expected


def test_result_json_keeps_numbers_exact_for_an_exact_reader() -> None:
    text = b'{{"result": {0.1000000000000000000001, 18446744073709551617}}}'
    assert values.result_json(text, number=Decimal) == [{"result": [Decimal("0.1000000000000000000001"),
                                                                    Decimal(2**64 + 1)]}]


def test_a_number_json_cannot_hold_is_not_a_result() -> None:
    with pytest.raises(values.ValueSyntaxError):
        values.result_json(b'{{"result": .5}}')
