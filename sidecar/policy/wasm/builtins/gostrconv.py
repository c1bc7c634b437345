"""Go's strconv, the parts fmt uses: IsPrint, Quote and FormatFloat for float64.

``go_quote`` and ``escape_rune`` take valid Unicode text (what a Rego string
holds); ``append_float(v, fmt, prec)`` is ``strconv.FormatFloat(v, fmt, prec, 64)``
for fmt in ``b e E f g G x X`` (``prec`` -1 is the shortest text that reads back
as ``v``), with correctly rounded digits, ties to even, as Go does.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right
from decimal import Decimal

from sidecar.policy.wasm.builtins.goprint_table import PRINT_BOUNDARIES

__all__ = ["append_float", "escape_rune", "go_quote", "is_print"]

_NAMED = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def is_print(r: int) -> bool:
    """Go's strconv.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space."""
    return bisect_right(PRINT_BOUNDARIES, r) % 2 == 1


def escape_rune(r: int, quote: str, ascii_only: bool) -> str:
    """One rune as Go writes it inside a ``quote``-quoted literal."""
    c = chr(r)
    if c == quote or c == "\\":
        return "\\" + c
    if (r < 0x80 and is_print(r)) if ascii_only else is_print(r):
        return c
    named = _NAMED.get(r)
    if named:
        return named
    if r < 0x20 or r == 0x7F:
        return f"\\x{r:02x}"
    if 0xD800 <= r <= 0xDFFF or r > 0x10FFFF:
        r = 0xFFFD
    return f"\\u{r:04x}" if r < 0x10000 else f"\\U{r:08x}"


def go_quote(s: str, ascii_only: bool = False) -> str:
    """strconv.Quote (``ascii_only``: QuoteToASCII)."""
    return '"' + "".join(escape_rune(ord(c), '"', ascii_only) for c in s) + '"'


# --- FormatFloat ---------------------------------------------------------------------


def _bits(v: float) -> tuple[bool, int, int]:
    """Sign, unbiased binary exponent and mantissa (with its implicit bit) of ``v``."""
    (raw,) = struct.unpack("<Q", struct.pack("<d", v))
    neg = raw >> 63 != 0
    exp = (raw >> 52) & 0x7FF
    mant = raw & ((1 << 52) - 1)
    if exp == 0:
        exp = 1
    else:
        mant |= 1 << 52
    return neg, exp - 1023, mant


def _fmt_b(neg: bool, mant: int, exp: int) -> str:
    exp -= 52
    return ("-" if neg else "") + f"{mant}p" + ("+" if exp >= 0 else "") + str(exp)


def _fmt_x(neg: bool, mant: int, exp: int, prec: int, upper: bool) -> str:
    if mant == 0:
        exp = 0
    mant <<= 8
    while mant != 0 and mant & (1 << 60) == 0:
        mant <<= 1
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant <<= 60 - shift
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    digits = "0123456789ABCDEF" if upper else "0123456789abcdef"
    out = ("-" if neg else "") + "0" + ("X" if upper else "x") + str((mant >> 60) & 1)
    mant = (mant << 4) & ((1 << 64) - 1)
    count = -1 if prec < 0 else prec
    if (count < 0 and mant != 0) or count > 0:
        out += "."
        while (count < 0 and mant != 0) or count > 0:
            out += digits[(mant >> 60) & 15]
            mant = (mant << 4) & ((1 << 64) - 1)
            count -= 1
    sign = "-" if exp < 0 else "+"
    return out + ("P" if upper else "p") + sign + f"{abs(exp):02d}"


def _digits(text: str) -> tuple[str, int]:
    """The significant digits of a decimal text (no leading or trailing zeros) and where its point goes."""
    _sign, digit_tuple, exponent = Decimal(text).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent - (len(digits) - len(digits.lstrip("0")))
    digits = digits.strip("0")
    return (digits, point) if digits else ("", 0)


def _fmt_e(neg: bool, d: str, dp: int, prec: int, ch: str) -> str:
    out = ("-" if neg else "") + (d[0] if d else "0")
    if prec > 0:
        out += "." + d[1:prec + 1].ljust(prec, "0")
    exp = dp - 1 if d else 0
    return out + ch + ("-" if exp < 0 else "+") + f"{abs(exp):02d}"


def _fmt_f(neg: bool, d: str, dp: int, prec: int) -> str:
    out = "-" if neg else ""
    out += d[:dp].ljust(dp, "0") if dp > 0 else "0"
    if prec > 0:
        out += "." + "".join(d[dp + i] if 0 <= dp + i < len(d) else "0" for i in range(prec))
    return out


def _format_digits(neg: bool, d: str, dp: int, prec: int, fmt: str, shortest: bool) -> str:
    if fmt in "eE":
        return _fmt_e(neg, d, dp, prec, fmt)
    if fmt == "f":
        return _fmt_f(neg, d, dp, prec)
    nd = len(d)
    eprec = prec
    if eprec > nd and nd >= dp:
        eprec = nd
    if shortest:
        eprec = 6
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        prec = min(prec, nd)
        return _fmt_e(neg, d, dp, prec - 1, "e" if fmt == "g" else "E")
    if prec > dp:
        prec = nd
    return _fmt_f(neg, d, dp, max(prec - dp, 0))


def append_float(v: float, fmt: str, prec: int) -> str:
    """strconv.FormatFloat(v, fmt, prec, 64)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "-Inf" if v < 0 else "+Inf"
    neg, exp, mant = _bits(v)
    if fmt == "b":
        return _fmt_b(neg, mant, exp)
    if fmt in "xX":
        return _fmt_x(neg, mant, exp, prec, fmt == "X")
    shortest = prec < 0
    if mant == 0:
        return _format_digits(neg, "", 0, prec, fmt, shortest)
    a = abs(v)
    if shortest:
        d, dp = _digits(repr(a))
        prec = {"e": len(d) - 1, "E": len(d) - 1, "f": max(len(d) - dp, 0)}.get(fmt, len(d))
        return _format_digits(neg, d, dp, prec, fmt, True)
    if fmt == "f":
        d, dp = _digits(f"{a:.{prec}f}")
    else:
        if fmt in "gG" and prec == 0:
            prec = 1
        sig = prec + 1 if fmt in "eE" else prec
        d, dp = _digits(f"{a:.{sig - 1}e}")
    return _format_digits(neg, d, dp, prec, fmt, False)
