"""The strings host builtins answer as ``opa eval`` does (OPA is the oracle).

Operands the type checker would refuse come through ``input``, so that both engines
see the builtin's own type error (an undefined call).
"""

from __future__ import annotations

import pytest

from tests.support.rego_diff import compare_expressions, wasm_outcome

pytestmark = pytest.mark.integration

TEXTS = ['""', '"a"', '"abcabc"', '"aaaa"', '"héllo wörld"', '"日本語日本"', '"a,b,,c"', '"lock-state"',
         r'"\u0000x\u0000"', r'"\ud83d\ude00!\ud83d\ude00"']
NEEDLES = ['""', '"a"', '"aa"', '"bc"', '"l"', '"ö"', '"日本"', '","', r'"\u0000"', r'"\ud83d\ude00"']

CASES = {
    "count": [f"strings.count({t}, {n})" for t in TEXTS for n in NEEDLES],
    "indexof_n": [f"indexof_n({t}, {n})" for t in TEXTS for n in NEEDLES],
    # NOTE: one table per delimiter: a module of 360 rules outgrows the runtime's initial Wasm memory.
    **{f"split_n {d}": [f"strings.split_n({t}, {d}, {k})" for t in TEXTS
                        for k in ["0", "1", "2", "-1", "-2", "10", "-10", "9223372036854775807", "2.0"]]
       for d in ['","', '""', '"a"', '"日"']},
    "affixes": [f"strings.{fn}({a}, {b})" for fn in ("any_prefix_match", "any_suffix_match")
                for a in ['"lock-state"', '["lock", "state"]', '{"x-y", "héllo"}', "[]", 'set()', '["日本語"]']
                for b in ['"lock"', '"state"', '""', '["st", "lo"]', '{"y", "é"}', "[]", '["語", "z"]', '{"x"}']],
    "quote_meta": [f"glob.quote_meta({p})" for p in
                   ['""', '"*.example.com"', r'"a?b\\c[d]{e,f}!-"', '"plain"', '"日*本?"', r'"\\\\*"']],
}

INPUT_CASES = [
    "strings.count(input.n, \"a\")", "strings.count(\"a\", input.n)", "indexof_n(input.n, \"a\")",
    "indexof_n(\"a\", input.arr)", "strings.split_n(\"a,b\", \",\", input.f)",
    "strings.split_n(\"a,b\", \",\", input.s)",
    "strings.split_n(input.n, \",\", 1)", "strings.split_n(\"a,b\", \",\", input.big)",
    "strings.split_n(\"a,b,c\", \",\", input.one)", "strings.split_n(\"a,b,c\", \",\", input.negtwo)",
    "strings.any_prefix_match(input.n, \"a\")", "strings.any_prefix_match(\"a\", input.n)",
    "strings.any_prefix_match(input.mixed, \"a\")", "strings.any_prefix_match(\"a\", input.mixed)",
    "strings.any_suffix_match(input.arr, input.mixed)", "strings.any_suffix_match(input.obj, \"a\")",
    "strings.any_prefix_match([], input.mixed)", "strings.any_prefix_match(input.arr, input.arr)",
    "glob.quote_meta(input.n)",
]


@pytest.mark.parametrize("name", sorted(CASES))
def test_strings_builtin_agrees_with_opa(name: str) -> None:
    assert compare_expressions(CASES[name]) == []


def test_strings_builtins_of_ill_typed_input_agree_with_opa() -> None:
    doc = {"n": 5, "f": 1.5, "s": "2", "big": 2**64, "one": 1.0, "negtwo": -2, "arr": ["ab", "ba"],
           "mixed": ["a", 1], "obj": {"a": "b"}}
    assert compare_expressions(INPUT_CASES, input_doc=doc) == []


def test_render_template_is_refused_by_name() -> None:
    # NOTE: Go's text/template is not re-implemented, so a policy using it must not load.
    outcome = wasm_outcome({"t.rego": 'package t\nx := strings.render_template("{{.a}}", {"a": 1})\n'}, "t")
    assert outcome.kind == "error"
    assert "strings.render_template" in outcome.error
