"""Rego value text as opa_value_dump writes it: read, written back, ordered as Rego orders."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.policy.wasm import values
from sidecar.policy.wasm.values import BigNumber, Key, RegoSet

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
