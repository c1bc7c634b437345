"""sprintf on the embedded engine answers as ``opa eval`` does (OPA is the oracle).

Each table is a product of formats and operands, evaluated in one module by both
engines (``tests.support.rego_diff``). Operands a type checker would refuse come
through ``input``.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

STRINGS = ['"lock-state"', '""', r'"q\"uo\\te"', r'"nul\u0000x"', '"héllo"', '"日本語"', r'"tab\tnl\n"',
           r'"\u200b\u00ad"', '"`back`"', r'"\ud83d\ude00"', r'"\u007f"']
INTEGERS = ["0", "7", "-42", "65", "255", "128512", "55296", "1114112", "9223372036854775807",
            "-9223372036854775808", "9223372036854775808", "-9223372036854775809", "18446744073709551617",
            "123456789012345678901234567890", "-340282366920938463463374607431768211457"]
FLOATS = ["0.0", "1.0", "-1.5", "0.1", "2.5", "1e6", "1e21", "1e20", "123456789.0", "0.000012345", "0.0001",
          "3.141592653589793", "1.7976931348623157e308", "5e-324", "100000.0", "9.995", "1e-7", "-0.0", "1.50",
          "1e400", "1E3"]
OTHERS = ["true", "false", "null", '[1, "a", [2.5]]', '{"b": [true], "a": 1}', '{2, 1, "x"}', "set()", "{}", "[]",
          '{"k": {"n": null}}', '[{1: "one"}]']

STRING_FORMATS = ["%s", "%v", "%q", "%+q", "%#q", "%x", "%X", "% x", "%# x", "%#X", "%8s|", "%-8s|", "%08s", "%.3s",
                  "%.2q", "%10.4v|", "%d", "%t", "%c", "%#v", "%T", "%5.1x"]
INTEGER_FORMATS = ["%d", "%v", "%s", "%5d", "%-5d|", "%05d", "%+d", "% d", "%x", "%X", "%#x", "%#X", "%o", "%#o",
                   "%O", "%b", "%#b", "%c", "%q", "%+q", "%U", "%#U", "%.8d", "%08.3d", "%+.0d", "%t", "%f", "%e",
                   "%#v", "%+v", "%T", "%-#12x|", "% 010d", "%w", "%#w", "%+w"]
FLOAT_FORMATS = ["%v", "%f", "%F", "%.2f", "%8.3f|", "%-8.3f|", "%08.3f", "%+.1f", "% f", "%e", "%E", "%.0e", "%10.4e",
                 "%g", "%G", "%.3g", "%.10g", "%#g", "%#.3g", "%#.0f", "%x", "%X", "%.3x", "%#x", "%b", "%d", "%s",
                 "%.20f", "%.17g", "%+v", "%010v", "%T", "%q"]
OTHER_FORMATS = ["%v", "%s", "%d", "%q", "%x", "%20v|", "%.4s", "%t", "%#v"]

ERROR_FORMATS = [
    'sprintf("%s", [])', 'sprintf("%s %s", ["a"])', 'sprintf("x", ["a", 1, 2.5])', 'sprintf("%", [1])',
    'sprintf("%d%", [1])', 'sprintf("%-", [1])', 'sprintf("%!", [1])', 'sprintf("%z", ["a"])', 'sprintf("%%", [1])',
    'sprintf("%[2]s %[1]s", ["a", "b"])', 'sprintf("%[3]s", ["a", "b"])', 'sprintf("%[0]s", ["a"])',
    'sprintf("%[x]s", ["a"])', 'sprintf("%[1]s %s", ["a", "b"])', 'sprintf("%[2]*[1]d|", [12, 5])',
    'sprintf("%*d|", [5, 42])', 'sprintf("%-*d|", [5, 42])', 'sprintf("%*d|", [-5, 42])',
    'sprintf("%.*f", [2, 3.14159])', 'sprintf("%.*f", [-2, 3.14159])', 'sprintf("%*d", ["x", 1])',
    'sprintf("%.*d", [1.5, 1])', 'sprintf("%*d", [])',
    'sprintf("%*d", [10000000, 1])', 'sprintf("%[2]d %d", [1, 2, 3])', 'sprintf("%.", ["a"])', 'sprintf("%5", [1])',
    'sprintf("%d %d", [1, 2, 3, "x", 1.5, 18446744073709551617])', 'sprintf("%ñ", ["a"])', 'sprintf("é%sé", ["ü"])',
    'sprintf("%s", [concat("-", ["lock", "state"])])', 'sprintf("%d", [count([1, 2, 3])])',
    'sprintf("%v items in %s", [count({1, 2}), "a set"])', 'sprintf("%[1]d %[1]x %[1]o", [255])',
    'sprintf("%3[1]d", [1])', 'sprintf("%.[1]d", [1])', 'sprintf("%[1].2f", [1.0])', 'sprintf("%999999999d", [1])',
    'sprintf("%.2147483648d", [1])', 'sprintf("%.3", [1])', 'sprintf("%[1]", [1])', 'sprintf("%[]d", [1])',
]
INPUT_CASES = ['sprintf(input.n, [])', 'sprintf("%s", input.s)', 'sprintf("%v", [input])', 'sprintf("%d", [input.big])',
               'sprintf("%v %v %v", input.list)', 'sprintf("%.1f", [input.f])', 'sprintf("%d", [input.f])']


def _product(formats: list[str], operands: list[str]) -> list[str]:
    return [f'sprintf("{f}", [{o}])' for f, o in itertools.product(formats, operands)]


def _chunks(name: str, exprs: list[str], size: int = 200) -> dict[str, list[str]]:
    # NOTE: one module per 200 expressions: a larger one outgrows the runtime's initial Wasm memory.
    return {f"{name} {i // size}": exprs[i:i + size] for i in range(0, len(exprs), size)}


TABLES = {
    **_chunks("strings", _product(STRING_FORMATS, STRINGS)),
    **_chunks("integers", _product(INTEGER_FORMATS, INTEGERS)),
    **_chunks("floats", _product(FLOAT_FORMATS, FLOATS)),
    **_chunks("composites", _product(OTHER_FORMATS, OTHERS)),
    "errors and indexes": ERROR_FORMATS,
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_sprintf_agrees_with_opa(name: str) -> None:
    assert compare_expressions(TABLES[name]) == []


def test_sprintf_of_input_agrees_with_opa() -> None:
    doc = {"n": 5, "s": "not an array", "big": 2**70, "f": 2.675, "list": [1.0, {"z": [1, 2.5]}, None],
           "obj": {"b": 1, "a": "x"}}
    assert compare_expressions(INPUT_CASES, input_doc=doc) == []


def test_sprintf_of_number_text_inside_a_composite() -> None:
    assert compare_expressions(['sprintf("%v", [[1.0, 1e3, 1.50]])']) == []
