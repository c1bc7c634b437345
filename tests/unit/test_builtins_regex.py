"""The regex host builtins answer as ``opa eval`` does (OPA is the oracle).

Patterns Go's regexp refuses (lookarounds, backreferences, ``\\C``...) must make the
call undefined here too; empty matches must follow Go's successive-match rule.
"""

from __future__ import annotations

import pytest

from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

PATTERNS = ['"a"', '"a*"', '"a+"', '""', '"x*"', '"[0-9]+"', '"(a)(b)?"', '"(?i)é"', '"^"', '"$"', '"\\\\b"',
            '"(?m)^\\\\w+"', '"."', '"[^a]"', '"(?P<word>\\\\w+)"', '"(?<n>a|b)"', '"\\\\pL+"', '"a|ab"', '"\\\\s*"',
            '"日+"', '"\\\\Qa.b\\\\E"', '"(a*)*"', '"x{2,3}"', '"[[:alpha:]]+"', '"(?s)a.b"', '"a.b"', '"\\\\d{2}$"']
REFUSED = ['"(?=a)"', '"(?!a)"', '"(?<=a)b"', '"(a)\\\\1"', '"\\\\C"', '"a**"', '"x{1001}"', '"(?P<n>a)(?P<n>b)"',
           '"\\\\Z"', '"[z-a]"', '"("', '"a)"', '"*a"', '"\\\\8"', '"(?P<>a)"', '"[[:foo:]]"',
           '"\\\\p{Foo}"', '"a{2}{3}"']
SUBJECTS = ['""', '"a"', '"baaac"', '"abab"', '"héllo wörld"', '"日本日日"', '"a\\nbc\\nd"', '"12 345 6"', '"a.b axb"',
            '"ÉéE"', '"xx xxx"']
REPLACEMENTS = ['"-"', '""', '"<$0>"', '"$1"', '"${1}x"', '"$1x"', '"$$"', '"$"', '"${word}!"', '"$word"', '"$9"',
                '"${n}"', '"$01"', '"${"', '"${1"', '"$é"', '"$$1"']

CASES = {
    **{f"find_n {s}": [f"regex.find_n({p}, {s}, {n})" for p in PATTERNS for n in ("-1", "0", "1", "2")]
       for s in SUBJECTS},
    **{f"split {s}": [f"regex.split({p}, {s})" for p in PATTERNS] for s in SUBJECTS},
    **{f"replace {r}": [f"regex.replace({s}, {p}, {r})" for p in PATTERNS[:16] for s in SUBJECTS[:7]]
       for r in REPLACEMENTS},
    "refused": [f"regex.{fn}" for p in REFUSED for fn in (f"find_n({p}, \"a\", -1)", f"split({p}, \"a\")",
                                                            f"replace(\"a\", {p}, \"b\")")],
    "template_match": [f"regex.template_match({t}, {s}, {a}, {b})" for t, s, a, b in [
        ('"urn:foo:{.*}"', '"urn:foo:bar:baz"', '"{"', '"}"'),
        ('"urn:foo:{.*}"', '"urn:fo:bar"', '"{"', '"}"'),
        ('"urn:foo.bar.com:{.*}"', '"urn:foo.bar.com:x"', '"{"', '"}"'),
        ('"urn:foo.bar.com:{.*}"', '"urn:fooxbar.com:x"', '"{"', '"}"'),
        ('"<[a-z]+>-<\\\\d+>"', '"abc-123"', '"<"', '">"'),
        ('"<[a-z]+>-<\\\\d+>"', '"abc-12x"', '"<"', '">"'),
        ('"{a{b}c}"', '"abc"', '"{"', '"}"'),
        ('"{a"', '"a"', '"{"', '"}"'),
        ('"a}"', '"a}"', '"{"', '"}"'),
        ('"{(?=a)}"', '"a"', '"{"', '"}"'),
        ('"{a}"', '"a"', '"{{"', '"}"'),
        ('"{a}"', '"a"', '"é"', '"}"'),
        ('"x(y)+{[0-9]}$"', '"x(y)+5$"', '"{"', '"}"'),
        ('"{日+}本"', '"日日本"', '"{"', '"}"'),
        ('"{}"', '""', '"{"', '"}"'),
        ('"{a|b}{c}"', '"bc"', '"{"', '"}"'),
    ]],
    "globs_match": [f"regex.globs_match({a}, {b})" for a, b in [
        ('"a.a."', '".b.b"'), ('"[a-z]+"', '"[0-9]*"'), ('"[a-z]+"', '"[0-9]+"'), ('"a*"', '"b*"'), ('"a+"', '"b+"'),
        ('"abc"', '"abc"'), ('"abc"', '"abd"'), ('"a.*"', '".*b"'), ('"[abc]"', '"[cde]"'), ('"[abc]"', '"[def]"'),
        ('"ab*c"', '"a.c"'), ('"a+b+"', '"a*b*"'), ('"\\\\."', '"a"'), ('"\\\\."', '"."'), ('"[\\\\]]"', '"]"'),
        ('"*a"', '"a"'), ('"a++"', '"a"'), ('"]"', '"a"'), ('"[a"', '"a"'), ('"[-a]"', '"a"'), ('"[a-]"', '"a"'),
        ('"[b-a]"', '"a"'), ('"a\\\\"', '"a"'), ('"a*a*"', '"a"'), ('"a*a+"', '""'), ('""', '""'), ('""', '"a*"'),
        ('"日.+"', '".本"'), ('"[a-c]+x"', '"b*x"'), ('".*"', '"anything"'), ('"a.*b.*c"', '"a+x+c"'),
        ('"a[bc]*d"', '"abcbd"'), ('"a[bc]*d"', '"abxd"'), ('"x*y*z*"', '"zzz"'), ('"x+y"', '"xyy"'),
    ]],
}

INPUT_CASES = ["regex.find_n(input.n, \"a\", 1)", "regex.find_n(\"a\", \"a\", input.f)",
               "regex.find_n(\"a\", \"aaa\", input.one)",
               "regex.split(input.n, \"a\")", "regex.split(\"a\", input.n)", "regex.replace(input.n, \"a\", \"b\")",
               "regex.replace(\"a\", \"a\", input.n)", "regex.template_match(input.n, \"a\", \"{\", \"}\")",
               "regex.globs_match(input.n, \"a\")", "regex.find_n(\"a\", \"aaa\", input.big)"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_regex_builtin_agrees_with_opa(name: str) -> None:
    assert compare_expressions(CASES[name]) == []


def test_regex_builtins_of_ill_typed_input_agree_with_opa() -> None:
    assert compare_expressions(INPUT_CASES, input_doc={"n": 5, "f": 1.5, "one": 1.0, "big": 2**64}) == []
