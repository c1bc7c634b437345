"""JSON text into and out of OPA's Wasm library: escaped surrogates, bytes that are not UTF-8."""

from __future__ import annotations

import json

import pytest

from sidecar.policy.wasm import jsontext

ESCAPES = [
    (rb'"\ud840\udc00"', '"\U00020000"'), (rb'"\uD83D\uDE00!"', '"\U0001f600!"'), (rb'"\ud800"', '"\ufffd"'),
    (rb'"x\udc00y"', '"x\ufffdy"'), (rb'"\ud800\ud83d\ude00"', '"\ufffd\U0001f600"'),
    (rb'"\\ud800"', r'"\\ud800"'), (rb'"\\\ud800"', '"\\\\\ufffd"'), (rb'"\u00e9\n"', r'"\u00e9\n"'),
]


@pytest.mark.parametrize(("raw", "expected"), ESCAPES, ids=[r.decode() for r, _ in ESCAPES])
def test_escaped_surrogates_become_utf8_as_go_reads_them(raw: bytes, expected: str) -> None:
    out = jsontext.input_text(raw)
    assert out.decode() == expected
    assert json.loads(out) == json.loads(expected)


def test_text_without_surrogate_escapes_is_left_alone() -> None:
    raw = b'{"a": "\\u0000\\n", "b": 1e400}'
    assert jsontext.input_text(raw) is raw


@pytest.mark.parametrize(("raw", "text"), [(b"ok", "ok"), (b"\xff", "\ufffd"), (b"\xe7\x80a", "\ufffd\ufffda"),
                                           ("é".encode(), "é")])
def test_bytes_that_are_not_utf8_read_one_replacement_each(raw: bytes, text: str) -> None:
    assert jsontext.utf8_text(raw) == text
