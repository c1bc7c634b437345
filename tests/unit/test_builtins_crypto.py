"""The digest and HMAC host builtins against the real OPA: every expression must decide alike.

OPA is the oracle (``tests.support.rego_diff``): no digest is written here. Keys and
messages cover ASCII, multi-byte UTF-8, NUL, long keys (longer than a hash block,
so HMAC hashes them first) and non-string operands through ``input``.
"""

from __future__ import annotations

import json

import pytest

from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

_TEXTS = ["", "a", "abc", "The quick brown fox jumps over the lazy dog", "héllo wörld", "日本語のテキスト",
          "emoji 🎉🔐", "nul\u0000byte", "tab\tnew\nline", "x" * 64, "y" * 65, "z" * 129, "ÿ" * 70,
          "\u00a0\u2028\ufeff", "key", "secret"]
_DIGESTS = ["crypto.md5", "crypto.sha1", "crypto.sha256"]
_HMACS = ["crypto.hmac.md5", "crypto.hmac.sha1", "crypto.hmac.sha256", "crypto.hmac.sha512"]
_KEYS = ["", "key", "ключ", "🔑", "k" * 64, "k" * 65, "K" * 200, "nul\u0000key"]

DIGEST = [f"{fn}({json.dumps(t)})" for fn in _DIGESTS for t in _TEXTS] + [
    f"{fn}(input.{field})" for fn in _DIGESTS for field in ("number", "null", "list", "text")
]
HMAC = [f"{fn}({json.dumps(m)}, {json.dumps(k)})" for fn in _HMACS for m in _TEXTS[::3] for k in _KEYS] + [
    f"{fn}(input.{a}, input.{b})" for fn in _HMACS for a, b in (("text", "number"), ("number", "text"),
                                                                ("text", "text"), ("null", "null"))
]
EQUAL = [
    'crypto.hmac.equal("", "")', 'crypto.hmac.equal("a", "a")', 'crypto.hmac.equal("a", "b")',
    'crypto.hmac.equal("a", "ab")', 'crypto.hmac.equal("héllo", "héllo")', 'crypto.hmac.equal("é", "é")',
    'crypto.hmac.equal(crypto.hmac.sha256("m", "k"), crypto.hmac.sha256("m", "k"))',
    'crypto.hmac.equal(crypto.hmac.sha256("m", "k"), crypto.hmac.sha256("m", "K"))',
    'crypto.hmac.equal(crypto.hmac.sha256("m", "k"), upper(crypto.hmac.sha256("m", "k")))',
    "crypto.hmac.equal(input.text, input.text)", "crypto.hmac.equal(input.text, input.number)",
    "crypto.hmac.equal(input.list, input.text)",
    'crypto.md5([1e400, "a"][input.zero])', 'crypto.hmac.sha256("m", [1e400, "k"][input.zero])',
    'crypto.hmac.equal([1e400, "a"][input.zero], "1e400")',
]
INPUT = {"zero": 0, "number": 1, "null": None, "list": ["a"], "text": "input text ✓"}


@pytest.mark.parametrize("name, exprs", [("digests", DIGEST), ("hmacs", HMAC), ("crypto.hmac.equal", EQUAL)])
def test_crypto_builtins_agree_with_opa(name: str, exprs: list[str]) -> None:
    assert compare_expressions(exprs, input_doc=INPUT) == []
