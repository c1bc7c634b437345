"""Known differences between OPA's own Wasm library and OPA: theirs, not the embedded engine's.

The policy module OPA compiles (``opa build -t wasm``) links OPA's C library for
arithmetic, JSON, base64 and object updates; where that library answers otherwise
than OPA's Go evaluator, the host can't change the answer. Each ``Divergence``
names one such difference and recognises its verdicts; the differential test
counts those instead of failing, and pins one concrete input of each as an
expected failure (strict), so the day OPA fixes one, the test says so.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.corpus.harness import Verdict, parse_exact

__all__ = ["KNOWN", "PINNED", "Divergence", "known_divergence"]

# NOTE: OPA's arithmetic on non-integers is big.Float with a 64-bit mantissa; the library's is exact.
_RELATIVE = Decimal(2) ** -56


@dataclass(frozen=True)
class Divergence:
    """One known difference: ``matches(rule path, input text, OPA's verdict, the engine's verdict)``."""

    name: str
    why: str
    matches: Callable[[str, bytes | None, Verdict, Verdict], bool]


Matcher = Callable[[str, bytes | None, Verdict, Verdict], bool]


def _aborts_with(text: str) -> Matcher:
    def matches(_path: str, _raw: bytes | None, opa: Verdict, wasm: Verdict) -> bool:
        return wasm.kind == "error" and text in wasm.error and opa.kind != "error"

    return matches


def _traps_on_non_object_input(path: str, raw: bytes | None, opa: Verdict, wasm: Verdict) -> bool:
    not_object = raw is None or not raw.lstrip().startswith(b"{")
    return (path.startswith("corpus/with_override/") and not_object and wasm.kind == "error"
            and "wasm trap" in wasm.error and opa.kind != "error")


def _only_in(paths: frozenset[str], *kinds: tuple[str, str]) -> Matcher:
    """Matches a difference in one of ``paths`` where (OPA's kind, the engine's kind) is one of ``kinds``."""

    def matches(path: str, _raw: bytes | None, opa: Verdict, wasm: Verdict) -> bool:
        return path in paths and (opa.kind, wasm.kind) in kinds

    return matches


def _multiset(value: Any) -> Any:
    if isinstance(value, list):
        return sorted((_multiset(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {k: _multiset(v) for k, v in value.items()}
    return value


_MARSHALLING = frozenset({"corpus/json_audit/line", "corpus/json_audit/encoded"})

# NOTE: the corpus rules that collect into an array by iterating an input that may be an object.
_ITERATING = frozenset({"corpus/else_chain/levels", "corpus/comprehensions/names", "corpus/functions/clamped"})


def _iterated_in_another_order(path: str, _raw: bytes | None, opa: Verdict, wasm: Verdict) -> bool:
    if path not in _ITERATING or opa.kind != "value" or wasm.kind != "value":
        return False
    return bool(_multiset(parse_exact(opa.value)) == _multiset(parse_exact(wasm.value)))


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b or abs(a - b) <= max(abs(a), abs(b)) * _RELATIVE
    return bool(a == b)


def _marshalled(text: str) -> Any:
    """The document inside a corpus string made by json.marshal: itself, "audit <it>", or its base64."""
    value = json.loads(text)
    if not isinstance(value, str):
        return None
    if value.startswith("audit "):
        value = value.removeprefix("audit ")
    elif not value.startswith(("{", "[", '"')) and not value[:1].isdigit():
        value = base64.b64decode(value).decode()
    return json.loads(value)


def _marshalled_alike(path: str, _raw: bytes | None, opa: Verdict, wasm: Verdict) -> bool:
    if path not in _MARSHALLING or opa.kind != "value" or wasm.kind != "value":
        return False
    try:
        return bool(_marshalled(opa.value) == _marshalled(wasm.value))
    except ValueError:
        return False


_INT64_AS_FLOAT = re.compile(r"%!f\((?:int64|big\.Int)=(-?[0-9]+)\)")
_FORMATTING = frozenset({"corpus/messages/deny", "corpus/messages/summary", "corpus/messages/header"})


def _integral_result_formatted_as_float(path: str, _raw: bytes | None, opa: Verdict, wasm: Verdict) -> bool:
    if path not in _FORMATTING or opa.kind != "value" or wasm.kind != "value":
        return False
    # NOTE: the float the host formats is the integer's nearest float64, as Go's %.2f would show it.
    return _INT64_AS_FLOAT.sub(lambda m: f"{float(m.group(1)):.2f}", opa.value) == wasm.value


def _rounded_alike(_path: str, _raw: bytes | None, opa: Verdict, wasm: Verdict) -> bool:
    if opa.kind != "value" or wasm.kind != "value":
        return False
    return _close(parse_exact(opa.value), parse_exact(wasm.value))


KNOWN: tuple[Divergence, ...] = (
    Divergence("zero_by_zero", "0/0 aborts the Wasm library (mpdecimal's invalid operation); "
               "OPA's is a 'divide by zero' builtin error, so the expression is undefined",
               _aborts_with("opa_arith_divide: invalid number")),
    Divergence("with_on_non_object", "`with input.x as v` over an input that is not an object traps in the "
               "library (divide by zero in opa_object_insert, out-of-bounds memory in opa_free); OPA makes the object",
               _traps_on_non_object_input),
    Divergence("base64_padding", "the library's base64.decode accepts text without its '=' padding and refuses "
               "the empty string; OPA (Go's StdEncoding) does the opposite",
               _only_in(frozenset({"corpus/json_audit/decoded"}), ("undefined", "value"), ("value", "undefined"))),
    Divergence("to_number_text", "the library's to_number reads \"1e400\", which OPA refuses (undefined), and "
               "refuses \"1_000\" and \".5\", which OPA reads into numbers it then can't write as JSON (a 500)",
               _only_in(frozenset({"corpus/json_audit/as_number"}), ("undefined", "value"), ("error", "undefined"),
                        ("error", "value"))),
    Divergence("floor_ceil_of_small_negatives", "OPA 1.22.2 gives floor(-0.5) = 0 and ceil(-0.5) = 1 (a bug of "
               "OPA's Go evaluator for x in (-1, 0)); the library gives -1 and 0",
               _only_in(frozenset({"corpus/quota/headroom", "corpus/numbers_big/floor_n"}), ("value", "value"))),
    Divergence("round_beyond_64_bits", "OPA's round() passes an integer through a 64-bit mantissa, so "
               "round(18446744073709551617) is 18446744073709551616 and n == round(n) fails; the library's is exact",
               _only_in(frozenset({"corpus/numbers_big/is_int"}), ("undefined", "value"), ("value", "undefined"))),
    Divergence("marshal_text", "the library's json.marshal writes an object's keys in hash order and <, &, >, "
               "U+2028 as they are; OPA's sorts the keys and escapes those (Go's HTML-safe encoder): the same "
               "document, another string", _marshalled_alike),
    Divergence("integral_result_scale", "OPA makes an integral arithmetic result an integer "
               "(2147483648.0 * 100 / 100 is 2147483648, which sprintf's %.2f shows as %!f(int64=...)); the "
               "library keeps the decimal's scale, so the host's sprintf gets a float",
               _integral_result_formatted_as_float),
    Divergence("object_iteration_order", "the library iterates an object's values in hash order, OPA in key order, "
               "so an array collected from an object comes out permuted", _iterated_in_another_order),
    Divergence("float_precision", "OPA rounds arithmetic on non-integers to a 64-bit mantissa; "
               "the library computes exact decimals (0.1000000000000000000001 * 1 is 0.1 to OPA)",
               _rounded_alike),
)

# (divergence, policy, input text): one input that shows each known divergence.
PINNED: tuple[tuple[str, str, str], ...] = (
    ("zero_by_zero", "quota", '{"used":0,"limit":0}'),
    ("with_on_non_object", "with_override", "null"),
    ("base64_padding", "json_audit", '{"b64":"aGVsbG8"}'),
    ("base64_padding", "json_audit", '{"b64":""}'),
    ("round_beyond_64_bits", "numbers_big", '{"n":18446744073709551617,"m":1}'),
    ("float_precision", "conflict_function", '{"base":0.1000000000000000000001,"customer":{}}'),
    ("to_number_text", "json_audit", '{"text":"1e400"}'),
    ("to_number_text", "json_audit", '{"text":"1_000"}'),
    ("floor_ceil_of_small_negatives", "quota", '{"used":1,"limit":0.5}'),
    ("marshal_text", "json_audit", '{"request":{" ":null,"\\"":null}}'),
    ("integral_result_scale", "messages", '{"user":"","size":2147483648.0}'),
    ("object_iteration_order", "else_chain", '{"scores":{"":null,"\\\\":[]}}'),
)


def known_divergence(path: str, raw: bytes | None, opa: Verdict, wasm: Verdict) -> Divergence | None:
    """The known divergence the two verdicts of ``path`` for input ``raw`` show, None when it is none of them."""
    for divergence in KNOWN:
        if divergence.matches(path, raw, opa, wasm):
            return divergence
    return None
