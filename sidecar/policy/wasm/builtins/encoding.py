"""The encoding builtins OPA's Wasm library leaves to the host (topdown/encoding.go).

hex, base64url without padding, and URL query strings as Go's ``net/url`` reads and
writes them. A decoded string must be valid UTF-8 to become a Rego value here (the
host speaks JSON to the Wasm module); when it isn't, ``Halt`` ends the evaluation
with an error rather than answer with a different string than OPA's.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote_plus

from sidecar.policy.wasm import values
from sidecar.policy.wasm.builtins.operands import string_operand
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, Halt, register

__all__ = ["query_unescape"]

_HEX = frozenset("0123456789abcdefABCDEF")
_MAX_QUERY_PARAMS = 10000


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Halt(f"{name}: the decoded string is not valid UTF-8, which this engine can't hold") from exc


@register("hex.encode")
def hex_encode(_ctx: EvalContext, x: Any) -> str:
    """The lowercase hex of ``x``'s UTF-8 bytes."""
    return string_operand(x, 1).encode("utf-8").hex()


@register("hex.decode")
def hex_decode(_ctx: EvalContext, x: Any) -> str:
    """The bytes the hex text stands for; BuiltinError for an odd length or a non-hex character."""
    text = string_operand(x, 1)
    bad = next((c for c in text if c not in _HEX), None)
    if bad is not None:
        raise BuiltinError(f"encoding/hex: invalid byte: {bad!r}")
    if len(text) % 2:
        raise BuiltinError("encoding/hex: odd length hex string")
    return _text(binascii.unhexlify(text), "hex.decode")


@register("base64url.encode_no_pad")
def base64url_encode_no_pad(_ctx: EvalContext, x: Any) -> str:
    """URL-safe base64 of ``x``'s UTF-8 bytes, without ``=`` padding."""
    return base64.urlsafe_b64encode(string_operand(x, 1).encode("utf-8")).rstrip(b"=").decode("ascii")


@register("urlquery.encode")
def urlquery_encode(_ctx: EvalContext, x: Any) -> str:
    """Go's url.QueryEscape: space as ``+``, all but letters, digits and ``-_.~`` as ``%XX``."""
    return quote_plus(string_operand(x, 1), safe="")


def query_unescape(text: str, name: str) -> str:
    """Go's url.QueryUnescape: ``+`` is a space, ``%XX`` a byte; BuiltinError for a bad escape."""
    if "%" not in text and "+" not in text:
        return text
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        b = raw[i]
        if b == 0x25:
            pair = raw[i + 1:i + 3]
            if len(pair) < 2 or not all(chr(c) in _HEX for c in pair):
                raise BuiltinError(f"invalid URL escape {raw[i:i + 3].decode('utf-8', 'replace')!r}")
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(0x20 if b == 0x2B else b)
        i += 1
    return _text(bytes(out), name)


@register("urlquery.decode")
def urlquery_decode(_ctx: EvalContext, x: Any) -> str:
    """The text ``x`` (a query component) encodes; BuiltinError for a bad escape."""
    return query_unescape(string_operand(x, 1), "urlquery.decode")


def _query_values(value: Any) -> list[str]:
    if isinstance(value, str) and not isinstance(value, values.BigNumber):
        return [value]
    if isinstance(value, list | values.RegoSet) and all(
            isinstance(v, str) and not isinstance(v, values.BigNumber) for v in value):
        return list(value)
    raise BuiltinError("operand 1 values must be string, array[string], or set[string]")


@register("urlquery.encode_object")
def urlquery_encode_object(_ctx: EvalContext, obj: Any) -> str:
    """Go's url.Values.Encode of the object: keys sorted, ``k=v`` pairs joined by ``&``."""
    if not isinstance(obj, dict):
        raise BuiltinError(f"operand 1 must be object but got {values.type_name(obj)}")
    if any(not isinstance(k, str) or isinstance(k, values.BigNumber) for k in obj):
        raise BuiltinError("operand 1 must be an object with string keys")
    pairs = {k: _query_values(v) for k, v in obj.items()}
    return "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}"
                    for k in sorted(pairs) for v in pairs[k])


@register("urlquery.decode_object")
def urlquery_decode_object(_ctx: EvalContext, x: Any) -> dict[str, list[str]]:
    """Go's url.ParseQuery: each key to its values in order; BuiltinError for any bad pair or a ``;``."""
    query = string_operand(x, 1)
    if query.count("&") + 1 > _MAX_QUERY_PARAMS:
        raise BuiltinError("number of URL query parameters exceeded limit")
    out: dict[str, list[str]] = {}
    error: BuiltinError | None = None
    for part in query.split("&"):
        if ";" in part:
            error = BuiltinError("invalid semicolon separator in query")
            continue
        if not part:
            continue
        key, _, value = part.partition("=")
        try:
            key, value = query_unescape(key, "urlquery.decode_object"), query_unescape(value, "urlquery.decode_object")
        except BuiltinError as exc:
            error = error or exc
            continue
        out.setdefault(key, []).append(value)
    if error is not None:
        raise error
    return out
