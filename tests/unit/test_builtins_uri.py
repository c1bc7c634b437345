"""``uri.parse`` and ``uri.is_valid`` answer as ``opa eval`` does (OPA is the oracle)."""

from __future__ import annotations

import pytest

from tests.support.rego_diff import compare_expressions, wasm_outcome

pytestmark = pytest.mark.integration

URIS = ['""', '"*"', '"*#f"', '"https://example.com"', '"HTTPS://User:Pw@Example.com:8443/a/b?x=1&y=2#frag"',
        '"http://example.com/a%20b/c%2Fd?q=%41#f%20g"', '"http://[::1]:8080/p"', '"http://[fe80::1%25eth0]/"',
        '"http://[::ffff:1.2.3.4]/"', '"http://[1.2.3.4]/"', '"http://[::1/"', '"http://[::1]x/"', '"http://a:b:c/"',
        '"ftp://a:b:c/"', '"http://host:80a/"', '"http://host:/"', '"mailto:x@example.com"', '"urn:isbn:0451450523"',
        '"//cdn.example.com/lib.js"', '"///triple"', '"/just/a/path"', '"relative/path"', '"a:b"', '"/a:b"',
        '"a/b:c"', '"1x:y"', '"://x"', '"http://exa mple.com/"', '"http://h%20/"', '"http://h%41/"', '"http://h%e6%97%a5/"',
        '"http://x/%zz"', '"http://x/#%zz"', '"http://x/?%zz"', '"http://x/a?"', '"http://x/a??"', '"http://x/日本"',
        '"http://日本.jp/"', '"http://u@h@x/"', '"http://u%zz@x/"', '"http://ü@x/"', '"http://x/a/../b/./c"',
        '"tel:+1-816-555-1212"', '"http://x/%2525"', '"http://[::1]:80:81/"', '"http://x:0/"', r'"http://x/\t"',
        r'"http://x/#\t"', '"http://[::1%25]/"', '"http://[fe80::1%25%41]/"', '"http://x/p;params?q#"', '"?only=query"',
        '"#only-fragment"', '"http://x/a+b%2Bc"', '"HTTP://X/"', '"http://x/<>"', '"http://x/%3Fnot-a-query"']


@pytest.mark.parametrize("fn", ["uri.parse", "uri.is_valid"])
def test_uri_builtin_agrees_with_opa(fn: str) -> None:
    assert compare_expressions([f"{fn}({u})" for u in URIS]) == []


def test_uri_builtins_of_ill_typed_input_agree_with_opa() -> None:
    assert compare_expressions(["uri.parse(input.n)", "uri.is_valid(input.n)", "uri.is_valid(input.a)"],
                               input_doc={"n": 5, "a": ["http://x/"]}) == []


def test_a_decoded_part_that_is_not_utf8_is_an_evaluation_error() -> None:
    outcome = wasm_outcome({"t.rego": 'package t\nx := uri.parse("http://x/%ff")\n'}, "t")
    assert outcome.kind == "error"
    assert "not valid UTF-8" in outcome.error
