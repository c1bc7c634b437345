"""The encoding host builtins answer as ``opa eval`` does (OPA is the oracle).

A decoded string that is not valid UTF-8 can't cross into this engine: there the
embedded evaluation fails (checked apart), where OPA would carry the bytes on.
"""

from __future__ import annotations

import pytest

from tests.support.rego_diff import compare_expressions, wasm_outcome

pytestmark = pytest.mark.integration

TEXTS = ['""', '"a"', '"lock-state"', '"héllo wörld"', '"日本語"', r'"\u0000\u007f"', r'"\ud83d\ude00"',
         '"a b&c=d/e?f#g+h%i"', '"~-_.*\'()!$,;:@[]"', r'"tab\there"']
HEXES = ['""', '"00"', '"41"', '"4a4B"', '"e697a5"', '"abc"', '"zz"', '"4 1"', '"0x41"', '"f09f9880"', '"-1"']
QUERIES = ['""', '"a"', '"a+b"', '"a%20b"', '"%41%42"', '"%"', '"%4"', '"%zz"', '"%e6%97%a5"', '"100%"',
           '"a%2Bb"', '"%2f%2F"', '"+++"']
QUERY_STRINGS = ['""', '"a=1"', '"a=1&b=2&a=3"', '"a"', '"a="', '"=1"', '"&&a=1&&"', '"a=1;b=2"', '"a=%zz"',
                 '"a=%zz&b=1"', '"k+1=v+2"', '"%e6%97%a5=%41"', '"a=1&a=1"', '"x=a=b"', '"b=2&a=1"']
OBJECTS = ['{}', '{"a": "1"}', '{"b": "2", "a": "1"}', '{"a": ["1", "2"]}', '{"a": {"2", "1"}}', '{"a": []}',
           '{"a b": "c&d", "é": "日本"}', '{"a": set()}', '{"z": "", "y": [""]}']

CASES = {
    "hex": [f"hex.encode({t})" for t in TEXTS] + [f"hex.decode({h})" for h in HEXES]
    + [f"hex.decode(hex.encode({t}))" for t in TEXTS],
    # NOTE: base64url.decode is not here: OPA's Wasm library's own is undefined for "" (topdown's is ""),
    # so the embedded engine refuses a bundle calling it (compiler.DIVERGENT_NATIVE).
    "base64url": [f"base64url.encode_no_pad({t})" for t in TEXTS],
    "urlquery": [f"urlquery.encode({t})" for t in TEXTS] + [f"urlquery.decode({q})" for q in QUERIES]
    + [f"urlquery.decode(urlquery.encode({t}))" for t in TEXTS],
    "query objects": [f"urlquery.decode_object({q})" for q in QUERY_STRINGS]
    + [f"urlquery.encode_object({o})" for o in OBJECTS]
    + [f"urlquery.decode_object(urlquery.encode_object({o}))" for o in OBJECTS],
}

INPUT_CASES = ["hex.encode(input.n)", "hex.decode(input.n)", "base64url.encode_no_pad(input.n)",
               "urlquery.encode(input.n)", "urlquery.decode(input.n)", "urlquery.decode_object(input.n)",
               "urlquery.encode_object(input.n)", "urlquery.encode_object(input.bad_value)",
               "urlquery.encode_object(input.bad_member)", "urlquery.encode_object(input.null_value)"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_builtin_agrees_with_opa(name: str) -> None:
    assert compare_expressions(CASES[name]) == []


def test_encoding_builtins_of_ill_typed_input_agree_with_opa() -> None:
    doc = {"n": 5, "bad_value": {"a": 1}, "bad_member": {"a": ["x", 2]}, "null_value": {"a": None}}
    assert compare_expressions(INPUT_CASES, input_doc=doc) == []


@pytest.mark.parametrize("expr", ['hex.decode("ff")', 'urlquery.decode("%ff")', 'urlquery.decode_object("a=%c3")'])
def test_a_decoded_string_that_is_not_utf8_is_an_evaluation_error(expr: str) -> None:
    outcome = wasm_outcome({"t.rego": f"package t\nx := {expr}\n"}, "t")
    assert outcome.kind == "error"
    assert "not valid UTF-8" in outcome.error
