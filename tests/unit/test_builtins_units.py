"""``units.parse`` and ``units.parse_bytes`` decide as the real OPA does (both engines, one table each)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

INPUT: dict[str, Any] = {"n": None, "num": 5, "arr": ["1k"]}

AMOUNTS = ["", "0", "1", "10", "1.5", ".5", "5.", "-3", "+3", "1e3", "1E3", "1e-3", "2.5e+2", "1e1000000",
           "1e999", "1.2.3", "1-2", "--1", "e3", "1e", "0.000000000001", "123456789012345678901234567890",
           "0.1", "3.14159265358979323846264338327950288"]
UNITS = ["", "k", "K", "ki", "Ki", "KI", "kI", "m", "M", "mi", "Mi", "MI", "g", "G", "Gi", "t", "T", "Ti",
         "p", "P", "Pi", "e", "E", "Ei", "kb", "KB", "kib", "KiB", "mb", "MB", "MiB", "gb", "GiB", "tb", "pb",
         "eb", "EiB", "b", "B", "x", "kk", "Ki B"]

_PAIRS = [(a, u) for a in ("1", "1.5", "10", "-2", "0.001", "3e2", "1000") for u in UNITS]
PARSE = [f'units.parse("{a}{u}")' for a, u in _PAIRS] + [f'units.parse("{a}")' for a in AMOUNTS] + [
    'units.parse("1 k")', 'units.parse("\\"10k\\"")', 'units.parse("m")', 'units.parse("1e1234567k")',
    'units.parse("1.0000000001m")', 'units.parse("-1m")', 'units.parse("-0.00000000001")',
    'units.parse("0.00000000005")', 'units.parse("1K\u0130")', 'units.parse("1\u0130")',
    'units.parse("0.00000000015")', 'units.parse("1Kµ")',
    "units.parse(input.n)", "units.parse(input.num)", "units.parse(input.arr)",
]
PARSE_BYTES = [f'units.parse_bytes("{a}{u}")' for a, u in _PAIRS] + [
    f'units.parse_bytes("{a}")' for a in AMOUNTS] + [
    'units.parse_bytes("1 KB")', 'units.parse_bytes("\\"10KB\\"")', 'units.parse_bytes("KB")',
    'units.parse_bytes("9223372036854775807")', 'units.parse_bytes("18446744073709551617")',
    'units.parse_bytes("18446744073709551617.5kb")', 'units.parse_bytes("123456789.123456789ki")',
    'units.parse_bytes("1.1eb")', 'units.parse_bytes("0.3e-2kb")', 'units.parse_bytes("7.777e60")',
    'units.parse_bytes("1e-60")', 'units.parse_bytes("1.000000000000000000001e30")',
    'units.parse_bytes("1\u212aB")', 'units.parse_bytes("1K\u0130B")', 'units.parse_bytes("1\u0130")',
    "units.parse_bytes(input.n)", "units.parse_bytes(input.num)",
]

TABLES = {"parse": PARSE, "parse_bytes": PARSE_BYTES}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_units_builtins_agree_with_opa(table: str) -> None:
    assert compare_expressions(TABLES[table], input_doc=INPUT) == []
